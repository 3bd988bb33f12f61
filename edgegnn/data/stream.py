"""Streaming readers: a large CSV/TSV or Parquet file into `Interactions`, batch by batch.

pyarrow parses each block (64 MiB of CSV, or one Parquet row group) in C++; only the columns a
role needs are kept, ids are mapped to indices per batch (`FirstAppearanceIndex`), and what
stays is int64 indices and float32/int64 columns: no Python object per row, so peak memory is
the output arrays plus one block. The numbering is the line-by-line reader's (first
appearance), so both readers give the same `Interactions` for one file.

The line-by-line reader (`edgegnn.data.loaders`) stays the authority on what a bad row is:
when pyarrow refuses a CSV (a row with a wrong field count, a rating that is not a number, an
empty id, a multi-character delimiter) `NotStreamable` sends the caller there, which either
names the file, line and value or reads what pyarrow was stricter about.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from edgegnn.data.interactions import Interactions
from edgegnn.errors import DataError

log = logging.getLogger(__name__)

BLOCK_BYTES = 1 << 26
PARQUET_BATCH_ROWS = 1 << 22     # a batch's id lookup builds a hash of every id seen so far: batches stay large


class NotStreamable(Exception):
    """pyarrow cannot read this file as it is: read it line by line instead (which names the problem)."""


class FirstAppearanceIndex:
    """Raw ids -> contiguous indices in order of first appearance, over successive batches.

    `known` holds every id seen so far in index order; a batch's new ids (in their order of first
    appearance in the batch, pyarrow's `unique` order) are appended, then the batch is looked up
    in `known` with a hash join (`pyarrow.compute.index_in`).
    """

    def __init__(self, dtype):
        import pyarrow as pa

        self.known = pa.array([], type=dtype)

    def index(self, column) -> np.ndarray:
        """int64 [n] indices of a pyarrow array of raw ids."""
        import pyarrow as pa
        import pyarrow.compute as pc

        seen = pc.unique(column)
        new = seen.filter(pc.invert(pc.is_in(seen, value_set=self.known)))
        if len(new):
            self.known = pa.concat_arrays([self.known, new])
        return pc.index_in(column, value_set=self.known).to_numpy(zero_copy_only=False).astype(np.int64)

    def ids(self) -> np.ndarray:
        """The raw ids in index order, as str (the ids every reader keeps)."""
        return np.asarray(self.known.cast("string").to_numpy(zero_copy_only=False), dtype=str)


class ColumnsBuilder:
    """Accumulates per-batch arrays of the roles user, item and optional rating and time."""

    def __init__(self, user_type, item_type, has_rating: bool, has_time: bool):
        self.users, self.items = FirstAppearanceIndex(user_type), FirstAppearanceIndex(item_type)
        self.parts: dict[str, list[np.ndarray]] = {"user": [], "item": []}
        if has_rating:
            self.parts["rating"] = []
        if has_time:
            self.parts["time"] = []

    def add(self, user, item, rating=None, time=None) -> None:
        self.parts["user"].append(self.users.index(user))
        self.parts["item"].append(self.items.index(item))
        if rating is not None:
            self.parts["rating"].append(rating)
        if time is not None:
            self.parts["time"].append(time)

    def build(self) -> Interactions:
        columns = {role: np.concatenate(parts) if parts else np.zeros(0) for role, parts in self.parts.items()}
        return Interactions(users=columns["user"].astype(np.int64), items=columns["item"].astype(np.int64),
                            user_ids=self.users.ids(), item_ids=self.items.ids(),
                            ratings=columns.get("rating"), timestamps=columns.get("time"))


def read_delimited(path: Path, delimiter: str, columns: dict[str, int], *, has_header: bool) -> Interactions:
    """A delimited file's interactions, streamed by pyarrow.

    Args:
        columns: role ("user", "item", optional "rating", "time") -> 0-based column.
    Raises:
        NotStreamable: pyarrow refused the file (see the module docstring).
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    if len(delimiter) != 1:
        raise NotStreamable(f"delimiter {delimiter!r} is not one character")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        width = len(next(csv.reader([handle.readline()], delimiter=delimiter), []))
    names = [f"c{k}" for k in range(width)]
    types = {names[c]: pa.string() for role, c in columns.items() if role in ("user", "item", "time")}
    if "rating" in columns:
        types[names[columns["rating"]]] = pa.float32()
    try:
        reader = pa_csv.open_csv(
            path, read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1 if has_header else 0,
                                                  block_size=BLOCK_BYTES, use_threads=True),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=pa_csv.ConvertOptions(column_types=types, include_columns=[names[c] for c in
                                                                                        columns.values()],
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False))
        builder = ColumnsBuilder(pa.string(), pa.string(), "rating" in columns, "time" in columns)
        for batch in reader:
            builder.add(*_csv_batch(batch, names, columns))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError, IndexError) as error:
        raise NotStreamable(str(error).splitlines()[0] if str(error) else type(error).__name__) from None
    result = builder.build()
    if len(result) == 0:
        raise NotStreamable("no rows")
    log.info("streamed %d interactions (%d users, %d items) from %s", len(result), result.num_users,
             result.num_items, path)
    return result


