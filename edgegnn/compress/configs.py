"""The frozen configs of the compression passes: one dataclass per pass, validated on construction.

Each config names its pass (`PASS`), round-trips through `to_dict`/`from_dict` (unknown keys
and wrong types are `ConfigError`s naming the key, the value and what is allowed), and
becomes one recipe entry `{"pass": PASS, **to_dict()}` on the EdgeModel it produces.
Calibration data is never a config field: it is an argument of `compress`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from edgegnn.configs import _describe, _type_ok, check_choice, check_range, config_from_dict, config_to_dict
from edgegnn.errors import ConfigError


class _PassConfig:
    """Shared behaviour: type checks for direct construction, dict round trip, recipe entry."""

    PASS: ClassVar[str]

    def _check_types(self) -> None:
        """Reject wrong types even when the config is built in Python (not only from dicts)."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # lists from YAML/JSON or callers: store as tuples
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            if not _type_ok(value, hints[f.name]):
                raise ConfigError(f"{self.PASS}.{f.name}", value, _describe(hints[f.name]))
            if isinstance(value, int) and not isinstance(value, bool) and _type_ok(0.5, hints[f.name]):
                object.__setattr__(self, f.name, float(value))  # a float field: 1 -> 1.0, one spelling
        for name in getattr(self, "tensors", ()):
            if not isinstance(name, str):
                raise ConfigError(f"{self.PASS}.tensors", name, "expected tensor names (strings)")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, source: str | None = None):
        return config_from_dict(cls, data, source=source)

    def recipe_entry(self) -> dict[str, Any]:
        return {"pass": self.PASS, **self.to_dict()}


@dataclass(frozen=True)
class PruneConfig(_PassConfig):
    """Pruning.

    Args:
        method: "magnitude" — unstructured: per tensor, the `sparsity` share of values with
            the smallest |x| become zero and the tensor is stored as CSR (smaller on disk
            only; runtimes densify it). "structured" — drop a `sparsity` share of embedding
            dimensions (LightGCN: the same columns of `message`, `item` and e_u⁰) or of SAGE
            hidden channels; shrinks runtime memory and compute. "items" — drop catalog rows
            that no calibration user gets in a top-`top_k` list, at most `sparsity` of them.
        sparsity: share to remove, 0 <= sparsity < 1.
        tensors: magnitude only: which tensors (empty: every item table and dense weight).
        top_k: items only: the K of the top-K lists that keep an item.
        rotate: structured LightGCN only: first rotate both tables to the principal axes of
            the stacked tables [message; item] (exact: scores are invariant under a shared
            rotation), so the dropped dimensions are the lowest-energy directions instead of
            arbitrary axes. SAGE's ReLU forbids the rotation: hidden channels are dropped as is.
    """

    PASS: ClassVar[str] = "prune"
    method: Literal["magnitude", "structured", "items"] = "structured"
    sparsity: float = 0.5
    tensors: tuple[str, ...] = ()
    top_k: int = 20
    rotate: bool = True

    def __post_init__(self) -> None:
        self._check_types()
        check_choice(self.PASS, "method", self.method, ("magnitude", "structured", "items"))
        check_range(self.PASS, "sparsity", self.sparsity, low=0.0, high=1.0, high_open=True)
        check_range(self.PASS, "top_k", self.top_k, low=1)
        if self.tensors and self.method != "magnitude":
            raise ConfigError(f"{self.PASS}.tensors", list(self.tensors),
                              f"only the magnitude method takes tensor names ({self.method} pruning "
                              "acts on the whole model)")


