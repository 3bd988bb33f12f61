"""One output object per command: rich tables for people, JSON for machines, errors as one line.

The library never prints; commands print through `Output`. Known errors (`EdgeGNNError`)
become one line on stderr plus a hint and the error's exit code; `EDGEGNN_DEBUG=1` shows
the traceback instead. Anything else is a bug and propagates.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from edgegnn.errors import EdgeGNNError

stdout = Console()
stderr = Console(stderr=True)


def setup_logging(verbose: bool = False) -> None:
    """Library log records go to stderr through rich; warnings by default, info with -v."""
    level = logging.INFO if verbose else logging.WARNING
    root = logging.getLogger("edgegnn")
    root.handlers[:] = [RichHandler(console=stderr, show_time=False, show_path=False, markup=False)]
    root.setLevel(level)


def next_step(*commands: str) -> None:
    """The command(s) to run next, one line each ("next: ..."), where a command's output ends; kept
    whole (not wrapped) so that it can be copied, however long its paths."""
    for command in commands:
        stdout.print(f"[bold]next:[/] {command}", markup=True, highlight=False, soft_wrap=True)


def fail(error: EdgeGNNError) -> None:
    """Print a known error as one line (plus a hint) and exit with its code."""
    from rich.markup import escape  # messages quote values and paths: '[/...]' is not markup

    stderr.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, highlight=False, soft_wrap=True)
    if error.hint:
        stderr.print(f"[dim]hint: {escape(error.hint)}[/]", markup=True, highlight=False, soft_wrap=True)
    sys.exit(error.exit_code)


@contextmanager
def user_errors():
    """Turn EdgeGNNError into one line and an exit code (tracebacks with EDGEGNN_DEBUG=1)."""
    try:
        yield
    except EdgeGNNError as error:
        if os.environ.get("EDGEGNN_DEBUG"):
            raise
        fail(error)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (nothing else is printed there in --json mode)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def data_note(comparison: dict) -> str:
    """One line: which data a model was measured on, against the data it was trained on."""
    if comparison.get("same_as_training") is None:
        return "the model records no training data (trained before edgegnn 0.2): measured on the data given"
    if comparison["same_as_training"]:
        return "measured on the model's own test split"
    return "measured on OTHER data than the model was trained on (--other-data): " + "; ".join(
        comparison["differences"])


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1:
            return f"{int(value):,}"
        if 0 < abs(value) < 0.01:
            return f"{value:.3g}"
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    out = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        out.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*(fmt(v) for v in row))
    return out


LINK_METRICS = ("auc", "logloss", "logloss_constant")


def metrics_table(title: str, metrics: dict[str, dict[str, float]]) -> Table:
    """Rows: metric names (recall@20, ..., and a probability model's auc / logloss with the
    constant base rate's logloss to beat); columns: evaluation sets (test, valid)."""
    sets = list(metrics)
    names = [k for k in metrics[sets[0]] if "@" in k or k in LINK_METRICS]
    return table(title, ["metric", *sets], [[n, *(metrics[s].get(n, "") for s in sets)] for n in names])


def progress(enabled: bool = True) -> Progress:
    """A rich progress bar on stderr (so stdout stays clean for --json)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=stderr, disable=not enabled, transient=False)
