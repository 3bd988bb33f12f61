"""Robust fitting on noisy interactions: fit, drop the rows the model explains worst, refit.

A false positive (a misclick, a fake or injected interaction) is a row the rest of the user's
history does not support, so a model fitted on the data scores it low among the user's own
items: the "large loss = likely noise" signal of T-CE (Wang et al., "Denoising Implicit
Feedback for Recommendation", WSDM 2021), used here around the fit instead of inside one loss,
so that it serves every kind, the closed-form graph filters included. With
`training.denoise` = ρ:
    1. fit the card on the training rows;
    2. score each user's training items, s_ui (a trained kind: e_u · e_i of its embeddings; a
       closed-form kind: its device model, the history being the user's training items);
    3. drop each user's floor(ρ · n_u) lowest-scoring items (n_u the user's training items);
    4. fit again on the rest.
How much noise a data set holds is not known, so ρ = "auto" chooses it: each of AUTO_SHARES is
refitted from the same first fit's scores, and the smallest share whose validation Recall is
within one standard error of the best one wins (the one-standard-error rule: a refit that wins
by less than the sampling noise of the validation users does not earn the rows it drops).
Recall is a mean over n users of values in [0, 1], so its standard error is at most
sqrt(m (1 - m) / n) for a mean m (Bhatia-Davis); that bound is the margin. Validation rows
are themselves noisy in real data, but a fake row is unpredictable to every model alike, so the
ranking of the fits on validation still follows their quality on the real rows.
Each fit is a whole fit (a trained kind's gets the whole `time_budget`): a share costs twice
the plain fit, "auto" four times.
The checkpoint keeps the chosen fit, its metrics (on the untouched validation and test splits)
and `metrics["denoise"]`: the share, the rows dropped, each share's validation Recall, and the
first (plain) fit's test metrics beside the chosen one's, which no choice reads.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from edgegnn.data.interactions import Interactions, Split
from edgegnn.errors import DataError

log = logging.getLogger(__name__)
AUTO_SHARES = (0.0, 0.1, 0.2, 0.3)


def denoised_fit(split: Split, card, fit, **fit_options):
    """(checkpoint, result) of `fit` on `split` with the card's denoise share applied (above);
    `fit` is `edgegnn.train.api.fit`, called with the share set to 0. The share "auto" tries
    AUTO_SHARES (0 included: the first fit itself) and keeps the best validation Recall@max(ks)
    by the one-standard-error rule (`one_standard_error_choice`); the test split takes no part."""
    share = card.training.denoise
    plain = dataclasses.replace(card, training=dataclasses.replace(card.training, denoise=0.0))
    if share == "auto" and (split.valid is None or not len(split.valid)):
        raise DataError("training.denoise 'auto' chooses the share on validation, and the data has no validation "
                        "interactions", hint="use --valid-ratio > 0 or a fixed share such as 0.1")
    first = fit(split, plain, **fit_options)
    scores = training_scores(first[0])
    shares = AUTO_SHARES if share == "auto" else (share,)
    fits, tried = {0.0: first}, {}
    metric = f"recall@{max(fit_options.get('ks', (20,)))}"
    for candidate in shares:
        if candidate > 0:
            keep = lowest_per_user(split.train, scores, candidate)
            log.info("denoise %.2f: dropping %d of %d training rows, refitting", candidate, int((~keep).sum()),
                     len(keep))
            cleaned = dataclasses.replace(split, train=split.train.select(np.flatnonzero(keep)))
            fits[candidate] = fit(cleaned, plain, **fit_options)
        valid = fits[candidate][0].metrics.get("valid")
        if valid:
            tried[candidate], users = valid[metric], valid["users"]
    chosen = one_standard_error_choice(tried, users) if share == "auto" else share
    checkpoint, result = fits[chosen]
    checkpoint.card = card
    dropped = len(split.train) - len(checkpoint.train)
    checkpoint.metrics["denoise"] = {"share": chosen, "asked": share, "dropped_rows": dropped,
                                     "rows": len(split.train), "valid_recall_by_share": tried,
                                     # what denoising bought, on the same test split (no choice reads it)
                                     "first_fit_test": first[0].metrics.get("test")}
    return checkpoint, result


def one_standard_error_choice(recall_by_share: dict[float, float], users: int) -> float:
    """The smallest share whose validation Recall m_s is at least m* - sqrt(m* (1 - m*) / users),
    m* the best one: the Bhatia-Davis bound on the standard error of a mean of `users` values in
    [0, 1]."""
    best = max(recall_by_share.values())
    margin = float(np.sqrt(best * (1.0 - best) / max(users, 1)))
    return min(share for share, recall in recall_by_share.items() if recall >= best - margin)


def lowest_per_user(train: Interactions, scores: np.ndarray, share: float) -> np.ndarray:
    """bool [n]: False for each user's floor(share · n_u) lowest-scoring rows (ties: the later
    row goes first), True for the rest."""
    order = np.lexsort((-np.arange(len(scores)), scores, train.users))     # by user, then score
    users = train.users[order]
    first_of_user = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    counts = np.diff(np.r_[first_of_user, len(users)])
    rank = np.arange(len(users)) - np.repeat(first_of_user, counts)       # 0 = the lowest score
    dropped = rank < np.repeat(np.floor(share * counts).astype(np.int64), counts)
    keep = np.ones(len(scores), bool)
    keep[order[dropped]] = False
    return keep


def training_scores(checkpoint) -> np.ndarray:
    """float32 [n]: the fitted model's score of each training row (user, item): a trained kind's
    e_u · e_i, a closed-form kind's device model with the user's training items as the history."""
    from edgegnn.kinds import is_trained
    from edgegnn.link_prediction import edge_pairs, embedding_pairs

    train = checkpoint.train
    if is_trained(checkpoint.card.model.type):
        from edgegnn.train.trainer import model_embeddings

        model, graph = checkpoint.build()
        score_pairs = embedding_pairs(*model_embeddings(model, graph))
    else:
        from edgegnn.fold import fold

        score_pairs = edge_pairs(fold(checkpoint), train.to_csr(), None)
    return score_pairs(train.users, train.items).astype(np.float32)
