"""Rows owned by other ranks: the halo exchange of a 1D owner-computes partition (CAGNET, DistGNN).

Items are split into contiguous blocks of renumbered ids, rank q owning J_q. A rank that needs
the rows of a set H of items (the items its users' pairs touch, or a mini-batch's) asks each
owner for H ∩ J_q; an `ExchangePlan` records, once, which of its own rows every other rank
asked for. Two differentiable operations use it, each the other's adjoint:
    gather_rows(X, plan)       [|J_r|, d] owned rows  ->  [|H|, d] the wanted rows, from their owners
    scatter_add_rows(P, plan)  [|H|, d] partial sums  ->  [|J_r|, d] Σ over ranks of the parts for
                                                          each owned row
so the backward of a gather is a scatter-add of the gradients to the owners, and the backward
of a scatter-add a gather of the owners' gradients. Both are one `all_to_all_single` of
variable splits (the rows a rank sends itself are copied, not sent).
Written here because torch.distributed has no differentiable all_to_all in its public API
(torch.distributed.nn.functional is deprecated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from edgegnn.distributed.context import DistContext


@dataclass(frozen=True, eq=False)
class ExchangePlan:
    """Who sends which owned rows to whom.

    Attributes:
        wanted: int64 [|H|] the renumbered ids this rank wants, sorted (so grouped by owner).
        send_rows: int64 [S] indices into this rank's block of the rows the others want, grouped
            by the rank that wants them (rank 0's first).
        send_counts: [W] rows sent to each rank; recv_counts: [W] rows received from each.
        num_owned: |J_r|.
    """

    wanted: torch.Tensor
    send_rows: torch.Tensor
    send_counts: list[int]
    recv_counts: list[int]
    num_owned: int

    @classmethod
    def build(cls, wanted: torch.Tensor, bounds: np.ndarray, context: DistContext) -> ExchangePlan:
        """Agree with every rank on who sends what (a collective: every rank calls it).

        Args:
            wanted: int64 [|H|] sorted, distinct renumbered ids (any rank's).
            bounds: int64 [W+1] the blocks' bounds (`BlockPartition.bounds`).
        """
        bounds_t = torch.from_numpy(np.asarray(bounds, dtype=np.int64))
        owner = torch.bucketize(wanted, bounds_t[1:], right=True)
        recv_counts = torch.bincount(owner, minlength=context.world_size)
        send_counts = torch.empty_like(recv_counts)
        dist.all_to_all_single(send_counts, recv_counts)
        asked = torch.empty(int(send_counts.sum()), dtype=torch.int64)
        dist.all_to_all_single(asked, wanted.contiguous(), send_counts.tolist(), recv_counts.tolist())
        return cls(wanted=wanted, send_rows=asked - int(bounds_t[context.rank]), send_counts=send_counts.tolist(),
                   recv_counts=recv_counts.tolist(), num_owned=int(bounds_t[context.rank + 1] - bounds_t[context.rank]))

    @property
    def size(self) -> int:
        """|H|, the rows this rank receives."""
        return len(self.wanted)

    def foreign_rows(self, rank: int) -> tuple[int, int]:
        """(rows sent to other ranks, rows received from other ranks) by `rank` (this one) per exchange."""
        return (sum(self.send_counts) - self.send_counts[rank], sum(self.recv_counts) - self.recv_counts[rank])


def _send_owned(owned: torch.Tensor, plan: ExchangePlan) -> torch.Tensor:
    """[|H|, d]: every rank's owned rows to the ranks that want them."""
    received = owned.new_empty((plan.size, owned.shape[1]))
    dist.all_to_all_single(received, owned[plan.send_rows].contiguous(), plan.recv_counts, plan.send_counts)
    return received


def _return_to_owners(rows: torch.Tensor, plan: ExchangePlan) -> torch.Tensor:
    """[|J_r|, d]: every wanted row back to its owner, the parts for one owned row summed."""
    returned = rows.new_empty((len(plan.send_rows), rows.shape[1]))
    dist.all_to_all_single(returned, rows.contiguous(), plan.send_counts, plan.recv_counts)
    return rows.new_zeros((plan.num_owned, rows.shape[1])).index_add_(0, plan.send_rows, returned)


class GatherRows(torch.autograd.Function):
    """Y = X[H] with the rows of H fetched from their owners; dL/dX = Σ over ranks of dL/dY sent back."""

    @staticmethod
    def forward(ctx, owned: torch.Tensor, plan: ExchangePlan) -> torch.Tensor:
        ctx.plan = plan
        return _send_owned(owned, plan)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _return_to_owners(grad, ctx.plan), None


class ScatterAddRows(torch.autograd.Function):
    """X_i = Σ_ranks P_r[i] for owned rows i; dL/dP_r = dL/dX at the rows rank r sent."""

    @staticmethod
    def forward(ctx, partial: torch.Tensor, plan: ExchangePlan) -> torch.Tensor:
        ctx.plan = plan
        return _return_to_owners(partial, plan)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _send_owned(grad, ctx.plan), None


def gather_rows(owned: torch.Tensor, plan: ExchangePlan) -> torch.Tensor:
    """[|H|, d], the rows `plan.wanted` of the table split over the ranks, differentiable."""
    return GatherRows.apply(owned, plan)


def scatter_add_rows(partial: torch.Tensor, plan: ExchangePlan) -> torch.Tensor:
    """[|J_r|, d], every rank's partial rows summed at their owner, differentiable."""
    return ScatterAddRows.apply(partial, plan)


def all_rows(owned: torch.Tensor, bounds: np.ndarray, context: DistContext) -> torch.Tensor:
    """[N, d] every rank's owned rows in renumbered order, on every rank (not differentiable:
    the full ranking of a validation needs every item)."""
    sizes = np.diff(bounds)
    largest = int(sizes.max())
    padded = owned.new_zeros((largest, owned.shape[1]))
    padded[:len(owned)] = owned
    blocks = [torch.empty_like(padded) for _ in range(context.world_size)]
    dist.all_gather(blocks, padded)
    return torch.cat([block[:int(size)] for block, size in zip(blocks, sizes)])
