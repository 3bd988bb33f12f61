"""The pyarrow streaming readers give what the line-by-line reader gives, batch after batch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edgegnn.data import load_dataset, stream
from edgegnn.data.loaders import _Columns, _read_table_by_lines, read_csv
from edgegnn.errors import DataError

FILES = {
    "ratings and times": "user,item,rating,timestamp\nu1,i1,4,100\nu2,i1,5,90\nu1,i3,3.5,120\n u3 , i2 ,1,80\n",
    "iso dates": "user\titem\tdate\n7\t9\t2020-05-17\n8\t9\t2020-05-17T10:31:00\n7\t1\t2021-01-01\n",
    "quoted ids with the delimiter": 'user,item\n"a,b",x\nc,"y,z"\n"a,b","y,z"\n',
    "byte order mark": "\ufeffuser,item\nb,1\na,2\nb,2\n",
}


def _same(streamed, by_lines) -> None:
    np.testing.assert_array_equal(streamed.users, by_lines.users)
    np.testing.assert_array_equal(streamed.items, by_lines.items)
    np.testing.assert_array_equal(streamed.user_ids, by_lines.user_ids)
    np.testing.assert_array_equal(streamed.item_ids, by_lines.item_ids)
    for name in ("ratings", "timestamps"):
        a, b = getattr(streamed, name), getattr(by_lines, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype


@pytest.mark.parametrize("name", list(FILES))
def test_streamed_csv_equals_the_line_by_line_reader(tmp_path, name):
    path = tmp_path / "data.csv"
    path.write_text(FILES[name], encoding="utf-8")
    header = FILES[name].lstrip("\ufeff").splitlines()[0]
    delimiter = "\t" if "\t" in header else ","
    width = len(header.split(delimiter))
    roles = {"user": 0, "item": 1, **({"rating": 2} if width > 3 else {}), **({"time": width - 1} if width > 2 else {})}
    streamed = stream.read_delimited(path, delimiter, roles, has_header=True)
    _same(streamed, _read_table_by_lines(path, delimiter, _Columns(**roles), has_header=True))


def test_ids_are_numbered_by_first_appearance_across_many_batches(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 400, 5000), rng.integers(0, 90, 5000)
    path = tmp_path / "many.csv"
    path.write_text("user,item\n" + "".join(f"u{u},{i}\n" for u, i in zip(users, items)))
    monkeypatch.setattr(stream, "BLOCK_BYTES", 512)               # ~50 rows per batch
    streamed = stream.read_delimited(path, ",", {"user": 0, "item": 1}, has_header=True)
    by_lines = _read_table_by_lines(path, ",", _Columns(0, 1), has_header=True)
    _same(streamed, by_lines)
    assert streamed.user_ids[0] == f"u{users[0]}" and len(streamed.user_ids) == len(np.unique(users))


@pytest.mark.parametrize("body, refused", [
    ("user,item\na,b\nc\n", "Expected 2 columns"),              # a short row
    ("user,item,rating\na,b,4\nc,d,lots\n", "invalid value 'lots'"),
    ("user,item\na,b\n ,d\n", "an empty user id"),
])
def test_what_pyarrow_refuses_goes_to_the_line_reader_which_names_the_line(tmp_path, body, refused):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    roles = {"user": 0, "item": 1, **({"rating": 2} if "rating" in body else {})}
    with pytest.raises(stream.NotStreamable, match=refused):
        stream.read_delimited(path, ",", roles, has_header=True)
    with pytest.raises(DataError, match=r"bad\.csv:3: "):
        read_csv(path)


def test_a_row_with_extra_fields_is_read_by_the_line_reader(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("user,item\na,b\nc,d,extra\n")
    assert read_csv(path).user_ids.tolist() == ["a", "c"]


def _parquet(path, **columns) -> None:
    pq.write_table(pa.table(columns), path, row_group_size=3)


def test_parquet_with_integer_ids_reads_as_the_same_csv_does(tmp_path):
    users, items = [5, 3, 5, 9, 3, 3, 1], [10, 11, 12, 10, 13, 10, 11]
    ratings, times = [4.0, 5, 3, 4, 5, 4, 2], [100, 90, 80, 70, 60, 50, 40]
    _parquet(tmp_path / "log.parquet", user=pa.array(users, pa.int32()), item=pa.array(items, pa.int64()),
             rating=pa.array(ratings, pa.float64()), timestamp=pa.array(times, pa.int64()))
    (tmp_path / "log.csv").write_text("user,item,rating,timestamp\n" + "".join(
        f"{u},{i},{r:g},{t}\n" for u, i, r, t in zip(users, items, ratings, times)))
    _same(stream.read_parquet(tmp_path / "log.parquet"), read_csv(tmp_path / "log.csv"))


def test_parquet_timestamps_and_string_ids(tmp_path):
    moments = np.array(["2020-05-17T10:31:00", "2021-01-01T00:00:00"], dtype="datetime64[s]")
    _parquet(tmp_path / "t.parquet", who=["x", "y"], what=["p", "p"], when=pa.array(moments, pa.timestamp("ms")))
    read = stream.read_parquet(tmp_path / "t.parquet", user_col="who", item_col="what", time_col="when")
    assert read.user_ids.tolist() == ["x", "y"] and read.item_ids.tolist() == ["p"]
    np.testing.assert_array_equal(read.timestamps, moments.astype(np.int64))


def test_parquet_is_detected_and_split_by_load_dataset(tmp_path):
    rng = np.random.default_rng(1)
    _parquet(tmp_path / "log.parquet", user=rng.integers(0, 50, 2000), item=rng.integers(0, 40, 2000))
    split = load_dataset(tmp_path / "log.parquet", user_col="user", item_col="item")
    assert split.num_users == 50 and len(split.train) > 0 and split.record.options["format"] == "parquet"


@pytest.mark.parametrize("columns, message", [
    ({"user": [1, 2], "thing": [3, 4]}, "item column 'item' not in the file; available columns: user, thing"),
    ({"user": pa.array([1, None]), "item": [3, 4]}, "user column 'user' has 1 missing values"),
    ({"user": [1.5, 2.5], "item": [3, 4]}, "user column 'user' has type double; allowed: integers or strings"),
    ({"user": [1, 2], "item": [3, 4], "rating": ["good", "bad"]}, "rating column 'rating' must hold numbers"),
])
def test_bad_parquet_columns_are_one_line_naming_the_file_and_column(tmp_path, columns, message):
    _parquet(tmp_path / "bad.parquet", **columns)
    with pytest.raises(DataError, match="bad.parquet: " + message.replace("(", r"\(").replace(")", r"\)")):
        stream.read_parquet(tmp_path / "bad.parquet")


def test_a_file_that_is_not_parquet_is_one_line(tmp_path):
    (tmp_path / "fake.parquet").write_text("user,item\n1,2\n")
    with pytest.raises(DataError, match="fake.parquet: not a readable Parquet file"):
        load_dataset(tmp_path / "fake.parquet")