@dataclass(frozen=True)
class LowRankConfig(_PassConfig):
    """Truncated SVD of item tables (and SAGE weights): x ≈ left @ rightᵀ.

    Args:
        rank: the rank r (exactly one of rank and energy).
        energy: keep the smallest rank whose squared singular values retain this share.
        tensors: which tensors (empty: every item table; name SAGE weights to factor them).
        joint: factor the named item tables together, [message | item] = A [B_m | B_i]ᵀ, so
            they share the left factor A [I, r]: stored once, and a user is scored in rank
            space, s = (e_u B_i) Aᵀ.
        finetune_steps: if > 0, distil the factors towards the input model's scores on the
            calibration users (softmax KL over the catalog) for this many Adam steps.
        finetune_lr: Adam's step size for the distillation.
    """

    PASS: ClassVar[str] = "low_rank"
    rank: int | None = None
    energy: float | None = None
    tensors: tuple[str, ...] = ()
    joint: bool = True
    finetune_steps: int = 0
    finetune_lr: float = 0.01

    def __post_init__(self) -> None:
        self._check_types()
        if (self.rank is None) == (self.energy is None):
            raise ConfigError(f"{self.PASS}.rank", self.rank,
                              f"exactly one of rank and energy must be set (energy={self.energy!r})")
        if self.rank is not None:
            check_range(self.PASS, "rank", self.rank, low=1)
        if self.energy is not None:
            check_range(self.PASS, "energy", self.energy, low=0.0, high=1.0, low_open=True)
        check_range(self.PASS, "finetune_steps", self.finetune_steps, low=0, high=100_000)
        check_range(self.PASS, "finetune_lr", self.finetune_lr, low=0.0, high=10.0, low_open=True)


@dataclass(frozen=True)
class QuantizeConfig(_PassConfig):
    """Symmetric per-row integer weights and static int8 activation scales.

    Args:
        precision: "int8", "int4", or "mixed" (item rows: the most popular in int8, the
            `tail_fraction` least popular in int4; dense weights int8).
        tensors: which tensors (empty: every item table and dense weight; biases stay fp32).
        activations: calibrate static int8 scales of the activations entering a matmul
            (e_u before scoring; SAGE's h¹ too) on the calibration users.
        calibration_method: "minmax" (scale = max|x| / L) or "percentile" (the
            `percentile` of |x| / L: clips outliers, finer steps for the rest), L the
            activation's levels (edgegnn.edge_model.ACTIVATION_LEVELS).
        percentile: for "percentile", in [50, 100].
        tail_fraction: for "mixed", the share of item rows stored as int4, in [0, 1].
        scale_dtype: "float32" or "float16" per-row weight scales (float16 halves their
            bytes; codes are fitted to the float16-rounded scale the device uses).
        granularity: item tables' scales: "row" (one per item: each item's score exact up to
            rounding) or "tensor" (one for the table, stored per row). With one scale, the
            int32 accumulators rank as the scores do, and the ONNX graph takes its top-K on
            them, without rescaling every item (Gowalla: Recall@20 within 0.1 % of "row").
            Dense weights keep one scale per output row.
    """

    PASS: ClassVar[str] = "quantize"
    precision: Literal["int8", "int4", "mixed"] = "int8"
    tensors: tuple[str, ...] = ()
    activations: bool = True
    calibration_method: Literal["minmax", "percentile"] = "minmax"
    percentile: float = 99.99
    tail_fraction: float = 0.5
    scale_dtype: Literal["float32", "float16"] = "float32"
    granularity: Literal["row", "tensor"] = "row"

    def __post_init__(self) -> None:
        self._check_types()
        check_choice(self.PASS, "precision", self.precision, ("int8", "int4", "mixed"))
        check_choice(self.PASS, "granularity", self.granularity, ("row", "tensor"))
        if self.granularity == "tensor" and self.precision == "mixed":
            raise ConfigError(f"{self.PASS}.granularity", self.granularity,
                              'one scale per table needs one precision: "int8" or "int4", not "mixed"')
        check_choice(self.PASS, "scale_dtype", self.scale_dtype, ("float32", "float16"))
        check_choice(self.PASS, "calibration_method", self.calibration_method, ("minmax", "percentile"))
        check_range(self.PASS, "percentile", self.percentile, low=50.0, high=100.0)
        check_range(self.PASS, "tail_fraction", self.tail_fraction, low=0.0, high=1.0)


