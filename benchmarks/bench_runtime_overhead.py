"""What `Recommender.recommend` costs on top of the graph's own run: the Python overhead per call.

Gowalla-sized artifacts (40,981 items, dim 64), fp32 and int8, for cpu-x86_64 (ONNX) and
android-litert (TFLite, XNNPACK), top_k 20 as in bench_profile_gowalla.py: folded from the
trained checkpoint benchmarks/results/gowalla_lightgcn.pt when it exists (int8: QuantizeConfig,
calibrated on 512 training users), else an EdgeModel of that shape with random tables (the JSON
says which: "model"). Users as new (history only, no e_u0 input), 1 thread.

In one process, per artifact, for history 20 and k 20 (histories of distinct catalog ids drawn
with fixed seeds), two streams of queries, each on its own Recommender:
    repeat     64 histories cycled: a returning user, whose ids the item index remembers
    fresh      a history never asked before on every call: every id searched and decoded
and per query two calls:
    graph      `recommender.backend.run(feeds)` on feeds prepared beforehand (what `recommend`
               feeds for that history: the graph's own call, through the backend's run)
    recommend  `recommender.recommend(history, k=20)` (raw ids in, (id, score) pairs out)
The two alternate call by call (which one goes first alternates too), artifacts are interleaved
over rounds, so the noise of a shared machine falls on both alike. Reported: p50 of each,
overhead = p50(recommend) - p50(graph) in µs, overhead / p50(graph), and the median of the
paired per-call differences; the same for `recommend_batch` of 8 histories against the
backend's run on their prepared [8, W] feeds. Target: overhead <= max(25 µs, 20 % of the graph's
p50) for history 20, k 20, batch 1.

    .venv/bin/python benchmarks/bench_runtime_overhead.py [--rounds 5] [--calls 400] [--name runtime_overhead]
The figures before the lean query path: this script (with common.py, bench_export_memory.py) run
from a copy of the earlier commit's edgegnn/, targets/ and models/ (git archive), --code naming it.
Writes benchmarks/results/NAME.json (default runtime_overhead.json). About a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ITEMS, DIM, HISTORY, K, BATCH, TOP_K = 40_981, 64, 20, 20, 8, 20
TARGETS = (("cpu-x86_64", "onnx"), ("android-litert", "litert"))
TARGET_US, TARGET_SHARE = 25.0, 0.20
STREAMS = ("repeat", "fresh")


# ---- models and artifacts --------------------------------------------------------------------

def models(log) -> tuple[dict, str]:
    """{"fp32": EdgeModel, "int8": EdgeModel} and where they came from."""
    from common import RESULTS

    checkpoint = RESULTS / "gowalla_lightgcn.pt"
    if checkpoint.is_file():
        from common import gowalla_split

        from edgegnn.compress import Calibration, QuantizeConfig, compress
        from edgegnn.fold import fold
        from edgegnn.train.checkpoint import load_checkpoint

        edge = fold(load_checkpoint(checkpoint))
        calibration = Calibration.from_split(gowalla_split(), num_users=512)
        int8 = compress(edge, QuantizeConfig(precision="int8"), calibration=calibration)
        log("folded benchmarks/results/gowalla_lightgcn.pt; int8 calibrated on 512 training users")
        return {"fp32": edge, "int8": int8}, "trained: benchmarks/results/gowalla_lightgcn.pt (folded)"
    from bench_export_memory import synthetic_model

    log("no benchmarks/results/gowalla_lightgcn.pt: random tables of Gowalla's shape")
    return ({precision: synthetic_model(ITEMS, DIM, precision) for precision in ("fp32", "int8")},
            f"random tables of Gowalla's shape ({ITEMS} items, dim {DIM}; bench_export_memory.synthetic_model)")


def export_all(edges: dict, tmp: Path, log) -> dict[str, Path]:
    from edgegnn.export import export
    from edgegnn.targets import load_target

    paths = {}
    for precision, edge in edges.items():
        for target_name, short in TARGETS:
            target = dataclasses.replace(load_target(target_name), memory_budget="8GB")   # the budgets are apps'
            name = f"gowalla-{short}-{precision}"
            t0 = time.time()
            paths[name] = export(edge, target, out_dir=tmp / name, top_k=TOP_K, user_base=False, cpus=(),
                                 emulators=None)
            log(f"exported {name} in {time.time() - t0:.0f} s")
    return paths


# ---- the measurement -------------------------------------------------------------------------

class Case:
    """One artifact's query streams, their prepared feeds, and the times measured.

    Streams: "repeat" cycles through 64 histories (a returning user: its ids were looked up
    before, the item index remembers them), "fresh" is a new history on every call (every id
    looked up: the binary search and the decoding); each for batch 1 and batch 8. Each stream
    has its own Recommender (its own recent lookups); the feeds are prepared on a third one.
    """

    def __init__(self, name: str, path: Path, histories: dict[tuple[str, int], list[list[str]]]) -> None:
        from edgegnn.runtime import Recommender

        self.name, self.prep = name, Recommender.open(path, threads=1)
        self.recs = {stream: Recommender.open(path, threads=1) for stream in STREAMS}
        self.queries = {}                      # (stream, batch) -> [(histories, feeds)]
        for (stream, batch), given in histories.items():
            groups = [given[i:i + batch] for i in range(0, len(given) - batch + 1, batch)]
            self.queries[stream, batch] = [(group, self._feeds(group)) for group in groups]
        self.calls = {key: 0 for key in self.queries}     # queries asked per stream: where each goes on
        self.reset()

    def reset(self) -> None:
        """Forget the times (after the warm-up); the streams go on where they were."""
        self.times = {(key, kind): [] for key in self.queries for kind in ("graph", "recommend")}

    def _feeds(self, histories: list[list[str]]) -> dict:
        """The graph inputs recommend_batch feeds: history rows, padded to as many slots as seen items."""
        rows = [self.prep.items.rows_of(h) for h in histories]
        return self.prep.feeds(rows, None, min_width=max(len(r) for r in rows))

    def pair(self, stream: str, batch: int) -> None:
        """Time the graph call and the recommend call of the stream's next query, in alternating order."""
        queries, i = self.queries[stream, batch], self.calls[stream, batch]
        self.calls[stream, batch] += 1
        histories, feeds = queries[i % len(queries)]
        rec = self.recs[stream]
        if batch == 1:
            calls = (("graph", lambda: rec.backend.run(feeds)), ("recommend", lambda: rec.recommend(histories[0], k=K)))
        else:
            calls = (("graph", lambda: rec.backend.run(feeds)),
                     ("recommend", lambda: rec.recommend_batch(histories, k=K)))
        for kind, call in (calls if i % 2 == 0 else calls[::-1]):
            t0 = time.perf_counter_ns()
            call()
            self.times[(stream, batch), kind].append((time.perf_counter_ns() - t0) / 1e3)

    def summary(self) -> dict:
        out = {}
        for stream, batch in self.queries:
            graph, full = self.times[(stream, batch), "graph"], self.times[(stream, batch), "recommend"]
            if not graph:
                continue
            p50_graph, p50_full = statistics.median(graph), statistics.median(full)
            overhead = p50_full - p50_graph
            out[f"{stream}_batch_{batch}"] = {
                "calls": len(graph), "graph_p50_us": p50_graph, "recommend_p50_us": p50_full,
                "graph_p90_us": float(np.percentile(graph, 90)), "recommend_p90_us": float(np.percentile(full, 90)),
                "overhead_us": overhead, "overhead_vs_graph": overhead / p50_graph,
                "overhead_per_query_us": overhead / batch,
                "paired_overhead_p50_us": statistics.median(np.subtract(full, graph).tolist()),
                "target_met": bool(overhead <= max(TARGET_US, TARGET_SHARE * p50_graph)) if batch == 1 else None,
            }
        return out


