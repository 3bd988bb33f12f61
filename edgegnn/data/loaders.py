"""Readers that turn interaction files into `Interactions` (or a ready `Split`).

Three on-disk formats:

- LightGCN text (`train.txt`, `test.txt`, optional `valid.txt`): one line per user,
  `user item item ...`, integer ids that already are indices. Read by `read_lightgcn_dir`,
  which returns the published split as is.
- MovieLens: ml-100k `u.data` (tab), ml-1m `ratings.dat` (`::`), ml-latest `ratings.csv`
  (header `userId,movieId,rating,timestamp`). Read by `read_movielens`.
- Any delimited table with a user and an item column. Read by `read_csv`.

Raw ids are kept as strings; indices are contiguous and assigned in order of first
appearance (except LightGCN, where index == int(raw id)). Delimited tables are streamed by
pyarrow (`edgegnn.data.stream`, which also reads Parquet); a file pyarrow refuses is read
line by line with the `csv` module or `str.split`, columns converted in bulk with numpy, and
a bad value located again so that the `DataError` names the file, the 1-based line and the value.
"""

from __future__ import annotations

import csv
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edgegnn.data.interactions import Interactions, Split
from edgegnn.data.splits import drop_unseen
from edgegnn.errors import DataError

logger = logging.getLogger(__name__)

#: MovieLens rating files by name: (delimiter, has_header).
MOVIELENS_FILES = {"u.data": ("\t", False), "ratings.dat": ("::", False),
                   "ratings.csv": (",", True)}
MOVIELENS_CSV_HEADER = ("userId", "movieId", "rating", "timestamp")
#: Header names `read_csv` takes as the rating / timestamp column when not told (any case).
RATING_NAMES = ("rating", "ratings", "score", "stars")
TIME_NAMES = ("timestamp", "time", "ts", "datetime", "date")


# ----------------------------------------------------------------------------- LightGCN

def read_lightgcn_dir(path: str | Path) -> Split:
    """Read a LightGCN-format directory (`train.txt`, `test.txt`, optional `valid.txt`).

    Each line is `user item item ...` with non-negative integer ids; a line with only a
    user (no items) is allowed and skipped. The file ids are the indices:
    `num_users`/`num_items` are the largest id over all files + 1.

    Held-out rows whose user or item never occurs in train cannot be scored by a model
    trained on train; they are dropped, counted in `Split.skipped` and logged.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError("not a directory (expected one with train.txt and test.txt)",
                        path=root)
    for name in ("train", "test"):  # check both before the slow part
        if not (root / f"{name}.txt").is_file():
            raise DataError(f"{name}.txt not found (the LightGCN format needs train.txt "
                            "and test.txt)", path=root)
    parts = {}
    for name in ("train", "test", "valid"):
        file = root / f"{name}.txt"
        if name == "valid" and not file.is_file():
            continue
        parts[name] = _read_lightgcn_file(file)
        if len(parts[name][0]) == 0 and name != "valid":
            raise DataError("no interactions (every line is empty or a user without "
                            "items)", path=file)

    num_users = max(int(users.max(initial=-1)) for users, _ in parts.values()) + 1
    num_items = max(int(items.max(initial=-1)) for _, items in parts.values()) + 1
    user_ids = np.arange(num_users).astype(str)
    item_ids = np.arange(num_items).astype(str)
    split = {name: Interactions(users, items, user_ids, item_ids)
             for name, (users, items) in parts.items()}

    skipped: dict[str, int] = {}
    held = {}
    for name in ("valid", "test"):
        if name in split:
            held[name], counts = drop_unseen(split["train"], split[name], name)
            skipped.update(counts)
    return Split(train=split["train"], test=held["test"], valid=held.get("valid"),
                 source=str(root), skipped=skipped)


def _read_lightgcn_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (users, items), int64 [n] each, from one LightGCN text file."""
    users: list[int] = []
    counts: list[int] = []
    items: list[int] = []
    with open(path, encoding="utf-8") as f, utf8_errors(path):
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if len(tokens) < 2:  # blank line, or a user without items
                continue
            try:
                ids = list(map(int, tokens))
            except ValueError:
                raise _bad_lightgcn_token(path, lineno, tokens) from None
            if min(ids) < 0:
                raise _bad_lightgcn_token(path, lineno, tokens)
            users.append(ids[0])
            counts.append(len(ids) - 1)
            items.extend(ids[1:])
    user_col = np.repeat(np.asarray(users, dtype=np.int64), counts)
    return user_col, np.asarray(items, dtype=np.int64)


