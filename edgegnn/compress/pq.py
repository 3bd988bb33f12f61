"""Product-quantization pass: item tables as uint8 codes into per-sub-space codebooks (see `ProductQuantizeConfig`).

For a table X [R, d] and M sub-vectors of D = d/M columns, sub-space m is clustered by
k-means into K codewords: codebooks[m] [K, D], codes[r, m] = the nearest codeword of
X[r, m·D:(m+1)·D]. Stored: R·M bytes of codes + M·K·D codebook values; the device scores
through lookup tables (`edgegnn.tensors.ProductQuantizedTensor`). With `normalize` (norm-
explicit quantization) the rows' unit directions are product-quantized and their norms
stored as float16 row scales: X ≈ diag(‖X_r‖) · PQ(X / ‖X_r‖), a RowScaledTensor.

Only item-row leaves are quantized: a low-rank table's left factor, a row-scaled table's
base (so the share pass's item table, the left factor of message = diag(s) · item · W, is
quantized once and stays shared); W, the row scales and SAGE's weights keep their storage.
Optionally the codebooks alone are then distilled, the codes fixed (on Gowalla, M=16: drop
2.18 % -> 0.87 %; also training the share's W at the same step size gave 1.70 %: W moves
every user's embedding).
"""

from __future__ import annotations

import logging

import numpy as np

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.configs import ProductQuantizeConfig
from edgegnn.compress.kmeans import kmeans
from edgegnn.compress.registry import register_pass
from edgegnn.compress.tensor_ops import resolve_tensors
from edgegnn.edge_model import ITEM_TABLES, EdgeModel
from edgegnn.errors import ConfigError
from edgegnn.tensors import DenseTensor, LowRankTensor, ProductQuantizedTensor, RowScaledTensor, Stored

log = logging.getLogger(__name__)


@register_pass(ProductQuantizeConfig)
def product_quantize(edge: EdgeModel, config: ProductQuantizeConfig,
                     calibration: Calibration | None = None) -> EdgeModel:
    """The copy of `edge` with the item-row leaves of the named tables product-quantized (then distilled)."""
    names = resolve_tensors(edge, config.tensors, ITEM_TABLES[edge.kind], "product_quantize.tensors")
    if calibration is None and (config.finetune_steps > 0 or config.popularity_power > 0):
        field, value = (("finetune_steps", config.finetune_steps) if config.finetune_steps > 0
                        else ("popularity_power", config.popularity_power))
        raise ConfigError(f"product_quantize.{field}", value,
                          "needs calibration users (calibration=...) for the item popularity / distillation; "
                          "or set it to 0")
    weights = None
    if config.popularity_power > 0:
        weights = (1.0 + calibration.popularity_for(edge).astype(np.float64)) ** config.popularity_power
    memo: dict = {}
    quantized = {n: _quantize_rows_of(edge.tensors[n], config, weights, memo) for n in names}
    out = edge.with_tensors(config.recipe_entry(), **quantized)
    if config.finetune_steps > 0:
        from edgegnn.compress.distill import distill

        out = distill(teacher=edge, student=out, names=names,
                      trainable=lambda leaf: isinstance(leaf, ProductQuantizedTensor),
                      steps=config.finetune_steps, lr=config.finetune_lr, calibration=calibration,
                      label="product-quantization distillation")
    return out


def _quantize_rows_of(tensor: Stored, config: ProductQuantizeConfig, weights: np.ndarray | None,
                      memo: dict) -> Stored:
    """PQ of the leaf whose rows are the items (low-rank: left; row-scaled: base), sharing kept."""
    key = id(tensor)
    if key not in memo:
        if isinstance(tensor, LowRankTensor):
            memo[key] = LowRankTensor(_quantize_rows_of(tensor.left, config, weights, memo), tensor.right)
        elif isinstance(tensor, RowScaledTensor):
            memo[key] = RowScaledTensor(_quantize_rows_of(tensor.base, config, weights, memo), tensor.row_scale)
        else:
            memo[key] = _quantize_leaf(tensor.to_dense(), config, weights)
    return memo[key]


def _quantize_leaf(values: np.ndarray, config: ProductQuantizeConfig, weights: np.ndarray | None) -> Stored:
    """PQ of the rows, or (normalize) float16 norms times the PQ of the unit directions."""
    if not config.normalize:
        return quantize_product(values, config, weights)
    norms = np.linalg.norm(values.astype(np.float64), axis=1)
    directions = values / np.where(norms > 0, norms, 1.0)[:, None]  # a zero row stays zero (norm 0)
    return RowScaledTensor(quantize_product(directions.astype(np.float32), config, weights),
                           DenseTensor(norms.astype(np.float16)))


def quantize_product(values: np.ndarray, config: ProductQuantizeConfig,
                     weights: np.ndarray | None = None) -> ProductQuantizedTensor:
    """k-means codes and codebooks of `values` [R, d] in `config.subvectors` sub-spaces."""
    rows, width = values.shape
    m, k = config.subvectors, config.centroids
    if width % m:
        raise ConfigError("product_quantize.subvectors", m,
                          f"must divide the table width {width} (allowed: {_divisors(width)})")
    sub = width // m
    codebooks = np.zeros((m, k, sub), dtype=np.float32)
    codes = np.zeros((rows, m), dtype=np.uint8)
    for block in range(m):
        points = values[:, block * sub:(block + 1) * sub]
        codebooks[block], labels = kmeans(points, k, seed=_seed(config.seed, block), iterations=config.iterations,
                                          weights=weights)
        codes[:, block] = labels
    out = ProductQuantizedTensor(codes, codebooks.astype(config.codebook_dtype))
    error = np.linalg.norm(out.to_dense() - values) / max(np.linalg.norm(values), 1e-30)
    log.info("product quantization [%d, %d]: M=%d, K=%d, relative error %.4f", rows, width, m, k, error)
    return out


def _seed(seed: int, block: int) -> int:
    """A distinct, reproducible seed per sub-space."""
    return int(np.random.SeedSequence([seed, block]).generate_state(1)[0])


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, min(n, 256) + 1) if n % d == 0)
