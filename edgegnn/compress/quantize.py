"""Quantize pass: symmetric per-row integer weights and static int8 activation scales.

Weights. Every row r of a table or weight gets its own scale: x[r] ≈ q[r] · scale[r],
scale[r] = max_c |x[r, c]| / qmax, q ∈ [-qmax, qmax] (qmax 127 for int8, 7 for int4). Rows
are items for tables (per-item scales keep each item's score exact up to rounding, where
one scale per table, as ONNX Runtime's QDQ Gather uses, does not) and output channels for
dense weights [out, in]. Low-rank tensors have their factors quantized (the left factor
per item, the right per row); sparse tensors their kept values (per-row scales); biases
stay float32. "mixed": the `tail_fraction` least popular items (training interactions, from
the calibration) in int4, the rest int8; dense weights int8. Scales are float32, or float16
(`scale_dtype`): at int4 a float32 scale is 4 of the 36 bytes of a 64-dim row; the codes are
computed against the float16-rounded scale, which is what the device multiplies by.

Activations. A static scale per activation entering a matmul, calibrated on the
calibration users with the quantized weights (as the device will compute them):
"h1" (SAGE's hidden layer) first, then "user" (e_u entering the scoring matmul), each
scale = m / L with m = max|x| ("minmax") or the `percentile` of |x|, and L the activation's
levels (`edgegnn.edge_model.ACTIVATION_LEVELS`: 63 for "user", whose integer kernels are exact
on every CPU only with 7-bit inputs; 127 for "h1"). The device math
(`EdgeModel.encode`/`score`) applies them; one static scale can reorder a user's items
(a per-query scale could not), which is why it is calibrated and measured, not assumed.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.configs import QuantizeConfig
from edgegnn.compress.registry import register_pass
from edgegnn.compress.tensor_ops import eligible_tensors, map_leaves, resolve_tensors
from edgegnn.edge_model import ACTIVATION_LEVELS, ITEM_TABLES, EdgeModel
from edgegnn.errors import ConfigError
from edgegnn.kinds import kind
from edgegnn.tensors import (
    LowRankTensor,
    MixedQuantizedTensor,
    QuantizedSparseTensor,
    RowScaledTensor,
    SparseTensor,
    Stored,
    quantize_rows,
)

log = logging.getLogger(__name__)


@register_pass(QuantizeConfig)
def quantize(edge: EdgeModel, config: QuantizeConfig, calibration: Calibration | None = None) -> EdgeModel:
    """The quantized copy of `edge` (weights, then activation scales if `config.activations`)."""
    names = resolve_tensors(edge, config.tensors, eligible_tensors(edge), "quantize.tensors")
    if calibration is None and (config.activations or config.precision == "mixed"):
        why = "static activation scales" if config.activations else "mixed precision (item popularity)"
        raise ConfigError("calibration", None, f"{why} need calibration users: pass calibration=..."
                          + (" or set activations: false" if config.activations else ""))
    bits = 4 if config.precision == "int4" else 8
    int4_items = _tail_items(edge, calibration, config.tail_fraction) if config.precision == "mixed" else None
    memo: dict = {}
    item_tables = ITEM_TABLES[edge.kind]
    quantized = {n: _quantize_tensor(edge.tensors[n], bits, int4_items if n in item_tables else None,
                                     config.scale_dtype, memo,
                                     per_tensor=config.granularity == "tensor" and n in item_tables)
                 for n in names}
    out = edge.with_tensors(config.recipe_entry(), **quantized)
    if config.activations:
        out = dataclasses.replace(out, activation_scales=calibrate_activations(out, calibration, config))
    return out


def _tail_items(edge: EdgeModel, calibration: Calibration, tail_fraction: float) -> np.ndarray:
    """bool [I]: the floor(tail_fraction·I) least popular items (ties: the later row)."""
    popularity = calibration.popularity_for(edge)
    order = np.argsort(popularity, kind="stable")
    tail = np.zeros(edge.num_items, dtype=bool)
    tail[order[:int(np.floor(tail_fraction * edge.num_items))]] = True
    return tail


def _quantize_tensor(tensor: Stored, bits: int, int4_rows: np.ndarray | None, scale_dtype: str, memo: dict, *,
                     per_tensor: bool = False) -> Stored:
    """Quantize every leaf; for a low-rank table only the left factor's rows are items (and only
    they take one scale for the table when `per_tensor`).

    A row-scaled tensor keeps its row scale and has its base quantized.
    """
    def build() -> Stored:
        if isinstance(tensor, LowRankTensor):
            return LowRankTensor(_quantize_tensor(tensor.left, bits, int4_rows, scale_dtype, memo,
                                                  per_tensor=per_tensor),
                                 _quantize_tensor(tensor.right, bits, None, scale_dtype, memo))
        return RowScaledTensor(_quantize_tensor(tensor.base, bits, int4_rows, scale_dtype, memo, per_tensor=per_tensor),
                               tensor.row_scale)

    if isinstance(tensor, (LowRankTensor, RowScaledTensor)):
        if id(tensor) not in memo:
            memo[id(tensor)] = build()
        return memo[id(tensor)]
    return map_leaves(tensor, lambda leaf: _quantize_leaf(leaf, bits, int4_rows, scale_dtype, per_tensor), memo)


def _quantize_leaf(leaf: Stored, bits: int, int4_rows: np.ndarray | None, scale_dtype: str,
                   per_tensor: bool = False) -> Stored:
    if isinstance(leaf, (SparseTensor, QuantizedSparseTensor)):
        return quantize_sparse(leaf, bits, scale_dtype)
    values = leaf.to_dense()
    if int4_rows is None or not int4_rows.any():
        return quantize_rows(values, bits, scale_dtype=scale_dtype, per_tensor=per_tensor)
    return quantize_rows_mixed(values, int4_rows, scale_dtype)


def quantize_rows_mixed(values: np.ndarray, int4_rows: np.ndarray,
                        scale_dtype: str = "float32") -> MixedQuantizedTensor:
    """Per-row int8, except the rows marked in `int4_rows` (bool [R]) in int4."""
    head = quantize_rows(values, 8, scale_dtype=scale_dtype)
    tail = quantize_rows(values[int4_rows], 4, scale_dtype=scale_dtype)
    q, scale = head.q.copy(), head.scale.copy()
    q[int4_rows], scale[int4_rows] = tail.q, tail.scale
    return MixedQuantizedTensor(q=q, scale=scale, bits=8, int4_mask=np.packbits(int4_rows))


def quantize_sparse(leaf: SparseTensor | QuantizedSparseTensor, bits: int,
                    scale_dtype: str = "float32") -> QuantizedSparseTensor:
    """Per-row symmetric codes of a CSR tensor's kept values: scale[r] = max |kept values of r| / qmax
    (rounded to `scale_dtype` before the codes are computed)."""
    qmax = 2 ** (bits - 1) - 1
    if isinstance(leaf, QuantizedSparseTensor):
        values = leaf.q.astype(np.float32) * leaf.scale.astype(np.float32)[leaf.row_of_values()]
    else:
        values = leaf.values.astype(np.float32)
    rows = np.repeat(np.arange(leaf.shape[0]), np.diff(leaf.indptr))
    peak = np.zeros(leaf.shape[0], dtype=np.float32)
    np.maximum.at(peak, rows, np.abs(values))
    scale = np.where(peak > 0, peak / qmax, 1.0).astype(np.float32)
    if scale_dtype == "float16":
        scale = np.clip(scale, np.float32(2.0 ** -24), np.float32(65504.0)).astype(np.float16)
    q = np.clip(np.rint(values / scale.astype(np.float32)[rows]), -qmax, qmax).astype(np.int8)
    return QuantizedSparseTensor(leaf.shape, leaf.indptr, leaf.indices, q, scale, bits)


def calibrate_activations(edge: EdgeModel, calibration: Calibration, config: QuantizeConfig) -> dict[str, float]:
    """Static scales of the kind's internal activations (SAGE: "h1") and "user", each calibrated
    with the ones before it applied."""
    histories, base = calibration.for_model(edge)
    scales: dict[str, float] = {}
    for name in kind(edge.kind).ACTIVATIONS:
        probe = dataclasses.replace(edge, activation_scales=dict(scales))
        scales[name] = activation_scale(probe.raw_activation(name, histories, base), config, ACTIVATION_LEVELS[name])
    probe = dataclasses.replace(edge, activation_scales=dict(scales))
    scales["user"] = activation_scale(probe.encode(histories, base), config, ACTIVATION_LEVELS["user"])
    log.info("static activation scales (%s on %d users): %s", config.calibration_method, len(histories),
             ", ".join(f"{k} {v:.4g}" for k, v in scales.items()))
    return scales


def activation_scale(x: np.ndarray, config: QuantizeConfig, levels: int) -> float:
    """m / levels with m = max|x| (minmax) or the `percentile` of |x|; 1.0 for an all-zero x."""
    magnitude = np.abs(x).ravel()
    peak = magnitude.max() if config.calibration_method == "minmax" else np.percentile(magnitude, config.percentile)
    return float(peak / levels) if peak > 0 else 1.0
