"""`load_dataset`: from a data spec (a path, or `synthetic[:k=v,...]`) to a `Split`.

This is the one entry point the CLI uses. The pipeline:

    read (lightgcn | movielens | csv | synthetic)
      -> to_implicit (if implicit_threshold) -> find (and drop, if asked) anomalies
      -> drop_duplicates -> k_core (if min degrees)
      -> split (random per user | leave-last-out by time)

The LightGCN text format ships its own train/test split; it is returned as published
(only a validation set is carved out of train), so that results stay comparable with
papers: filters and re-splitting are refused for it rather than silently changing it.
Every row dropped on purpose is counted in `Split.skipped` by reason.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from pathlib import Path

from edgegnn.data.anomalies import drop_anomalies as drop_anomalies_from
from edgegnn.data.anomalies import find_anomalies
from edgegnn.data.interactions import Interactions, Split
from edgegnn.data.loaders import find_movielens_file, read_csv, read_lightgcn_dir, read_movielens
from edgegnn.data.provenance import record_for
from edgegnn.data.splits import add_validation, split_leave_last_out, split_random
from edgegnn.data.stream import read_parquet
from edgegnn.data.synthetic import make_synthetic
from edgegnn.data.transforms import drop_duplicates, k_core, reindex, to_implicit
from edgegnn.errors import DataError

logger = logging.getLogger(__name__)

FORMATS = ("auto", "lightgcn", "movielens", "csv", "parquet")
#: the read_csv options that also name a Parquet file's columns
PARQUET_OPTIONS = ("user_col", "item_col", "rating_col", "time_col")
SPLITS = ("random", "leave-last-out")
#: `synthetic:key=value` keys -> (make_synthetic argument, type).
SYNTHETIC_KEYS = {"users": ("num_users", int), "items": ("num_items", int),
                  "clusters": ("num_clusters", int), "degree": ("mean_degree", float),
                  "seed": ("seed", int)}


def load_dataset(spec: str | Path, *, format: str = "auto", test_ratio: float = 0.2,
                 valid_ratio: float = 0.1, seed: int = 0,
                 implicit_threshold: float | str | None = "auto", min_user_degree: int = 0,
                 min_item_degree: int = 0, split: str = "random",
                 user_col: str | int | None = None, item_col: str | int | None = None,
                 rating_col: str | int | None = None, time_col: str | int | None = None,
                 delimiter: str | None = None, has_header: bool | None = None,
                 drop_anomalies: bool = False) -> Split:
    """Load and split a data set.

    Args:
        spec: a path (file or directory), or `"synthetic"` /
            `"synthetic:users=500,items=300,clusters=8,degree=20,seed=1"` (the generator
            seed defaults to `seed`). A directory literally named "synthetic" is reached
            as "./synthetic".
        format: one of `FORMATS`; "auto" detects it (see `detect_format`).
        test_ratio, valid_ratio: per-user shares for the random split (valid_ratio also
            sizes the validation set carved from LightGCN train; 0 = no validation set;
            leave-last-out holds out one valid row per user when valid_ratio > 0).
        seed: seed of the split (and of the synthetic generator unless the spec sets it).
        implicit_threshold: keep only rows with rating >= this. "auto" (default): for data
            with ratings, `auto_threshold` (ratings >= 4 on a 1-5 scale; 1 on a 0/1 scale);
            None or "none" keeps every rated row as a positive interaction.
        min_user_degree, min_item_degree: k-core filter applied before splitting.
        split: "random" or "leave-last-out" (needs timestamps).
        user_col, item_col, rating_col, time_col, delimiter, has_header: `read_csv`
            options (None = its defaults); only for the csv format (values equal to
            read_csv's defaults are accepted with any format, so a CLI may always pass
            them).
        drop_anomalies: drop the rows `edgegnn.data.anomalies` finds (extreme-degree users and
            items, duplicate floods, bursts), counted in `skipped`; found and reported in
            `Split.anomalies` either way. For the LightGCN format, in train only.

    Returns:
        `Split` with `source` set and `skipped` counting every row dropped on purpose.
    """
    _check_choice("format", format, FORMATS)
    _check_choice("split", split, SPLITS)
    csv_options = _given_csv_options(user_col=user_col, item_col=item_col,
                                     rating_col=rating_col, time_col=time_col,
                                     delimiter=delimiter, has_header=has_header)
    options = {"test_ratio": test_ratio, "valid_ratio": valid_ratio, "seed": seed,
               "implicit_threshold": implicit_threshold, "min_user_degree": min_user_degree,
               "min_item_degree": min_item_degree, "split": split, **csv_options}
    if drop_anomalies:         # recorded only when set: records from before the option still compare equal
        options["drop_anomalies"] = True

    spec_text = str(spec)
    if spec_text == "synthetic" or spec_text.startswith("synthetic:"):
        if format != "auto":
            raise DataError(f"format={format!r} does not apply to synthetic data")
        _refuse_csv_options(csv_options, "synthetic")
        params = parse_synthetic_spec(spec_text, seed=seed)
        inter, source = make_synthetic(**params), _synthetic_source(params)
        record = record_for(spec_text, {"format": "synthetic", **options}, [])
    else:
        path = Path(spec)
        if not path.exists():
            raise DataError("no such file or directory", path=path)
        fmt = detect_format(path) if format == "auto" else format
        if fmt == "parquet":
            _refuse_csv_options({k: v for k, v in csv_options.items() if k not in PARQUET_OPTIONS}, fmt)
        elif fmt != "csv":
            _refuse_csv_options(csv_options, fmt)
        if fmt == "lightgcn":
            result = _load_lightgcn(path, valid_ratio=valid_ratio, seed=seed, split=split,
                                    implicit_threshold=implicit_threshold,
                                    min_degrees=(min_user_degree, min_item_degree), drop_anomalies=drop_anomalies)
            files = [path / f"{name}.txt" for name in ("train", "test", "valid") if (path / f"{name}.txt").is_file()]
            # the published split: only the validation share, its seed and the anomaly filter shape it
            recorded = {"format": "lightgcn", "valid_ratio": valid_ratio, "seed": seed,
                        **({"drop_anomalies": True} if drop_anomalies else {})}
            return dataclasses.replace(result, record=record_for(str(path), recorded, files))
        inter = (read_movielens(path) if fmt == "movielens" else read_parquet(path, **csv_options)
                 if fmt == "parquet" else read_csv(path, **csv_options))
        source = str(path)
        record = record_for(str(path), {"format": fmt, **options},
                            [find_movielens_file(path) if fmt == "movielens" else path])

    inter, skipped, anomalies = _clean(inter, implicit_threshold, min_user_degree, min_item_degree, drop_anomalies)
    if split == "random":
        result = split_random(inter, test_ratio=test_ratio, valid_ratio=valid_ratio, seed=seed)
    else:
        result = split_leave_last_out(inter, valid=valid_ratio > 0)
    return dataclasses.replace(result, source=source, skipped={**skipped, **result.skipped}, record=record,
                               anomalies=anomalies)


def detect_format(path: str | Path) -> str:
    """The format of `path`: a directory with train.txt -> "lightgcn"; a MovieLens
    ratings file (u.data, ratings.dat, ratings.csv with the MovieLens header) or a
    directory holding one (also in an ml-*/ subdirectory) -> "movielens"; any other
    .csv/.tsv/.txt file -> "csv"; a .parquet/.pq file -> "parquet"."""
    path = Path(path)
    if path.is_dir():
        if (path / "train.txt").is_file():
            return "lightgcn"
        if find_movielens_file(path) is not None:
            return "movielens"
        raise DataError("cannot tell the format of this directory: expected train.txt "
                        "(LightGCN) or a MovieLens ratings file (u.data, ratings.dat, "
                        "ratings.csv)", path=path, hint="pass the file itself or --format")
    if find_movielens_file(path) is not None:
        return "movielens"
    if path.name in ("train.txt", "test.txt") and (path.parent / "test.txt").is_file():
        raise DataError("this looks like one file of a LightGCN split", path=path,
                        hint="pass the directory that holds train.txt and test.txt")
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return "csv"
    if path.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    raise DataError(f"cannot tell the format of this file; formats: "
                    f"{', '.join(FORMATS[1:])}", path=path, hint="pass --format")


def parse_synthetic_spec(spec: str, *, seed: int = 0) -> dict:
    """`"synthetic:users=500,seed=1"` -> make_synthetic keyword arguments."""
    params: dict = {"seed": seed}
    _, _, body = spec.partition(":")
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, eq, value = (s.strip() for s in part.partition("="))
        if key not in SYNTHETIC_KEYS:
            raise DataError(f"unknown synthetic option {key!r}; allowed: "
                            f"{', '.join(SYNTHETIC_KEYS)}")
        name, kind = SYNTHETIC_KEYS[key]
        try:
            params[name] = kind(value) if eq else kind("")
        except ValueError:
            raise DataError(f"synthetic option {key}={value!r} must be "
                            f"{'an integer' if kind is int else 'a number'}") from None
    return params


def _synthetic_source(params: dict) -> str:
    """E.g. "synthetic(users=500, items=1000, clusters=8, degree=20, seed=1)"."""
    defaults = inspect.signature(make_synthetic).parameters
    values = [f"{key}={params.get(name, defaults[name].default)}"
              for key, (name, _) in SYNTHETIC_KEYS.items()]
    return f"synthetic({', '.join(values)})"


def _load_lightgcn(path: Path, *, valid_ratio: float, seed: int, split: str,
                   implicit_threshold: float | None, min_degrees: tuple[int, int], drop_anomalies: bool) -> Split:
    """The published split, plus a validation set carved from train if asked; anomalies found
    in (and, if asked, dropped from) train only: the test split stays the published one."""
    refused = {"split": split != "random", "implicit_threshold": implicit_threshold not in (None, "auto", "none"),
               "min_user_degree/min_item_degree": any(min_degrees)}
    for option, used in refused.items():
        if used:
            raise DataError(f"{option} does not apply to the LightGCN format, which ships "
                            "a fixed train/test split (changing it would make results "
                            "incomparable)", path=path)
    result = read_lightgcn_dir(path)
    anomalies = find_anomalies(result.train)
    if drop_anomalies and anomalies.any_row.any():
        train, dropped = drop_anomalies_from(result.train, anomalies)
        result = dataclasses.replace(result, train=train, skipped={**result.skipped, **dropped})
    if valid_ratio > 0 and result.valid is None:
        result = add_validation(result, ratio=valid_ratio, seed=seed)
    return dataclasses.replace(result, anomalies=anomalies.summary())


def _clean(inter: Interactions, implicit_threshold: float | None, min_user_degree: int,
           min_item_degree: int, drop_anomalies: bool = False) -> tuple[Interactions, dict[str, int], dict[str, int]]:
    """Apply the filters; return the result, the rows each one dropped and the anomalies found
    (`edgegnn.data.anomalies`: after the implicit threshold, before duplicates collapse, so a
    flood is still visible)."""
    skipped: dict[str, int] = {}
    start = len(inter)

    def apply(reason: str, step) -> Interactions:
        before = len(inter)
        result = step(inter)
        if len(result) < before:
            skipped[reason] = before - len(result)
        _refuse_empty(result, reason)
        return result

    why = ""
    if implicit_threshold == "auto":
        implicit_threshold = auto_threshold(inter.ratings)
        why = " (the default for these ratings; --implicit-threshold none keeps every rating)"
    if implicit_threshold not in (None, "none"):
        inter = apply(f"rows with rating < {implicit_threshold:g}{why}", lambda x: to_implicit(x, implicit_threshold))
    found = find_anomalies(inter)
    anomalies = found.summary()
    if drop_anomalies:
        inter, dropped = drop_anomalies_from(inter, found)
        skipped.update(dropped)
        _refuse_empty(inter, "anomalous rows")
    inter = apply("duplicate user-item rows", drop_duplicates)
    if min_user_degree or min_item_degree:
        inter = apply(f"rows outside the {min_user_degree}/{min_item_degree}-core",
                      lambda x: k_core(x, min_user_degree, min_item_degree))
    if len(inter) < start:  # ids that lost all their rows leave the id space
        inter = reindex(inter)
    return inter, skipped, anomalies


def _refuse_empty(inter: Interactions, reason: str) -> None:
    if len(inter) == 0:
        raise DataError(f"no interactions left after dropping {reason}")


def auto_threshold(ratings) -> float | None:
    """The implicit threshold "auto" picks: None without ratings; 1 when the ratings are 0/1
    (0: an explicit negative); else 0.8 x the highest rating, the top of the scale as positives
    (4 of 5 stars, the usual MovieLens reading; 8 of 10)."""
    if ratings is None or len(ratings) == 0:
        return None
    import numpy as np

    values = np.unique(ratings)
    if set(values.tolist()) <= {0.0, 1.0}:
        return 1.0
    return float(0.8 * values.max())


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise DataError(f"{name}={value!r} is invalid; allowed: {', '.join(allowed)}")


def _given_csv_options(**options) -> dict:
    """The options that differ from `read_csv`'s defaults (None = not given)."""
    defaults = inspect.signature(read_csv).parameters
    return {name: value for name, value in options.items()
            if value is not None and value != defaults[name].default}


def _refuse_csv_options(options: dict, fmt: str) -> None:
    if options:
        verb = "apply" if len(options) > 1 else "applies"
        raise DataError(f"{', '.join(options)} only {verb} to the csv format, not {fmt}",
                        hint="pass format='csv'")