@dataclass(frozen=True)
class ShareConfig(_PassConfig):
    """LightGCN: the message table as a row-scaled linear map of the item table, message_i ≈ s_i · item_i W.

    Both tables come from the same layer embeddings (message_i = Σ_{l<L} α_{l+1} e_i^l / sqrt(|N(i)|),
    item_i = Σ_l α_l e_i^l); W [d, d] carries the layer mix, s [I] the per-item norm no linear
    map can express (see `edgegnn.compress.share`). The device drops one of its two [I, d]
    tables: message becomes RowScaledTensor(LowRankTensor(left=item — the very same stored
    table — right=Wᵀ), s), or LowRankTensor(item, Wᵀ) without the row scale.

    Args:
        ridge: L2 penalty λ of the fit of W, (XᵀX + λI)⁻¹ XᵀM (0: plain least squares).
        row_scale: fit and store the per-item factor s (alternating least squares). On the
            64-dim Gowalla model: Recall@20 -0.3 % with it, +0.8 % without.
        scale_dtype: "float16" (2 bytes per item) or "float32" storage of s; the fitted
            residual and the device math use the stored (rounded) s.
    """

    PASS: ClassVar[str] = "share"
    ridge: float = 0.0
    row_scale: bool = True
    scale_dtype: Literal["float32", "float16"] = "float16"

    def __post_init__(self) -> None:
        self._check_types()
        check_range("share", "ridge", self.ridge, low=0.0)
        check_choice(self.PASS, "scale_dtype", self.scale_dtype, ("float32", "float16"))


@dataclass(frozen=True)
class ProductQuantizeConfig(_PassConfig):
    """Product quantization of item tables: M uint8 codes per row, scored through lookup tables.

    Each named table [R, d] is cut into `subvectors` (M) blocks of d/M columns; each block
    is clustered by seeded k-means into `centroids` (K) codewords, and row r stores the
    M indices (uint8 [R, M]) plus the codebooks [M, K, d/M] (see
    `edgegnn.tensors.ProductQuantizedTensor` for the device math). Low-rank and shared
    tables have their item-row factor quantized (the shared item table once; W stays as
    it is). Then, if `finetune_steps > 0`, the codes stay fixed and the codebooks are
    distilled towards the input model's scores on the calibration users
    (`edgegnn.compress.distill`).

    Args:
        subvectors: M, 1..256; must divide each table's width (checked by the pass).
        centroids: K, 2..256 (a code is one byte).
        tensors: which item tables (empty: every item table of the model).
        iterations: Lloyd iterations of k-means per sub-space (at most).
        normalize: norm-explicit quantization: store each row's norm ‖x_r‖ exactly (float16,
            2 bytes per row) and product-quantize the unit direction x_r / ‖x_r‖; the table
            becomes RowScaledTensor(ProductQuantizedTensor, norms). Scores are inner
            products, and popular items have the larger norms, so a norm error moves an
            item through every user's ranking: on Gowalla (M=16, before distillation) the
            drop went from 2.85 % to 2.18 % for 2 more bytes per row.
        popularity_power: k-means weighs row r by (1 + popularity_r)^power (training
            interactions, from the calibration); 0: unweighted. Popular items, which most
            held-out interactions and histories hit, get finer codewords: on the 64-dim
            Gowalla model (M=16, before distillation) the Recall@20 drop was 10.1 % at
            power 0, 3.6 % at 1, 3.0 % at 2.
        codebook_dtype: "float32" or "float16" storage of the codebooks.
        finetune_steps: Adam steps of the codebook distillation (0: none).
        finetune_lr: Adam's step size (0.005 overshot on Gowalla: KL 0.09 vs 0.045 at 0.002).
        seed: k-means++ seed (sub-space m uses [seed, m]).
    """

    PASS: ClassVar[str] = "product_quantize"
    subvectors: int = 16
    centroids: int = 256
    tensors: tuple[str, ...] = ()
    iterations: int = 25
    normalize: bool = True
    popularity_power: float = 2.0
    codebook_dtype: Literal["float32", "float16"] = "float32"
    finetune_steps: int = 0
    finetune_lr: float = 0.002
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_types()
        check_range(self.PASS, "subvectors", self.subvectors, low=1, high=256)
        check_range(self.PASS, "centroids", self.centroids, low=2, high=256)
        check_range(self.PASS, "iterations", self.iterations, low=0, high=10_000)
        check_range(self.PASS, "popularity_power", self.popularity_power, low=0.0, high=4.0)
        check_choice(self.PASS, "codebook_dtype", self.codebook_dtype, ("float32", "float16"))
        check_range(self.PASS, "finetune_steps", self.finetune_steps, low=0, high=100_000)
        check_range(self.PASS, "finetune_lr", self.finetune_lr, low=0.0, high=10.0, low_open=True)
        check_range(self.PASS, "seed", self.seed, low=0)


