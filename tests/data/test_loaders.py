"""Readers: exact values, error messages that point at the file and line, Gowalla."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgegnn.data import read_csv, read_lightgcn_dir, read_movielens
from edgegnn.errors import DataError

GOWALLA = Path(__file__).parents[2].parent / "shared" / "data" / "gowalla"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rows(inter) -> list[tuple[str, str]]:
    """(raw user, raw item) per row: independent of how indices were assigned."""
    return [(inter.user_ids[u], inter.item_ids[i]) for u, i in zip(inter.users, inter.items)]


# ----------------------------------------------------------------------------- LightGCN

def lightgcn_dir(tmp_path: Path, train: str, test: str, valid: str | None = None) -> Path:
    write(tmp_path / "lg" / "train.txt", train)
    write(tmp_path / "lg" / "test.txt", test)
    if valid is not None:
        write(tmp_path / "lg" / "valid.txt", valid)
    return tmp_path / "lg"


def test_lightgcn_ids_are_indices(tmp_path):
    split = read_lightgcn_dir(lightgcn_dir(tmp_path, "0 0 2\n1 1\n\n2\n3 2 0\n", "0 1\n3 2\n"))
    assert split.train.users.tolist() == [0, 0, 1, 3, 3]
    assert split.train.items.tolist() == [0, 2, 1, 2, 0]
    assert split.test.users.tolist() == [0, 3] and split.test.items.tolist() == [1, 2]
    assert split.num_users == 4 and split.num_items == 3  # user 2 has no items: kept as id
    assert split.train.user_ids.tolist() == ["0", "1", "2", "3"]
    assert split.valid is None and split.skipped == {}
    assert split.train.users.dtype == np.int64


def test_lightgcn_drops_test_rows_unseen_in_train(tmp_path, caplog):
    directory = lightgcn_dir(tmp_path, "0 0 1\n1 1\n", "0 5\n1 0 1\n4 0\n", valid="1 0 7\n")
    with caplog.at_level(logging.INFO, logger="edgegnn.data"):
        split = read_lightgcn_dir(directory)
    assert split.num_items == 8 and split.num_users == 5  # max id + 1 over all files
    assert list(zip(split.test.users, split.test.items)) == [(1, 0), (1, 1)]
    assert list(zip(split.valid.users, split.valid.items)) == [(1, 0)]
    assert split.skipped == {"test rows with an item unseen in train": 1,
                             "test rows with a user unseen in train": 1,
                             "valid rows with an item unseen in train": 1}
    assert "test rows with a user unseen in train" in caplog.text        # info: `data info` shows the counts


@pytest.mark.parametrize("train, line, token", [
    ("0 1 2\n1 x 3\n", 2, "'x'"),
    ("0 1\n\n2.5 3\n", 3, "'2.5'"),
    ("0 1 -4\n", 1, "'-4'"),
])
def test_lightgcn_bad_token_names_file_line_and_token(tmp_path, train, line, token):
    with pytest.raises(DataError) as err:
        read_lightgcn_dir(lightgcn_dir(tmp_path, train, "0 1\n"))
    message = str(err.value)
    assert f"train.txt:{line}:" in message and token in message
    assert err.value.line == line


def test_lightgcn_empty_train_and_missing_test(tmp_path):
    with pytest.raises(DataError, match="train.txt.*no interactions"):
        read_lightgcn_dir(lightgcn_dir(tmp_path, "0\n\n", "0 1\n"))
    with pytest.raises(DataError, match="test.txt.*no interactions"):
        read_lightgcn_dir(lightgcn_dir(tmp_path, "0 1\n", "3\n"))
    (tmp_path / "lg" / "test.txt").unlink()
    with pytest.raises(DataError, match="test.txt not found"):
        read_lightgcn_dir(tmp_path / "lg")


@pytest.mark.skipif(not (GOWALLA / "train.txt").is_file(), reason="Gowalla data not present")
def test_gowalla_split():
    split = read_lightgcn_dir(GOWALLA)
    assert (split.num_users, split.num_items) == (29_858, 40_981)
    assert (len(split.train), len(split.test)) == (810_128, 217_242)
    assert split.skipped == {}


# ----------------------------------------------------------------------------- MovieLens

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n"


@pytest.mark.parametrize("where", ["file", "dir", "nested"])
def test_movielens_100k_file_or_directory(tmp_path, where):
    file = write(tmp_path / "ml-100k" / "u.data", U_DATA)
    inter = read_movielens({"file": file, "dir": file.parent, "nested": tmp_path}[where])
    assert rows(inter) == [("196", "242"), ("186", "302"), ("196", "377")]
    assert inter.users.tolist() == [0, 1, 0] and inter.items.tolist() == [0, 1, 2]
    assert inter.ratings.dtype == np.float32 and inter.ratings.tolist() == [3, 3, 1]
    assert inter.timestamps.dtype == np.int64
    assert inter.timestamps.tolist() == [881250949, 891717742, 878887116]


def test_movielens_1m_and_latest(tmp_path):
    dat = read_movielens(write(tmp_path / "a" / "ratings.dat", "1::1193::5::978300760\n"
                                                               "2::661::3::978302109\n"))
    assert rows(dat) == [("1", "1193"), ("2", "661")] and dat.ratings.tolist() == [5, 3]
    latest = read_movielens(write(tmp_path / "b" / "ratings.csv",
                                  "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n"))
    assert rows(latest) == [("1", "31")] and latest.ratings.tolist() == [2.5]
    assert latest.timestamps.tolist() == [1260759144]


def test_movielens_missing_file(tmp_path):
    with pytest.raises(DataError, match="no MovieLens ratings file"):
        read_movielens(tmp_path)


# ----------------------------------------------------------------------------- CSV

def test_csv_by_header_name_with_sniffed_tab(tmp_path):
    file = write(tmp_path / "x.tsv", "ts\titem\tuser\tstars\n5\tb\tann\t4.5\n\n7\ta\tbob\t2\n")
    inter = read_csv(file, rating_col="stars", time_col="ts")
    assert rows(inter) == [("ann", "b"), ("bob", "a")]
    assert inter.ratings.tolist() == [4.5, 2.0] and inter.timestamps.tolist() == [5, 7]


def test_csv_without_header_by_position(tmp_path):
    file = write(tmp_path / "x.csv", "a,1,9\nb,2,8\na,2,7\n")
    inter = read_csv(file, user_col=0, item_col="1", rating_col=2, has_header=False)
    assert rows(inter) == [("a", "1"), ("b", "2"), ("a", "2")]
    assert inter.users.tolist() == [0, 1, 0] and inter.ratings.tolist() == [9, 8, 7]
    assert inter.ratings is not None and inter.timestamps is None
    with pytest.raises(DataError, match="0-based column number"):
        read_csv(file, has_header=False)
    with_header = write(tmp_path / "h.csv", "name,thing\na,1\n")
    assert rows(read_csv(with_header, user_col="1", item_col="name")) == [("1", "a")]


def test_csv_missing_column_lists_header(tmp_path):
    file = write(tmp_path / "x.csv", "uid,iid\n1,2\n")
    with pytest.raises(DataError, match=r"user column 'user' not in the header; "
                                        r"available columns: uid, iid"):
        read_csv(file)


@pytest.mark.parametrize("body, line, fragment", [
    ("user,item,rating\n1,2,3\n\n4,5\n", 4, "expected at least 3 fields"),
    ("user,item,rating\n1,2,3\n4,5,nan\n", 3, "rating 'nan' is not a finite number"),
    ("user,item,rating\n1,2,inf\n", 2, "rating 'inf' is not a finite number"),
    ("user,item,rating\n1,2,3\n\n1,3,good\n", 4, "rating 'good' is not a finite number"),
    ("user,item,time\n1,2,3\n1,3,4.5\n", 3, "timestamp '4.5' is not an integer"),
    ("user,item,time\n1,2,3\n,3,4\n", 3, "empty user id"),
])
def test_csv_bad_rows_name_file_line_and_value(tmp_path, body, line, fragment):
    file = write(tmp_path / "bad.csv", body)
    rating = "rating" if "rating" in body else None
    time = "time" if "time" in body else None
    with pytest.raises(DataError) as err:
        read_csv(file, rating_col=rating, time_col=time)
    assert str(err.value).startswith(f"{file}:{line}: ")
    assert fragment in str(err.value)


def test_csv_empty_and_header_only(tmp_path):
    with pytest.raises(DataError, match="empty file"):
        read_csv(write(tmp_path / "e.csv", ""))
    with pytest.raises(DataError, match="no interaction rows"):
        read_csv(write(tmp_path / "h.csv", "user,item\n"))


def test_csv_finds_rating_and_timestamp_columns_by_their_header_names(tmp_path):
    """Not told, read_csv takes the rating and time columns by name (any case); a bad value in them
    is an error naming the line, and 'none' leaves a column out."""
    file = write(tmp_path / "x.csv", "User,Item,Rating,Timestamp\na,1,5,100\nb,2,3,101\n")
    inter = read_csv(file, user_col="User", item_col="Item")
    assert inter.ratings.tolist() == [5.0, 3.0] and inter.timestamps.tolist() == [100, 101]
    assert read_csv(file, user_col="User", item_col="Item", rating_col="none").ratings is None
    with pytest.raises(DataError, match=r"bad.csv:3: rating 'great' is not a finite number"):
        read_csv(write(tmp_path / "bad.csv", "user,item,score\na,1,4\nb,2,great\n"))
    dated = read_csv(write(tmp_path / "d.csv", "user,item,date\na,1,2020-01-02\nb,2,2020-01-02T00:00:10\n"))
    assert dated.timestamps.tolist() == [1577923200, 1577923210]
    with pytest.raises(DataError, match=r"d2.csv:3: timestamp 'yesterday' is not an integer or an ISO 8601 date"):
        read_csv(write(tmp_path / "d2.csv", "user,item,time\na,1,2020-01-02\nb,2,yesterday\n"))


def test_a_binary_file_is_one_error_naming_the_line(tmp_path):
    file = tmp_path / "model.bin"
    file.write_bytes(b"user,item\n1,2\n\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(DataError, match=r"model.bin:3: not UTF-8 text: byte 0x89 at column 1"):
        read_csv(file)
