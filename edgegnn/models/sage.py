"""A GraphSAGE recommender with dense weights, built from PyG's `SAGEConv`.

Hamilton et al., "Inductive Representation Learning on Large Graphs", NeurIPS 2017,
applied to the user-item graph (as in PinSage-style recommenders). With ego embeddings
E⁰ and the neighbour mean M = D^{-1} A:
    H¹ = ReLU(E⁰ W¹_selfᵀ + (M E⁰) W¹_nbᵀ + b¹)
    H² =      H¹ W²_selfᵀ + (M H¹) W²_nbᵀ + b²
    s_ui = h²_u · h²_i
The weights are two PyG `SAGEConv` layers (`lin_r` is W_self, `lin_l` is W_nb and carries
the bias). The neighbour means are computed over a CSR matrix built once, for the same
reason as in LightGCN (PyG's scatter path re-does the work per call); a test checks the
result equals `SAGEConv.forward` on `edge_index`.

On the device a user's h¹_u and h²_u come from the user's own history (the mean over the
history items' e⁰_i and h¹_i), so W¹ and W² run on the device.
"""

from __future__ import annotations

import torch

from edgegnn.models.card import SAGEConfig
from edgegnn.models.graph import BipartiteGraph, propagate_mean


class SAGERecommender(torch.nn.Module):
    """Two-layer mean-aggregation GraphSAGE over users 0..U-1 and items U..U+I-1.

    Args:
        num_users: U.
        num_items: I.
        config: embedding_dim, hidden_dim, init_std.
    """

    def __init__(self, num_users: int, num_items: int, config: SAGEConfig):
        super().__init__()
        from torch_geometric.nn import SAGEConv

        self.num_users = num_users
        self.num_items = num_items
        self.config = config
        self.embedding = torch.nn.Embedding(num_users + num_items, config.embedding_dim)
        self.conv1 = SAGEConv(config.embedding_dim, config.hidden_dim, aggr="mean")
        self.conv2 = SAGEConv(config.hidden_dim, config.embedding_dim, aggr="mean")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.embedding.weight, std=self.config.init_std)
        self.conv1.reset_parameters()
        self.conv2.reset_parameters()

    @property
    def ego_embeddings(self) -> torch.Tensor:
        return self.embedding.weight

    @staticmethod
    def _sage_layer(conv, x: torch.Tensor, neighbour_mean: torch.Tensor) -> torch.Tensor:
        return conv.lin_l(neighbour_mean) + conv.lin_r(x)

    def hidden(self, graph: BipartiteGraph) -> torch.Tensor:
        """H¹, float32 [U+I, hidden_dim]."""
        x = self.ego_embeddings
        return torch.relu(self._sage_layer(self.conv1, x, propagate_mean(graph, x)))

    def forward(self, graph: BipartiteGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings H² split into users [U, d] and items [I, d]."""
        h1 = self.hidden(graph)
        h2 = self._sage_layer(self.conv2, h1, propagate_mean(graph, h1))
        return h2[: self.num_users], h2[self.num_users:]

    def regularized_parameters(self) -> list[torch.Tensor]:
        return [self.ego_embeddings]

    def touched_ego(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        """The ego rows a mini-batch of (users, items) indices touched (for its L2 penalty)."""
        return [self.ego_embeddings[users], self.ego_embeddings[items + self.num_users]]
