"""Small EdgeModels of every storage kind, for the export and runtime tests (no training).

Random tables are enough to check that a graph computes exactly what `EdgeModel.encode` and
`score` compute; tests that need meaningful rankings use the trained fixtures in conftest.py.
"""

from __future__ import annotations

import numpy as np

from edgegnn.edge_model import ACTIVATION_LEVELS, EdgeModel
from edgegnn.tensors import (
    DenseTensor,
    LowRankTensor,
    MixedQuantizedTensor,
    ProductQuantizedTensor,
    RowScaledTensor,
    quantize_rows,
)

ITEMS, DIM, HIDDEN, RANK = 300, 16, 8, 6


def _rng(seed: int = 0):
    return np.random.default_rng(seed)


def _ids(n: int) -> np.ndarray:
    return np.array([f"item{i}" for i in range(n)])


def _tables(seed: int = 0, items: int = ITEMS, dim: int = DIM, stress: bool = False):
    rng = _rng(seed)
    message, item = ((rng.standard_normal((items, dim)) * 0.1).astype(np.float32),
                     rng.standard_normal((items, dim)).astype(np.float32))
    if stress:
        stress_rows(rng, message, item)
    return message, item


def stress_rows(rng, *tables: np.ndarray, rows: int = 4) -> None:
    """Make the first `rows` rows of each table sign patterns at its largest magnitude (the same
    patterns in every table), in place: a one-item history of such a row gives a user vector at
    full scale in every coordinate, which meets item rows whose int8 codes are all ±127 of the
    same signs -- the inputs that drive integer kernels to the edges of their ranges (a saturating
    int16 pair sum of u8 x s8 products is off by thousands of steps there)."""
    signs = np.where(rng.random((rows, tables[0].shape[1])) < 0.5, -1.0, 1.0).astype(np.float32)
    for table in tables:
        table[:rows] = signs * np.abs(table).max() * (1.0 if table is tables[-1] else 3.0)


def user_scale(edge: EdgeModel, seed: int = 1) -> float:
    """A static scale for e_u, calibrated like the quantize pass (max |e_u| / 63, ACTIVATION_LEVELS) on random users."""
    rng = _rng(seed)
    histories = [rng.choice(edge.num_items, 5, replace=False) for _ in range(64)]
    base = rng.standard_normal((64, _base_dim(edge))).astype(np.float32)
    return float(np.abs(edge.encode(histories, base)).max() / ACTIVATION_LEVELS["user"])


def _base_dim(edge: EdgeModel) -> int:
    from edgegnn.kinds import kind

    return kind(edge.kind).base_dim(edge.tensors)


def lightgcn(kind: str = "fp32", seed: int = 0, items: int = ITEMS, dim: int = DIM, stress: bool = False) -> EdgeModel:
    """LightGCN EdgeModels: fp32 | int8 (static user scale) | int8-dynamic | int8-tensor (one scale per
    table, static user scale) | int8-tensor-dynamic | int4 | mixed | lowrank-int8-tensor (lowrank-int8-shared
    with one scale for the left factor) |
    lowrank | lowrank-int8-shared (a joint left factor shared by message and item) |
    lowrank-int8-static (the same with a static user scale) | projection |
    shared | shared-int8 | shared-int8-fp16 (the share pass's form: message = diag(s) · item · W,
    the item table stored once; int8 rows, optionally with float16 scales) | pq (both tables
    product-quantized, float16 codebooks) | shared-pq (the one shared table product-quantized).
    `stress`: the first rows are sign patterns at full scale (`stress_rows`)."""
    message, item = _tables(seed, items, dim, stress)
    base = dict(kind="lightgcn", item_ids=_ids(items), params={"a0": 0.25, "num_layers": 2})
    if kind == "fp32":
        return EdgeModel(tensors={"message": DenseTensor(message), "item": DenseTensor(item)}, **base)
    if kind in ("shared", "shared-int8", "shared-int8-fp16", "pq", "shared-pq"):
        return EdgeModel(tensors=_shared_or_pq(kind, message, item, seed), **base)
    if kind in ("int8", "int8-dynamic", "int8-tensor", "int8-tensor-dynamic"):
        one = kind.startswith("int8-tensor")
        edge = EdgeModel(tensors={"message": quantize_rows(message, per_tensor=one),
                                  "item": quantize_rows(item, per_tensor=one)}, **base)
        return edge if kind.endswith("dynamic") else \
            EdgeModel(**{**base, "tensors": edge.tensors, "activation_scales": {"user": user_scale(edge)}})
    if kind == "int4":
        return EdgeModel(tensors={"message": quantize_rows(message, 4), "item": quantize_rows(item, 4)}, **base)
    if kind == "mixed":
        q4, q8 = quantize_rows(item, 4), quantize_rows(item, 8)
        tail = np.arange(items) >= items // 2
        q = np.where(tail[:, None], q4.q, q8.q).astype(np.int8)
        scale = np.where(tail, q4.scale, q8.scale).astype(np.float32)
        return EdgeModel(tensors={"message": DenseTensor(message),
                                  "item": MixedQuantizedTensor(q, scale, 8, np.packbits(tail))}, **base)
    if kind == "lowrank-int8-static":   # + a static user scale: fake-quant x feeds the int8 right factor
        edge = lightgcn("lowrank-int8-shared", seed, items, dim, stress)
        return EdgeModel(**{**base, "tensors": edge.tensors, "activation_scales": {"user": user_scale(edge)}})
    if kind in ("lowrank", "lowrank-int8-shared", "lowrank-int8-tensor"):
        u, s, vt = np.linalg.svd(np.concatenate([message, item], axis=1), full_matrices=False)
        left = (u[:, :RANK] * s[:RANK]).astype(np.float32)
        right_m, right_i = vt[:RANK, :dim].T.copy(), vt[:RANK, dim:].T.copy()
        if stress:   # one orthonormal right factor for both: a stress row's e_u · right is its left row
            right_m = right_i = np.linalg.qr(right_i)[0]
            stress_rows(_rng(seed + 5), left)
        if kind == "lowrank":
            tensors = {"message": LowRankTensor(DenseTensor(left), DenseTensor(right_m.astype(np.float32))),
                       "item": LowRankTensor(DenseTensor(left.copy()), DenseTensor(right_i.astype(np.float32)))}
        else:
            shared = quantize_rows(left, per_tensor=kind == "lowrank-int8-tensor")
            tensors = {"message": LowRankTensor(shared, quantize_rows(right_m)),
                       "item": LowRankTensor(shared, quantize_rows(right_i))}
        return EdgeModel(tensors=tensors, **base)
    if kind == "projection":   # structured pruning narrowed the tables to 12 of 16 columns
        keep = DIM - 4
        projection = np.eye(dim, keep, dtype=np.float32)
        return EdgeModel(tensors={"message": DenseTensor(message[:, :keep].copy()),
                                  "item": DenseTensor(item[:, :keep].copy()),
                                  "base_projection": DenseTensor(projection)}, **base)
    raise ValueError(kind)


