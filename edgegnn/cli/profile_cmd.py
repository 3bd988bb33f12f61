"""`edgegnn profile`: latency, memory, size and quality of artifacts, each configuration in a fresh process.

    edgegnn profile artifacts/cpu artifacts/android --data synthetic --batch 1,8,64 \
        --history-len 5,50,200 --threads 1,4 --json profile.json --plot profile.png

Bad input (a folder that is not an artifact, a batch or history length of 0) is one line on
stderr and exit 1; a runtime that is not installed or fails is exit 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.options import DataSource, data_options
from edgegnn.cli.output import print_json, progress, setup_logging, stdout, user_errors


def parse_ints(name: str, text: str) -> tuple[int, ...]:
    """(1, 8, 64) from "1,8,64"; a ConfigError naming the option otherwise."""
    from edgegnn.errors import ConfigError

    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ConfigError(name, text, "give comma-separated integers >= 1, e.g. 1,8,64")
    values = []
    for part in parts:
        if not part.lstrip("-").isdigit() or int(part) < 1:
            raise ConfigError(name, part, "must be an integer >= 1 (comma-separated, e.g. 1,8,64)")
        values.append(int(part))
    return tuple(dict.fromkeys(values))


@data_options
def profile(
    artifacts: Annotated[list[Path], typer.Argument(metavar="ARTIFACT...",
                                                    help="Artifact folders from `edgegnn export`.")],
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes (users per call), comma-separated.")] = "1,8,64",
    history_len: Annotated[str, typer.Option("--history-len", help="History lengths, comma-separated.")] = "5,50,200",
    threads: Annotated[str, typer.Option("--threads", help="Runtime thread counts, comma-separated.")] = "1,4",
    iterations: Annotated[int, typer.Option("--iterations", help="Timed calls per configuration.")] = 200,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls before timing.")] = 20,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON here ('-': stdout, "
                                                                    "instead of the table).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the Recall@20 vs size/latency PNG here.")
                    ] = None,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Profile artifacts: latency p50-p99, memory growth, size and Recall/NDCG@20, side by side."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.profile.report import results_table, to_dict, write_json, write_plot
        from edgegnn.profile.runner import Sweep, profile as run_profile

        sweep = Sweep(batches=parse_ints("batch", batch), history_lens=parse_ints("history-len", history_len),
                      threads=parse_ints("threads", threads), iterations=iterations, warmup=warmup)
        opt.output_file("json", json_out)          # before the sweep, not after it
        opt.output_file("plot", plot)
        to_stdout = json_out is not None and str(json_out) == "-"
        result = _run(run_profile, artifacts, sweep, source, show=not to_stdout)
        if json_out is not None and not to_stdout:
            write_json(result, json_out)
        if plot is not None:
            write_plot(result, plot)
    if to_stdout:
        print_json(to_dict(result))
        return
    stdout.print(results_table(result))
    for name, path in (("json", json_out), ("plot", plot)):
        if path is not None:
            stdout.print(f"wrote {name}: {path}")


def _split_for(artifacts: list[Path], source: DataSource):
    """The split to measure quality on: None without data options (the metrics recorded at export are
    shown); else the one given, which must be each artifact's training data unless --other-data."""
    from edgegnn.data.provenance import DataRecord, compare
    from edgegnn.errors import DataError
    from edgegnn.runtime import read_manifest

    if not source.given():
        return None
    records = [DataRecord.from_dict(read_manifest(path).get("data")) for path in artifacts]
    split, _ = source.load(records[0])
    for path, record in zip(artifacts[1:], records[1:]):
        comparison = compare(record, split.record)
        if comparison["same_as_training"] is False and not source.other_data:
            raise DataError(f"{path}: this is not the data its model was trained on "
                            f"({'; '.join(comparison['differences'])})",
                            hint="profile artifacts of one training split together, or pass --other-data")
    return split


def _run(run_profile, artifacts, sweep, source: DataSource, *, show: bool):
    """The sweep behind a progress bar (started once the artifacts were checked: errors stay one line)."""
    split = _split_for(artifacts, source)
    bar = progress(enabled=show)
    task = bar.add_task("profile", total=None, status="")

    def on_progress(stage: str, done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total, status=stage)

    try:
        return run_profile(artifacts, sweep=sweep, split=split, on_progress=on_progress)
    finally:
        bar.stop()
