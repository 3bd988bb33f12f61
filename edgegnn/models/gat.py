"""A graph-attention recommender on PyTorch Geometric: users attend over the items they touched.

One attention layer (PyG `GATConv`, or `GATv2Conv`) from items to users over the training graph.
Items have learned ego embeddings x_i [d]; users have none (their input is zero), so a user is
the attention-weighted sum of its items and nothing else:
    m_i = W x_i (+ b_l for GATv2)                                  the message of item i
    a_i = LeakyReLU(attᵀ m_i)           GATConv (the user side, att_dstᵀ W·0, is 0)
        = attᵀ LeakyReLU(m_i + b_r)     GATv2Conv (the user side is lin_r(0) = b_r)
    e_u = Σ_{i∈N(u)} softmax_{i∈N(u)}(a_i) · m_i + bias,    s_ui = e_u · x_i
With no user input, the attention logit of an item is the same for every user: what the device
ships per item (`edgegnn.kinds.gat`), which therefore reproduces the trained model exactly for
every user, new ones included. The layer is PyG's own; `item_terms` reads its parameters.
"""

from __future__ import annotations

import torch

from edgegnn.models.card import GATConfig
from edgegnn.models.graph import BipartiteGraph


class GATRecommender(torch.nn.Module):
    """Items: nodes 0..I-1 of the source side; users: 0..U-1 of the target side."""

    def __init__(self, num_users: int, num_items: int, config: GATConfig):
        super().__init__()
        from torch_geometric.nn import GATConv, GATv2Conv

        self.num_users, self.num_items, self.config = num_users, num_items, config
        d = config.embedding_dim
        self.item_embedding = torch.nn.Embedding(num_items, d)
        if config.attention == "gatv2":
            self.conv = GATv2Conv((d, d), d, heads=1, add_self_loops=False, negative_slope=config.negative_slope)
        else:
            self.conv = GATConv((d, d), d, heads=1, add_self_loops=False, negative_slope=config.negative_slope)
        torch.nn.init.normal_(self.item_embedding.weight, std=config.init_std)

    @property
    def ego_embeddings(self) -> torch.Tensor:
        """The items' x [I, d] (users have none)."""
        return self.item_embedding.weight

    def regularized_parameters(self) -> list[torch.Tensor]:
        return [self.ego_embeddings]

    def touched_ego(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        """The ego rows a mini-batch touched (for its L2 penalty): its items' (users have none)."""
        return [self.ego_embeddings[items]]

    def forward(self, graph: BipartiteGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """(users e_u [U, d], items x [I, d]); scores are their dot products."""
        items = self.ego_embeddings
        zeros = items.new_zeros(graph.num_users, items.shape[1])
        users = self.conv((items, zeros), item_to_user(graph))
        return users, items

    def item_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(m [I, d], a [I]): each item's message and attention logit (module docstring)."""
        conv, x = self.conv, self.ego_embeddings
        slope = self.config.negative_slope
        if self.config.attention == "gatv2":
            message = conv.lin_l(x)
            logit = (torch.nn.functional.leaky_relu(message + conv.lin_r.bias, slope) * conv.att[0, 0]).sum(-1)
        else:
            message = conv.lin_src(x)
            logit = torch.nn.functional.leaky_relu((message * conv.att_src[0, 0]).sum(-1), slope)
        return message, logit


def item_to_user(graph: BipartiteGraph) -> torch.Tensor:
    """int64 [2, E]: (item index, user index) of every training edge, PyG's bipartite source ->
    target layout (the graph's edge_index holds users first, items offset by U)."""
    edges = graph.edge_index.shape[1] // 2
    users, items = graph.edge_index[0, :edges], graph.edge_index[1, :edges] - graph.num_users
    return torch.stack([items, users])
