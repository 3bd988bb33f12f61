"""100M interactions on one 2-core, 24 GB machine: `edgegnn data info` and `edgegnn train`, peak RSS.

A synthetic log is written in 10M-row chunks (CSV by pyarrow's writer, and the same rows as
Parquet): U users with lognormal degrees, each in one of 64 taste clusters, and I items
with Zipf popularity; 70 % of a user's draws come from the own cluster (duplicates left in:
the loader drops them, as it would in a real log). Then, each in a fresh process whose peak
RSS (ru_maxrss of the child) and wall time are recorded:
    edgegnn data info --data log.csv          (streamed by pyarrow, no per-row Python objects)
    edgegnn data info --data log.parquet
    edgegnn train --model CARD --data log.parquet --epochs E --valid-ratio 0
with a LightGCN card (d = 32, 2 layers, whole-data loss).

    python benchmarks/bench_out_of_core.py [--rows 100000000] [--users 1000000] [--items 100000] [--epochs 2]
Writes benchmarks/results/out_of_core.json; the log is kept in $TMPDIR/edgegnn_out_of_core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import REPO, write_json  # noqa: E402

CHUNK_ROWS = 10_000_000
CLUSTERS = 64
OWN_CLUSTER = 0.7
CARD = """name: lightgcn-out-of-core
description: LightGCN, 32-dim, 2 layers, whole-data loss (bench_out_of_core.py)
model:
  type: lightgcn
  embedding_dim: 32
  num_layers: 2
training:
  loss: whole-data
  learning_rate: 0.01
  eval_every: 1
"""


def degrees(users: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """int64 [U] lognormal degrees (at least 1) summing to `rows`."""
    raw = rng.lognormal(0.0, 0.8, users)
    scaled = np.maximum(1, np.floor(raw / raw.sum() * rows)).astype(np.int64)
    scaled[: rows - scaled.sum()] += 1 if rows > scaled.sum() else 0
    return scaled


def write_log(directory: Path, rows: int, users: int, items: int, seed: int = 0) -> tuple[Path, Path]:
    """Write log.csv and log.parquet (the same rows) chunk by chunk; their paths."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    item_cluster = rng.integers(0, CLUSTERS, items)
    cluster_items = [np.flatnonzero(item_cluster == c) for c in range(CLUSTERS)]
    cluster_weights = [popularity[i] / popularity[i].sum() for i in cluster_items]
    global_weights = popularity / popularity.sum()
    user_degree = degrees(users, rows, rng)
    user_cluster = rng.integers(0, CLUSTERS, users)
    csv_path, parquet_path = directory / "log.csv", directory / "log.parquet"
    schema = pa.schema([("user", pa.int64()), ("item", pa.int64())])
    bounds = np.searchsorted(np.cumsum(user_degree), np.arange(CHUNK_ROWS, rows + CHUNK_ROWS, CHUNK_ROWS))
    with pa_csv.CSVWriter(csv_path, schema) as csv_out, pq.ParquetWriter(parquet_path, schema) as pq_out:
        start = 0
        for stop in np.minimum(bounds + 1, users):
            chunk_users = np.repeat(np.arange(start, stop), user_degree[start:stop])
            chunk_items = rng.choice(items, size=len(chunk_users), p=global_weights)
            own = rng.random(len(chunk_users)) < OWN_CLUSTER
            clusters = user_cluster[chunk_users]
            for c in range(CLUSTERS):
                take = own & (clusters == c)
                chunk_items[take] = rng.choice(cluster_items[c], size=int(take.sum()), p=cluster_weights[c])
            table = pa.table({"user": chunk_users, "item": chunk_items}, schema=schema)
            csv_out.write_table(table)
            pq_out.write_table(table)
            start = stop
            if start >= users:
                break
    return csv_path, parquet_path


def measured(command: list[str]) -> dict:
    """Run `command` in a fresh process: wall seconds, its own peak RSS (os.wait4's rusage of that
    child), its exit code and the end of its output."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    shown = [Path(c).name if Path(c).name in ("edgegnn", "python") else c for c in command]
    return {"command": " ".join(shown), "seconds": round(seconds, 1), "peak_rss_bytes": usage.ru_maxrss * 1024,
            "returncode": process.returncode, "stdout": stdout[-4000:], "stderr_tail": stderr[-1500:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / "edgegnn_out_of_core"
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    shape = directory / "shape.json"
    wanted = {"rows": args.rows, "users": args.users, "items": args.items, "chunk_rows": CHUNK_ROWS}
    if shape.is_file() and json.loads(shape.read_text()) == wanted:       # the log of an earlier run
        csv_path, parquet_path = directory / "log.csv", directory / "log.parquet"
        written = json.loads((directory / "written.json").read_text())["seconds"]
    else:
        csv_path, parquet_path = write_log(directory, args.rows, args.users, args.items)
        written = time.perf_counter() - started
        shape.write_text(json.dumps(wanted))
        (directory / "written.json").write_text(json.dumps({"seconds": written}))
    card = directory / "card.yaml"
    card.write_text(CARD)
    edgegnn = str(Path(sys.executable).with_name("edgegnn"))
    runs = {
        "data info (CSV)": measured([edgegnn, "data", "info", "--data", str(csv_path), "--json"]),
        "data info (Parquet)": measured([edgegnn, "data", "info", "--data", str(parquet_path), "--json"]),
        "train (Parquet)": measured([edgegnn, "train", "--model", str(card), "--data", str(parquet_path),
                                     "--epochs", str(args.epochs), "--valid-ratio", "0",
                                     "--out", str(directory / "model.pt"), "--json"]),
    }
    info = json.loads(runs["data info (Parquet)"]["stdout"]) if runs["data info (Parquet)"]["returncode"] == 0 else None
    result = {"rows": args.rows, "users": args.users, "items": args.items, "epochs": args.epochs,
              "files": {"csv_bytes": csv_path.stat().st_size, "parquet_bytes": parquet_path.stat().st_size,
                        "write_seconds": round(written, 1)},
              "data_info": info, "runs": runs, "memory_total_bytes": os.sysconf("SC_PAGE_SIZE")
              * os.sysconf("SC_PHYS_PAGES")}
    print(write_json("out_of_core", without_machine_paths(result, directory)))


def without_machine_paths(result: dict, directory: Path) -> dict:
    """The result with the log's directory written as $TMPDIR/edgegnn_out_of_core (no machine's paths)."""
    text = json.dumps(result).replace(str(directory), "$TMPDIR/edgegnn_out_of_core")
    return json.loads(text)


if __name__ == "__main__":
    main()
