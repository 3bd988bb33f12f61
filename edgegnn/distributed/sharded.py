"""LightGCN, GraphSAGE and graph attention over one rank's block of users and block of items.

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
GraphSAGE (`ShardedSAGE`) exchanges the same halo with the neighbour mean D^-1 A in place of Â;
graph attention (`ShardedGAT`) fetches the halo once and attends over it on the users' rank.
"""

from __future__ import annotations

import abc
import copy
from dataclasses import dataclass

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


@dataclass(frozen=True, eq=False)
class Propagated:
    """One forward pass on a rank: the ego rows it started from (the tensors the pass used, so a
    penalty on them sums its gradient in the single process's order) and the final embeddings.

    Attributes:
        user_ego [U_r, d], item_ego [I_r, d]; users [U_r, d'], items [I_r, d'] (final).
    """

    user_ego: torch.Tensor
    item_ego: torch.Tensor
    users: torch.Tensor
    items: torch.Tensor


def mean_adjacency(users: np.ndarray, halo_positions: np.ndarray, num_local_users: int, halo_size: int,
                   user_degree: torch.Tensor, item_degree: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """SAGE's neighbour means over one rank's pairs, sparse CSR: (D_u^-1 A [U_r, |H_r|], its
    transpose, D_i^-1 A [|H_r|, U_r] (partial sums of the items' means, global degrees), its
    transpose): `halo_adjacency`'s two blocks weighted by 1/d_u and by 1/d_i.

    Args:
        users, halo_positions: int64 [E_r] as for `halo_adjacency`.
        user_degree, item_degree: [E_r] each pair's user's and item's degree.
    """
    shape = (users, halo_positions, num_local_users, halo_size)
    user_mean, user_mean_t = halo_adjacency(*shape, 1.0 / user_degree)
    item_mean_t, item_mean = halo_adjacency(*shape, 1.0 / item_degree)
    return user_mean, user_mean_t, item_mean, item_mean_t


class ShardedModel(torch.nn.Module, abc.ABC):
    """A model over one rank's rows: `table` [U_r + I_r, d] (its users, then its items; [I_r, d]
    when `user_rows` is False) is its first parameter; `propagate()` is one forward pass,
    `plain_state(table)` the single-process model's state dict from the gathered table."""

    table: torch.nn.Parameter
    user_rows = True          # the table starts with the rank's users' rows

    @abc.abstractmethod
    def propagate(self) -> Propagated:
        """One forward pass over the rank's rows."""

    def replicated_parameters(self) -> list[torch.Tensor]:
        """Parameters every rank holds a copy of, their gradient summed over ranks before a step."""
        return []

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings of the rank's users [U_r, d] and of its items [I_r, d]."""
        out = self.propagate()
        return out.users, out.items


class ShardedLightGCN(ShardedModel):
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

    def layers(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """([E⁰_u, ..., E^L_u] each [U_r, d], [E⁰_i, ..., E^L_i] each [I_r, d]) of the rank's rows."""
        users, items = [self.table[:self.num_local_users]], [self.table[self.num_local_users:]]
        for _ in range(self.num_layers):
            halo = gather_rows(items[-1], self.halo)
            partial = ConstantSpMM.apply(self.halo_to_user, self.user_to_halo, users[-1])
            users.append(ConstantSpMM.apply(self.user_to_halo, self.halo_to_user, halo))
            items.append(scatter_add_rows(partial, self.halo))
        return users, items

    def combine(self, layers: list[torch.Tensor]) -> torch.Tensor:
        """Σ_l α_l E^l: the final embeddings of one kind of rows."""
        return sum(alpha * layer for alpha, layer in zip(self.alpha, layers))

    def propagate(self) -> Propagated:
        users, items = self.layers()
        return Propagated(users[0], items[0], self.combine(users), self.combine(items))

    def plain_state(self, table: torch.Tensor) -> dict[str, torch.Tensor]:
        """The single-process model's state dict, given the gathered ego table [U + I, d]."""
        return {"gnn.embedding.weight": table.to(torch.float32), "gnn.alpha": self.alpha}


class ShardedSAGE(ShardedModel):
    """The two-layer mean GraphSAGE (`edgegnn.models.sage`) on one rank.

    Each layer's neighbour means are LightGCN's exchange with D^-1 A in place of Â: a user's
    mean over its halo items, an item's mean as partial sums scatter-added at its owner. The
    layers' weights are replicated (the plain model's, the same on every rank); their gradient
    is summed over ranks before the step (`replicated_parameters`), as DDP does.

    Args:
        table: [U_r + I_r, d] initial ego rows (users, then items).
        means: the four matrices of `mean_adjacency`.
        halo: the exchange plan of H_r.
        conv1, conv2: the plain model's SAGEConv layers (copied).
        num_local_users: U_r.
    """

    def __init__(self, table: torch.Tensor, means: tuple[torch.Tensor, ...], halo: ExchangePlan, conv1, conv2,
                 num_local_users: int):
        super().__init__()
        self.table = torch.nn.Parameter(table.clone())
        self.conv1, self.conv2 = copy.deepcopy(conv1), copy.deepcopy(conv2)
        self.means, self.halo = means, halo
        self.num_local_users = num_local_users

    def replicated_parameters(self) -> list[torch.Tensor]:
        return [*self.conv1.parameters(), *self.conv2.parameters()]

    def _layer(self, conv, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """lin_l(neighbour mean) + lin_r(x) over the rank's users and items."""
        user_mean, user_mean_t, item_mean, item_mean_t = self.means
        halo = gather_rows(items, self.halo)
        user_means = ConstantSpMM.apply(user_mean, user_mean_t, halo)
        item_means = scatter_add_rows(ConstantSpMM.apply(item_mean, item_mean_t, users), self.halo)
        out = conv.lin_l(torch.cat([user_means, item_means])) + conv.lin_r(torch.cat([users, items]))
        return out[:self.num_local_users], out[self.num_local_users:]

    def propagate(self) -> Propagated:
        user_ego, item_ego = self.table[:self.num_local_users], self.table[self.num_local_users:]
        users, items = self._layer(self.conv1, user_ego, item_ego)
        users, items = self._layer(self.conv2, torch.relu(users), torch.relu(items))
        return Propagated(user_ego, item_ego, users, items)

    def plain_state(self, table: torch.Tensor) -> dict[str, torch.Tensor]:
        """The single-process model's state dict, given the gathered ego table [U + I, d]."""
        layers = {f"{name}.{key}": value for name in ("conv1", "conv2")
                  for key, value in getattr(self, name).state_dict().items()}
        return {"embedding.weight": table.to(torch.float32), **layers}


class ShardedGAT(ShardedModel):
    """The graph-attention model (`edgegnn.models.gat`) on one rank: users attend over their items.

    A user's softmax runs over its own items, so it is local to the user's rank once the halo's
    ego rows are fetched: PyG's GATConv runs on the rank's edges (halo item -> local user). Users
    have no ego rows (the table is the rank's items [I_r, d]); the layer is replicated, its
    gradient summed over ranks before the step.

    Args:
        table: [I_r, d] the rank's items' ego rows.
        edges: int64 [2, E_r] (halo position, local user) of each pair, PyG's source -> target.
        halo: the exchange plan of H_r.
        conv: the plain model's attention layer (copied).
        num_local_users: U_r.
    """

    user_rows = False

    def __init__(self, table: torch.Tensor, edges: torch.Tensor, halo: ExchangePlan, conv, num_local_users: int):
        super().__init__()
        self.table = torch.nn.Parameter(table.clone())
        self.conv = copy.deepcopy(conv)
        self.edges, self.halo, self.num_local_users = edges, halo, num_local_users

    def replicated_parameters(self) -> list[torch.Tensor]:
        return list(self.conv.parameters())

    def propagate(self) -> Propagated:
        halo = gather_rows(self.table, self.halo)
        users = self.conv((halo, halo.new_zeros(self.num_local_users, halo.shape[1])), self.edges)
        return Propagated(self.table[:0], self.table, users, self.table)

    def plain_state(self, table: torch.Tensor) -> dict[str, torch.Tensor]:
        layer = {f"conv.{key}": value for key, value in self.conv.state_dict().items()}
        return {"item_embedding.weight": table.to(torch.float32), **layer}
