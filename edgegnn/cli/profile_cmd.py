"""`edgegnn profile`: latency, memory, size and quality of artifacts, each configuration in a fresh process.

    edgegnn profile artifacts/cpu artifacts/android --data synthetic --batch 1,8,64 \
        --history-length 5,50,200 --threads 1,2 --report profile.json --plot profile.png

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


def default_threads() -> tuple[int, ...]:
    """1 and this machine's cores (at most 4): a thread count the machine cannot run measures nothing."""
    import os

    return tuple(dict.fromkeys((1, max(1, min(4, os.cpu_count() or 1)))))


@data_options
def profile(
    artifacts: Annotated[list[Path], typer.Argument(metavar="ARTIFACT...",
                                                    help="Artifact folders from `edgegnn export`.")],
    batch: Annotated[Optional[list[str]], typer.Option(
        "--batch", metavar="N[,N...]", help="Batch sizes (users per call). [default: 1,8,64]")] = None,
    history_length: Annotated[Optional[list[str]], typer.Option(
        "--history-length", "--history-len", metavar="H[,H...]",
        help="History lengths (--history-len: deprecated spelling). [default: 5,50,200]")] = None,
    threads: Annotated[Optional[list[str]], typer.Option(
        "--threads", metavar="T[,T...]", help="Runtime thread counts. [default: 1 and this machine's cores, "
                                              "at most 4]")] = None,
    iterations: Annotated[int, typer.Option("--iterations", help="Timed calls per configuration.")] = 200,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls before timing.")] = 20,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write the report as JSON here.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the Recall@20 vs size/latency PNG here "
                                                                "(.png added if missing).")] = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Profile artifacts: latency p50-p99, memory growth, size and Recall/NDCG@20, side by side."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.profile.report import results_table, to_dict, write_json, write_plot
        from edgegnn.profile.runner import Sweep
        from edgegnn.profile.runner import profile as run_profile

        sweep = Sweep(batches=opt.ints("batch", batch, (1, 8, 64)),
                      history_lens=opt.ints("history-length", history_length, (5, 50, 200)),
                      threads=opt.ints("threads", threads, default_threads()), iterations=iterations, warmup=warmup)
        opt.output_file("report", report)          # before the sweep, not after it
        if opt.output_file("plot", plot) is not None and not plot.suffix:
            plot = opt.output_file("plot", plot.with_suffix(".png"))        # matplotlib would add it unsaid
        result = _run(run_profile, artifacts, sweep, source, show=not json)
        written = [write_json(result, report)] if report is not None else []
        written += [write_plot(result, plot)] if plot is not None else []
    if json:
        print_json(to_dict(result))
        return
    stdout.print(results_table(result))
    for path in written:
        stdout.print(f"wrote {path}")


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
