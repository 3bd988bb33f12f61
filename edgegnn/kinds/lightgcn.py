"""LightGCN on the device: its tables, its fold and its device math (He et al., SIGIR 2020).

LightGCN is linear, so everything a device needs is computed once on the server:
    e_u = a0 · e_u⁰ + (1/sqrt(n)) Σ_{i∈history} message_i        (n = |history|)
    s   = e_u · itemᵀ
with message_i = (Σ_{l<L} α_{l+1} e_i^l) / sqrt(|N(i)|) (the item side of the propagation,
with its degree norm folded in) and item_i = Σ_l α_l e_i^l. For a training user this is the
trained embedding to float rounding (with e_u⁰ as an input); a new user is served from the
first click (e_u⁰ = 0).

Tables: `message` [I, d] (gathered by history rows), `item` [I, d] (scored); optionally
`base_projection` [d, d'] when the tables were narrowed to d' columns (e_u⁰ · base_projection).
"""

from __future__ import annotations

import numpy as np

NAME = "lightgcn"
TABLES = ("message", "item")           # required; item-sized
HISTORY_TABLES = ("message",)          # gathered by the user's history rows
WEIGHTS = ()                           # dense weights that run on the device
ACTIVATIONS = ()                       # internal activations with a static scale (besides "user")


def encode(ops, params):
    """e_u [B, d] = (1/sqrt(n)) Σ_h message[h] (+ a0 · e_u⁰ [· base_projection])."""
    e_u = ops.history_pool("message", "sqrt")
    base = ops.user_base()
    if base is None:
        return e_u
    if ops.has("base_projection"):
        base = ops.matmul(base, "base_projection")
    return ops.add(e_u, ops.scale(base, float(params["a0"])))


def base_dim(tensors) -> int:
    """d⁰: the width of the e_u⁰ input (before an optional base projection)."""
    projection = tensors.get("base_projection")
    return int(projection.shape[0]) if projection is not None else int(tensors["item"].shape[1])


def fold(model, graph, item_ids):
    """The EdgeModel of a trained `edgegnn.models.lightgcn.LightGCNRecommender` (torch, no grad)."""
    from edgegnn.edge_model import EdgeModel
    from edgegnn.tensors import DenseTensor

    layers = model.layer_embeddings(graph)
    alpha = model.gnn.alpha.tolist()
    users = graph.num_users
    item_layers = [layer[users:] for layer in layers]
    final = sum(a * layer for a, layer in zip(alpha, item_layers))
    message = sum(a * layer for a, layer in zip(alpha[1:], item_layers[:-1]))
    degree = graph.degrees[users:].clamp(min=1)
    message = message / degree.sqrt()[:, None]
    return EdgeModel(
        kind=NAME,
        tensors={"message": DenseTensor(message.numpy().astype(np.float32)),
                 "item": DenseTensor(final.numpy().astype(np.float32))},
        item_ids=np.asarray(item_ids),
        params={"a0": float(alpha[0]), "num_layers": len(alpha) - 1},
    )


def build_model(config, num_users: int, num_items: int):
    """The torch module that trains this kind (`edgegnn.models.lightgcn`)."""
    from edgegnn.models.lightgcn import LightGCNRecommender

    return LightGCNRecommender(num_users, num_items, config)
