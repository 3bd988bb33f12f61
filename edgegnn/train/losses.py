"""Training losses for implicit-feedback recommenders.

Both take the model's final embeddings; scores are dot products ŷ_ui = e_u · e_i, and the
device ranks by the same dot product.
"""

from __future__ import annotations

import torch


def whole_data_loss(user_emb: torch.Tensor, item_emb: torch.Tensor, users: torch.Tensor,
                    items: torch.Tensor, negative_weight: torch.Tensor, *,
                    num_pairs: int | None = None) -> torch.Tensor:
    """Weighted squared loss over every user-item pair, computed without sampling.

    The implicit-ALS objective (Hu et al., ICDM 2008; as a non-sampling loss for neural
    recommenders: Chen et al., "Efficient Neural Matrix Factorization", TOIS 2020):
        L = [ Σ_{(u,i)∈R} (1 − ŷ_ui)² + Σ_{(u,i)∉R} c_i ŷ_ui² ] / |R|
    The second sum has U·I terms, but Σ_{all u,i} c_i ŷ_ui² = Σ_{d,d'} (EuᵀEu)_{dd'} (Eiᵀ C Ei)_{dd'},
    so with the observed pairs corrected it costs O((U + I) d² + |R| d):
        L = [ Σ_R ((1 − c_i) ŷ² − 2ŷ) + ⟨EuᵀEu, Eiᵀ C Ei⟩ ] / |R| + const.
    Every observed pair and every unobserved pair contributes to each step, which is why a
    full-batch step of LightGCN learns far more per propagation than a BPR mini-batch.

    Args:
        user_emb: float [U, d] final user embeddings.
        item_emb: float [I, d] final item embeddings.
        users, items: int64 [|R|] the observed training pairs.
        negative_weight: float [I], c_i (weight of an unobserved pair with item i).
        num_pairs: |R| (default: len(users)); a rank of a distributed job passes its block of
            users and the whole data's |R|, and the ranks' losses sum to the whole loss.
    """
    observed = ObservedTerm.apply(user_emb, item_emb, users, items, negative_weight)
    unobserved = (gram(user_emb) * gram(item_emb, negative_weight)).sum()
    return (observed + unobserved) / (len(users) if num_pairs is None else num_pairs)


def gram(emb: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """EᵀE, or Eᵀ C E with C = diag(weight): [d, d] from emb [n, d] and weight [n]."""
    return emb.T @ emb if weight is None else (emb * weight[:, None]).T @ emb


PAIR_CHUNK = 1 << 20


class ObservedTerm(torch.autograd.Function):
    """Σ_R ((1 − c_i) ŷ_ui² − 2 ŷ_ui), ŷ_ui = e_u · e_i, over chunks of PAIR_CHUNK pairs.

    Written by hand because autograd through `user_emb[users] * item_emb[items]` keeps both
    gathers, [|R|, d] each, for its backward (6 GB each at 49M pairs and d = 32). The backward
    gathers again, chunk by chunk, and scatters
        dL/de_u = Σ_{i: (u,i) ∈ R} g_ui e_i,   dL/de_i = Σ_{u: (u,i) ∈ R} g_ui e_u,
        g_ui = 2 (1 − c_i) ŷ_ui − 2,
    so memory stays O((U + I) d + chunk · d).
    """

    @staticmethod
    def forward(ctx, user_emb, item_emb, users, items, negative_weight):
        ctx.save_for_backward(user_emb, item_emb, users, items, negative_weight)
        total = user_emb.new_zeros(())
        for start in range(0, len(users), PAIR_CHUNK):
            u, i = users[start:start + PAIR_CHUNK], items[start:start + PAIR_CHUNK]
            predicted = (user_emb[u] * item_emb[i]).sum(dim=1)
            total = total + ((1.0 - negative_weight[i]) * predicted.square() - 2.0 * predicted).sum()
        return total

    @staticmethod
    def backward(ctx, grad):
        user_emb, item_emb, users, items, negative_weight = ctx.saved_tensors
        grad_users, grad_items = torch.zeros_like(user_emb), torch.zeros_like(item_emb)
        for start in range(0, len(users), PAIR_CHUNK):
            u, i = users[start:start + PAIR_CHUNK], items[start:start + PAIR_CHUNK]
            eu, ei = user_emb[u], item_emb[i]
            predicted = (eu * ei).sum(dim=1)
            coefficient = ((2.0 * (1.0 - negative_weight[i]) * predicted - 2.0) * grad)[:, None]
            grad_users.index_add_(0, u, coefficient * ei)
            grad_items.index_add_(0, i, coefficient * eu)
        return grad_users, grad_items, None, None, None


def bpr_loss(user_emb: torch.Tensor, pos_emb: torch.Tensor, neg_emb: torch.Tensor, *,
             batch_size: int | None = None) -> torch.Tensor:
    """Bayesian personalized ranking (Rendle et al., UAI 2009), as in the LightGCN paper.

        L = −mean_b log σ(e_u · e_i − e_u · e_j), (u, i) observed, j a sampled negative.

    Args:
        user_emb, pos_emb, neg_emb: float [B, d].
        batch_size: B (default: len(user_emb)); a rank of a distributed job passes its part of
            the batch and the batch's B.
    """
    margin = (user_emb * (pos_emb - neg_emb)).sum(dim=1)
    return torch.nn.functional.softplus(-margin).sum() / (len(margin) if batch_size is None else batch_size)


def bce_loss(user_emb: torch.Tensor, pos_emb: torch.Tensor, neg_emb: torch.Tensor, *,
             batch_size: int | None = None) -> torch.Tensor:
    """Binary cross-entropy of P(user likes item) = σ(e_u · e_i): link prediction with a probability.

        L = [Σ_b softplus(−e_u·e_i) + Σ_b Σ_k softplus(e_u·e_jk)] / (B (1 + K))
    (softplus(−x) = −log σ(x)), over B observed pairs (u, i) and K sampled negatives j each; the
    probability is calibrated to that mix (one positive per K uniform non-interactions).

    Args:
        user_emb, pos_emb: float [B, d]; neg_emb: float [B, K, d].
        batch_size: B (default: len(user_emb)), as in `bpr_loss`.
    """
    positive = (user_emb * pos_emb).sum(dim=1)
    negative = torch.einsum("bd,bkd->bk", user_emb, neg_emb)
    total = torch.nn.functional.softplus(-positive).sum() + torch.nn.functional.softplus(negative).sum()
    return total / (positive.numel() if batch_size is None else batch_size) / (1 + neg_emb.shape[1])


def l2_penalty(ego_rows: list[torch.Tensor], batch_size: int) -> torch.Tensor:
    """½ Σ ||e⁰||² / B over the ego embeddings a batch touched (the paper's regularizer)."""
    return sum(rows.square().sum() for rows in ego_rows) / (2.0 * batch_size)
