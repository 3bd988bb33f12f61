"""Losses equal their definitions computed the slow way."""

from __future__ import annotations

import torch

from edgegnn.train.losses import bpr_loss, whole_data_loss


def test_whole_data_loss_equals_explicit_sum_over_all_pairs():
    torch.manual_seed(0)
    U, I, d = 7, 9, 4  # noqa: E741 -- the paper's notation
    user_emb, item_emb = torch.randn(U, d, dtype=torch.float64), torch.randn(I, d, dtype=torch.float64)
    observed = torch.zeros(U, I, dtype=torch.bool)
    pairs = torch.tensor([[0, 1], [0, 3], [2, 2], [4, 8], [6, 0], [6, 5]])
    observed[pairs[:, 0], pairs[:, 1]] = True
    c = torch.rand(I, dtype=torch.float64) * 0.1
    scores = user_emb @ item_emb.T
    explicit = ((1 - scores[observed]) ** 2).sum() + (c[None, :] * scores ** 2)[~observed].sum()
    constant = observed.sum()  # the Σ_R 1 term the fast form leaves out
    fast = whole_data_loss(user_emb, item_emb, pairs[:, 0], pairs[:, 1], c) * len(pairs)
    torch.testing.assert_close(fast + constant, explicit)


def test_bpr_loss_is_softplus_of_negative_margin():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    pos = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    margins = torch.tensor([2.0, -4.0])
    expected = torch.log1p(torch.exp(-margins)).mean()
    torch.testing.assert_close(bpr_loss(u, pos, neg), expected)


def test_the_observed_term_in_chunks_has_autograds_value_and_gradient(monkeypatch):
    from edgegnn.train import losses

    torch.manual_seed(1)
    U, I, d = 30, 20, 5  # noqa: E741
    users, items = torch.randint(U, (200,)), torch.randint(I, (200,))
    c = torch.rand(I, dtype=torch.float64) * 0.1
    user_emb = torch.randn(U, d, dtype=torch.float64, requires_grad=True)
    item_emb = torch.randn(I, d, dtype=torch.float64, requires_grad=True)
    predicted = (user_emb[users] * item_emb[items]).sum(dim=1)
    expected = ((1.0 - c[items]) * predicted.square() - 2.0 * predicted).sum()
    expected_grads = torch.autograd.grad(expected, (user_emb, item_emb))
    monkeypatch.setattr(losses, "PAIR_CHUNK", 7)                    # many chunks, a ragged last one
    chunked = losses.ObservedTerm.apply(user_emb, item_emb, users, items, c)
    torch.testing.assert_close(chunked, expected)
    for got, want in zip(torch.autograd.grad(chunked, (user_emb, item_emb)), expected_grads):
        torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(lambda a, b: losses.ObservedTerm.apply(a, b, users, items, c),
                                    (user_emb, item_emb))
