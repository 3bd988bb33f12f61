"""Shared fixtures: small synthetic splits that train in about a second."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def small_split():
    from edgegnn.data import load_dataset

    return load_dataset("synthetic:users=1000,items=800,seed=3", valid_ratio=0.1, seed=0)


@pytest.fixture(scope="session")
def small_graph(small_split):
    from edgegnn.models.graph import BipartiteGraph

    return BipartiteGraph.from_interactions(small_split.train)
