"""Retrieval pass: inverted lists over the final item table (`edgegnn.retrieval`).

Not a compression of bytes (the lists add L·d floats and L·C int32 rows) but of the work per
query: the device scores nprobe·C of the I items. What that costs in ranking is measured here
on calibration users, against the exact scan of the same model:

    overlap(nprobe) = mean over users of |top-k of the probed lists ∩ exact top-k| / k,

the exact top-k of e_u · itemᵀ read as the table is stored (int8 rows dequantized), and
nprobe (unless given) is the smallest power of two whose overlap reaches the target. The
measured overlap and the curve tried go into params["retrieval"] and from there into the
artifact's manifest. The probe uses e_u as encoded; the scores, like the exact scan's, use e_u
after its "user" rounding (`EdgeModel.score`).

Only an item table scored as e_u · itemᵀ alone is indexed: a dense or int8/int4 table, or a
low-rank one whose left factor is (the graphs gather those rows list by list), in a kind without
a history term in its scores (graph filters' neighbour lists would score items outside the lists).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.configs import RetrievalConfig
from edgegnn.compress.registry import register_pass
from edgegnn.edge_model import EdgeModel, matmul_transposed
from edgegnn.errors import ConfigError
from edgegnn.metrics import top_k
from edgegnn.retrieval import CENTROIDS, ROWS, InvertedLists, build_lists, check_nprobe, exact_top, overlap
from edgegnn.tensors import DenseTensor, LowRankTensor, QuantizedTensor

log = logging.getLogger(__name__)
# Measured (benchmarks/bench_retrieval.py): at 41k items (Gowalla) the lists at overlap 0.95 are no
# faster than the exact int8 scan on ONNX Runtime and slower on LiteRT; at 1M, 9x (LiteRT) to 19x (ONNX).
LISTS_PAY_FROM = 100_000


@register_pass(RetrievalConfig)
def index_items(edge: EdgeModel, config: RetrievalConfig, calibration: Calibration | None = None) -> EdgeModel:
    """`edge` with inverted lists over its item table and the nprobe its queries probe."""
    check_indexable(edge)
    if config.nprobe == 0 and calibration is None:
        raise ConfigError("retrieval.nprobe", 0, "choosing nprobe needs calibration users (or give nprobe >= 1)")
    count = auto_lists(edge.num_items) if config.lists == 0 else config.lists
    if count > edge.num_items:
        raise ConfigError("retrieval.lists", count, f"at most the number of items ({edge.num_items})")
    if edge.num_items < LISTS_PAY_FROM:
        log.warning("retrieval: %d items; below ~%d the exact int8 scan is as fast as the lists or faster "
                    "(README, Big catalogs) and returns the exact top-k", edge.num_items, LISTS_PAY_FROM)
    table = edge.tensors["item"].to_dense().astype(np.float32)
    inverted = build_lists(table, count, slack=config.slack, seed=config.seed)
    indexed = edge.with_tensors(config.recipe_entry(), **{CENTROIDS: DenseTensor(inverted.centroids),
                                                          ROWS: DenseTensor(inverted.rows)})
    record = {"lists": inverted.num_lists, "capacity": inverted.capacity, "k": config.k}
    if calibration is not None:
        users, curve = overlap_curve(edge, inverted, calibration, config.k, config.nprobe, config.overlap)
        nprobe = config.nprobe or _smallest_reaching(curve, config.overlap, inverted.num_lists)
        record.update(nprobe=nprobe, overlap=curve.get(nprobe), curve={str(n): v for n, v in curve.items()},
                      calibration_users=users, target_overlap=None if config.nprobe else config.overlap)
        log.info("retrieval: %d lists of %d, nprobe %d, top-%d overlap %.4f on %d calibration users",
                 inverted.num_lists, inverted.capacity, nprobe, config.k, curve[nprobe], users)
        if nprobe * inverted.capacity >= edge.num_items / 2:
            log.warning("retrieval: nprobe %d of %d lists scores half the catalog or more: the exact scan is faster "
                        "for these items (drop the retrieval pass, or lower the overlap)", nprobe, inverted.num_lists)
    else:
        check_nprobe(config.nprobe, inverted.num_lists)
        record.update(nprobe=config.nprobe, overlap=None, curve={}, calibration_users=0, target_overlap=None)
    return _with_params(indexed, retrieval=record)


def check_indexable(edge: EdgeModel) -> None:
    """A clear error unless the item table can be searched through inverted lists."""
    if ROWS in edge.tensors:
        raise ConfigError("retrieval", "indexed twice", "the model has inverted lists already")
    if edge.has_item_scores:
        raise ConfigError("retrieval", edge.kind, "a kind whose scores add a history term (neighbour lists) "
                                                  "scores items outside the lists; index a kind scored as e_u · itemᵀ")
    table = edge.tensors["item"]
    rows = table.left if isinstance(table, LowRankTensor) else table
    if not isinstance(rows, (DenseTensor, QuantizedTensor)):
        raise ConfigError("retrieval", type(table).__name__, "the item rows must be dense or int8/int4 (or a "
                                                             "low-rank table's left factor): not product-quantized "
                                                             "or row-scaled")


def exact_scan(edge: EdgeModel) -> EdgeModel:
    """`edge` without its inverted lists (itself if it has none): every item scored. The items
    the lists return keep their exact scores, so what maps scores to other quantities (the
    probability calibration) is fitted on this model's scores of any pair."""
    if ROWS not in edge.tensors:
        return edge
    tensors = {name: t for name, t in edge.tensors.items() if name not in (CENTROIDS, ROWS)}
    params = {name: v for name, v in edge.params.items() if name != "retrieval"}
    recipe = tuple(entry for entry in edge.recipe if entry.get("pass") != RetrievalConfig.PASS)
    return dataclasses.replace(edge, tensors=tensors, params=params, recipe=recipe)


