"""LightGCN over one rank's block of users and a replica of every item.

With users split into blocks B_r and Â = D^-½ A D^-½ (global degrees), one propagation is
    E^{l+1}_u = Σ_i Â_ui E^l_i                  for u in B_r: local, every item is here
    E^{l+1}_i = Σ_r Σ_{u in B_r} Â_iu E^l_u     a partial sum per rank, then an all-reduce
Each rank therefore multiplies by its own Â_r (its users' rows and columns, every item's)
and all-reduces the item rows: one [I, d] all-reduce per layer forward and one per layer
backward. The parameters are one table [U_r + I, d], the rank's users then every item, laid
out like the single-process model's [U + I, d] so that one rank computes exactly what the
plain path does. The replicated item rows receive each rank's part of their gradient;
`reduce_item_gradients` sums them before the optimizer steps (what DDP does for a replica).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from edgegnn.distributed.context import all_reduce_sum
from edgegnn.models.graph import ConstantSpMM, sparse_csr


def inverse_sqrt_degrees(degrees: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """D^-½ [n] in `dtype` as PyG's gcn_norm computes it (isolated nodes: 0), so that one rank's
    Â_r holds the same bits as the single-process Â."""
    scaled = torch.from_numpy(np.asarray(degrees)).to(dtype).pow(-0.5)
    return scaled.masked_fill(scaled == float("inf"), 0.0)


def local_adjacency(users: np.ndarray, items: np.ndarray, num_local_users: int, num_items: int,
                    user_scale: torch.Tensor, item_scale: torch.Tensor) -> torch.Tensor:
    """Â_r, sparse CSR [U_r + I, U_r + I]: the rank's edges in both directions.

    Args:
        users: int64 [E_r] local user index (0..U_r-1) of each unique training pair.
        items: int64 [E_r] item index of each pair.
        user_scale: [E_r] D_u^-½ of each pair's user; item_scale: [E_r] D_i^-½ of its item.
    """
    users_t = torch.from_numpy(users).long()
    items_t = torch.from_numpy(items).long() + num_local_users
    edge_index = torch.cat([torch.stack([users_t, items_t]), torch.stack([items_t, users_t])], dim=1)
    weight = torch.cat([user_scale * item_scale, item_scale * user_scale])
    return sparse_csr(edge_index, weight, num_local_users + num_items)


class ShardedLightGCN(torch.nn.Module):
    """LightGCN on one rank (module docstring).

    Args:
        table: [U_r + I, d] initial ego rows: the rank's users (renumbered order), then every item.
        adjacency: Â_r (`local_adjacency`).
        alpha: [L + 1] the layer weights (the single-process model's buffer).
        num_local_users: U_r.
    """

    def __init__(self, table: torch.Tensor, adjacency: torch.Tensor, alpha: torch.Tensor, num_local_users: int):
        super().__init__()
        self.table = torch.nn.Parameter(table.clone())
        self.register_buffer("alpha", alpha.clone())
        self.adjacency = adjacency
        self.num_local_users = num_local_users

    @property
    def num_layers(self) -> int:
        return len(self.alpha) - 1

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings of the rank's users [U_r, d] and of every item [I, d]."""
        layers = [self.table]
        for _ in range(self.num_layers):
            partial = ConstantSpMM.apply(self.adjacency, self.adjacency, layers[-1])
            users, items = partial[:self.num_local_users], partial[self.num_local_users:]
            layers.append(torch.cat([users, all_reduce_sum(items)]))
        final = sum(alpha * layer for alpha, layer in zip(self.alpha, layers))
        return final[:self.num_local_users], final[self.num_local_users:]

    def penalized_rows(self, rank: int) -> torch.Tensor:
        """The ego rows whose L2 penalty this rank adds: its users, and on rank 0 every item (the
        replicas are penalized once)."""
        return self.table if rank == 0 else self.table[:self.num_local_users]

    def touched_ego(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        """The ego rows a mini-batch part of (local users, items) touched, for its L2 penalty."""
        return [self.table[users], self.table[items + self.num_local_users]]

    def reduce_item_gradients(self) -> None:
        """Sum the item rows' gradient over ranks (each rank holds its part of dL/dE⁰_items)."""
        if self.table.grad is not None:
            items = self.table.grad[self.num_local_users:]
            dist.all_reduce(items)