def _csv_batch(batch, names: list[str], columns: dict[str, int]):
    """(user, item, rating or None, time or None) of one CSV record batch; NotStreamable for an
    empty id, a non-finite rating or a timestamp that is neither an integer nor an ISO date."""
    import pyarrow.compute as pc

    ids = []
    for role in ("user", "item"):
        column = pc.utf8_trim_whitespace(batch.column(names[columns[role]]))
        if pc.any(pc.equal(pc.utf8_length(column), 0)).as_py():
            raise NotStreamable(f"an empty {role} id")
        ids.append(column)
    rating = time = None
    if "rating" in columns:
        rating = batch.column(names[columns["rating"]]).to_numpy(zero_copy_only=False).astype(np.float32)
        if not np.isfinite(rating).all():
            raise NotStreamable("a rating that is not finite")
    if "time" in columns:
        time = _seconds(pc.utf8_trim_whitespace(batch.column(names[columns["time"]])))
    return ids[0], ids[1], rating, time


def _seconds(column) -> np.ndarray:
    """int64 seconds of a string column: integers, or ISO 8601 dates / date-times."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for target in (pa.int64(), pa.timestamp("s")):
        try:
            return pc.cast(column, target).cast(pa.int64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    raise NotStreamable("a timestamp that is neither an integer nor an ISO 8601 date")


def read_parquet(path: Path, *, user_col: str = "user", item_col: str = "item", rating_col: str | None = "auto",
                 time_col: str | None = "auto") -> Interactions:
    """A Parquet file's interactions, one row group at a time.

    Columns are named (`rating_col`/`time_col` "auto": a column named as `RATING_NAMES` /
    `TIME_NAMES` say, if any; None: none). Ids may be integers or strings; ratings any number
    type; timestamps integer seconds, a timestamp or a date type.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edgegnn.data.loaders import RATING_NAMES, TIME_NAMES

    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"not a readable Parquet file ({str(error).splitlines()[0]})", path=path) from None
    schema = file.schema_arrow
    names = list(schema.names)
    roles = {"user": user_col, "item": item_col}
    for role, given, candidates in (("rating", rating_col, RATING_NAMES), ("time", time_col, TIME_NAMES)):
        if given == "auto":
            given = next((n for n in names if n.lower() in candidates and n not in roles.values()), None)
        if given not in (None, "none"):
            roles[role] = given
    for role, name in roles.items():
        if name not in names:
            raise DataError(f"{role} column {name!r} not in the file; available columns: {', '.join(names)}",
                            path=path)
    for role in ("user", "item"):
        kind = schema.field(roles[role]).type
        if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise DataError(f"{role} column {roles[role]!r} has type {kind}; allowed: integers or strings", path=path)
    builder = ColumnsBuilder(schema.field(roles["user"]).type, schema.field(roles["item"]).type,
                             "rating" in roles, "time" in roles)
    for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(roles.values())):
        builder.add(*_parquet_batch(batch, roles, path))
    result = builder.build()
    if len(result) == 0:
        raise DataError("no interaction rows", path=path)
    log.info("streamed %d interactions (%d users, %d items) from %s", len(result), result.num_users,
             result.num_items, path)
    return result


def _parquet_batch(batch, roles: dict[str, str], path: Path):
    """(user, item, rating or None, time or None) of one Parquet record batch; a DataError naming
    a column with gaps or of a type that does not fit its role."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = []
    for role in ("user", "item"):
        column = batch.column(roles[role])
        if column.null_count:
            raise DataError(f"{role} column {roles[role]!r} has {column.null_count} missing values "
                            f"(every row needs a {role} id)", path=path)
        ids.append(column)
    rating = time = None
    if "rating" in roles:
        column = batch.column(roles["rating"])
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)) or column.null_count:
            raise DataError(f"rating column {roles['rating']!r} must hold numbers without gaps "
                            f"(type {column.type}, {column.null_count} missing)", path=path)
        rating = column.to_numpy(zero_copy_only=False).astype(np.float32)
        if not np.isfinite(rating).all():
            raise DataError(f"rating column {roles['rating']!r} holds a NaN or infinite value", path=path)
    if "time" in roles:
        column = batch.column(roles["time"])
        if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
            column = pc.cast(column, pa.timestamp("s"))
        elif not pa.types.is_integer(column.type):
            raise DataError(f"time column {roles['time']!r} has type {column.type}; allowed: integer seconds, "
                            "a timestamp or a date", path=path)
        time = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return ids[0], ids[1], rating, time