def histories_for(ids: list[str], count: int, seed: int) -> list[list[str]]:
    """`count` histories of HISTORY distinct catalog ids (raw ids, as an app holds them)."""
    rng = np.random.default_rng(seed)
    return [[ids[r] for r in rng.choice(len(ids), HISTORY, replace=False)] for _ in range(count)]


def check_same_answer(case: Case) -> None:
    """The graph call and recommend agree: recommend's ids are the graph's top rows minus the history."""
    rec = case.prep
    [history], feeds = case.queries["fresh", 1][0]
    items, _ = rec.backend.run(feeds)
    seen = set(rec.items.rows_of(history).tolist())
    expected = [rec.items.id_of(int(r)) for r in items[0] if int(r) not in seen][:K]
    assert rec.recommend(history, k=K).ids == expected, case.name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400, help="timed pairs per artifact and round, batch 1")
    parser.add_argument("--batch-calls", type=int, default=40, help="timed pairs per artifact and round, batch 8")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--name", default="runtime_overhead", help="benchmarks/results/NAME.json")
    parser.add_argument("--code", default="this working tree", help="which edgegnn ran, for the JSON (e.g. a "
                        "copy of an earlier commit next to a copy of this script)")
    args = parser.parse_args()

    from common import write_json

    from edgegnn.runtime import Recommender

    start = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - start:6.0f} s] {message}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        edges, source = models(log)
        paths = export_all(edges, Path(tmp), log)
        del edges
        cases = []
        for n, (name, path) in enumerate(paths.items()):
            ids = Recommender.open(path, verify=False).item_ids.tolist()
            histories = {("repeat", 1): histories_for(ids, 64, seed=n), ("repeat", BATCH): histories_for(ids, 64, n),
                         # each fresh history asked once (seeds apart: no history of one stream in another)
                         ("fresh", 1): histories_for(ids, args.warmup + args.rounds * args.calls, 100 + n),
                         ("fresh", BATCH): histories_for(ids, (args.warmup + args.rounds * args.batch_calls) * BATCH,
                                                         200 + n)}
            cases.append(Case(name, path, histories))
        for case in cases:
            check_same_answer(case)
            for _ in range(args.warmup):
                for stream in STREAMS:
                    case.pair(stream, 1)
                    case.pair(stream, BATCH)
            case.reset()
        for r in range(args.rounds):
            for case in cases:                      # artifacts interleaved: each round visits every one
                for _ in range(args.calls):
                    for stream in STREAMS:
                        case.pair(stream, 1)
                for _ in range(args.batch_calls):
                    for stream in STREAMS:
                        case.pair(stream, BATCH)
            log(f"round {r + 1}/{args.rounds} done")
        results = {case.name: {"runtime": case.prep.backend.runtime, "providers": case.prep.backend.providers,
                               "history_slots": int(case.queries["fresh", 1][0][1]["history"].shape[1]),
                               **case.summary()}
                   for case in cases}

    path = write_json(args.name, {
        "model": source, "code": args.code,
        "query": {"items": ITEMS, "dim": DIM, "history_len": HISTORY, "k": K, "top_k": TOP_K, "batch": [1, BATCH],
                  "threads": 1,
                  "histories": "20 distinct catalog ids each, drawn uniformly (numpy seeds fixed per artifact); "
                               "repeat: 64 histories cycled (their ids looked up before: the item index's recent "
                               "lookups answer); fresh: a history never queried before on every call",
                  "rounds": args.rounds, "calls_per_round": args.calls, "batch_calls_per_round": args.batch_calls,
                  "warmup": args.warmup, "users_as": "new (history only, no e_u0 input)"},
        "artifacts": results,
        "target": f"batch 1 overhead_us <= max({TARGET_US:g} us, {TARGET_SHARE:.0%} of graph_p50_us)",
        "definitions": {
            "graph_p50_us": "p50 of recommender.backend.run(feeds) on the feeds recommend builds, prepared beforehand",
            "recommend_p50_us": "p50 of recommender.recommend(history, k) (recommend_batch for batch 8)",
            "overhead_us": "recommend_p50_us - graph_p50_us (the whole batch for batch 8)",
            "paired_overhead_p50_us": "median over calls of (recommend - graph) of adjacent, alternating calls"},
        "wall_s": round(time.time() - start, 1),
        "note": "one process; the two calls alternate call by call and artifacts are interleaved over rounds "
                "(a shared, noisy machine: read the overhead, the difference, not the absolute figures)",
    })
    print(f"\n{'artifact':22s} {'stream':>6s} {'batch':>5s} {'graph p50 us':>12s} {'recommend':>10s} "
          f"{'overhead':>9s} {'share':>6s} {'paired':>7s} {'target':>6s}")
    for name, row in results.items():
        for key in [f"{stream}_batch_{batch}" for batch in (1, BATCH) for stream in STREAMS]:
            m = row[key]
            met = {True: "met", False: "MISSED", None: ""}[m["target_met"]]
            print(f"{name:22s} {key.split('_')[0]:>6s} {key.split('_')[2]:>5s} {m['graph_p50_us']:12.1f} "
                  f"{m['recommend_p50_us']:10.1f} {m['overhead_us']:9.1f} {m['overhead_vs_graph']:6.1%} "
                  f"{m['paired_overhead_p50_us']:7.1f} {met:>6s}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
