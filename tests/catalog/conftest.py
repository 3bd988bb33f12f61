"""A catalog to update: the trained test LightGCN (int8 rows) with 40 of its items taken out
(the "base"), and those items' training interactions as the CSV `update` reads."""

from __future__ import annotations

import numpy as np
import pytest

from tests.export import fixtures
from tests.export.fixtures import int8_model

trained = fixtures.trained          # the shared trained LightGCN fixture (cached per process)

HELD_OUT = 40


@pytest.fixture(scope="session")
def full_model(trained, small_split):
    """The trained LightGCN with per-row int8 tables (every item)."""
    from edgegnn.fold import fold

    return int8_model(fold(trained[0]), small_split)


@pytest.fixture(scope="session")
def held_out(full_model):
    """Raw ids of HELD_OUT seeded catalog items."""
    rows = np.random.default_rng(0).choice(full_model.num_items, HELD_OUT, replace=False)
    return [str(full_model.item_ids[r]) for r in rows]


@pytest.fixture(scope="session")
def base_model(full_model, held_out, small_split):
    """The full model without the held-out items (their rows taken out by `update_model`)."""
    from edgegnn.catalog.update import update_model

    return update_model(full_model, small_split.train, None, held_out)[0]


@pytest.fixture(scope="session")
def new_csv(small_split, held_out, tmp_path_factory):
    """The held-out items' training interactions: user,item with raw ids."""
    train = small_split.train
    rows = np.flatnonzero(np.isin(train.item_ids[train.items].astype(str), held_out))
    path = tmp_path_factory.mktemp("catalog") / "new_items.csv"
    path.write_text("user,item\n" + "".join(f"{train.user_ids[train.users[r]]},{train.item_ids[train.items[r]]}\n"
                                            for r in rows))
    return path
