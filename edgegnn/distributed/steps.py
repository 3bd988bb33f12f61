"""One epoch of the configured loss on one rank; the ranks' losses sum to the whole data's.

The whole-data loss splits by users and items exactly:
    L = [Σ_R ((1 − c_i) ŷ² − 2ŷ) + ⟨Σ_r E_{B_r}ᵀ E_{B_r}, Σ_r E_{J_r}ᵀ C E_{J_r}⟩] / |R| = Σ_r L_r,
    L_r = [Σ_{R_r} ((1 − c_i) ŷ² − 2ŷ) + ⟨E_{B_r}ᵀ E_{B_r}, G_I⟩] / |R|
with rank r's observed pairs (its users', their items fetched from the owners: the halo), its
users' Gram matrix and G_I, the items' weighted Gram matrix summed over ranks: one d×d
all-reduce forward and one backward, whatever the data size. BPR and BCE draw the same global
batches and negatives as the single-process trainer (every rank runs the same seeded
generator); each rank takes the pairs of its users and fetches the rows of the items they name
from their owners, dividing by the global batch size. The optimizer (Adam, Adagrad, RMSprop,
SGD) is element-wise and every row lives on one rank, so each rank steps its own rows exactly as
the single process would; a model's replicated weights (GraphSAGE's and graph attention's
layers) have their gradient summed over ranks first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from edgegnn.distributed.context import DistContext, all_reduce_sum, sum_over_ranks
from edgegnn.distributed.halo import ExchangePlan, gather_rows
from edgegnn.distributed.sharded import ShardedModel
from edgegnn.models.card import TrainConfig
from edgegnn.train.losses import ObservedTerm, bce_loss, bpr_loss, gram, l2_penalty
from edgegnn.train.trainer import EpochRunner, make_optimizer


@dataclass(frozen=True, eq=False)
class RankPairs:
    """A rank's training pairs, and where they sit among the whole data's.

    Attributes:
        users: int64 [E_r] local user index (0..U_r-1).
        items: int64 [E_r] renumbered item id; halo_items: int64 [E_r] its position in the halo.
        owner: int32 [E] the rank owning each of the whole data's unique pairs (sorted by user, item).
        local: int64 [E] each pair's index among its owner's pairs.
        renumbered_items: int64 [I] the renumbered id of each original item (negatives are drawn
            as the single process draws them, in original ids).
        item_bounds: int64 [W+1] the items' blocks.
        owned_weight: float32 [I_r] and halo_weight: float32 [|H_r|]: the whole-data loss's c_i
            (from every rank's pairs) of the rank's items and of its halo.
    """

    users: torch.Tensor
    items: torch.Tensor
    halo_items: torch.Tensor
    owner: torch.Tensor
    local: torch.Tensor
    renumbered_items: torch.Tensor
    item_bounds: np.ndarray
    owned_weight: torch.Tensor
    halo_weight: torch.Tensor

    @property
    def num_pairs(self) -> int:
        """|R|, the whole data's unique pairs."""
        return len(self.owner)

    @property
    def num_items(self) -> int:
        return len(self.renumbered_items)


def reduce_gradients(parameters: list[torch.Tensor]) -> None:
    """Sum the gradients of replicated parameters over ranks, in one all-reduce (what DDP does)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    for grad, part in zip(grads, flat.split([g.numel() for g in grads])):
        grad.copy_(part.view_as(grad))


class DistributedStepRunner(EpochRunner):
    """Runs one epoch of the configured loss on this rank (the loss of an epoch is the whole data's,
    equal on every rank); owns the sampling state."""

    def __init__(self, model: ShardedModel, pairs: RankPairs, config: TrainConfig, context: DistContext):
        self.model, self.pairs, self.config, self.context = model, pairs, config, context
        self.generator = torch.Generator().manual_seed(config.seed)
        self.optimizer = make_optimizer(model.parameters(), config)

    @property
    def num_pairs(self) -> int:
        return self.pairs.num_pairs

    def _step(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        reduce_gradients(self.model.replicated_parameters())
        self.optimizer.step()
        return sum_over_ranks(float(loss.detach()))

    def whole_data_loss(self) -> torch.Tensor:
        """L_r: this rank's part of the whole-data loss and of its L2 penalty (its own rows)."""
        out = self.model.propagate()
        pairs = self.pairs
        halo_emb = gather_rows(out.items, self.model.halo)
        observed = ObservedTerm.apply(out.users, halo_emb, pairs.users, pairs.halo_items, pairs.halo_weight)
        unobserved = (gram(out.users) * all_reduce_sum(gram(out.items, pairs.owned_weight))).sum()
        # The penalty's rows are the forward pass's ego tensors (the table's values, in its order),
        # so that each ego row's gradient sums its parts in the single process's order: one rank
        # computes the plain path's bits.
        penalty = torch.cat([out.user_ego, out.item_ego]).square().sum()
        return (observed + unobserved) / pairs.num_pairs + self.config.l2 * penalty / pairs.num_pairs

    def whole_data_step(self) -> float:
        """One full-batch step of the whole-data loss (= one epoch)."""
        return self._step(self.whole_data_loss())

    def batch_part(self, batch: torch.Tensor, negatives: torch.Tensor):
        """This rank's (local users, positive items, negatives) of a global batch of pair indices
        and its negatives (original ids); items as renumbered ids."""
        mine = self.pairs.owner[batch] == self.context.rank
        local = self.pairs.local[batch[mine]]
        return self.pairs.users[local], self.pairs.items[local], self.pairs.renumbered_items[negatives[mine]]

    def item_rows(self, item_emb: torch.Tensor, ego_items: torch.Tensor, items: torch.Tensor):
        """(final [n, d], ego [n, d]) rows of the renumbered items `items` [n] and the inverse index
        of each into them, fetched from their owners in one exchange (a collective: every rank
        calls it, with or without items)."""
        wanted, inverse = torch.unique(items, return_inverse=True)
        plan = ExchangePlan.build(wanted, self.pairs.item_bounds, self.context)
        if ego_items is item_emb:                # graph attention scores by the ego rows themselves
            rows = gather_rows(item_emb, plan)
            return rows, rows, inverse
        rows = gather_rows(torch.cat([item_emb, ego_items], dim=1), plan)
        return rows[:, :item_emb.shape[1]], rows[:, item_emb.shape[1]:], inverse

    def sampled_loss(self, batch: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """This rank's part of the BPR (negatives [B]) or BCE (negatives [B, K]) loss of a global
        batch, with its L2 penalty on the ego rows the batch touched."""
        users, pos, neg = self.batch_part(batch, negatives)
        out = self.model.propagate()
        final, ego, inverse = self.item_rows(out.items, out.item_ego, torch.cat([pos, neg.reshape(-1)]))
        # Positives and negatives indexed apart and the ego rows through the ego layers (not the
        # table): each row's gradient then sums its parts in the single process's order.
        pos_emb, neg_emb = final[inverse[:len(pos)]], final[inverse[len(pos):]].reshape(*neg.shape, -1)
        score = bpr_loss if negatives.dim() == 1 else bce_loss
        loss = score(out.users[users], pos_emb, neg_emb, batch_size=len(batch))
        touched = [out.user_ego[users]] if self.model.user_rows else []
        penalty = l2_penalty([*touched, ego[inverse]], len(batch))
        return loss + self.config.l2 * penalty

    def bpr_step(self, batch: torch.Tensor) -> float:
        """One BPR step on the global batch `batch` (int64 [B] pair indices), one negative each."""
        negatives = torch.randint(self.pairs.num_items, (len(batch),), generator=self.generator)
        return self._step(self.sampled_loss(batch, negatives))

    def bce_step(self, batch: torch.Tensor) -> float:
        """One BCE step on the global batch `batch`, `negatives` uniform negatives each."""
        negatives = torch.randint(self.pairs.num_items, (len(batch), self.config.negatives), generator=self.generator)
        return self._step(self.sampled_loss(batch, negatives))

    def out_of_time(self, deadline: float) -> bool:
        """Whether the time budget ran out, by rank 0's clock: the ranks stop together."""
        flag = torch.tensor([time.perf_counter() >= deadline if self.context.rank == 0 else False])
        dist.broadcast(flag, src=0)
        return bool(flag[0])
