"""The 1M-item catalogs of the approximate-retrieval benchmarks, built deterministically (seeded).

Two item tables of 1,000,000 x 64 float32, each with 1,000 query vectors e_u and their exact top 20
by inner product (maximum inner product search, MIPS):

"real": the item table of the trained Gowalla LightGCN (benchmarks/results/gowalla_lightgcn.pt,
    folded: `EdgeModel.tensors["item"]`, 40,981 x 64) tiled to 1M rows and perturbed, so that the
    catalog keeps the trained table's uneven clusters (dense regions stay dense, 24.4x as many
    items in each) without being 24 copies of the same 41k items:
        copy c = 0 .. 24 of the table (the last one a seeded random subset of 16,456 rows):
            v'_i = v_i * s_c + NOISE * sigma * z_i,
        sigma [64] the per-dimension std of the trained table, z_i ~ N(0, I) (every row its own
        draw), s_c [64] a per-copy scale of each dimension (diagonal: no rotation, the axes and
        the clusters' shapes stay), s_c = exp(N(0, 0.1^2)) (about +-10 %), so copies differ in
        norm and direction as related items of a real catalog do. The rows are then shuffled
        (seeded): no copy sits in one block.
    NOISE = 0.5 (x the per-dimension std), measured on this checkpoint (median distance of an item
    to its nearest neighbour (L2) on 3,000 items; "own copy": that neighbour is a copy of the same
    trained item; cluster sizes of a 1024-centroid k-means of the 1M, std/mean and max/mean):
        NOISE   NN dist   own copy   distinct trained items in an exact top 20   sizes std, max
        (trained table, 41k items: NN dist 0.43)
        0.10    0.13      96 %       3.2                                         0.86, 6.7x
        0.25    0.26      92 %       3.8                                         0.81, 6.1x
        0.50    0.49      70 %       5.8                                         0.70, 4.8x
        1.00    0.91      19 %       9.6                                         0.55, 4.1x
    At 0.1 each trained item becomes a tight clump of 24 near-duplicates (3x closer to each other
    than to any other item), which flatters every partitioning index (a query's top 20 is 3
    clumps); at 0.5 the spacing of neighbouring items is the trained table's again while the
    clusters stay uneven (the largest k-means cluster 4.8x the mean; the random table: about 2x).
    `catalog("real", noise=...)` builds (and caches) another level. A dense real catalog's top 20
    also lies in a small region (24x the items there), so few distinct trained items is expected.
    Queries: the folded user vectors (`EdgeModel.encode`, users as new: history only, no e_u0)
    of 1,000 seeded Gowalla test users (`common.gowalla_split()`), each from the newest 20 items
    of their training history (Gowalla's split has no timestamps: "newest" is the last 20 of the
    stored row, as edgegnn's export evaluation and profile keep them).
"random": a standard normal 1M x 64 table and 1,000 standard normal queries, for comparison
    (no clusters: the hard case for every partitioning index).

Everything is cached under benchmarks/results/cache/ (gitignored) as .npy, named by the build's
parameters (and, for "real", the checkpoint's sha256), so a changed recipe or checkpoint never
reads a stale file:

    from big_catalog import catalog, overlap
    real = catalog("real")     # .items [1M, 64], .queries [1000, 64], .exact [1000, 20] (best first)
    overlap(found_ids, real.exact)

    .venv/bin/python benchmarks/big_catalog.py      # build (or check) both caches, print a summary
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import RESULTS  # noqa: E402

CACHE = RESULTS / "cache"
CHECKPOINT = RESULTS / "gowalla_lightgcn.pt"
ITEMS, DIM, QUERIES, TOP_K, HISTORY = 1_000_000, 64, 1_000, 20, 20
NOISE = 0.5           # Gaussian noise per row, x the trained table's per-dimension std (docstring)
SCALE_SD = 0.10       # per-copy, per-dimension log-scale std (exp(N(0, SCALE_SD^2)))
SEED = 0
RECIPE = 1            # bump when the construction changes (part of every cache name)
NAMES = ("real", "random")


@dataclass(eq=False)
class Catalog:
    """One benchmark catalog: items float32 [N, d], queries float32 [Q, d], exact int64 [Q, k]
    (the exact top k by inner product, best first), and what built it."""

    name: str
    items: np.ndarray
    queries: np.ndarray
    exact: np.ndarray
    info: dict = field(default_factory=dict)


def overlap(found_ids, exact_ids) -> float:
    """Mean over queries of |found ∩ exact| / k (k = exact_ids' width): the share of the exact
    top k an approximate search returned. found_ids [Q, >= 0] (ids < 0, FAISS's "no result", are
    ignored; the order within a row does not matter)."""
    found_ids, exact_ids = np.asarray(found_ids), np.asarray(exact_ids)
    if len(found_ids) != len(exact_ids):
        raise ValueError(f"{len(found_ids)} result rows for {len(exact_ids)} queries")
    k = exact_ids.shape[1]
    hits = [len(np.intersect1d(f[f >= 0], e, assume_unique=False)) for f, e in zip(found_ids, exact_ids)]
    return float(np.mean(hits) / k) if hits else 0.0


def exact_top(items: np.ndarray, queries: np.ndarray, k: int = TOP_K, chunk: int = 65_536) -> np.ndarray:
    """The exact top k rows of `items` by inner product with each query, int64 [Q, k], best first
    (ties: the lower row first). Brute force in float32, over row chunks of `chunk` (memory
    [Q, chunk] scores at a time), keeping a running top k."""
    q = np.ascontiguousarray(queries, np.float32)
    best_ids = np.empty((len(q), 0), np.int64)
    best_scores = np.empty((len(q), 0), np.float32)
    for start in range(0, len(items), chunk):
        scores = q @ np.asarray(items[start:start + chunk], np.float32).T
        take = min(k, scores.shape[1])
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        best_ids = np.concatenate([best_ids, part + start], axis=1)
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
        if best_ids.shape[1] > k:
            keep = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
            best_ids = np.take_along_axis(best_ids, keep, axis=1)
            best_scores = np.take_along_axis(best_scores, keep, axis=1)
    order = np.lexsort((best_ids, -best_scores), axis=1)        # score descending, then row ascending
    return np.take_along_axis(best_ids, order, axis=1)


# ---- the tables and queries ------------------------------------------------------------------

def require_checkpoint() -> Path:
    if not CHECKPOINT.is_file():
        raise SystemExit(f"{CHECKPOINT.relative_to(RESULTS.parents[1])} not found: write it with "
                         "benchmarks/bench_gowalla_budget.py --model models/lightgcn.yaml --budget 600 "
                         "--save benchmarks/results/gowalla_lightgcn.pt")
    return CHECKPOINT


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _key(name: str, noise: float = NOISE) -> str:
    base = f"{name}-r{RECIPE}-s{SEED}-n{ITEMS}-q{QUERIES}"
    if name == "real":
        base += f"-h{HISTORY}-noise{noise:g}-scale{SCALE_SD:g}-{_sha256(require_checkpoint())[:12]}"
    return base


def tile(table: np.ndarray, rows: int = ITEMS, noise: float = NOISE, scale_sd: float = SCALE_SD,
         seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """`table` [n, d] tiled to `rows` rows, perturbed as the module describes; returns (items
    float32 [rows, d], source int64 [rows]: the row of `table` each item copies)."""
    rng = np.random.default_rng(seed)
    n, d = table.shape
    sigma = table.std(axis=0).astype(np.float32)
    copies = -(-rows // n)
    source = np.concatenate([np.arange(n)] * (copies - 1)
                            + [np.sort(rng.choice(n, rows - (copies - 1) * n, replace=False))])
    copy = np.repeat(np.arange(copies), n)[:rows]
    scales = np.exp(rng.normal(0.0, scale_sd, (copies, d))).astype(np.float32)
    items = table[source] * scales[copy]
    items += rng.standard_normal((rows, d), dtype=np.float32) * (noise * sigma)
    order = rng.permutation(rows)
    return np.ascontiguousarray(items[order], np.float32), source[order].astype(np.int64)


def _build_real(log, noise: float) -> dict[str, np.ndarray]:
    from common import gowalla_split

    from edgegnn.edge_eval import histories_from_csr
    from edgegnn.fold import fold
    from edgegnn.train.checkpoint import load_checkpoint

    t0 = time.time()
    edge = fold(load_checkpoint(require_checkpoint()))
    table = edge.tensors["item"].to_dense().astype(np.float32)
    split = gowalla_split()
    if not np.array_equal(np.asarray(edge.item_ids).astype(str), np.asarray(split.train.item_ids).astype(str)):
        raise SystemExit(f"the checkpoint's {len(edge.item_ids)} items are not the Gowalla split's "
                         f"{split.num_items} (in order): not the Gowalla LightGCN")
    train_csr, test_csr = split.train.to_csr(), split.test.to_csr()
    histories = histories_from_csr(train_csr)
    candidates = np.flatnonzero((np.diff(train_csr.indptr) > 0) & (np.diff(test_csr.indptr) > 0))
    rng = np.random.default_rng(SEED + 1)
    users = np.sort(rng.choice(candidates, QUERIES, replace=False))
    queries = edge.encode([histories[u][-HISTORY:] for u in users]).astype(np.float32)
    log(f"real: folded the checkpoint, {len(users)} test users encoded ({time.time() - t0:.0f} s)")
    items, source = tile(table, noise=noise)
    return {"items": items, "queries": queries, "source": source, "users": users.astype(np.int64),
            "trained": table}


def _build_random(log) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED + 2)
    items = rng.standard_normal((ITEMS, DIM), dtype=np.float32)
    queries = rng.standard_normal((QUERIES, DIM), dtype=np.float32)
    return {"items": items, "queries": queries}


def catalog(name: str, log=print, noise: float = NOISE) -> Catalog:
    """The `name` catalog ("real" or "random"), from the cache when there, else built and cached
    (`noise`: the real table's NOISE)."""
    if name not in NAMES:
        raise ValueError(f"unknown catalog {name!r}: one of {NAMES}")
    key = _key(name, noise)
    paths = {part: CACHE / f"{key}-{part}.npy" for part in ("items", "queries", "exact")}
    meta_path = CACHE / f"{key}.json"
    if all(p.is_file() for p in paths.values()) and meta_path.is_file():
        arrays = {part: np.load(p) for part, p in paths.items()}
        return Catalog(name, arrays["items"], arrays["queries"], arrays["exact"], json.loads(meta_path.read_text()))
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    built = _build_real(log, noise) if name == "real" else _build_random(log)
    t1 = time.time()
    exact = exact_top(built["items"], built["queries"])
    log(f"{name}: exact top {TOP_K} of {QUERIES} queries over {ITEMS:,} items in {time.time() - t1:.0f} s")
    info = {"name": name, "key": key, "items": ITEMS, "dim": DIM, "queries": QUERIES, "top_k": TOP_K,
            "seed": SEED, "recipe": RECIPE, "build_s": round(time.time() - t0, 1)}
    if name == "real":
        source, table = built["source"], built["trained"]
        distinct = [len(np.unique(source[row])) for row in exact]
        trained_exact = exact_top(table, built["queries"])
        info.update({
            "checkpoint": "benchmarks/results/gowalla_lightgcn.pt",
            "checkpoint_sha256": _sha256(CHECKPOINT), "trained_items": int(table.shape[0]),
            "noise_x_dim_std": noise, "copy_log_scale_sd": SCALE_SD, "history": HISTORY,
            "query_users": "seeded sample of Gowalla test users (train and test items), users as new",
            "exact_distinct_trained_items_mean": float(np.mean(distinct)),
            "exact_trained_items_share_in_trained_table_top20": overlap(source[exact], trained_exact),
        })
        np.save(CACHE / f"{key}-source.npy", source)
        np.save(CACHE / f"{key}-users.npy", built["users"])
    for part, path in paths.items():
        np.save(path, exact if part == "exact" else built[part])
    meta_path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return Catalog(name, built["items"], built["queries"], exact, info)


def main() -> None:
    for name in NAMES:
        t0 = time.time()
        cat = catalog(name)
        norms = np.linalg.norm(cat.items, axis=1)
        print(f"{name}: items {cat.items.shape}, queries {cat.queries.shape}, exact {cat.exact.shape} "
              f"({time.time() - t0:.0f} s); item norm p5/p50/p95 "
              f"{np.percentile(norms, 5):.3f}/{np.median(norms):.3f}/{np.percentile(norms, 95):.3f}")
        print(json.dumps(cat.info, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
