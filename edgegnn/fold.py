"""Fold a trained GNN recommender into the `EdgeModel` that runs on the device.

LightGCN is linear, so the server can precompute everything but the user's own layer
(../shared/DESIGN.md). With e_u = Σ_{l=0..L} α_l e_u^l and e_u^{l+1} = Σ_{i∈N(u)} e_i^l / sqrt(|N(u)||N(i)|):
    e_u = α_0 e_u⁰ + (1 / sqrt(|N(u)|)) Σ_{i∈N(u)} message_i,
    message_i = (Σ_{l<L} α_{l+1} e_i^l) / sqrt(|N(i)|).
The per-item norm 1/sqrt(|N(i)|) is folded into message_i: it saves the device a gather
and a multiply, and per-row int8 scales absorb it anyway. For a training user whose
history is N(u) this reproduces the trained embedding exactly (up to float rounding).

SAGE folds its last two aggregations: the device recomputes h¹_u and h²_u from the
history with the trained weights; the item-side tables (e⁰_i, h¹_i, h²_i) come from the
full training graph.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgegnn.edge_model import EdgeModel
from edgegnn.tensors import DenseTensor


def fold(checkpoint) -> EdgeModel:
    """The EdgeModel of a trained checkpoint (`edgegnn.train.checkpoint.Checkpoint`)."""
    import torch

    model, graph = checkpoint.build()
    with torch.no_grad():
        if checkpoint.card.model.type == "lightgcn":
            edge = _fold_lightgcn(model, graph, checkpoint.train.item_ids)
        else:
            edge = _fold_sage(model, graph, checkpoint.train.item_ids)
    data = getattr(checkpoint, "data", None)
    return edge if data is None else dataclasses.replace(edge, data=data.to_dict())


def _fold_lightgcn(model, graph, item_ids) -> EdgeModel:
    layers = model.layer_embeddings(graph)
    alpha = model.gnn.alpha.tolist()
    users = graph.num_users
    item_layers = [layer[users:] for layer in layers]
    final = sum(a * layer for a, layer in zip(alpha, item_layers))
    message = sum(a * layer for a, layer in zip(alpha[1:], item_layers[:-1]))
    degree = graph.degrees[users:].clamp(min=1)
    message = message / degree.sqrt()[:, None]
    return EdgeModel(
        kind="lightgcn",
        tensors={"message": DenseTensor(message.numpy().astype(np.float32)),
                 "item": DenseTensor(final.numpy().astype(np.float32))},
        item_ids=np.asarray(item_ids),
        params={"a0": float(alpha[0]), "num_layers": len(alpha) - 1},
    )


def _fold_sage(model, graph, item_ids) -> EdgeModel:
    users = graph.num_users
    ego = model.ego_embeddings
    hidden = model.hidden(graph)
    _, final_items = model(graph)

    def dense(t) -> DenseTensor:
        return DenseTensor(t.detach().numpy().astype(np.float32))

    return EdgeModel(
        kind="sage",
        tensors={
            "ego": dense(ego[users:]), "hidden": dense(hidden[users:]), "item": dense(final_items),
            "w1_self": dense(model.conv1.lin_r.weight), "w1_neigh": dense(model.conv1.lin_l.weight),
            "b1": dense(model.conv1.lin_l.bias),
            "w2_self": dense(model.conv2.lin_r.weight), "w2_neigh": dense(model.conv2.lin_l.weight),
            "b2": dense(model.conv2.lin_l.bias),
        },
        item_ids=np.asarray(item_ids),
        params={},
    )


def user_bases(checkpoint) -> np.ndarray:
    """e_u⁰ of the checkpoint's training users, float32 [U, d] (the optional device input)."""
    weight = checkpoint.state_dict.get("gnn.embedding.weight", checkpoint.state_dict.get("embedding.weight"))
    return weight[: checkpoint.train.num_users].numpy().astype(np.float32)
