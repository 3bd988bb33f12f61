"""The manifest's "probability" record: P(user likes item) from an artifact's own scores.

    p = σ(a·s + b),    s the artifact's score of an item (what `Recommender.recommend` returns)
(a, b) are fitted by Platt scaling (`edgegnn.link_prediction.fit_calibration`) on validation
users served as the runtime serves an app's user: the history is the user's training items (the
H the graph takes), no e_u⁰; each held-out positive is set against K uniform items the user has
no row with (K = the card's `negatives` for a "bce" model, else DEFAULT_NEGATIVES). The fitted
calibration is then measured on test users (AUC, log-loss): numbers of the artifact's scores,
not of the trained model's logits, which a history-only device model does not reproduce.
Fitted on validation, reported on test: the test split takes no part in the fit.
"""

from __future__ import annotations

import logging

import numpy as np

from edgegnn.errors import DataError
from edgegnn.link_prediction import edge_pairs, fit_calibration, link_metrics, log_loss, sampled_pairs

log = logging.getLogger(__name__)
DEFAULT_NEGATIVES = 4
MAX_USERS = 2000


def probability_record(edge, checkpoint, split, *, history_length: int | None, seed: int = 0) -> dict | None:
    """{"scale": a, "offset": b, "negatives_per_positive": K, "fitted_on", "test": {auc, logloss},
    "valid": {...}} for the manifest, or None when the split has no validation interactions the
    model can use (said in a warning)."""
    from edgegnn.compress.inverted import exact_scan
    from edgegnn.export.evaluate import eval_data

    edge = exact_scan(edge)       # every pair scored; a list's items keep these scores on the device
    if split.valid is None or len(split.valid) == 0:
        return None
    negatives = DEFAULT_NEGATIVES
    if checkpoint is not None and checkpoint.card.training.loss == "bce":
        negatives = checkpoint.card.training.negatives
    train = checkpoint.train if checkpoint is not None else split.train
    user_ids = checkpoint.train.user_ids if checkpoint is not None else None
    try:
        valid = eval_data(train, split.valid, edge.item_ids, user_ids=user_ids)
    except DataError as error:             # e.g. no validation user with a history the model knows
        log.warning("no probability calibration: %s", error)
        return None
    scorer = edge_pairs(edge, valid.train_csr, history_length)
    users, positives, drawn = sampled_pairs(valid.train_csr, valid.truth_csr, negatives, seed=seed, max_users=MAX_USERS)
    scores = np.r_[scorer(users, positives), scorer(np.repeat(users, negatives), drawn.ravel())]
    labels = np.r_[np.ones(len(users)), np.zeros(drawn.size)]
    scale, offset = fit_calibration(scores, labels, seed=seed)
    record = {"scale": scale, "offset": offset, "negatives_per_positive": negatives,
              "fitted_on": f"validation users as new users (history: their training items, at most H; "
                           f"{len(users)} positives, {negatives} uniform negatives each)",
              "valid": {"logloss": log_loss(scale * scores + offset, labels), "pairs": int(len(labels))}}
    test = eval_data(train, split.test, edge.item_ids, user_ids=user_ids)
    record["test"] = link_metrics(edge_pairs(edge, test.train_csr, history_length), test.train_csr, test.truth_csr,
                                  negatives=negatives, scale=scale, offset=offset, seed=seed + 1)
    return record
