"""One epoch of the configured loss on one rank; the ranks' losses sum to the whole data's.

The whole-data loss splits by users exactly:
    L = [Σ_R ((1 − c_i) ŷ² − 2ŷ) + ⟨Σ_r E_{B_r}ᵀ E_{B_r}, Eᵢᵀ C Eᵢ⟩] / |R| = Σ_r L_r
with rank r's observed pairs and its users' Gram matrix; the items are replicated, so no d×d
all-reduce is needed (it would be once the items are split too). BPR and BCE draw the same
global batches and negatives as the single-process trainer (every rank runs the same seeded
generator) and each rank takes the pairs of its users, dividing by the global batch size.
The gradients that cross ranks flow through the propagation's all-reduces; the replicated
item rows' gradient is summed before the step. The optimizer (Adam, Adagrad, RMSprop, SGD)
is element-wise, so each rank steps its own rows exactly as the single process would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edgegnn.distributed.context import DistContext, sum_over_ranks
from edgegnn.distributed.sharded import ShardedLightGCN
from edgegnn.models.card import TrainConfig
from edgegnn.train.losses import bce_loss, bpr_loss, l2_penalty, whole_data_loss
from edgegnn.train.trainer import EpochRunner, make_optimizer


@dataclass(frozen=True, eq=False)
class RankPairs:
    """A rank's training pairs, and where they sit among the whole data's.

    Attributes:
        users: int64 [E_r] local user index (0..U_r-1); items: int64 [E_r].
        owner: int32 [E] the rank owning each of the whole data's unique pairs (sorted by user, item).
        local: int64 [E] each pair's index among its owner's pairs.
        num_items: I.
        negative_weight: float32 [I], the whole-data loss's c_i (from every rank's pairs).
    """

    users: torch.Tensor
    items: torch.Tensor
    owner: torch.Tensor
    local: torch.Tensor
    num_items: int
    negative_weight: torch.Tensor

    @property
    def num_pairs(self) -> int:
        """|R|, the whole data's unique pairs."""
        return len(self.owner)


class DistributedStepRunner(EpochRunner):
    """Runs one epoch of the configured loss on this rank (the loss of an epoch is the whole data's,
    equal on every rank); owns the sampling state."""

    def __init__(self, model: ShardedLightGCN, pairs: RankPairs, config: TrainConfig, context: DistContext):
        self.model, self.pairs, self.config, self.context = model, pairs, config, context
        self.generator = torch.Generator().manual_seed(config.seed)
        self.optimizer = make_optimizer(model.parameters(), config)

    @property
    def num_pairs(self) -> int:
        return self.pairs.num_pairs

    def _step(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.model.reduce_item_gradients()
        self.optimizer.step()
        return sum_over_ranks(float(loss.detach()))

    def whole_data_loss(self) -> torch.Tensor:
        """L_r: this rank's part of the whole-data loss and of its L2 penalty."""
        user_emb, item_emb = self.model()
        pairs = self.pairs
        loss = whole_data_loss(user_emb, item_emb, pairs.users, pairs.items, pairs.negative_weight,
                               num_pairs=pairs.num_pairs)
        ego = [self.model.penalized_rows(self.context.rank)]
        return loss + self.config.l2 * sum(p.square().sum() for p in ego) / pairs.num_pairs

    def whole_data_step(self) -> float:
        """One full-batch step of the whole-data loss (= one epoch)."""
        return self._step(self.whole_data_loss())

    def _batch_part(self, batch: torch.Tensor, negatives: torch.Tensor):
        """This rank's (local users, positive items, negatives) of a global batch of pair indices."""
        mine = self.pairs.owner[batch] == self.context.rank
        local = self.pairs.local[batch[mine]]
        return self.pairs.users[local], self.pairs.items[local], negatives[mine]

    def bpr_step(self, batch: torch.Tensor) -> float:
        """One BPR step on the global batch `batch` (int64 [B] pair indices), one negative each."""
        negatives = torch.randint(self.pairs.num_items, (len(batch),), generator=self.generator)
        users, pos, neg = self._batch_part(batch, negatives)
        user_emb, item_emb = self.model()
        loss = bpr_loss(user_emb[users], item_emb[pos], item_emb[neg], batch_size=len(batch))
        penalty = l2_penalty(self.model.touched_ego(users, torch.cat([pos, neg])), len(batch))
        return self._step(loss + self.config.l2 * penalty)

    def bce_step(self, batch: torch.Tensor) -> float:
        """One BCE step on the global batch `batch`, `negatives` uniform negatives each."""
        negatives = torch.randint(self.pairs.num_items, (len(batch), self.config.negatives), generator=self.generator)
        users, pos, neg = self._batch_part(batch, negatives)
        user_emb, item_emb = self.model()
        loss = bce_loss(user_emb[users], item_emb[pos], item_emb[neg], batch_size=len(batch))
        penalty = l2_penalty(self.model.touched_ego(users, torch.cat([pos, neg.reshape(-1)])), len(batch))
        return self._step(loss + self.config.l2 * penalty)

    def out_of_time(self, deadline: float) -> bool:
        """Whether the time budget ran out, by rank 0's clock: the ranks stop together."""
        flag = torch.tensor([time.perf_counter() >= deadline if self.context.rank == 0 else False])
        dist.broadcast(flag, src=0)
        return bool(flag[0])
