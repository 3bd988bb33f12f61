"""Shared fixtures: small synthetic splits that train in about a second, and the CPU emulators."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EMULATORS = Path(os.environ.pop("EDGEGNN_EMULATORS", None) or REPO / ".emulators")
# ^ popped: exports in the tests verify on this machine only, unless a test passes the emulators


@pytest.fixture(scope="session")
def small_split():
    from edgegnn.data import load_dataset

    return load_dataset("synthetic:users=1000,items=800,seed=3", valid_ratio=0.1, seed=0)


@pytest.fixture(scope="session")
def small_graph(small_split):
    from edgegnn.models.graph import BipartiteGraph

    return BipartiteGraph.from_interactions(small_split.train)


@pytest.fixture(scope="session")
def emulators():
    """The emulator folder (scripts/setup_emulators.sh; `make test` builds it). Missing, the CPU-matrix
    tests fail, unless EDGEGNN_SKIP_CPU_MATRIX=1 says to skip them on purpose."""
    from edgegnn.export.emulation import find_emulators

    if not (EMULATORS / "py-arm64").is_file():
        if os.environ.get("EDGEGNN_SKIP_CPU_MATRIX") == "1":
            pytest.skip("EDGEGNN_SKIP_CPU_MATRIX=1: the CPU matrix is skipped")
        pytest.fail(f"no emulator folder at {EMULATORS}: run scripts/setup_emulators.sh (make test does), "
                    "or set EDGEGNN_SKIP_CPU_MATRIX=1 to skip the CPU matrix")
    return find_emulators(EMULATORS)
