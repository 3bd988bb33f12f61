"""Options shared by several commands, declared once.

The data options (where the interactions come from and how they are split) are the same
for `train`, `evaluate`, `data info`, `compress`, ...: `@data_options` adds them to a
command's signature and hands the command one `DataSource` instead of a dozen arguments.
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Optional

import typer

Seed = Annotated[int, typer.Option("--seed", help="Seed for splits and training.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")]
K = Annotated[list[int], typer.Option("--k", help="Cut-off K of the metrics (repeatable).")]


def output_file(option: str, path: Path | None) -> Path | None:
    """`path`, checked before any work: a file to be written (it may exist), not a folder."""
    from edgegnn.errors import ConfigError

    if path is not None and str(path) != "-" and path.is_dir():
        raise ConfigError(option, str(path), "is a folder; give the path of a file to write")
    return path


_MODEL_DEFAULT = "[default: the model's own data and split, as recorded at training]"


@dataclass(frozen=True)
class DataSource:
    """Where the interactions come from and how they are split (the CLI's data options).

    Every field is None unless given. Commands that train take `DEFAULTS` for the rest;
    commands given a model take the model's recorded data and options
    (`edgegnn.data.provenance.load_split`), and refuse other data unless --other-data.
    """

    data: Annotated[Optional[str], typer.Option(
        "--data", help="Interaction data: a LightGCN dir (train.txt/test.txt), a MovieLens file or dir, "
                       "a CSV/TSV file, or 'synthetic[:users=N,items=M,seed=S]'. [default: synthetic; "
                       "for a model: its own data]")] = None
    format: Annotated[Optional[str], typer.Option("--format", help="auto | lightgcn | movielens | csv "
                                                                    "[default: auto]")] = None
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for splits and training. [default: 0]")] = None
    test_ratio: Annotated[Optional[float], typer.Option(
        "--test-ratio", help="Per-user test share (single-file data). [default: 0.2]")] = None
    valid_ratio: Annotated[Optional[float], typer.Option(
        "--valid-ratio", help="Per-user validation share for early stopping (0 disables). [default: 0.1]")] = None
    split: Annotated[Optional[str], typer.Option("--split", help="random | leave-last-out (by timestamp). "
                                                                  "[default: random]")] = None
    implicit_threshold: Annotated[Optional[str], typer.Option(
        "--implicit-threshold", help="Keep ratings >= this as positives; 'auto': 4 of 5 stars (0.8 x the top "
                                     "rating; 1 for 0/1 ratings); 'none': every rating. [default: auto]")] = None
    min_user_degree: Annotated[Optional[int], typer.Option(
        "--min-user-degree", help="k-core: keep users with at least this many interactions. [default: 0]")] = None
    min_item_degree: Annotated[Optional[int], typer.Option(
        "--min-item-degree", help="k-core: keep items with at least this many interactions. [default: 0]")] = None
    user_col: Annotated[Optional[str], typer.Option("--user-col", help="CSV: user column (name, or 0-based index). "
                                                                        "[default: user]")] = None
    item_col: Annotated[Optional[str], typer.Option("--item-col", help="CSV: item column. [default: item]")] = None
    rating_col: Annotated[Optional[str], typer.Option(
        "--rating-col", help="CSV: rating column; 'none': no ratings. [default: a header column named rating, "
                             "score or stars]")] = None
    time_col: Annotated[Optional[str], typer.Option(
        "--time-col", help="CSV: timestamp column (integer seconds or ISO 8601 dates); 'none': no times. "
                           "[default: a header column named timestamp, time, ts, datetime or date]")] = None
    drop_anomalies: Annotated[Optional[bool], typer.Option(
        "--drop-anomalies", help="Drop the anomalous rows `data info` reports (extreme-degree users and items, "
                                 "duplicate floods, bursts). [default: keep them]", show_default=False)] = None
    other_data: Annotated[bool, typer.Option(
        "--other-data", help="Measure a model on data other than its own (refused otherwise; said in the output).")
    ] = False

    def given(self) -> dict:
        """The data options given on the command line (load_dataset keyword arguments + "data")."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "other_data"}
        values = {name: value for name, value in values.items() if value is not None}
        if "implicit_threshold" in values:
            values["implicit_threshold"] = parse_threshold(values["implicit_threshold"])
        return values

    def load(self, trained_on=None):
        """(Split, comparison with the model's data) for these options (`load_split`)."""
        from edgegnn.data.provenance import load_split

        return load_split(self.given(), trained_on, other_data=self.other_data)

    def load_for_model(self, trained_on):
        """`load` for a command given a model: with neither data options nor the model's own
        record (a model from before edgegnn 0.2) there is nothing to measure on but a guess."""
        from edgegnn.errors import DataError

        if trained_on is None and not self.given():
            raise DataError("the model records no training data (it predates edgegnn 0.2), so there is no split "
                            "to measure it on by default", hint="pass --data (and the split options it was "
                                                                "trained with)")
        return self.load(trained_on)

    @property
    def seed_value(self) -> int:
        return 0 if self.seed is None else self.seed


def parse_threshold(text: str) -> float | str:
    """--implicit-threshold: a number, "auto" or "none" (keep every rating)."""
    from edgegnn.errors import ConfigError

    value = str(text).strip().lower()
    if value in ("auto", "none"):
        return value
    try:
        return float(value)
    except ValueError:
        raise ConfigError("implicit-threshold", text, "a number (e.g. 4), 'auto' or 'none'") from None


def data_options(command):
    """Give `command(..., source: DataSource)` the data options as CLI options.

    Typer reads a command's signature, so the wrapper's signature lists the command's own
    parameters plus one keyword parameter per `DataSource` field; the wrapper folds them
    back into a `DataSource`.
    """
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "source"]
    hints = typing.get_type_hints(DataSource, include_extras=True)
    extra = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
             for f in fields(DataSource)]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        source = DataSource(**{f.name: kwargs.pop(f.name) for f in fields(DataSource)})
        return command(*args, source=source, **kwargs)

    wrapper.__signature__ = inspect.Signature(own + extra)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
    del wrapper.__wrapped__  # Typer must see the wrapper's signature, not the command's
    return wrapper
