"""load_dataset: spec parsing, format detection, the cleaning pipeline, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgegnn.data import load_dataset
from edgegnn.data.dataset import detect_format
from edgegnn.errors import DataError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def u_data(num_users=30, num_items=20, seed=0) -> str:
    """A dense-ish ml-100k u.data body: every user rates 8 items, ratings 1..5."""
    rng = np.random.default_rng(seed)
    lines = []
    for u in range(num_users):
        for t, i in enumerate(rng.choice(num_items, 8, replace=False)):
            lines.append(f"{u + 1}\t{i + 1}\t{rng.integers(1, 6)}\t{1000 + t}")
    return "\n".join(lines) + "\n"


def test_synthetic_spec():
    split = load_dataset("synthetic:users=120, items=80,clusters=4,degree=6,seed=3",
                         seed=9)
    assert split.num_users == 120 and split.num_items == 80
    assert split.source == "synthetic(users=120, items=80, clusters=4, degree=6.0, seed=3)"
    assert split.valid is not None and len(split.valid) > 0
    again = load_dataset("synthetic:users=120,items=80,clusters=4,degree=6,seed=3", seed=9)
    assert np.array_equal(split.test.items, again.test.items)
    default = load_dataset("synthetic", valid_ratio=0)
    assert default.num_users == 2000 and default.valid is None
    assert default.source.endswith("seed=0)")


@pytest.mark.parametrize("spec, fragment", [
    ("synthetic:people=3", "unknown synthetic option 'people'; allowed: users, items, "
                           "clusters, degree, seed"),
    ("synthetic:users=many", "users='many' must be an integer"),
])
def test_synthetic_spec_errors(spec, fragment):
    with pytest.raises(DataError) as err:
        load_dataset(spec)
    assert fragment in str(err.value)


def test_detect_format(tmp_path):
    lightgcn = tmp_path / "lg"
    write(lightgcn / "train.txt", "0 1\n")
    write(lightgcn / "test.txt", "0 1\n")
    nested = write(tmp_path / "ml" / "ml-100k" / "u.data", u_data())
    latest = write(tmp_path / "latest" / "ratings.csv", "userId,movieId,rating,timestamp\n")
    other = write(tmp_path / "other" / "ratings.csv", "user,item\n1,2\n")
    tsv = write(tmp_path / "clicks.tsv", "user\titem\n")
    assert detect_format(lightgcn) == "lightgcn"
    assert detect_format(tmp_path / "ml") == detect_format(nested) == "movielens"
    assert detect_format(latest) == detect_format(latest.parent) == "movielens"
    assert detect_format(other) == detect_format(tsv) == "csv"
    assert detect_format(write(tmp_path / "x.parquet", "")) == detect_format(write(tmp_path / "x.pq", "")) == "parquet"
    with pytest.raises(DataError, match="cannot tell the format"):
        detect_format(write(tmp_path / "x.feather", ""))


def test_lightgcn_with_carved_validation(tmp_path):
    train = "".join(f"{u} " + " ".join(str((u + k) % 12) for k in range(6)) + "\n"
                    for u in range(10))
    write(tmp_path / "lg" / "train.txt", train)
    write(tmp_path / "lg" / "test.txt", "0 7\n1 8\n")
    split = load_dataset(tmp_path / "lg", valid_ratio=0.2, seed=1)
    assert len(split.train) + len(split.valid) == 60 and len(split.valid) == 10
    assert split.test.items.tolist() == [7, 8] and split.source == str(tmp_path / "lg")
    assert load_dataset(tmp_path / "lg", valid_ratio=0).valid is None
    with pytest.raises(DataError, match="min_user_degree.*does not apply to the LightGCN"):
        load_dataset(tmp_path / "lg", min_user_degree=2)


def test_movielens_pipeline_counts_every_dropped_row(tmp_path):
    body = u_data() + "1\t999\t5\t5000\n1\t999\t4\t5001\n"  # a duplicate pair
    write(tmp_path / "ml-100k" / "u.data", body)
    everything = load_dataset(tmp_path, valid_ratio=0, test_ratio=0.25)
    assert everything.skipped.get("duplicate user-item rows") == 1
    total = len(everything.train) + len(everything.test)
    assert total + sum(everything.skipped.values()) == 30 * 8 + 2

    liked = load_dataset(tmp_path, implicit_threshold=4, min_user_degree=3,
                         min_item_degree=2, valid_ratio=0)
    assert liked.train.ratings.min() >= 4 and liked.test.ratings.min() >= 4
    below = sum(int(x) < 4 for x in (line.split("\t")[2] for line in body.splitlines()))
    assert liked.skipped["rows with rating < 4"] == below
    assert "rows outside the 3/2-core" in liked.skipped
    all_rows = len(liked.train) + len(liked.test) + sum(liked.skipped.values())
    assert all_rows == 30 * 8 + 2


def pairs(part) -> list[tuple[str, str]]:
    return sorted(zip(part.user_ids[part.users], part.item_ids[part.items]))


def test_leave_last_out_and_csv_options(tmp_path):
    # User u's latest item is (3 - u) % 4 and the one before it (2 - u) % 4.
    file = write(tmp_path / "log.csv", "who,what,when\n" + "".join(
        f"u{u},i{i},{u * 10 + (i + u) % 4}\n" for u in range(4) for i in range(4)))
    split = load_dataset(file, split="leave-last-out", user_col="who", item_col="what",
                         time_col="when")
    assert pairs(split.test) == [("u0", "i3"), ("u1", "i2"), ("u2", "i1"), ("u3", "i0")]
    assert pairs(split.valid) == [("u0", "i2"), ("u1", "i1"), ("u2", "i0"), ("u3", "i3")]
    assert len(split.train) == 8 and split.skipped == {}
    movielens = write(tmp_path / "ml" / "u.data", u_data())
    with pytest.raises(DataError, match="user_col only applies to the csv format"):
        load_dataset(movielens, user_col="x")
    # read_csv's defaults, as a CLI passes them, are fine with any format.
    assert len(load_dataset(movielens, user_col="user", item_col="item", implicit_threshold="none").train) > 100


def test_ratings_default_to_the_top_of_their_scale_as_positives(tmp_path):
    """Without --implicit-threshold, 1-5 stars keep 4 and 5 (said in `skipped`), 0/1 ratings keep the 1s;
    "none" keeps every rating; a number is that threshold."""
    stars = write(tmp_path / "stars.csv", "user,item,rating\n" + "".join(
        f"u{u},i{i},{1 + (u + i) % 5}\n" for u in range(30) for i in range(10)))
    auto = load_dataset(stars, valid_ratio=0)
    kept = len(auto.train) + len(auto.test)
    assert kept + sum(auto.skipped.values()) == 300 and kept == 120
    assert any("rating < 4 (the default for these ratings" in reason for reason in auto.skipped)
    assert len(load_dataset(stars, valid_ratio=0, implicit_threshold="none").train) > 200
    assert auto.record.options["implicit_threshold"] == "auto"
    clicks = write(tmp_path / "clicks.csv", "user,item,rating\n" + "".join(
        f"u{u},i{i},{(u * i) % 2}\n" for u in range(30) for i in range(10)))
    binary = load_dataset(clicks, valid_ratio=0)
    assert set(binary.train.ratings.tolist()) == {1.0}


@pytest.mark.parametrize("kwargs, fragment", [
    ({"format": "feather"}, "format='feather' is invalid; allowed: auto, lightgcn, "
                            "movielens, csv, parquet"),
    ({"split": "temporal"}, "split='temporal' is invalid; allowed: random, leave-last-out"),
])
def test_bad_options(tmp_path, kwargs, fragment):
    with pytest.raises(DataError) as err:
        load_dataset("synthetic", **kwargs)
    assert fragment in str(err.value)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        load_dataset(tmp_path / "nope")
