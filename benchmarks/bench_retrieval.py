"""Approximate retrieval over big catalogs: edgegnn's inverted lists inside the exported ONNX graph
against the exact int8 scan and the peers a user would pick instead (FAISS IVF-Flat, FAISS IVF-PQ
fast-scan, hnswlib HNSW), on the same item table and the same queries, in one run: one thread,
batch 1, top 20.

    .venv/bin/python benchmarks/bench_retrieval.py [--catalogs real random gowalla] [--queries 300]
        [--lists 2048] [--nprobe 4 8 16 32 64] [--peers faiss hnswlib]

Catalogs (benchmarks/big_catalog.py): "real" (the trained Gowalla LightGCN's item table tiled and
perturbed to 1M x 64, its uneven clusters kept), "random" (1M x 64 standard normal), "gowalla"
(the trained table itself, 40,981 items: where the exact scan should stay). Queries: the folded
user vectors of seeded Gowalla test users (random normal for "random").

edgegnn's side is the product path: the table quantized per row to int8 (`quantize_rows`), a
LightGCN EdgeModel exported with variant "user" (user vector in, top 20 out) for cpu-x86_64 (ONNX
Runtime) and android-litert (LiteRT, XNNPACK), exactly (today's exact int8 scan: MatMulNBits /
the hybrid FULLY_CONNECTED, and the two-stage top-K at 1M) and after the retrieval pass
(`RetrievalConfig(lists, nprobe)`, one k-means for both runtimes, nprobe swept); each artifact
is verified by `export` as any other and timed through `Recommender.backend.run` (1 thread).
Overlap: the share of a reference top 20 a method returns, against the float exact scan
("vs_float") and against the exact int8 ONNX artifact's answer ("vs_int8_exact", what the device
serves today). Latency: p50/p90 over the queries, after 20 warm-up calls, each method timed back
to back in this process (ratios within one run: the machine is shared). Memory: peak RSS while
the runtime loads an artifact, in a fresh process (benchmarks/memory_probe.py), over
its bytes on disk. Results: benchmarks/results/retrieval.json (machine and CPU recorded).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from big_catalog import CHECKPOINT, Catalog, catalog, exact_top, overlap  # noqa: E402
from common import REPO, write_json  # noqa: E402

TOP = 20
WARMUP = 20
TARGET = 0.95


def timed(search, queries: np.ndarray) -> tuple[np.ndarray, dict]:
    """(found ids int64 [Q, 20] (-1 pads), {"p50_us", "p90_us"}) of `search(query [d]) -> ids`."""
    for query in queries[:WARMUP]:
        search(query)
    found = np.full((len(queries), TOP), -1, np.int64)
    times = np.empty(len(queries))
    for i, query in enumerate(queries):
        start = time.perf_counter_ns()
        ids = np.asarray(search(query))[:TOP]
        times[i] = (time.perf_counter_ns() - start) / 1e3
        found[i, :len(ids)] = ids
    return found, {"p50_us": round(float(np.median(times)), 1), "p90_us": round(float(np.percentile(times, 90)), 1)}


def point(found: np.ndarray, timing: dict, cat: Catalog, int8_exact: np.ndarray | None, **setting) -> dict:
    row = {**setting, **timing, "overlap_vs_float": round(overlap(found, cat.exact[:len(found)]), 4)}
    if int8_exact is not None:
        row["overlap_vs_int8_exact"] = round(overlap(found, int8_exact), 4)
    return row


# ---- edgegnn ---------------------------------------------------------------------------------

def edge_model(items: np.ndarray):
    """A LightGCN EdgeModel scoring with `items` as per-row int8 (its message table the same one)."""
    from edgegnn.edge_model import EdgeModel
    from edgegnn.tensors import quantize_rows

    table = quantize_rows(items)
    return EdgeModel("lightgcn", {"message": table, "item": table}, np.arange(len(items)).astype(str),
                     params={"a0": 0.0})


TARGETS = {"onnx": "cpu-x86_64", "litert": "android-litert"}


def export_user(edge, target: str, out: Path) -> Path:
    from edgegnn.export import export

    return export(edge, TARGETS[target], variant="user", top_k=TOP, out_dir=out, cpus=(), emulators=None)


def artifact_search(directory: Path):
    from edgegnn.runtime import Recommender

    backend = Recommender.open(directory, threads=1).backend
    return lambda query: backend.run({"user_embedding": query[None, :]})[0][0]


def load_memory(directory: Path) -> dict:
    """The fresh-process load figures of benchmarks/memory_probe.py, and peak / disk."""
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "memory_probe.py"), str(directory)],
                         check=True, capture_output=True, text=True).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    return {"disk_bytes": probe["disk_bytes"], "load_peak_growth": probe["load_peak_growth"],
            "load_peak_over_disk": round(probe["load_peak_growth"] / probe["disk_bytes"], 3)}


def run_edgegnn(cat: Catalog, queries: np.ndarray, lists: int, nprobes: list[int], work: Path, log) -> dict:
    """Per runtime: the exact int8 artifact and the lists' curve (one set of lists for both)."""
    from edgegnn.compress import RetrievalConfig, compress

    edge = edge_model(cat.items)
    t0 = time.time()
    indexed = compress(edge, RetrievalConfig(lists=min(lists, cat.items.shape[0]), nprobe=1))
    build_s = round(time.time() - t0, 1)
    record = indexed.params["retrieval"]
    log(f"  {record['lists']} lists of {record['capacity']} built in {build_s} s")
    out = {"lists": record["lists"], "capacity": record["capacity"], "build_s": build_s}
    int8_exact = None
    for runtime in TARGETS:
        exact_dir = export_user(edge, runtime, work / f"{runtime}-exact")
        found, timing = timed(artifact_search(exact_dir), queries)
        manifest = json.loads((exact_dir / "manifest.json").read_text())
        int8_exact = found if int8_exact is None else int8_exact         # the ONNX exact scan is the reference
        entry = {"exact_int8": {**point(found, timing, cat, int8_exact), "scoring": manifest["graph"]["scoring"]["op"],
                                "memory": load_memory(exact_dir)}, "curve": []}
        log(f"  {runtime} exact int8: {entry['exact_int8']}")
        for nprobe in nprobes:
            if nprobe > record["lists"]:
                continue
            model = dataclasses.replace(indexed, params={**indexed.params, "retrieval": {**record, "nprobe": nprobe}})
            directory = export_user(model, runtime, work / f"{runtime}-lists-{nprobe}")
            found, timing = timed(artifact_search(directory), queries)
            entry["curve"].append(point(found, timing, cat, int8_exact, nprobe=nprobe,
                                        scored_items=nprobe * record["capacity"]))
            log(f"  {runtime} nprobe {nprobe}: {entry['curve'][-1]}")
        best = at_target(entry["curve"], "overlap_vs_int8_exact")
        entry["memory_at_target"] = None if best is None else load_memory(work / f"{runtime}-lists-{best['nprobe']}")
        out[runtime] = entry
    return {**out, "int8_exact_found": int8_exact}