def _bad_lightgcn_token(path: Path, lineno: int, tokens: list[str]) -> DataError:
    for position, token in enumerate(tokens):
        try:
            ok = int(token) >= 0
        except ValueError:
            ok = False
        if not ok:
            what = "user id" if position == 0 else "item id"
            return DataError(f"{what} {token!r} is not a non-negative integer (LightGCN "
                             "lines are 'user item item ...' with integer ids)",
                             path=path, line=lineno)
    return DataError("unreadable line", path=path, line=lineno)  # not reached


# ----------------------------------------------------------------------------- MovieLens

def find_movielens_file(path: str | Path) -> Path | None:
    """The MovieLens ratings file at `path`: the file itself, or one found in the
    directory or one level below it (e.g. `ml-100k/u.data`); None if there is none.

    A `ratings.csv` counts only with the MovieLens header. Raises `DataError` if a
    directory holds more than one candidate.
    """
    path = Path(path)
    if path.is_file():
        return path if _is_movielens_file(path) else None
    if not path.is_dir():
        return None
    for level in (path, *sorted(p for p in path.iterdir() if p.is_dir())):
        found = [level / name for name in MOVIELENS_FILES
                 if _is_movielens_file(level / name)]
        if len(found) > 1:
            raise DataError(f"several MovieLens rating files: "
                            f"{', '.join(p.name for p in found)}; pass one of them",
                            path=level)
        if found:
            return found[0]
    return None


def _is_movielens_file(path: Path) -> bool:
    if path.name not in MOVIELENS_FILES or not path.is_file():
        return False
    if path.name != "ratings.csv":
        return True
    with open(path, encoding="utf-8-sig", newline="") as f, utf8_errors(path):
        header = next(csv.reader(f), [])
    return tuple(h.strip() for h in header[:4]) == MOVIELENS_CSV_HEADER


def read_movielens(path: str | Path) -> Interactions:
    """Read MovieLens ratings (ml-100k `u.data`, ml-1m `ratings.dat`, ml-latest
    `ratings.csv`) from the file or the directory that holds it.

    Returns `Interactions` with float32 ratings and int64 timestamps.
    """
    file = find_movielens_file(path)
    if file is None:
        raise DataError("no MovieLens ratings file (u.data, ratings.dat or ratings.csv "
                        "with header userId,movieId,rating,timestamp) found", path=path)
    delimiter, has_header = MOVIELENS_FILES[file.name]
    if has_header:
        return read_csv(file, user_col="userId", item_col="movieId",
                        rating_col="rating", time_col="timestamp", delimiter=delimiter)
    return _read_table(file, delimiter, _Columns(0, 1, 2, 3), has_header=False)


# ----------------------------------------------------------------------------- CSV

