"""Options shared by several commands, declared once, and the CLI's one dialect.

The dialect, the same in every command:
    --json            a flag: print the result as JSON on stdout (files are --out/--report PATH);
    lists             one option, comma-separated, or repeated: `--k 10,20` = `--k 10 --k 20`
                      (`Ints`, parsed by `ints`); a sweep's options are lists, a single run's one
                      value (profile --threads 1,2; recommend --threads 2);
    choices           Enums: the help lists them and click refuses another value at parse time;
    names             --history-length, --top-k, --out (the old --history-len still works, said
                      deprecated in the help, for one release).

The data options (where the interactions come from and how they are split) are the same
for `train`, `evaluate`, `data info`, `compress`, ...: `@data_options` adds them to a
command's signature and hands the command one `DataSource` instead of a dozen arguments.
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

Seed = Annotated[int, typer.Option("--seed", help="Seed for splits and training.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")]
Emulators = Annotated[Optional[Path], typer.Option(
    "--emulators", help="QEMU emulator folder (scripts/setup_emulators.sh) to verify the target's other CPU levels "
                        "[default: $EDGEGNN_EMULATORS; without one, this machine only]")]
K = Annotated[Optional[list[str]], typer.Option(
    "--k", metavar="K[,K...]", help="Cut-offs K of the metrics "
                                    "(comma-separated or repeated). [default: 20]")]


def ints(option: str, values: list[str] | str | None, default: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The integers >= 1 of a list option (`--k 10,20` or `--k 10 --k 20`; the module docstring),
    in the order given, repeats dropped; `default` when none was given; a ConfigError naming
    the option and the value otherwise."""
    from edgegnn.errors import ConfigError

    given = [values] if isinstance(values, str) else list(values or [])
    parts = [part.strip() for value in given for part in str(value).split(",") if part.strip()]
    if not parts:
        if default:
            return default
        raise ConfigError(option, ",".join(map(str, given)), "give integers >= 1, comma-separated (e.g. 1,8,64)")
    for part in parts:
        if not part.isdigit() or int(part) < 1:
            raise ConfigError(option, part, "must be an integer >= 1 (comma-separated or repeated, e.g. 1,8,64)")
    return tuple(dict.fromkeys(int(part) for part in parts))


class Variant(str, Enum):
    history = "history"
    user = "user"


class Precision(str, Enum):
    fp16 = "fp16"


class Node(str, Enum):
    item = "item"
    user = "user"


class Loss(str, Enum):
    whole_data = "whole-data"
    bpr = "bpr"
    bce = "bce"


class Optimizer(str, Enum):
    adam = "adam"
    adagrad = "adagrad"
    rmsprop = "rmsprop"
    sgd = "sgd"


class Quantize(str, Enum):
    int8 = "int8"
    int4 = "int4"
    mixed = "mixed"


class Granularity(str, Enum):
    row = "row"
    tensor = "tensor"


class PruneMethod(str, Enum):
    structured = "structured"
    magnitude = "magnitude"
    items = "items"


class DataFormat(str, Enum):
    auto = "auto"
    lightgcn = "lightgcn"
    movielens = "movielens"
    csv = "csv"
    parquet = "parquet"


class SplitMethod(str, Enum):
    random = "random"
    leave_last_out = "leave-last-out"


def value(choice) -> str | None:
    """The string of an Enum choice (None stays None): what the library takes."""
    return None if choice is None else getattr(choice, "value", choice)


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
                       "a CSV/TSV or Parquet file, or synthetic (e.g. synthetic:users=N,items=M,seed=S). [default: "
                       "synthetic; for a model: its own data]")] = None
    format: Annotated[Optional[DataFormat], typer.Option("--format", help="The data's format. [default: auto]")
                      ] = None
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for splits and training. [default: 0]")] = None
    test_ratio: Annotated[Optional[float], typer.Option(
        "--test-ratio", help="Per-user test share (single-file data). [default: 0.2]")] = None
    valid_ratio: Annotated[Optional[float], typer.Option(
        "--valid-ratio", help="Per-user validation share for early stopping (0 disables). [default: 0.1]")] = None
    split: Annotated[Optional[SplitMethod], typer.Option(
        "--split", help="How the test (and validation) rows are chosen: leave-last-out by timestamp. "
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
        values = {name: value(given) for name, given in values.items() if given is not None}
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