def indexed(edge: EdgeModel, lists: int = 16, nprobe: int = 4) -> EdgeModel:
    """`edge` after the retrieval pass with a given nprobe (no calibration): 16 lists of
    ceil(1.25 · I / 16) slots; 4 probed hold fewer items than K + H of most targets, so the
    graph's rows end in -1 pads."""
    from edgegnn.compress import RetrievalConfig, compress

    return compress(edge, RetrievalConfig(lists=lists, nprobe=nprobe))


def _product_quantized(values: np.ndarray, subvectors: int = 4, centroids: int = 8, seed: int = 0):
    """Random codes and float16 codebooks of the table's shape (the math, not the fit, is under test)."""
    rng = _rng(seed + 7)
    rows, cols = values.shape
    codes = rng.integers(0, centroids, (rows, subvectors)).astype(np.uint8)
    books = rng.standard_normal((subvectors, centroids, cols // subvectors)).astype(np.float16)
    return ProductQuantizedTensor(codes, books)


def _shared_or_pq(kind: str, message: np.ndarray, item: np.ndarray, seed: int) -> dict:
    rng = _rng(seed + 3)
    if kind == "pq":
        return {"message": _product_quantized(message, seed=seed), "item": _product_quantized(item, seed=seed + 1)}
    table = {"shared": lambda: DenseTensor(item), "shared-int8": lambda: quantize_rows(item),
             "shared-int8-fp16": lambda: quantize_rows(item, scale_dtype="float16"),
             "shared-pq": lambda: _product_quantized(item, seed=seed)}[kind]()
    weight = DenseTensor((rng.standard_normal((item.shape[1], item.shape[1])) * 0.1).astype(np.float32))
    row_scale = DenseTensor(rng.uniform(0.2, 1.0, item.shape[0]).astype(np.float16))
    return {"message": RowScaledTensor(LowRankTensor(table, weight), row_scale), "item": table}


def sage(kind: str = "fp32", seed: int = 0) -> EdgeModel:
    """SAGE EdgeModels: fp32 | int8 (tables and weights per-row int8, static h1 and user scales)."""
    rng = _rng(seed)
    tables = {name: (rng.standard_normal((ITEMS, width)) * 0.3).astype(np.float32)
              for name, width in (("ego", DIM), ("hidden", HIDDEN), ("item", DIM))}
    weights = {"w1_self": (HIDDEN, DIM), "w1_neigh": (HIDDEN, DIM), "w2_self": (DIM, HIDDEN), "w2_neigh": (DIM, HIDDEN)}
    weights = {name: (rng.standard_normal(shape) * 0.3).astype(np.float32) for name, shape in weights.items()}
    biases = {"b1": rng.standard_normal(HIDDEN).astype(np.float32) * 0.1,
              "b2": rng.standard_normal(DIM).astype(np.float32) * 0.1}
    store = DenseTensor if kind == "fp32" else quantize_rows
    tensors = {**{n: store(v) for n, v in {**tables, **weights}.items()},
               **{n: DenseTensor(v) for n, v in biases.items()}}
    edge = EdgeModel(kind="sage", tensors=tensors, item_ids=_ids(ITEMS))
    if kind == "fp32":
        return edge
    h1 = edge.raw_activation("h1", [rng.choice(ITEMS, 5, replace=False) for _ in range(64)],
                          rng.standard_normal((64, DIM)).astype(np.float32))
    edge = EdgeModel(kind="sage", tensors=tensors, item_ids=_ids(ITEMS),
                     activation_scales={"h1": float(np.abs(h1).max() / ACTIVATION_LEVELS["h1"])})
    return EdgeModel(kind="sage", tensors=tensors, item_ids=_ids(ITEMS),
                     activation_scales={"h1": edge.activation_scales["h1"], "user": user_scale(edge)})


def graph_filter(kind: str = "fp32", seed: int = 0, items: int = ITEMS, neighbors: int = 12,
                 stress: bool = False) -> EdgeModel:
    """Graph-filter EdgeModels (GF-CF's device form): fp32 | int8 (message, item and the neighbour
    weights per-row int8, static user scale) | int32-ids (the ids as int32, as for catalogs over
    65,536 items). Neighbour lists: `neighbors` distinct other items per row, positive weights."""
    message, item = _tables(seed, items, DIM, stress)
    rng = _rng(seed + 11)
    ids = np.stack([rng.choice(np.delete(np.arange(items), row), neighbors, replace=False) for row in range(items)])
    weights = rng.uniform(0.0, 0.5, (items, neighbors)).astype(np.float32)
    ids = ids.astype(np.int32 if kind == "int32-ids" else np.uint16)
    store = quantize_rows if kind == "int8" else DenseTensor
    edge = EdgeModel(kind="graph-filter", item_ids=_ids(items),
                     tensors={"message": store(message), "item": store(item), "neighbor_items": DenseTensor(ids),
                              "neighbor_weights": store(weights)})
    if kind != "int8":
        return edge
    return EdgeModel(kind="graph-filter", item_ids=_ids(items), tensors=edge.tensors,
                     activation_scales={"user": user_scale(edge)})


def gat(kind: str = "fp32", seed: int = 0, stress: bool = False) -> EdgeModel:
    """GAT EdgeModels: `message` [I, d + 1] (messages, the attention logit last: spread over
    [-3, 3], so the softmax is far from uniform), `item` [I, d], `bias` [d]: fp32 | int8 (message
    and item per-row int8, static user scale) | lowrank (message as rank-4 factors)."""
    message, item = _tables(seed, ITEMS, DIM, stress)
    logits = _rng(seed + 5).uniform(-3.0, 3.0, (ITEMS, 1)).astype(np.float32)
    table = np.hstack([message, logits])
    bias = DenseTensor((_rng(seed + 6).standard_normal(DIM) * 0.1).astype(np.float32))
    if kind == "lowrank":
        u, s, vt = np.linalg.svd(table, full_matrices=False)
        stored = LowRankTensor(DenseTensor((u[:, :4] * s[:4]).astype(np.float32)),
                               DenseTensor(vt[:4].T.astype(np.float32)))
        tensors = {"message": stored, "item": DenseTensor(item), "bias": bias}
    else:
        store = quantize_rows if kind == "int8" else DenseTensor
        tensors = {"message": store(table), "item": store(item), "bias": bias}
    edge = EdgeModel(kind="gat", item_ids=_ids(ITEMS), tensors=tensors)
    if kind != "int8":
        return edge
    return EdgeModel(kind="gat", item_ids=_ids(ITEMS), tensors=tensors, activation_scales={"user": user_scale(edge)})


def histories(batch: int, max_len: int, items: int = ITEMS, seed: int = 2) -> list[np.ndarray]:
    """`batch` distinct-item histories of lengths 1..max_len."""
    rng = _rng(seed)
    return [rng.choice(items, int(rng.integers(1, max_len + 1)), replace=False) for _ in range(batch)]


def padded(hist: list[np.ndarray], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(history int32 [B, W], mask float32 [B, W]) as the runtime feeds them."""
    width = width or max(len(h) for h in hist)
    history = np.zeros((len(hist), width), np.int32)
    mask = np.zeros((len(hist), width), np.float32)
    for r, h in enumerate(hist):
        history[r, :len(h)] = h
        mask[r, :len(h)] = 1
    return history, mask


def with_class_head(edge: EdgeModel, classes: int = 5, seed: int = 7) -> EdgeModel:
    """`edge` with a random user class head (`edgegnn.class_head`), its logits of order 10 so
    that the softmax is far from uniform (a wrong head is visible in the probabilities)."""
    from edgegnn.class_head import ClassHead, attach_user_head

    rng = _rng(seed)
    width = edge.encode([np.zeros(1, np.int64)]).shape[1]
    head = ClassHead("user", tuple(f"class{c}" for c in range(classes)), mean=rng.standard_normal(width) * 0.01,
                     scale=np.full(width, 0.1), weights=rng.standard_normal((classes, width)),
                     bias=rng.standard_normal(classes), metrics={})
    return attach_user_head(edge, head)