def read_csv(path: str | Path, *, user_col: str | int = "user", item_col: str | int = "item",
             rating_col: str | int | None = "auto", time_col: str | int | None = "auto",
             delimiter: str | None = None, has_header: bool = True) -> Interactions:
    """Read a delimited table of interactions.

    Args:
        path: the file.
        user_col, item_col: the id columns, by header name, or by 0-based position (an
            int, or a digit string that is not a header name).
        rating_col, time_col: the rating (a number) and timestamp (integer seconds, or an
            ISO 8601 date) columns, like the id columns; "auto" (default) takes a header
            column named as in RATING_NAMES / TIME_NAMES (any case), if there is one;
            None or "none": no such column.
        delimiter: None sniffs it from the first line: tab if it has one, else comma.
        has_header: whether the first line names the columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    with open(path, encoding="utf-8-sig", newline="") as f, utf8_errors(path):
        first = f.readline()
    if not first:
        raise DataError("empty file (expected a header or interaction rows)", path=path)
    if has_header and not first.strip():
        raise DataError("blank first line (expected the header naming the columns)",
                        path=path, line=1)
    if delimiter is None:
        delimiter = "\t" if "\t" in first else ","
    header = None
    if has_header:
        _, header = next(_split_lines([first], delimiter))
    wanted = {"user": user_col, "item": item_col, "rating": rating_col, "time": time_col}
    cols = {role: None if col is None else _resolve_column(col, role, header, path)
            for role, col in wanted.items() if role in ("user", "item")}
    for role, names in (("rating", RATING_NAMES), ("time", TIME_NAMES)):
        col = wanted[role]
        if isinstance(col, str) and col.strip().lower() == "auto":
            col = _detect_column(header, names, taken=set(cols.values()))
            if col is not None:
                logger.info("%s: %s column %r (detected from the header)", path, role, _names(header)[col])
        elif isinstance(col, str) and col.strip().lower() == "none":
            col = None
        cols[role] = None if col is None else _resolve_column(col, role, header, path)
    return _read_table(path, delimiter, _Columns(**cols), has_header=has_header)


def _detect_column(header: list[str] | None, names: tuple[str, ...], taken: set[int]) -> int | None:
    """The position of the first header column named one of `names` (any case), not `taken`."""
    if header is None:
        return None
    lowered = [name.lower() for name in _names(header)]
    for name in names:
        if name in lowered and lowered.index(name) not in taken:
            return lowered.index(name)
    return None


def _resolve_column(col: str | int, role: str, header: list[str] | None, path: Path) -> int:
    """The 0-based position of a column given by name or position."""
    if isinstance(col, int) and not isinstance(col, bool):
        position = col
    elif isinstance(col, str) and header is not None and col in _names(header):
        return _names(header).index(col)
    elif isinstance(col, str) and col.strip().isdigit():  # e.g. "0" from a command line
        position = int(col)
    elif isinstance(col, str) and header is not None:
        raise DataError(f"{role} column {col!r} not in the header; available columns: "
                        f"{', '.join(_names(header))}", path=path, line=1)
    else:
        raise DataError(f"{role} column {col!r} must be a 0-based column number when the "
                        "file has no header", path=path)
    if position < 0 or (header is not None and position >= len(header)):
        width = "" if header is None else f" (the header has {len(header)} columns)"
        raise DataError(f"{role} column {position} is out of range{width}", path=path)
    return position


def _names(header: list[str]) -> list[str]:
    return [name.strip() for name in header]


# ----------------------------------------------------------------------------- core

@contextmanager
def utf8_errors(path: Path) -> Iterator[None]:
    """Turn a UnicodeDecodeError while reading `path` as text into a DataError naming the line.

    Text-mode reading decodes in chunks and cannot say where the bad byte was; only on that
    error the file is scanned again, in binary, for the first line that is not UTF-8.
    """
    try:
        yield
    except UnicodeDecodeError:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} "
                                    "(a binary or differently encoded file?)", path=path, line=lineno,
                                    hint="interaction files are UTF-8 text (CSV/TSV, LightGCN, MovieLens)") from None
        raise DataError("not UTF-8 text (a binary or differently encoded file?)", path=path) from None


@dataclass(frozen=True)
class _Columns:
    """0-based column positions of each role; None where absent."""

    user: int
    item: int
    rating: int | None = None
    time: int | None = None


def _split_lines(lines, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, fields) for every line, blank ones included."""
    if len(delimiter) == 1:
        reader = csv.reader(lines, delimiter=delimiter)
        for fields in reader:
            yield reader.line_num, fields
    else:  # multi-character delimiters such as '::' are not csv dialects
        for lineno, line in enumerate(lines, 1):
            yield lineno, line.rstrip("\r\n").split(delimiter)


def _rows(path: Path, delimiter: str, need: int, has_header: bool
          ) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) of each data row, checking it has `need` fields."""
    with open(path, encoding="utf-8-sig", newline="") as f, utf8_errors(path):
        for lineno, fields in _split_lines(f, delimiter):
            if has_header and lineno == 1:
                continue
            if len(fields) < need:
                if not "".join(fields).strip():  # blank line
                    continue
                raise DataError(f"expected at least {need} fields separated by "
                                f"{delimiter!r}, got {len(fields)}: "
                                f"{delimiter.join(fields)!r}", path=path, line=lineno)
            yield lineno, fields


def _read_table(path: Path, delimiter: str, cols: _Columns, *, has_header: bool
                ) -> Interactions:
    """The `Interactions` of a delimited file: streamed by pyarrow (`edgegnn.data.stream`), or line
    by line where pyarrow refuses the file (this reader then names the file, line and value of
    a bad row, or reads what pyarrow was stricter about)."""
    from edgegnn.data.stream import NotStreamable, read_delimited

    roles = {role: c for role, c in vars(cols).items() if c is not None}
    try:
        return read_delimited(path, delimiter, roles, has_header=has_header)
    except NotStreamable as reason:
        logger.debug("%s: read line by line (%s)", path, reason)
    return _read_table_by_lines(path, delimiter, cols, has_header=has_header)


def _read_table_by_lines(path: Path, delimiter: str, cols: _Columns, *, has_header: bool) -> Interactions:
    """Read the rows of a delimited file one by one (Python lists of fields) and build `Interactions`."""
    roles = {role: c for role, c in vars(cols).items() if c is not None}
    need = max(roles.values()) + 1
    tokens: dict[str, list[str]] = {role: [] for role in roles}
    columns = list(roles.items())
    for _, fields in _rows(path, delimiter, need, has_header):
        for role, c in columns:
            tokens[role].append(fields[c])
    if not tokens["user"]:
        raise DataError("no interaction rows", path=path)

    users, user_ids = _index_ids(tokens["user"], "user", path, delimiter, need, has_header)
    items, item_ids = _index_ids(tokens["item"], "item", path, delimiter, need, has_header)
    ratings = timestamps = None
    if "rating" in tokens:
        ratings = _parse_ratings(tokens["rating"], path, delimiter, need, has_header)
    if "time" in tokens:
        timestamps = _parse_timestamps(tokens["time"], path, delimiter, need, has_header)
    logger.info("read %d interactions (%d users, %d items) from %s", len(users),
                len(user_ids), len(item_ids), path)
    return Interactions(users, items, user_ids, item_ids, ratings, timestamps)


def index_by_first_appearance(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map raw ids [n] to (indices int64 [n], ids [k]) with `ids[indices] == raw` and
    indices numbered in order of first appearance."""
    uniq, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    return rank[inverse.reshape(-1)], uniq[order]


