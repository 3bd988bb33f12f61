"""Model cards: architecture + training hyperparameters, as frozen validated configs.

A model card is a YAML file in `models/` (e.g. `models/lightgcn.yaml`):

    name: lightgcn
    description: ...
    model: {type: lightgcn, embedding_dim: 64, num_layers: 3}
    training: {loss: whole-data, epochs: 400, learning_rate: 0.01, ...}

`load_model_card(path)` turns it into a `ModelCard`; every field is checked, and an
unknown key or a value out of range is a `ConfigError` naming the field and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgegnn.configs import check_choice, check_range, config_from_dict, config_to_dict, load_yaml
from edgegnn.errors import ConfigError


@dataclass(frozen=True)
class LightGCNConfig:
    """LightGCN (He et al., SIGIR 2020): e^{l+1} = Â e^l, e = Σ_l α_l e^l, score = e_u · e_i.

    Args:
        embedding_dim: width d of the ego embeddings (paper: 64).
        num_layers: propagation layers L (paper: 3); α_l = 1 / (L + 1).
        init_std: standard deviation of the normal initialisation of the ego embeddings.
    """

    type: Literal["lightgcn"] = "lightgcn"
    embedding_dim: int = 64
    num_layers: int = 3
    init_std: float = 0.1

    def __post_init__(self) -> None:
        src = "model"
        check_range(src, "embedding_dim", self.embedding_dim, low=1, high=4096)
        check_range(src, "num_layers", self.num_layers, low=0, high=8)
        check_range(src, "init_std", self.init_std, low=0.0, low_open=True)


@dataclass(frozen=True)
class SAGEConfig:
    """A GraphSAGE recommender with dense weights (Hamilton et al., NeurIPS 2017).

    Two mean-aggregation SAGE layers over the user-item graph, from PyG's `SAGEConv`:
        h¹ = ReLU(W¹_self e⁰_v + W¹_nb mean_{w∈N(v)} e⁰_w)       (hidden_dim)
        h² =      W²_self h¹_v + W²_nb mean_{w∈N(v)} h¹_w        (embedding_dim)
    score = h²_u · h²_i. On the device a user's h¹_u and h²_u are computed from the user's
    own history, so the dense weights W run on the device (the subject of pruning,
    low-rank and int8 passes).

    Args:
        embedding_dim: width of ego embeddings and of the output.
        hidden_dim: width of the hidden layer.
        init_std: standard deviation of the ego embeddings' normal initialisation.
    """

    type: Literal["sage"] = "sage"
    embedding_dim: int = 64
    hidden_dim: int = 64
    init_std: float = 0.1

    def __post_init__(self) -> None:
        src = "model"
        check_range(src, "embedding_dim", self.embedding_dim, low=1, high=4096)
        check_range(src, "hidden_dim", self.hidden_dim, low=1, high=4096)
        check_range(src, "init_std", self.init_std, low=0.0, low_open=True)


@dataclass(frozen=True)
class GATConfig:
    """A graph-attention recommender (Veličković et al., ICLR 2018; GATv2: Brody et al., ICLR 2022).

    One PyG `GATConv` (or `GATv2Conv`) layer from items to users: a user is the attention-
    weighted sum of its items' messages, s_ui = e_u · x_i (`edgegnn.models.gat`). Users have no
    embedding table, so the device attends over the history exactly as training did: one masked
    softmax over the history items, with the learned weights.

    Args:
        embedding_dim: d, of the item embeddings, the messages and e_u.
        attention: "gat" (GATConv) or "gatv2" (GATv2Conv).
        negative_slope: the LeakyReLU slope of the attention logits (PyG's default 0.2).
        init_std: standard deviation of the item embeddings' normal initialisation.
    """

    type: Literal["gat"] = "gat"
    embedding_dim: int = 64
    attention: Literal["gat", "gatv2"] = "gat"
    negative_slope: float = 0.2
    init_std: float = 0.1

    def __post_init__(self) -> None:
        src = "model"
        check_range(src, "embedding_dim", self.embedding_dim, low=1, high=4096)
        check_choice(src, "attention", self.attention, ("gat", "gatv2"))
        check_range(src, "negative_slope", self.negative_slope, low=0.0, high=1.0)
        check_range(src, "init_std", self.init_std, low=0.0, low_open=True)


@dataclass(frozen=True)
class GraphFilterConfig:
    """A training-free graph filter over the item graph (GF-CF: Shen et al., CIKM 2021).

    With R the binary user-item matrix, R̃ = D_U^-½ R D_I^-½ and P̃ = R̃ᵀR̃ (the normalized
    item-item graph), a user with history vector r_u [I] is scored
        s_u = r_u · P̃_N  +  low_pass_weight · r_u D_I^-½ V_k V_kᵀ D_I^½
    P̃_N keeps the `neighbors` largest entries of each row of P̃ (the linear filter, shipped as
    per-item neighbour lists); V_k [I, k] are the top-`rank` right singular vectors of R̃ (the
    ideal low-pass filter, shipped as two per-item tables). No per-user parameters: a user is
    scored from the history alone, on the server as on the device.

    filter "chebycf" (Kim et al., SIGIR 2025) replaces P̃ by h(P̃), h the order-`order` Chebyshev
    interpolation of a plateau (`flatness` φ) over P̃'s spectrum, adds the ideal pass with weight
    `low_pass_weight` and normalizes by item degree (D_I^-β before the filter, D_I^β after,
    β = `degree_power`), in the same device form (`edgegnn.models.graph_filter`).

    filter "bspm" (Choi et al., SIGIR 2023) blurs (P̃), adds the ideal pass (weight
    `low_pass_weight`) and sharpens with `sharpen_steps` Runge-Kutta-4 steps of the reverse heat
    equation over `sharpen_time`; its two tables are 2·rank wide.

    Args:
        filter: "gf-cf", "chebycf" or "bspm".
        rank: k, singular vectors of the low-pass part (the paper: 256); < min(users, items).
        low_pass_weight: the weight of the low-pass (GF-CF) or ideal-pass (ChebyCF) part.
        neighbors: entries kept per row of P̃ (0: no item-item part); capped at items - 1.
        svd_iterations: power iterations of the randomized SVD (scikit-learn's
            `randomized_svd`); more is closer to the exact singular vectors, and slower.
        order, flatness, degree_power: ChebyCF's K, φ and β (ignored by the others).
        sharpen_time, sharpen_steps: BSPM's T_s and K_s (ignored by the others).
    """

    type: Literal["graph-filter"] = "graph-filter"
    filter: Literal["gf-cf", "chebycf", "bspm"] = "gf-cf"
    rank: int = 256
    low_pass_weight: float = 0.3
    neighbors: int = 128
    svd_iterations: int = 4
    order: int = 8
    flatness: float = 1.5
    degree_power: float = 0.4
    sharpen_time: float = 2.5
    sharpen_steps: int = 1

    def __post_init__(self) -> None:
        src = "model"
        check_choice(src, "filter", self.filter, ("gf-cf", "chebycf", "bspm"))
        check_range(src, "sharpen_time", self.sharpen_time, low=0.0, high=10.0)
        check_range(src, "sharpen_steps", self.sharpen_steps, low=1, high=16)
        check_range(src, "order", self.order, low=1, high=32)
        check_range(src, "flatness", self.flatness, low=0.0, high=10.0, low_open=True)
        check_range(src, "degree_power", self.degree_power, low=0.0, high=1.0)
        check_range(src, "rank", self.rank, low=1, high=4096)
        check_range(src, "low_pass_weight", self.low_pass_weight, low=0.0, high=100.0)
        check_range(src, "neighbors", self.neighbors, low=0, high=4096)
        check_range(src, "svd_iterations", self.svd_iterations, low=0, high=64)


ModelConfig = LightGCNConfig | SAGEConfig | GATConfig | GraphFilterConfig
MODEL_TYPES: dict[str, type] = {"lightgcn": LightGCNConfig, "sage": SAGEConfig, "gat": GATConfig,
                                "graph-filter": GraphFilterConfig}


OPTIMIZERS = ("adam", "adagrad", "rmsprop", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """How a recommender is trained.

    Args:
        loss: "whole-data" (default) — a weighted squared loss over ALL user-item pairs,
            computed exactly without sampling (see `edgegnn.train.losses`); one full-batch
            step per epoch. "bpr" — the LightGCN paper's BPR with one uniform negative
            per positive, in mini-batches of `batch_size`. "bce" — link prediction with a
            probability: P(user likes item) = σ(e_u · e_i) trained by binary cross-entropy on
            each positive and `negatives` uniform negatives, in mini-batches of `batch_size`;
            its metrics add AUC and log-loss.
        epochs: passes over the training interactions (whole-data: one step each).
        optimizer: "adam" (default), "adagrad", "rmsprop" or "sgd": torch.optim's, on every
            trained parameter (`edgegnn.train.trainer.make_optimizer`).
        learning_rate: the optimizer's step size (plain SGD on the whole-data loss, a mean over
            every pair, needs steps near 10, hence the bound of 1000).
        momentum: "sgd" and "rmsprop" only, their momentum (0: none).
        l2: L2 penalty on the ego embeddings (paper: 1e-4).
        batch_size: positive pairs per BPR / BCE step.
        negatives: BCE only, uniform negatives sampled per positive.
        negative_weight: whole-data only, the weight c0 of an unobserved pair.
        popularity_exponent: whole-data only, negative weights ∝ popularity^exponent.
        eval_every: epochs between validation evaluations (early stopping, progress).
        patience: evaluations without improvement of validation Recall@K before stopping.
        eval_k: K of the Recall@K used for early stopping.
        seed: seeds torch and numpy; the same seed and data give the same model.
        denoise: robust fitting on noisy data (`edgegnn.train.denoise`): the share of each
            user's training rows that a first fit scores lowest, dropped before a second fit
            (0: off, one fit), or "auto": the share the validation split prefers. Any kind,
            graph filters included.
    """

    loss: Literal["whole-data", "bpr", "bce"] = "whole-data"
    epochs: int = 400
    optimizer: Literal["adam", "adagrad", "rmsprop", "sgd"] = "adam"
    learning_rate: float = 0.01
    momentum: float = 0.0
    l2: float = 1e-4
    batch_size: int = 16384
    negatives: int = 4
    negative_weight: float = 0.01
    popularity_exponent: float = 0.0
    eval_every: int = 10
    patience: int = 5
    eval_k: int = 20
    seed: int = 0
    denoise: float | Literal["auto"] = 0.0

    def __post_init__(self) -> None:
        src = "training"
        check_choice(src, "loss", self.loss, ("whole-data", "bpr", "bce"))
        check_range(src, "negatives", self.negatives, low=1, high=1000)
        check_range(src, "epochs", self.epochs, low=1)
        check_choice(src, "optimizer", self.optimizer, OPTIMIZERS)
        check_range(src, "learning_rate", self.learning_rate, low=0.0, high=1000.0, low_open=True)
        check_range(src, "momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        if self.momentum and self.optimizer not in ("sgd", "rmsprop"):
            raise ConfigError(f"{src}.momentum", self.momentum,
                              f"only sgd and rmsprop take a momentum (optimizer: {self.optimizer})")
        check_range(src, "l2", self.l2, low=0.0)
        check_range(src, "batch_size", self.batch_size, low=1)
        check_range(src, "negative_weight", self.negative_weight, low=0.0, low_open=True)
        check_range(src, "popularity_exponent", self.popularity_exponent, low=-2.0, high=2.0)
        check_range(src, "eval_every", self.eval_every, low=1)
        check_range(src, "patience", self.patience, low=1)
        check_range(src, "eval_k", self.eval_k, low=1)
        if self.denoise != "auto":
            check_range(src, "denoise", self.denoise, low=0.0, high=1.0, high_open=True)


@dataclass(frozen=True)
class ModelCard:
    """A named model: architecture (`model`) plus how to train it (`training`)."""

    name: str
    model: ModelConfig = field(default_factory=LightGCNConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "model": config_to_dict(self.model), "training": config_to_dict(self.training)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | None = None) -> "ModelCard":
        known = {"name", "description", "model", "training"}
        for key in data:
            if key not in known:
                raise ConfigError(key, data[key], f"unknown key; allowed: {', '.join(sorted(known))}",
                                  source=source)
        model_data = dict(data.get("model") or {})
        model_type = model_data.get("type", "lightgcn")
        if model_type not in MODEL_TYPES:
            raise ConfigError("model.type", model_type, f"allowed: {', '.join(MODEL_TYPES)}",
                              source=source)
        return cls(
            name=str(data.get("name", model_type)),
            description=str(data.get("description", "")),
            model=config_from_dict(MODEL_TYPES[model_type], model_data, source=source),
            training=config_from_dict(TrainConfig, data.get("training"), source=source),
        )


def load_model_card(path: str | Path) -> ModelCard:
    """Read and validate a model card YAML file."""
    return ModelCard.from_dict(load_yaml(path), source=str(path))