@dataclass(frozen=True)
class RetrievalConfig(_PassConfig):
    """Inverted lists over the item table: the device scores only the items of the lists nearest
    the user (`edgegnn.retrieval`), for catalogs where streaming every row is the cost.

    The pass indexes the final item table (it must be the last pass), keeps it as it is stored,
    and adds `list_centroids` float32 [L, d], `list_rows` int32 [L, C] and params["retrieval"]
    (nprobe, the overlap measured); the simulation (`EdgeModel.score`) then scores only the
    probed lists' items, as the exported graph does, so every metric is the approximate one.

    Args:
        lists: L; 0 picks the power of two nearest 2·sqrt(I).
        nprobe: lists probed per query; 0 picks the smallest power of two whose top-`k`
            overlap with the exact scan on the calibration users reaches `overlap`.
        overlap: the target share of the exact top-k the lists must return (nprobe 0).
        k: the cut-off the overlap is measured at.
        slack: list capacity C = ceil(slack · I / L) (> 1 lets the lists follow the clusters).
        seed: the k-means sample's and k-means++'s seed.
    """

    PASS: ClassVar[str] = "retrieval"
    lists: int = 0
    nprobe: int = 0
    overlap: float = 0.95
    k: int = 20
    slack: float = 1.25
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_types()
        check_range(self.PASS, "lists", self.lists, low=0)
        check_range(self.PASS, "nprobe", self.nprobe, low=0)
        check_range(self.PASS, "overlap", self.overlap, low=0.0, high=1.0, low_open=True)
        check_range(self.PASS, "k", self.k, low=1)
        check_range(self.PASS, "slack", self.slack, low=1.0, high=4.0)
        check_range(self.PASS, "seed", self.seed, low=0)
        if self.lists and self.nprobe > self.lists:
            raise ConfigError(f"{self.PASS}.nprobe", self.nprobe, f"at most lists ({self.lists})")


PassConfig = PruneConfig | LowRankConfig | QuantizeConfig | ShareConfig | ProductQuantizeConfig | RetrievalConfig
CONFIG_TYPES: dict[str, type] = {cls.PASS: cls for cls in (PruneConfig, LowRankConfig, QuantizeConfig, ShareConfig,
                                                            ProductQuantizeConfig, RetrievalConfig)}

def config_from_entry(entry: dict[str, Any], *, where: str = "pass", source: str | None = None) -> PassConfig:
    """The config of one recipe entry `{"pass": name, **fields}`."""
    if not isinstance(entry, dict):
        raise ConfigError(where, entry, "expected a mapping like {pass: quantize, precision: int8}",
                          source=source)
    fields = dict(entry)
    name = fields.pop("pass", None)
    if name not in CONFIG_TYPES:
        raise ConfigError(f"{where}.pass", name, f"allowed: {', '.join(CONFIG_TYPES)}", source=source)
    return CONFIG_TYPES[name].from_dict(fields, source=source)
