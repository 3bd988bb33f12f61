"""Tests of edgegnn.compress. Small random EdgeModels for tests that need no training."""

from __future__ import annotations

import dataclasses

import numpy as np

from edgegnn.compress import Calibration
from edgegnn.edge_model import EdgeModel
from edgegnn.tensors import DenseTensor

NUM_ITEMS, DIM, HIDDEN = 120, 16, 12


def one_torch_thread():
    """Run a test module with one torch thread (restored after): on a busy 2-core machine,
    torch's spinning worker threads make small distillations 10-30x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_edge(kind: str, *, num_items: int = NUM_ITEMS, dim: int = DIM, hidden: int = HIDDEN,
                seed: int = 0) -> EdgeModel:
    """A random fp32 EdgeModel of `kind` ("lightgcn" or "sage"); item rows with a popularity trend."""
    rng = np.random.default_rng(seed)

    def dense(*shape: int) -> DenseTensor:
        return DenseTensor(rng.normal(size=shape).astype(np.float32))

    item_ids = np.array([f"i{i}" for i in range(num_items)])
    if kind == "lightgcn":
        tensors = {"message": dense(num_items, dim), "item": dense(num_items, dim)}
        return EdgeModel("lightgcn", tensors, item_ids, params={"a0": 0.25, "num_layers": 3})
    tensors = {"ego": dense(num_items, dim), "hidden": dense(num_items, hidden), "item": dense(num_items, dim),
               "w1_self": dense(hidden, dim), "w1_neigh": dense(hidden, dim), "b1": dense(hidden),
               "w2_self": dense(dim, hidden), "w2_neigh": dense(dim, hidden), "b2": dense(dim)}
    return EdgeModel("sage", tensors, item_ids)


def random_calibration(edge: EdgeModel, *, num_users: int = 40, seed: int = 1) -> Calibration:
    rng = np.random.default_rng(seed)
    histories = tuple(np.sort(rng.choice(edge.num_items, rng.integers(2, 9), replace=False)) for _ in range(num_users))
    base = rng.normal(size=(num_users, edge.tensors["item"].shape[1] if edge.kind == "lightgcn"
                            else edge.tensors["ego"].shape[1])).astype(np.float32)
    return Calibration(histories=histories, item_ids=edge.item_ids,
                       popularity=rng.integers(0, 50, edge.num_items), user_base=base)


def snapshot(edge: EdgeModel) -> list[tuple[str, object]]:
    """Copies of everything an EdgeModel holds (every array of every stored tensor, ids, spec)."""
    out: list[tuple[str, object]] = []

    def visit(path: str, value) -> None:
        if isinstance(value, np.ndarray):
            out.append((path, value.copy()))
        elif dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                visit(f"{path}.{f.name}", getattr(value, f.name))
        else:
            out.append((path, repr(value)))

    for name in sorted(edge.tensors):
        visit(name, edge.tensors[name])
    out += [("item_ids", edge.item_ids.copy()), ("params", repr(dict(edge.params))),
            ("recipe", repr(edge.recipe)), ("scales", repr(dict(edge.activation_scales)))]
    return out


def same_snapshot(a, b) -> bool:
    if [k for k, _ in a] != [k for k, _ in b]:
        return False
    return all(np.array_equal(x, y) and getattr(x, "dtype", None) == getattr(y, "dtype", None)
               if isinstance(x, np.ndarray) else x == y for (_, x), (_, y) in zip(a, b))
