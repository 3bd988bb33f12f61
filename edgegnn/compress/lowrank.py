"""Low-rank pass: truncated SVD of item tables (jointly or one by one) and of SAGE weights.

For a matrix X [R, C] = U S Vᵀ the best rank-r approximation (Frobenius) keeps the r
largest singular values: X ≈ left @ rightᵀ with left = U_r S_r [R, r] and right = V_r [C, r].
The rank is given, or the smallest r with Σ_{j<r} s_j² >= energy · Σ_j s_j².

Joint (default): the named item tables are stacked side by side, [message | item] (SAGE:
[ego | hidden | item]) = A [B_m | B_i]ᵀ, so they share the left factor A [I, r]. It is stored
once, and the device works in rank space: z_u = Σ_h A_h / sqrt(n) (r numbers per user),
e_u = z_u B_mᵀ (+ a0 e_u⁰), s = (e_u B_i) Aᵀ; cost r(I + 2d) instead of 2·I·d per user, and
storage I·r + 2·d·r instead of 2·I·d. The blocks are stacked raw (not normalized): on a
trained LightGCN that keeps far more Recall than equal-energy blocks. Weights (w1_*, w2_*)
are factored one by one.

Post-hoc SVD costs Recall at small ranks; `finetune_steps > 0` then distils the factors
towards the input model (`edgegnn.compress.distill`).
"""

from __future__ import annotations

import logging

import numpy as np

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.configs import LowRankConfig
from edgegnn.compress.registry import register_pass
from edgegnn.compress.tensor_ops import eligible_tensors, resolve_tensors
from edgegnn.edge_model import ITEM_TABLES, EdgeModel
from edgegnn.errors import ConfigError
from edgegnn.tensors import DenseTensor, LowRankTensor

log = logging.getLogger(__name__)


@register_pass(LowRankConfig)
def low_rank(edge: EdgeModel, config: LowRankConfig, calibration: Calibration | None = None) -> EdgeModel:
    """The copy of `edge` with the named tensors stored as low-rank factors (then distilled)."""
    names = resolve_tensors(edge, config.tensors or ITEM_TABLES[edge.kind], eligible_tensors(edge),
                            "low_rank.tensors")
    if config.finetune_steps > 0 and calibration is None:
        raise ConfigError("low_rank.finetune_steps", config.finetune_steps,
                          "finetuning needs calibration users (calibration=...), or use finetune_steps: 0")
    groups = factor_groups(edge, names, config.joint)
    for group in groups:
        check_rank(edge, group, config)
    factored: dict[str, LowRankTensor] = {}
    for group in groups:
        factored.update(_factorize(edge, group, config))
    out = edge.with_tensors(config.recipe_entry(), **factored)
    if config.finetune_steps > 0:
        from edgegnn.compress.distill import distill_factors

        out = distill_factors(teacher=edge, student=out, names=names, steps=config.finetune_steps,
                              lr=config.finetune_lr, calibration=calibration)
    return out


def factor_groups(edge: EdgeModel, names: tuple[str, ...], joint: bool) -> list[tuple[str, ...]]:
    """Which tensors are factored together: the item tables (if joint), each weight alone."""
    tables = tuple(n for n in names if n in ITEM_TABLES[edge.kind])
    weights = [(n,) for n in names if n not in tables]
    table_groups = [tables] if joint and len(tables) > 1 else [(n,) for n in tables]
    return table_groups + weights


def check_rank(edge: EdgeModel, group: tuple[str, ...], config: LowRankConfig) -> None:
    """A rank above the width of what is factored is an error (it would only grow the model)."""
    if config.rank is None:
        return
    shapes = [edge.tensors[n].shape for n in group]
    if group[0] in ITEM_TABLES[edge.kind]:
        limit = max(s[1] for s in shapes)
        what = "embedding dim" if len(group) > 1 or group[0] == "item" else f"width of {group[0]}"
    else:
        limit, what = min(shapes[0]), f"min(shape) of {group[0]}"
    if config.rank > limit:
        raise ConfigError("low_rank.rank", config.rank, f"rank {config.rank} must be <= {what} {limit}")


def _factorize(edge: EdgeModel, group: tuple[str, ...], config: LowRankConfig) -> dict[str, LowRankTensor]:
    """SVD of the side-by-side stack of `group`; one shared left factor, one right factor each."""
    blocks = [edge.tensors[n].to_dense().astype(np.float64) for n in group]
    u, s, vt = _svd(np.hstack(blocks))
    r = min(config.rank if config.rank is not None else energy_rank(s, config.energy), len(s))
    left = DenseTensor((u[:, :r] * s[:r]).astype(np.float32))
    out, offset = {}, 0
    for name, block in zip(group, blocks):
        width = block.shape[1]
        out[name] = LowRankTensor(left, DenseTensor(np.ascontiguousarray(vt[:r, offset:offset + width].T, np.float32)))
        offset += width
    kept = float((s[:r] ** 2).sum() / max((s ** 2).sum(), 1e-30))
    log.info("low-rank %s: rank %d keeps %.3f of the energy", "+".join(group), r, kept)
    return out


def energy_rank(singular_values: np.ndarray, energy: float) -> int:
    """The smallest r with Σ_{j<r} s_j² >= energy · Σ_j s_j² (at least 1)."""
    cumulative = np.cumsum(singular_values ** 2)
    if cumulative[-1] <= 0:
        return 1
    return int(min(len(cumulative), np.searchsorted(cumulative / cumulative[-1], energy - 1e-12) + 1))


def _svd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD with deterministic signs (each right singular vector's largest entry positive)."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    signs = np.sign(vt[np.arange(len(s)), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    return u * signs, s, vt * signs[:, None]
