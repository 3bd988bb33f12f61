"""Accuracy-gated recipe search: evaluate a grid of recipes, keep the Pareto front, pick one.

Every recipe of the grid is applied to the same EdgeModel and measured on one fixed user
sample with the device arithmetic. Shared prefixes are computed once (low-rank rank 32 is
factored and distilled once, then quantized int8 and int4). The chosen recipe is the
smallest model (bytes) whose relative Recall@20 drop is at most `max_drop` and whose size
is within `size_budget` (either constraint may be None, not both); if none qualifies the
result says so and `chosen` is None.

Grid (ranks at or above the embedding width, and sub-vector counts that do not divide it,
are skipped):
    fp32; int8; int4; mixed;
    LightGCN: the message table shared with the item table (message = diag(s) · item · W),
        alone and followed by int8 / mixed / int4 rows with float16 scales, and by product
        quantization with M ∈ {16, 8} sub-vectors (K = 256, codebooks distilled);
    low-rank r ∈ {32, 16} (joint item tables) with distillation, alone and followed by int4.
Dropped because on the 64-dim Gowalla model they never reached the Pareto front, while each
cost a distillation or an evaluation: undistilled low-rank (18-41 % drops), low-rank
followed by int8 (int4 is as accurate and smaller), ranks 48 and 24, and structured
pruning (18 % drop at 4.9x). They remain available as recipes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.configs import LowRankConfig, PassConfig, ProductQuantizeConfig, QuantizeConfig, ShareConfig
from edgegnn.compress.measure import Evaluator
from edgegnn.compress.pipeline import compress
from edgegnn.edge_model import EdgeModel
from edgegnn.errors import ConfigError

log = logging.getLogger(__name__)

METRIC = "recall@20"
RANKS = (32, 16)
SUBVECTORS = (16, 8)


@dataclass(frozen=True)
class SearchPoint:
    """One evaluated recipe.

    Attributes:
        name: short label, e.g. "low-rank 32 +ft, int8".
        configs: the recipe.
        metrics: measured metrics (recall@20, ndcg@20, ..., bytes, params, items).
        relative_drop: (recall_fp32 - recall) / recall_fp32 (negative: better than fp32).
    """

    name: str
    configs: tuple[PassConfig, ...]
    metrics: dict[str, float]
    relative_drop: float

    @property
    def bytes(self) -> int:
        return int(self.metrics["bytes"])

    @property
    def recall(self) -> float:
        return float(self.metrics[METRIC])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "recipe": [c.recipe_entry() for c in self.configs], "bytes": self.bytes,
                "params": int(self.metrics["params"]), "recall@20": self.recall,
                "ndcg@20": float(self.metrics.get("ndcg@20", float("nan"))), "relative_drop": self.relative_drop}


@dataclass(frozen=True, eq=False)
class SearchResult:
    """All points, the Pareto front (bytes ascending, Recall@20 strictly ascending), the choice.

    Attributes:
        chosen: the smallest point meeting the constraints, or None.
        reason: one sentence on why `chosen` was picked, or why nothing was.
        model: the chosen EdgeModel (None if nothing qualified).
        seconds: wall time of the search.
    """

    baseline: SearchPoint
    points: tuple[SearchPoint, ...]
    pareto: tuple[SearchPoint, ...]
    chosen: SearchPoint | None
    reason: str
    seconds: float
    max_drop: float | None
    size_budget: int | None
    users: int
    model: EdgeModel | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": METRIC, "max_drop": self.max_drop, "size_budget": self.size_budget,
                "users": self.users, "seconds": round(self.seconds, 2), "reason": self.reason,
                "baseline": self.baseline.to_dict(), "chosen": None if self.chosen is None else self.chosen.to_dict(),
                "pareto": [p.name for p in self.pareto], "points": [p.to_dict() for p in self.points]}


def default_grid(edge: EdgeModel, *, finetune_steps: int = 100) -> list[tuple[str, tuple[PassConfig, ...]]]:
    """The recipes `search` tries on `edge`, as (name, configs)."""
    int8, int4 = QuantizeConfig(precision="int8"), QuantizeConfig(precision="int4")
    grid: list[tuple[str, tuple[PassConfig, ...]]] = [
        ("fp32", ()), ("int8", (int8,)), ("int4", (int4,)), ("mixed int8/int4", (QuantizeConfig(precision="mixed"),))]
    if edge.kind == "lightgcn" and "message" in edge.tensors:
        grid += _shared_grid(edge, finetune_steps)
    width = edge.embedding_dim
    ranks = [r for r in RANKS if r < width] or sorted({max(1, width // 2), max(1, width // 4)}, reverse=True)
    for rank in ranks:
        label = f"low-rank {rank}" + (" +ft" if finetune_steps else "")
        lr = LowRankConfig(rank=rank, finetune_steps=finetune_steps)
        grid += [(label, (lr,)), (f"{label}, int4", (lr, int4))]
    return grid


def _shared_grid(edge: EdgeModel, finetune_steps: int) -> list[tuple[str, tuple[PassConfig, ...]]]:
    """LightGCN: the shared table, then int8 / mixed / int4 rows (float16 scales) or product quantization."""
    share = ShareConfig()
    grid: list[tuple[str, tuple[PassConfig, ...]]] = [("shared table", (share,))]
    for precision, label in (("int8", "int8"), ("mixed", "mixed int8/int4"), ("int4", "int4")):
        grid.append((f"shared table, {label}", (share, QuantizeConfig(precision=precision, scale_dtype="float16"))))
    for m in SUBVECTORS:
        if edge.embedding_dim % m == 0 and m < edge.embedding_dim:
            pq = ProductQuantizeConfig(subvectors=m, finetune_steps=finetune_steps)
            grid.append((f"shared table, PQ M={m}" + (" +ft" if finetune_steps else ""), (share, pq)))
    return grid


def search(edge: EdgeModel, split, *, calibration: Calibration, max_drop: float | None = 0.01,
           size_budget: int | None = None, max_users: int | None = 2000, user_base: np.ndarray | None = None,
           grid: Sequence[tuple[str, tuple[PassConfig, ...]]] | None = None, finetune_steps: int = 100,
           seed: int = 0, on_point: Callable[[int, int, SearchPoint], None] | None = None) -> SearchResult:
    """Evaluate `grid` (default: `default_grid`) and choose the smallest recipe within the constraints.

    Args:
        edge: the fp32 (or already compressed) model every recipe starts from.
        split: the split measured on (test interactions; train rows are the histories).
        calibration: calibration users for the passes that need them.
        max_drop: largest allowed relative Recall@20 drop (0.01 = 1 %), or None.
        size_budget: largest allowed size in bytes, or None.
        max_users: evaluation user sample size (fixed sample; None: every test user).
        user_base: e_u⁰ of the split's users, or None (evaluate as new users).
        on_point: called after each evaluated point with (index, total, point).
    """
    if max_drop is None and size_budget is None:
        raise ConfigError("search", None, "give max_drop and/or size_budget")
    if max_drop is not None and not 0 <= max_drop < 1:
        raise ConfigError("search.max_drop", max_drop, "must satisfy 0 <= max_drop < 1")
    if size_budget is not None and size_budget <= 0:
        raise ConfigError("search.size_budget", size_budget, "must be > 0 bytes")
    started = time.perf_counter()
    grid = list(grid) if grid is not None else default_grid(edge, finetune_steps=finetune_steps)
    evaluate = Evaluator(split, user_base=user_base, max_users=max_users, seed=seed)
    models: dict[tuple, EdgeModel] = {(): edge}
    baseline = SearchPoint("fp32", (), evaluate(edge), 0.0)
    base_recall = baseline.recall
    points: list[SearchPoint] = []
    for index, (name, configs) in enumerate(grid):
        model = _compressed(models, tuple(configs), calibration)
        metrics = baseline.metrics if model is edge else evaluate(model)
        drop = (base_recall - metrics[METRIC]) / base_recall if base_recall > 0 else 0.0
        points.append(SearchPoint(name, tuple(configs), metrics, float(drop)))
        log.info("search %d/%d %s: %d bytes, recall@20 %.4f (drop %+.2f%%)", index + 1, len(grid), name,
                 metrics["bytes"], metrics[METRIC], 100 * drop)
        if on_point is not None:
            on_point(index + 1, len(grid), points[-1])
    chosen, reason = choose(points, max_drop=max_drop, size_budget=size_budget)
    return SearchResult(baseline=baseline, points=tuple(points), pareto=tuple(pareto_front(points)),
                        chosen=chosen, reason=reason, seconds=time.perf_counter() - started,
                        max_drop=max_drop, size_budget=size_budget, users=len(evaluate.users),
                        model=None if chosen is None else models[chosen.configs])


def _compressed(models: dict[tuple, EdgeModel], configs: tuple, calibration: Calibration) -> EdgeModel:
    """The model of a recipe, reusing the longest already computed prefix."""
    if configs not in models:
        models[configs] = compress(_compressed(models, configs[:-1], calibration), configs[-1],
                                   calibration=calibration)
    return models[configs]


def pareto_front(points: Sequence[SearchPoint]) -> list[SearchPoint]:
    """Points no other point beats on both bytes (fewer) and Recall@20 (higher); bytes ascending."""
    front: list[SearchPoint] = []
    for point in sorted(points, key=lambda p: (p.bytes, -p.recall)):
        if not front or point.recall > front[-1].recall:
            front.append(point)
    return front


def choose(points: Sequence[SearchPoint], *, max_drop: float | None,
           size_budget: int | None) -> tuple[SearchPoint | None, str]:
    """The smallest point within both constraints (ties: higher recall), and why."""
    def ok(p: SearchPoint) -> bool:
        return (max_drop is None or p.relative_drop <= max_drop) and (size_budget is None or p.bytes <= size_budget)

    wanted = " and ".join(filter(None, [
        None if max_drop is None else f"a relative Recall@20 drop <= {100 * max_drop:.2f}%",
        None if size_budget is None else f"at most {size_budget:,} bytes"]))
    fits = [p for p in points if ok(p)]
    if not fits:
        best = min(points, key=lambda p: (p.relative_drop, p.bytes))
        smallest = min(points, key=lambda p: (p.bytes, p.relative_drop))
        return None, (f"no recipe meets {wanted}: the most accurate, {best.name}, "
                      f"drops {100 * best.relative_drop:.2f}% "
                      f"at {best.bytes:,} bytes; the smallest, {smallest.name}, is {smallest.bytes:,} bytes")
    chosen = min(fits, key=lambda p: (p.bytes, -p.recall))
    return chosen, (f"{chosen.name} is the smallest recipe with {wanted}: {chosen.bytes:,} bytes, "
                    f"drop {100 * chosen.relative_drop:.2f}%")
