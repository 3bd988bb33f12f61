"""The item fold's score calibration: fitted rows that score too high (or too low) are scaled
back so that they take as many top-k places as trained rows."""

from __future__ import annotations

import numpy as np
import pytest

from edgegnn.catalog.fold import _keep_columns, _score_scale, encode_users
from edgegnn.catalog.update import _history


@pytest.mark.parametrize("inflation", [2.0, 0.6])
def test_rows_scaled_by_c_are_calibrated_back_by_about_one_over_c(full_model, small_split, inflation):
    edge = full_model
    history = _history(small_split.train, {str(raw): r for r, raw in enumerate(edge.item_ids)}, edge.num_items)
    check = np.sort(np.random.default_rng(1).choice(edge.num_items, 40, replace=False))
    kept = np.ones(edge.num_items, bool)
    kept[check] = False
    vectors, _ = encode_users(edge, _keep_columns(history, kept))         # the check items out of the histories
    fitted = inflation * edge.tensors["item"].to_dense()[check]
    gamma = _score_scale(edge, vectors, history, check, fitted, seed=0)
    assert gamma == pytest.approx(1.0 / inflation, rel=0.1)