# ---- peers -----------------------------------------------------------------------------------

def run_faiss(cat: Catalog, queries: np.ndarray, lists: int, nprobes: list[int], int8_exact, log) -> dict:
    import faiss

    d = cat.items.shape[1]
    rng = np.random.default_rng(0)
    sample = cat.items[np.sort(rng.choice(len(cat.items), min(len(cat.items), 256 * lists), replace=False))]
    out = {"version": faiss.__version__}
    # FAISS trains an inner-product IVF's centroids by spherical k-means (unit centroids: the probe
    # ranks lists by direction, not by the norms that inner-product scores reward); "_l2" trains
    # them with plain L2 k-means, as edgegnn's lists are, and probes by inner product: the same
    # partition idea (unbalanced lists), FAISS's kernels.
    for name, factory, refine, l2 in (("ivf_flat", f"IVF{lists},Flat", None, False),
                                      ("ivf_flat_l2", f"IVF{lists},Flat", None, True),
                                      ("ivf_pq_fastscan", f"IVF{lists},PQ32x4fs", None, False),
                                      ("ivf_pq_fastscan_l2_refine_sq8", f"IVF{lists},PQ32x4fs,Refine(SQ8)", 16, True)):
        faiss.omp_set_num_threads(2)
        t0 = time.time()
        index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed = 0
        if l2:      # FAISS's IP default is spherical k-means (unit centroids): plain L2 k-means instead
            ivf.cp.spherical = False
            ivf.clustering_index = faiss.IndexFlatL2(d)
        index.train(sample)
        index.add(cat.items)
        build_s = round(time.time() - t0, 1)
        faiss.omp_set_num_threads(1)
        if refine is not None:
            index.k_factor = refine
        curve = []
        for nprobe in nprobes:
            ivf.nprobe = nprobe
            found, timing = timed(lambda q, index=index: index.search(q[None, :], TOP)[1][0], queries)
            curve.append(point(found, timing, cat, int8_exact, nprobe=nprobe))
        out[name] = {"factory": factory, "k_factor": refine, "centroids_trained": "L2" if l2 else "inner product",
                     "build_s": build_s, "curve": curve}
        log(f"  faiss {name}: built in {build_s} s; {curve}")
    return out


