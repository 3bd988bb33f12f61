"""GraphSAGE on the device: its tables, its fold and its device math (Hamilton et al., NeurIPS 2017).

Two mean-aggregation SAGE layers (PyG `SAGEConv`, dense weights); the device runs the user's
own two aggregations over the history and both dense layers:
    h¹_u = ReLU(w1_self e_u⁰ + w1_neigh mean_{i∈history} ego_i + b1)
    e_u  = w2_self h¹_u + w2_neigh mean_{i∈history} hidden_i + b2
    s    = e_u · itemᵀ
Tables: `ego` [I, d], `hidden` [I, h] (gathered), `item` [I, d] (scored); weights `w1_self`,
`w1_neigh` [h, d], `b1` [h], `w2_self`, `w2_neigh` [d, h], `b2` [d]. h¹ may carry a static
scale (activation "h1", calibrated by the quantize pass).
"""

from __future__ import annotations

import numpy as np

NAME = "sage"
TABLES = ("ego", "hidden", "item")
HISTORY_TABLES = ("ego", "hidden")
WEIGHTS = ("w1_self", "w1_neigh", "w2_self", "w2_neigh")
ACTIVATIONS = ("h1",)


def encode(ops, params):
    """e_u [B, d] (module docstring); e_u⁰ = 0 for a new user (its term left out)."""
    h1 = ops.add(ops.matmul_t(ops.history_pool("ego", "mean"), "w1_neigh"), ops.bias("b1"))
    base = ops.user_base()
    if base is not None:
        h1 = ops.add(h1, ops.matmul_t(base, "w1_self"))
    h1 = ops.activation("h1", ops.relu(h1))
    out = ops.add(ops.matmul_t(h1, "w2_self"), ops.matmul_t(ops.history_pool("hidden", "mean"), "w2_neigh"))
    return ops.add(out, ops.bias("b2"))


def base_dim(tensors) -> int:
    """d⁰: the width of the e_u⁰ input (w1_self's input side)."""
    return int(tensors["w1_self"].shape[1])


def fold(model, graph, item_ids):
    """The EdgeModel of a trained `edgegnn.models.sage.SAGERecommender` (torch, no grad)."""
    from edgegnn.edge_model import EdgeModel
    from edgegnn.tensors import DenseTensor

    users = graph.num_users
    hidden = model.hidden(graph)
    _, final_items = model(graph)

    def dense(t) -> DenseTensor:
        return DenseTensor(t.detach().numpy().astype(np.float32))

    return EdgeModel(
        kind=NAME,
        tensors={
            "ego": dense(model.ego_embeddings[users:]), "hidden": dense(hidden[users:]), "item": dense(final_items),
            "w1_self": dense(model.conv1.lin_r.weight), "w1_neigh": dense(model.conv1.lin_l.weight),
            "b1": dense(model.conv1.lin_l.bias),
            "w2_self": dense(model.conv2.lin_r.weight), "w2_neigh": dense(model.conv2.lin_l.weight),
            "b2": dense(model.conv2.lin_l.bias),
        },
        item_ids=np.asarray(item_ids),
        params={},
    )


def build_model(config, num_users: int, num_items: int):
    """The torch module that trains this kind (`edgegnn.models.sage`)."""
    from edgegnn.models.sage import SAGERecommender

    return SAGERecommender(num_users, num_items, config)
