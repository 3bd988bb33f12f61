"""LightGCN over one rank's block of users and block of items.

Users and items are each split into blocks (B_r users, J_r items on rank r; `partition`), and
rank r holds the pairs of its users. With Â = D^-½ A D^-½ (global degrees) one propagation is
    E^{l+1}_u = Σ_{i ∈ H_r} Â_ui E^l_i            for u in B_r: the halo H_r (the items its pairs
                                                 touch) fetched from their owners first
    E^{l+1}_i = Σ_r Σ_{u ∈ B_r} Â_iu E^l_u         for i in J_r: each rank's partial sums over the
                                                 halo, scatter-added at the items' owners
(`edgegnn.distributed.halo`; the 1D owner-computes partition of CAGNET and DistGNN). A rank
keeps one table [U_r + I_r, d] (its users, then its items) and the two blocks of Â it needs:
Â_{B_r, H_r} [U_r, |H_r|] and its transpose. Each layer exchanges |H_r| rows each way, forward
and backward; no row is replicated, so every gradient lands on the one rank that steps it.
"""

from __future__ import annotations

import numpy as np
import torch

from edgegnn.distributed.halo import ExchangePlan, gather_rows, scatter_add_rows
from edgegnn.models.graph import ConstantSpMM, sparse_csr


def inverse_sqrt_degrees(degrees: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """D^-½ [n] in `dtype` as PyG's gcn_norm computes it (isolated nodes: 0), so that one rank's
    Â blocks hold the same bits as the single-process Â."""
    scaled = torch.from_numpy(np.asarray(degrees)).to(dtype).pow(-0.5)
    return scaled.masked_fill(scaled == float("inf"), 0.0)


def halo_adjacency(users: np.ndarray, halo_positions: np.ndarray, num_local_users: int, halo_size: int,
                   weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Â_{B_r,H_r} [U_r, |H_r|], its transpose [|H_r|, U_r]), sparse CSR.

    Args:
        users: int64 [E_r] local user index (0..U_r-1) of each unique training pair.
        halo_positions: int64 [E_r] each pair's item's position in the halo (0..|H_r|-1).
        weight: [E_r] D_u^-½ D_i^-½ of each pair.
    """
    rows, columns = torch.from_numpy(users).long(), torch.from_numpy(halo_positions).long()
    return (sparse_csr(torch.stack([rows, columns]), weight, (num_local_users, halo_size)),
            sparse_csr(torch.stack([columns, rows]), weight, (halo_size, num_local_users)))


class ShardedLightGCN(torch.nn.Module):
    """LightGCN on one rank (module docstring).

    Args:
        table: [U_r + I_r, d] initial ego rows: the rank's users, then its items (renumbered order).
        user_to_halo: Â_{B_r,H_r}; halo_to_user: its transpose (`halo_adjacency`).
        halo: the exchange plan of H_r.
        alpha: [L + 1] the layer weights (the single-process model's buffer).
        num_local_users: U_r.
    """

    def __init__(self, table: torch.Tensor, user_to_halo: torch.Tensor, halo_to_user: torch.Tensor,
                 halo: ExchangePlan, alpha: torch.Tensor, num_local_users: int):
        super().__init__()
        self.table = torch.nn.Parameter(table.clone())
        self.register_buffer("alpha", alpha.clone())
        self.user_to_halo, self.halo_to_user, self.halo = user_to_halo, halo_to_user, halo
        self.num_local_users = num_local_users

    @property
    def num_layers(self) -> int:
        return len(self.alpha) - 1

    @property
    def ego_items(self) -> torch.Tensor:
        """E⁰ of the rank's items [I_r, d] (a view of the table)."""
        return self.table[self.num_local_users:]

    def layers(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """([E⁰_u, ..., E^L_u] each [U_r, d], [E⁰_i, ..., E^L_i] each [I_r, d]) of the rank's rows."""
        users, items = [self.table[:self.num_local_users]], [self.ego_items]
        for _ in range(self.num_layers):
            halo = gather_rows(items[-1], self.halo)
            partial = ConstantSpMM.apply(self.halo_to_user, self.user_to_halo, users[-1])
            users.append(ConstantSpMM.apply(self.user_to_halo, self.halo_to_user, halo))
            items.append(scatter_add_rows(partial, self.halo))
        return users, items

    def combine(self, layers: list[torch.Tensor]) -> torch.Tensor:
        """Σ_l α_l E^l: the final embeddings of one kind of rows."""
        return sum(alpha * layer for alpha, layer in zip(self.alpha, layers))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings of the rank's users [U_r, d] and of its items [I_r, d]."""
        users, items = self.layers()
        return self.combine(users), self.combine(items)