def run_hnswlib(cat: Catalog, queries: np.ndarray, int8_exact, log, efs=(20, 40, 80, 160, 320, 640)) -> dict:
    import hnswlib

    n, d = cat.items.shape
    t0 = time.time()
    index = hnswlib.Index(space="ip", dim=d)
    index.init_index(max_elements=n, ef_construction=100, M=16, random_seed=0)
    index.set_num_threads(2)
    index.add_items(cat.items, np.arange(n))
    build_s = round(time.time() - t0, 1)
    index.set_num_threads(1)
    curve = []
    for ef in efs:
        index.set_ef(max(ef, TOP))
        found, timing = timed(lambda q: index.knn_query(q[None, :], k=TOP)[0][0].astype(np.int64), queries)
        curve.append(point(found, timing, cat, int8_exact, ef=ef))
    log(f"  hnswlib: built in {build_s} s; {curve}")
    return {"M": 16, "ef_construction": 100, "build_s": build_s, "curve": curve}


# ---- the run ---------------------------------------------------------------------------------

def gowalla_catalog() -> Catalog:
    """The trained table itself (41k items) and the "real" catalog's queries."""
    from edgegnn.fold import fold
    from edgegnn.train.checkpoint import load_checkpoint

    real = catalog("real")
    table = fold(load_checkpoint(CHECKPOINT)).tensors["item"].to_dense().astype(np.float32)
    return Catalog("gowalla", table, real.queries, exact_top(table, real.queries), {"items": len(table)})


def at_target(curve: list[dict], key: str) -> dict | None:
    """The fastest setting whose overlap (`key`) reaches TARGET, or None."""
    reached = [row for row in curve if row.get(key, 0) >= TARGET]
    return min(reached, key=lambda row: row["p50_us"]) if reached else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--catalogs", nargs="+", default=["real", "random", "gowalla"])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--lists", type=int, default=2048)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128, 256, 512])
    parser.add_argument("--peers", nargs="*", default=["faiss", "hnswlib"])
    args = parser.parse_args()

    def log(message: str) -> None:
        print(message, flush=True)

    results = {"settings": {"top": TOP, "target_overlap": TARGET, "queries": args.queries, "threads": 1,
                            "batch": 1, "warmup": WARMUP}, "catalogs": {}}
    for name in args.catalogs:
        cat = gowalla_catalog() if name == "gowalla" else catalog(name, log=log)
        lists = args.lists if name != "gowalla" else 512
        queries = np.ascontiguousarray(cat.queries[:args.queries], np.float32)
        log(f"{name}: {cat.items.shape[0]:,} items, {len(queries)} queries")
        with tempfile.TemporaryDirectory(dir=REPO / "benchmarks" / "results") as work:
            ours = run_edgegnn(cat, queries, lists, args.nprobe, Path(work), log)
        int8_exact = ours.pop("int8_exact_found")
        entry = {"items": int(cat.items.shape[0]), "dim": int(cat.items.shape[1]), "edgegnn": ours}
        if "faiss" in args.peers:
            entry["faiss"] = run_faiss(cat, queries, lists, args.nprobe, int8_exact, log)
        if "hnswlib" in args.peers and name != "gowalla":
            entry["hnswlib"] = run_hnswlib(cat, queries, int8_exact, log)
        entry["at_target"] = summary(entry)
        results["catalogs"][name] = entry
        log(json.dumps(entry["at_target"], indent=1))
    path = write_json("retrieval", results)
    print(f"wrote {path}")


def summary(entry: dict) -> dict:
    """Per method, the fastest setting at top-20 overlap >= TARGET with the float exact scan
    (and, for edgegnn's lists, with the exact int8 ONNX artifact), beside the exact int8 scans."""
    out = {}
    for runtime in TARGETS:
        ours = entry["edgegnn"][runtime]
        out[f"edgegnn_{runtime}_exact_int8"] = {k: ours["exact_int8"][k] for k in ("p50_us", "overlap_vs_float")}
        out[f"edgegnn_{runtime}_lists_vs_int8_exact"] = at_target(ours["curve"], "overlap_vs_int8_exact")
        out[f"edgegnn_{runtime}_lists_vs_float"] = at_target(ours["curve"], "overlap_vs_float")
    for peer, methods in (("faiss", ("ivf_flat", "ivf_flat_l2", "ivf_pq_fastscan", "ivf_pq_fastscan_l2_refine_sq8")),
                          ("hnswlib", (None,))):
        if peer in entry:
            for method in methods:
                curve = entry[peer][method]["curve"] if method else entry[peer]["curve"]
                out[f"{peer}_{method}" if method else peer] = at_target(curve, "overlap_vs_float")
    return out


if __name__ == "__main__":
    main()
