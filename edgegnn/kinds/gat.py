"""Graph attention on the device: one masked softmax over the history (`edgegnn.models.gat`).

Users have no parameters, and an item's attention logit is the same for every user, so the
device runs the trained layer itself:
    α_h = softmax_{h∈history}(a_h),   e_u = Σ_h α_h m_h + bias,   s = e_u · itemᵀ
Tables: `message` [I, d + 1] (gathered): each item's message m_i, with its attention logit a_i
as the last column, so that every pass that rewrites an item table (int8 rows, low rank,
pruned items) carries the logit along with its row; `item` [I, d] (scored: the items' x);
`bias` [d]. No e_u⁰: a new user is served exactly like a known one.
"""

from __future__ import annotations

import numpy as np

NAME = "gat"
TABLES = ("message", "item")
HISTORY_TABLES = ("message",)
WEIGHTS = ()
ACTIVATIONS = ()
USER_BASE = False          # users have no parameters


def encode(ops, params):
    """e_u [B, d] = Σ_h softmax(a)_h · m_h + bias."""
    return ops.add(ops.history_attention("message"), ops.bias("bias"))


def base_dim(tensors) -> int:
    """No e_u⁰ (0): users have no embedding."""
    return 0


def fold(model, graph, item_ids):
    """The EdgeModel of a trained `edgegnn.models.gat.GATRecommender` (torch, no grad)."""
    from edgegnn.edge_model import EdgeModel
    from edgegnn.tensors import DenseTensor

    message, logit = model.item_terms()
    table = np.hstack([message.detach().numpy(), logit.detach().numpy()[:, None]]).astype(np.float32)
    return EdgeModel(kind=NAME, item_ids=np.asarray(item_ids), params={},
                     tensors={"message": DenseTensor(table),
                              "item": DenseTensor(model.ego_embeddings.detach().numpy().astype(np.float32)),
                              "bias": DenseTensor(model.conv.bias.detach().numpy().astype(np.float32))})


def build_model(config, num_users: int, num_items: int):
    """The torch module that trains this kind (`edgegnn.models.gat`)."""
    from edgegnn.models.gat import GATRecommender

    return GATRecommender(num_users, num_items, config)
