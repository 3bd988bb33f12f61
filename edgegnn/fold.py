"""Fold a trained GNN recommender into the `EdgeModel` that runs on the device.

The server precomputes everything but the user's own layer (../shared/DESIGN.md); each model
kind says how (`edgegnn.kinds.<kind>.fold`): LightGCN, being linear, folds its whole
propagation into a per-item message table (a training user's embedding is reproduced to float
rounding); SAGE folds its last two aggregations and keeps its dense weights for the device.
The EdgeModel carries the checkpoint's training data record (`edgegnn.data.provenance`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgegnn.edge_model import EdgeModel
from edgegnn.kinds import has_user_base, kind


def fold(checkpoint) -> EdgeModel:
    """The EdgeModel of a trained checkpoint (`edgegnn.train.checkpoint.Checkpoint`)."""
    import torch

    model, graph = checkpoint.build()
    with torch.no_grad():
        edge = kind(checkpoint.card.model.type).fold(model, graph, checkpoint.train.item_ids)
    data = getattr(checkpoint, "data", None)
    return edge if data is None else dataclasses.replace(edge, data=data.to_dict())


def user_bases(checkpoint) -> np.ndarray | None:
    """e_u⁰ of the checkpoint's training users, float32 [U, d] (the optional device input), or
    None for a kind with no per-user input (graph filters, graph attention)."""
    if not has_user_base(checkpoint.card.model.type):
        return None
    weight = checkpoint.state_dict.get("gnn.embedding.weight", checkpoint.state_dict.get("embedding.weight"))
    return weight[: checkpoint.train.num_users].numpy().astype(np.float32)
