"""Tiny artifacts for the profile tests: a random LightGCN EdgeModel (150 items, width 8), no training."""

from __future__ import annotations

import numpy as np
import pytest

from tests.export.fixtures import artifacts, trained  # noqa: F401 -- shared fixtures (trained, exported)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Artifact folder by target name (cpu-x86_64, android-litert, arm64-linux, cuda), exported on demand."""
    from edgegnn.edge_model import EdgeModel
    from edgegnn.export import export
    from edgegnn.tensors import DenseTensor

    rng = np.random.default_rng(0)
    items, dim = 150, 8
    edge = EdgeModel(kind="lightgcn", item_ids=np.array([f"i{i}" for i in range(items)]), params={"a0": 0.25},
                     tensors={"message": DenseTensor((rng.standard_normal((items, dim)) * 0.1).astype(np.float32)),
                              "item": DenseTensor((rng.standard_normal((items, dim)) * 0.1).astype(np.float32))})
    root = tmp_path_factory.mktemp("tiny-artifacts")
    made = {}

    def get(target: str = "cpu-x86_64"):
        if target not in made:
            made[target] = export(edge, target, out_dir=root / target)
        return made[target]

    return get
