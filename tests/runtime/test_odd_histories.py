"""Odd histories get a clear answer: None refused, a whole-catalog history and a new user without
a popularity list answered empty (said by the CLI), one new user never fails a batch."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edgegnn.cli.app import app
from edgegnn.export import export
from edgegnn.runtime import Recommender
from edgegnn.runtime.errors import RecommendError
from tests.export import models


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """An artifact exported without data: no popularity list."""
    return export(models.lightgcn("fp32"), "cpu-x86_64", out_dir=tmp_path_factory.mktemp("bare") / "a", cpus=(),
                  emulators=None, top_k=400)


@pytest.mark.parametrize("item, fragment", [(None, "history item 1 is None"), (1.5, "history item 1 is 1.5")])
def test_a_history_item_that_is_no_id_is_refused(bare, item, fragment):
    with pytest.raises(RecommendError, match=fragment):
        Recommender.open(bare).recommend(["item1", item])


def test_a_new_user_without_popularity_does_not_fail_the_batch(bare, caplog):
    recommender = Recommender.open(bare)
    known, new, other = recommender.recommend_batch([["item1", "item2"], ["ghost"], []], k=5)
    assert len(known) == 5 and len(new) == 0 and new.fallback and len(other) == 0
    assert caplog.text.count("no popularity list") == 1 and new.skipped == ("ghost",)


def test_the_cli_says_why_a_list_is_empty(bare):
    runner = CliRunner()
    everything = ",".join(f"item{i}" for i in range(models.ITEMS))
    full = runner.invoke(app, ["recommend", str(bare), "--history", everything, "--k", "5"])
    assert full.exit_code == 0 and "the history covers every item the model knows" in " ".join(full.output.split())
    new = runner.invoke(app, ["recommend", str(bare), "--history", "ghost"])
    assert new.exit_code == 0 and "no popularity list" in " ".join(new.output.split())
    assert " ".join(new.output.split()).count("skipped 1 unknown item id(s): ghost") == 1
    refused = runner.invoke(app, ["recommend", str(bare), "--history", "item1", "--classes"])
    assert refused.exit_code == 1 and "no user class head" in refused.output