def auto_lists(num_items: int) -> int:
    """The power of two nearest 2·sqrt(I) (at most I): lists of ~sqrt(I)/2 · slack items, so
    the centroid scan (L·d) and the candidates' scan (nprobe·C·d) stay small together."""
    return max(1, min(num_items, 1 << round(math.log2(max(2.0 * math.sqrt(num_items), 1.0)))))


def overlap_curve(edge: EdgeModel, inverted: InvertedLists, calibration: Calibration, k: int, nprobe: int,
                  target: float) -> tuple[int, dict[int, float]]:
    """(users measured, {nprobe: top-k overlap}) on the calibration users: the given nprobe, or
    powers of two up to the first that reaches `target` (L last)."""
    histories, base = calibration.for_model(edge)
    e_u = edge.encode(histories, base)
    scored = edge.quantize_activation("user", e_u)
    table = edge.tensors["item"]
    k = min(k, edge.num_items)
    exact = exact_top(table.to_dense(), scored, k)
    steps = [nprobe] if nprobe else sorted({min(2 ** p, inverted.num_lists)
                                            for p in range(inverted.num_lists.bit_length() + 1)})
    curve: dict[int, float] = {}
    for step in steps:
        check_nprobe(step, inverted.num_lists)
        found = _list_top(inverted, table, e_u, scored, step, k)
        curve[step] = round(overlap(found, exact), 6)
        if curve[step] >= target:
            break
    return len(histories), curve


def _list_top(inverted: InvertedLists, table, e_u: np.ndarray, scored: np.ndarray, nprobe: int, k: int,
              chunk: int = 256) -> np.ndarray:
    """int64 [B, k]: the top k of the probed lists (probed with e_u, scored with `scored`; -1 where
    they hold fewer), in chunks of users ([chunk, I] scores at a time)."""
    out = []
    for start in range(0, len(e_u), chunk):
        part = slice(start, start + chunk)
        out.append(top_k(inverted.keep_candidates(e_u[part], nprobe, matmul_transposed(scored[part], table)), k))
    return np.concatenate(out)


def _smallest_reaching(curve: dict[int, float], target: float, num_lists: int) -> int:
    reached = [n for n, value in curve.items() if value >= target]
    return min(reached) if reached else num_lists


def _with_params(edge: EdgeModel, **params) -> EdgeModel:
    return dataclasses.replace(edge, params={**edge.params, **params})
