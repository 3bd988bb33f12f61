"""LightGCN on PyTorch Geometric, with propagation over a precomputed CSR adjacency.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020. With ego embeddings E⁰ ∈ R^{(U+I)×d} and Â = D^{-1/2} A D^{-1/2}:
    E^{l+1} = Â E^l,    E = Σ_{l=0..L} α_l E^l (α_l = 1/(L+1)),    s_ui = e_u · e_i.
The parameters live in PyG's `LightGCN` module (`embedding`, `alpha`), so a state dict
trained with PyG elsewhere loads as it is; only the propagation is ours, because PyG's
`LGConv` re-normalizes `edge_index` and scatters on every call.
"""

from __future__ import annotations

import torch

from edgegnn.models.card import LightGCNConfig
from edgegnn.models.graph import BipartiteGraph, propagate_sym


class LightGCNRecommender(torch.nn.Module):
    """LightGCN for a bipartite user-item graph.

    Args:
        num_users: U; users are nodes 0..U-1.
        num_items: I; items are nodes U..U+I-1.
        config: architecture (embedding_dim, num_layers, init_std).
    """

    def __init__(self, num_users: int, num_items: int, config: LightGCNConfig):
        super().__init__()
        from torch_geometric.nn.models import LightGCN

        self.num_users = num_users
        self.num_items = num_items
        self.config = config
        self.gnn = LightGCN(num_users + num_items, config.embedding_dim, config.num_layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.gnn.embedding.weight, std=self.config.init_std)

    @property
    def ego_embeddings(self) -> torch.Tensor:
        """E⁰, float32 [U+I, d]."""
        return self.gnn.embedding.weight

    def layer_embeddings(self, graph: BipartiteGraph) -> list[torch.Tensor]:
        """[E⁰, E¹, ..., E^L], each float32 [U+I, d]."""
        layers = [self.ego_embeddings]
        for _ in range(self.config.num_layers):
            layers.append(propagate_sym(graph, layers[-1]))
        return layers

    def forward(self, graph: BipartiteGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings (users [U, d], items [I, d]); scores are their dot products."""
        layers = self.layer_embeddings(graph)
        final = sum(alpha * layer for alpha, layer in zip(self.gnn.alpha, layers))
        return final[: self.num_users], final[self.num_users:]

    def regularized_parameters(self) -> list[torch.Tensor]:
        return [self.ego_embeddings]

    def touched_ego(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        """The ego rows a mini-batch of (users, items) indices touched (for its L2 penalty)."""
        return [self.ego_embeddings[users], self.ego_embeddings[items + self.num_users]]

    def load_pyg_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a state dict of `torch_geometric.nn.models.LightGCN` (keys `embedding.weight`, `alpha`)."""
        self.gnn.load_state_dict(state)