def _index_ids(tokens: list[str], role: str, path: Path, *layout) -> tuple[np.ndarray, np.ndarray]:
    raw = np.char.strip(np.asarray(tokens, dtype=str))
    empty = np.flatnonzero(np.char.str_len(raw) == 0)
    if len(empty):
        raise DataError(f"empty {role} id (every row needs a {role} id)", path=path,
                        line=_line_of_row(path, int(empty[0]), *layout))
    return index_by_first_appearance(raw)


def _parse_ratings(tokens: list[str], path: Path, *layout) -> np.ndarray:
    """float32 [n]; rejects non-numeric and non-finite values."""
    ratings, bad = _convert(tokens, float, np.float32)
    if ratings is not None:
        nonfinite = np.flatnonzero(~np.isfinite(ratings))
        bad = int(nonfinite[0]) if len(nonfinite) else None
    if bad is not None:
        raise DataError(f"rating {tokens[bad].strip()!r} is not a finite number (allowed: "
                        "a number such as 4 or 3.5; not NaN or inf)", path=path,
                        line=_line_of_row(path, bad, *layout))
    return ratings


def _parse_timestamps(tokens: list[str], path: Path, *layout) -> np.ndarray:
    """int64 [n] seconds: integers, or ISO 8601 dates (2020-05-17, 2020-05-17T10:31:00) as
    seconds since the epoch; anything else is rejected."""
    timestamps, bad = _convert(tokens, int, np.int64)
    if bad is not None:
        dates, bad_date = _convert([t.strip() for t in tokens], lambda t: np.datetime64(t, "s"), "datetime64[s]")
        if bad_date is None:
            return dates.astype(np.int64)
        bad = next(k for k, token in enumerate(tokens) if _convert([token], int, np.int64)[1] is not None
                   and _convert([token.strip()], lambda t: np.datetime64(t, "s"), "datetime64[s]")[1] is not None)
        raise DataError(f"timestamp {tokens[bad].strip()!r} is not an integer or an ISO 8601 date (allowed: "
                        "seconds since the epoch, e.g. 881250949, or 2020-05-17T10:31:00)", path=path,
                        line=_line_of_row(path, bad, *layout))
    return timestamps


def _convert(tokens: list[str], convert, dtype) -> tuple[np.ndarray | None, int | None]:
    """(values, None), or (None, index of the first token that does not convert).

    numpy converts the whole column at once; only when it refuses do we walk the tokens
    in Python, both to find the culprit and to accept what Python (but not numpy) reads.
    """
    try:
        return np.asarray(tokens, dtype=str).astype(dtype), None
    except (ValueError, OverflowError):
        pass
    values = []
    for k, token in enumerate(tokens):
        try:
            values.append(convert(token))
            if dtype is np.int64 and not -2**63 <= values[-1] < 2**63:
                return None, k
        except ValueError:
            return None, k
    return np.asarray(values, dtype=dtype), None


def line_of_csv_row(path: str | Path, row: int) -> int:
    """The 1-based line of data row `row` of a `read_csv` file with a header (tab or comma
    delimited, as read_csv sniffs it), for error messages about a row found later."""
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
    return _line_of_row(path, row, "\t" if "\t" in first else ",", 2, True)


def _line_of_row(path: Path, row: int, delimiter: str, need: int, has_header: bool) -> int:
    """The 1-based line of data row `row` (read the file again: only on errors)."""
    for k, (lineno, _) in enumerate(_rows(path, delimiter, need, has_header)):
        if k == row:
            return lineno
    return 0
