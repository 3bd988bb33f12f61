"""The default model is chosen on validation: every candidate tried, the best kept, test unseen."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgegnn.data.splits import split_random
from edgegnn.data.synthetic import make_synthetic
from edgegnn.errors import ConfigError
from edgegnn.train import select


@pytest.fixture(scope="module")
def split():
    return split_random(make_synthetic(num_users=300, num_items=120, seed=1), valid_ratio=0.1, seed=0)


def _quick(card):
    return dataclasses.replace(card, training=dataclasses.replace(card.training, epochs=10, eval_every=5))


def test_the_best_validation_candidate_is_chosen_and_refitted(split):
    checkpoint, _, trials = select.select_model(split, time_budget=120, trained=_quick)
    names = [t.card.name for t in trials]
    assert names == [c.name for c in select.candidates(split.num_users, split.num_items)]
    assert all(n.startswith(("gf-cf-r", "chebycf-r", "bspm-r")) for n in names[:-1]) and names[-1] == "lightgcn"
    assert all(t.card.model.rank < 120 for t in trials[:-1])               # ranks the data can hold
    best = max((t for t in trials if t.valid), key=lambda t: t.valid["recall@20"])
    assert checkpoint.card == best.card and checkpoint.metrics["selection"]["chosen"] == best.card.name
    assert checkpoint.metrics["test"]["recall@20"] > checkpoint.metrics["popularity"]["recall@20"]
    if best.card.model.type == "graph-filter":       # refitted with validation in train
        assert len(checkpoint.train) == len(split.train) + len(split.valid)


def test_the_test_split_takes_no_part_in_the_choice(split):
    """Replacing the test interactions by noise changes the test metrics, never the choice."""
    rng = np.random.default_rng(0)
    noise = dataclasses.replace(split.test, items=rng.integers(0, split.num_items, len(split.test)))
    kept = select.select_model(split, time_budget=120, trained=_quick)[0]
    noisy = select.select_model(dataclasses.replace(split, test=noise), time_budget=120, trained=_quick)[0]
    assert noisy.card == kept.card
    assert [t["valid"] for t in noisy.metrics["selection"]["trials"]] == \
        [t["valid"] for t in kept.metrics["selection"]["trials"]]
    assert noisy.metrics["test"]["recall@20"] != kept.metrics["test"]["recall@20"]


def test_a_split_without_validation_gets_one_carved_from_train(split):
    no_valid = dataclasses.replace(split, valid=None)
    chooser = select.selection_split(no_valid)
    assert chooser.test is None and len(chooser.valid) > 0
    assert len(chooser.train) + len(chooser.valid) == len(split.train)


def test_a_budget_that_is_no_duration_is_one_error_and_a_short_one_still_fits_the_cheapest(split, caplog):
    with pytest.raises(ConfigError, match="time_budget=-1 is invalid: must be > 0 seconds"):
        select.select_model(split, time_budget=-1)
    checkpoint, _, trials = select.select_model(split, time_budget=1e-3, trained=_quick)
    assert trials[0].valid and all(t.valid is None and t.note.startswith("skipped") for t in trials[1:])
    assert checkpoint.card == trials[0].card and "budget" in caplog.text
