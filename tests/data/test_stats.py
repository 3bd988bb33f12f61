"""describe(): exact numbers on a tiny split, JSON-serializable."""

from __future__ import annotations

import json

import numpy as np

from edgegnn.data import Interactions, Split, describe


def test_describe_tiny_split():
    ids = np.array(["a", "b", "c", "d"])

    def inter(users, items):
        return Interactions(np.array(users), np.array(items), ids, ids)

    split = Split(train=inter([0, 0, 0, 1, 2], [0, 1, 2, 0, 0]), test=inter([0, 1], [3, 1]),
                  valid=inter([2], [1]), source="here", skipped={"x": 2})
    stats = describe(split)
    assert stats["users"] == 4 and stats["items"] == 4 and stats["source"] == "here"
    assert stats["interactions"] == 8
    assert (stats["train"], stats["valid"], stats["test"]) == (5, 1, 2)
    assert stats["density"] == 0.5
    # train user degrees [3, 1, 1, 0]; item degrees [3, 1, 1, 0]
    degree = stats["user_degree"]
    assert np.allclose([degree["p50"], degree["p90"], degree["p99"]], [1.0, 2.4, 2.94])
    assert degree["max"] == 3 and type(degree["max"]) is int
    assert stats["item_degree"]["max"] == 3
    assert stats["users_without_train"] == 1 and stats["items_without_train"] == 1
    assert stats["skipped"] == {"x": 2}
    assert json.loads(json.dumps(stats)) == stats
    assert describe(Split(train=split.train, test=split.test))["valid"] == 0
