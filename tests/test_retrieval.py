"""Inverted lists: every item in one list within capacity, deterministic, exact when every list is
probed, and values laid out list by list (the nprobe choice: tests/compress/test_inverted.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edgegnn.errors import ConfigError
from edgegnn.metrics import top_k
from edgegnn.retrieval import PAD, build_lists, exact_top, in_lists, overlap


@pytest.fixture(scope="module")
def catalog():
    """6,000 items in 40 uneven clusters (d=16) and 200 queries."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((40, 16)) * 3
    sizes = rng.dirichlet(np.ones(40) * 0.7) * 6000
    owner = np.repeat(np.arange(40), np.maximum(sizes.astype(int), 1))[:6000]
    owner = np.r_[owner, rng.integers(0, 40, 6000 - len(owner))]
    items = (centers[owner] + rng.standard_normal((6000, 16))).astype(np.float32)
    queries = (centers[rng.integers(0, 40, 200)] + rng.standard_normal((200, 16))).astype(np.float32)
    return items, queries


def test_every_item_is_in_one_list_within_capacity(catalog):
    items, _ = catalog
    inverted = build_lists(items, 64, slack=1.2, seed=3)
    rows = inverted.rows
    assert rows.shape == (64, int(np.ceil(1.2 * 6000 / 64)))
    placed = rows[rows != PAD]
    assert np.array_equal(np.sort(placed), np.arange(6000))                     # each item exactly once
    for row in rows:                                                            # padding only at the end
        filled = np.flatnonzero(row != PAD)
        assert filled.size == 0 or filled[-1] == filled.size - 1
    again = build_lists(items, 64, slack=1.2, seed=3)
    assert np.array_equal(again.rows, rows) and np.array_equal(again.centroids, inverted.centroids)


def search(inverted, items, queries, nprobe: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top k of the probed lists (rows, -1 where they hold fewer) and the candidates' scores."""
    scores = inverted.keep_candidates(queries, nprobe, queries @ items.T)
    return top_k(scores, k), scores


def test_lists_follow_the_clusters_and_probing_all_is_exact(catalog):
    items, queries = catalog
    inverted = build_lists(items, 64, seed=0)
    exact = exact_top(items, queries, 20)
    found, scores = search(inverted, items, queries, 64, 20)
    assert np.array_equal(found, exact) and np.isfinite(scores).all()
    overlaps = [overlap(search(inverted, items, queries, p, 20)[0], exact) for p in (1, 4, 16)]
    assert overlaps[0] < overlaps[1] < overlaps[2] and overlaps[2] > 0.9, overlaps
    touched = 4 * inverted.capacity / len(items)
    assert overlaps[1] > 0.5 and touched < 0.1            # a few % of the catalog finds most of the top 20


def test_values_laid_out_list_by_list(catalog):
    items, _ = catalog
    inverted = build_lists(items[:500], 8, seed=1)
    laid = in_lists(items[:500], inverted.rows)
    assert laid.shape == inverted.rows.shape + (16,)
    real = inverted.rows >= 0
    np.testing.assert_array_equal(laid[real], items[:500][inverted.rows[real]])
    assert not laid[~real].any()


def test_a_short_list_pads_and_bad_settings_are_one_line(catalog):
    items, queries = catalog
    small = build_lists(items[:30], 8, slack=2.0)
    found, scores = search(small, items[:30], queries[:3], 1, 20)   # one list: fewer than 20 items
    assert (found == PAD).any()
    for row, picked in zip(scores, found):       # every real pick is one of the probed list's items, best first
        real = picked[picked >= 0]
        assert len(real) == np.isfinite(row).sum() and np.isfinite(row[real]).all()
        assert (np.diff(row[real]) <= 0).all()
    for nprobe in (0, 9, 1.5, True):
        with pytest.raises(ConfigError, match=r"nprobe=.* is invalid: an integer in \[1, 8\]"):
            small.probe(queries[:1], nprobe)
    with pytest.raises(ConfigError, match="lists=0 is invalid"):
        build_lists(items, 0)
    with pytest.raises(ConfigError, match="slack=0.5 is invalid"):
        build_lists(items, 8, slack=0.5)
