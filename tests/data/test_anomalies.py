"""Anomalies are found where they are planted, nowhere else, and dropped with a count per reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgegnn.data import load_dataset
from edgegnn.data.anomalies import BURST_ROWS, FLOOD_REPEATS, find_anomalies
from edgegnn.data.synthetic import make_synthetic


def _write_log(path, *, bot_items=0, flood=0, burst=0):
    """A synthetic log (one row an hour per user) with planted anomalies: a bot user touching
    `bot_items` items, one pair repeated `flood` times, `burst` rows of one user within seconds."""
    clean = make_synthetic(num_users=400, num_items=3000, seed=2)
    rows = [(f"u{u}", f"i{i}", 3600 * n) for n, (u, i) in enumerate(zip(clean.users, clean.items))]
    rows += [("bot", f"i{i}", 10 ** 8 + 3600 * i) for i in range(bot_items)]
    rows += [("u1", "i7", 2 * 10 ** 8 + 3600 * n) for n in range(flood)]
    rows += [("u2", f"i{100 + n}", 3 * 10 ** 8 + n) for n in range(burst)]
    path.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    return len(clean), len(rows)


def test_a_clean_heavy_tailed_log_has_no_anomalies(tmp_path):
    _write_log(tmp_path / "log.csv")
    split = load_dataset(tmp_path / "log.csv", valid_ratio=0)
    assert split.anomalies["anomalous rows"] == 0, split.anomalies


def test_gowalla_has_no_anomalies_though_its_items_are_heavy_tailed():
    from tests.data.test_loaders import GOWALLA

    if not (GOWALLA / "train.txt").is_file():
        pytest.skip("Gowalla split not present")
    split = load_dataset(GOWALLA, format="lightgcn", valid_ratio=0)
    assert split.anomalies["anomalous rows"] == 0 and split.train.item_degrees().max() > 1000


def test_planted_anomalies_are_found_and_dropped_with_a_count_each(tmp_path):
    clean_rows, all_rows = _write_log(tmp_path / "log.csv", bot_items=2500, flood=FLOOD_REPEATS + 5,
                                      burst=BURST_ROWS + 10)
    kept = load_dataset(tmp_path / "log.csv", valid_ratio=0, test_ratio=0.2)
    assert kept.anomalies == {"extreme-degree users": 1, "extreme-degree items": 0, "flooded user-item pairs": 1,
                              "rows in floods": FLOOD_REPEATS + 5, "rows in bursts": BURST_ROWS + 10,
                              "anomalous rows": 2500 + FLOOD_REPEATS + 5 + BURST_ROWS + 10}
    dropped = load_dataset(tmp_path / "log.csv", valid_ratio=0, test_ratio=0.2, drop_anomalies=True)
    assert {reason: count for reason, count in dropped.skipped.items() if "unseen" not in reason} == {
        "rows of users with > 10x the p99 degree": 2500,
        f"rows of user-item pairs repeated >= {FLOOD_REPEATS} times": FLOOD_REPEATS + 5,
        f"rows in bursts (>= {BURST_ROWS} rows of a user within 60 s)": BURST_ROWS + 10}
    assert "bot" not in set(dropped.train.user_ids[dropped.train.users])
    assert len(dropped.train) + len(dropped.test) + sum(dropped.skipped.values()) == all_rows
    assert dropped.record.options["drop_anomalies"] is True and "drop_anomalies" not in kept.record.options


def test_an_item_every_user_touches_is_extreme():
    from edgegnn.data.interactions import Interactions

    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(5000), 5)
    items = rng.integers(1, 2000, len(users))
    items[::5] = 0                                             # item 0: every user
    inter = Interactions(users=users, items=items, user_ids=np.arange(5000).astype(str),
                         item_ids=np.arange(2000).astype(str))
    anomalies = find_anomalies(inter)
    assert anomalies.extreme_items.tolist() == [0] and anomalies.item_rows.sum() == 5000


def test_the_cli_reports_anomalies_and_drops_them(tmp_path):
    from typer.testing import CliRunner

    from edgegnn.cli.app import app

    _write_log(tmp_path / "log.csv", bot_items=2500)
    runner = CliRunner()
    shown = runner.invoke(app, ["data", "info", str(tmp_path / "log.csv"), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["anomalies"]["extreme-degree users"] == 1
    dropped = runner.invoke(app, ["data", "info", str(tmp_path / "log.csv"), "--drop-anomalies", "--json"])
    skipped = json.loads(dropped.stdout)["skipped"]
    assert skipped["rows of users with > 10x the p99 degree"] == 2500
