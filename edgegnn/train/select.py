"""The default model, chosen on the user's own data: candidates fitted and compared on validation.

`edgegnn train --data PATH` with no model card runs `select_model`: each candidate of
`candidates` (GF-CF at a few ranks, ChebyCF at the two largest, BSPM at the largest, then
LightGCN's default card with the time left) is fitted on the training split and measured (Recall@K) on the validation
split; the best is the model, and the table of what was tried goes into the checkpoint's
metrics. A split without validation interactions gets one carved from its training ones
(VALID_SHARE of each user's, seeded), so the test split never takes part in a choice. The
chosen card is then refitted and measured on test: a graph filter on train + validation (its
settings are fixed, and every interaction but the test ones informs it), a trained kind on train
(validation stops it early). The checkpoint's "valid" metrics are the chosen trial's.

Candidates run cheapest first while the time budget lasts; one that would not finish in the
time left (estimated from the previous fits) is skipped and says so. The cheapest always runs:
a budget shorter than it is exceeded (with a warning), not refused, since no fit can be timed
before it runs.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgegnn.data.interactions import Split
from edgegnn.errors import ConfigError, DataError
from edgegnn.models import GraphFilterConfig, LightGCNConfig, ModelCard, TrainConfig

log = logging.getLogger(__name__)
DEFAULT_BUDGET = 300.0         # seconds for the whole selection (fits and validation)
VALID_SHARE = 0.1
RANKS = (32, 128, 512)
VALID_USERS = 5000             # validation users measured per candidate (a seeded sample)


@dataclass
class Trial:
    """One candidate's fit: its card, validation metrics (None if skipped) and seconds."""

    card: ModelCard
    valid: dict | None
    seconds: float
    note: str = ""

    def to_dict(self) -> dict:
        return {"name": self.card.name, "model": dataclasses.asdict(self.card.model), "valid": self.valid,
                "seconds": round(self.seconds, 2), "note": self.note}


def candidates(num_users: int, num_items: int, seed: int = 0) -> list[ModelCard]:
    """GF-CF at each rank below min(users, items), ChebyCF at the two largest and BSPM at the
    largest (the papers' Gowalla settings otherwise: the data decides between them), then
    LightGCN's default card."""
    limit = min(num_users, num_items)
    ranks = [r for r in RANKS if r < limit] or [max(1, limit // 2)]
    training = TrainConfig(seed=seed)
    cards = [ModelCard(name=f"gf-cf-r{rank}", training=training,
                       model=GraphFilterConfig(rank=rank, low_pass_weight=0.3, neighbors=128),
                       description=f"GF-CF graph filter, rank {rank} (chosen on validation)")
             for rank in ranks]
    cards += [ModelCard(name=f"chebycf-r{rank}", training=training,
                        model=GraphFilterConfig(filter="chebycf", rank=rank, low_pass_weight=0.2, neighbors=128),
                        description=f"ChebyCF graph filter, rank {rank} (chosen on validation)")
              for rank in ranks[-2:]]
    top = ranks[-1]
    cards.append(ModelCard(name=f"bspm-r{top}", training=training,
                           model=GraphFilterConfig(filter="bspm", rank=top, low_pass_weight=0.2, neighbors=128),
                           description=f"BSPM graph filter, rank {top} (chosen on validation)"))
    cards.append(ModelCard(name="lightgcn", model=LightGCNConfig(), training=TrainConfig(seed=seed),
                           description="LightGCN, 64-dim, 3 layers, whole-data loss (chosen on validation)"))
    return cards


def selection_split(split: Split, *, seed: int = 0) -> Split:
    """The split the choice is made on: `split` if it has validation interactions, else its
    training interactions re-split (VALID_SHARE of each user's held out as validation)."""
    if split.valid is not None and len(split.valid):
        return split
    from edgegnn.data.splits import split_random

    carved = split_random(split.train, test_ratio=VALID_SHARE, seed=seed)
    return dataclasses.replace(split, train=carved.train, valid=carved.test, test=None)


def select_model(split: Split, *, time_budget: float | None = None, ks=(20,), seed: int = 0,
                 trained: Callable[[ModelCard], ModelCard] = lambda card: card,
                 on_trial: Callable[[Trial], None] | None = None, denoise: float | str = 0.0):
    """Fit the candidates on `split`'s training data, pick the best validation Recall@max(ks),
    refit it (module docstring) and measure it on test. Returns (checkpoint, train result, trials).

    `trained` adjusts a trained kind's card (the CLI's --epochs / --lr / ...); `time_budget`
    (seconds, default DEFAULT_BUDGET) bounds the whole selection. `denoise` (a share or "auto",
    `edgegnn.train.denoise`) applies to the chosen card only: the trials are plain fits, and
    "auto" picks its share on the choice's validation split before the refit.
    """
    from edgegnn.kinds import is_trained
    from edgegnn.train.api import fit

    budget = DEFAULT_BUDGET if time_budget is None else float(time_budget)
    if budget <= 0:
        raise ConfigError("time_budget", time_budget, "must be > 0 seconds")
    chooser = selection_split(split, seed=seed)
    metric = f"recall@{max(ks)}"
    start, trials = time.perf_counter(), []
    for card in candidates(chooser.num_users, chooser.num_items, seed):
        left = budget - (time.perf_counter() - start)
        trial = _try(card, chooser, left, trials, is_trained(card.model.type), trained, ks)
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
    fitted = [t for t in trials if t.valid]
    if not fitted:
        raise DataError("no candidate could be measured on the validation split (no validation user has a "
                        "training history)", hint="use more data or a larger --valid-ratio")
    spent = time.perf_counter() - start
    if spent > 1.2 * budget:   # the cheapest candidate always runs, so a short budget is exceeded, not refused
        # (a trained kind's budget counts training steps: its validation passes come on top)
        log.warning("the model choice took %.0f s of a %.0f s budget (the cheapest candidate always runs; "
                    "candidates that would not fit were skipped)", spent, budget)
    best = max(fitted, key=lambda t: t.valid[metric])
    log.info("chose %s (valid %s %.4f)", best.card.name, metric, best.valid[metric])
    closed_form = isinstance(best.card.model, GraphFilterConfig)
    final = with_validation_in_train(split) if closed_form else split
    if denoise == "auto":                      # the refit may have no validation left to choose on
        probe, _ = fit(chooser, _denoised(best.card, "auto"), ks=ks, measure_test=False,
                       time_budget=_refit_budget(best, budget))
        denoise = probe.metrics["denoise"]["share"]
    checkpoint, result = fit(final, _denoised(best.card, denoise), ks=ks, time_budget=_refit_budget(best, budget))
    checkpoint.metrics["valid"] = best.valid
    checkpoint.metrics["selection"] = {"metric": metric, "chosen": best.card.name,
                                       "carved_validation": chooser is not split,
                                       "refitted_on": "train + valid" if final is not split else "train",
                                       "trials": [t.to_dict() for t in trials]}
    return checkpoint, result, trials


def _denoised(card: ModelCard, share: float | str) -> ModelCard:
    return dataclasses.replace(card, training=dataclasses.replace(card.training, denoise=share))


def with_validation_in_train(split: Split) -> Split:
    """The split with its validation interactions moved into train (no validation left): once the
    settings are chosen, a closed-form model is refitted on every interaction but the test ones
    (a trained kind keeps its validation split for early stopping)."""
    if split.valid is None or not len(split.valid):
        return split
    train, valid = split.train, split.valid
    optional = {name: np.concatenate([getattr(train, name), getattr(valid, name)])
                for name in ("ratings", "timestamps")
                if getattr(train, name) is not None and getattr(valid, name) is not None}
    merged = dataclasses.replace(train, users=np.concatenate([train.users, valid.users]),
                                 items=np.concatenate([train.items, valid.items]),
                                 ratings=optional.get("ratings"), timestamps=optional.get("timestamps"))
    return dataclasses.replace(split, train=merged, valid=None)


def _try(card: ModelCard, split: Split, left: float, trials: list[Trial], trains: bool,
         trained: Callable[[ModelCard], ModelCard], ks) -> Trial:
    """Fit one candidate and measure it on validation, unless the time left cannot hold it."""
    from edgegnn.train.api import fit

    estimate = _estimate(card, trials)
    if trials and (left <= 0 or (estimate is not None and estimate > left)):   # the first (cheapest) always runs
        return Trial(card, None, estimate or 0.0,
                     note=f"skipped: needs ~{estimate or 0:.0f} s, {max(left, 0):.0f} s left")
    card = trained(card) if trains else card
    begin = time.perf_counter()
    checkpoint, _ = fit(_sampled(split), card, ks=ks, time_budget=left if trains else None, measure_test=False)
    seconds = time.perf_counter() - begin
    valid = checkpoint.metrics.get("valid")
    return Trial(card, valid, seconds, note="" if valid else "no validation users")


def _estimate(card: ModelCard, trials: list[Trial]) -> float | None:
    """Seconds a graph filter of this rank should take: the last fitted one's, scaled by rank
    (the SVD and the scoring grow about linearly in it). A trained kind gets the time left."""
    previous = [t for t in trials if t.valid is not None and isinstance(t.card.model, GraphFilterConfig)]
    if not isinstance(card.model, GraphFilterConfig) or not previous:
        return None
    last = previous[-1]
    return last.seconds * max(1.0, card.model.rank / last.card.model.rank)


def _refit_budget(best: Trial, budget: float) -> float | None:
    """A trained kind's refit gets as long as its trial did (at least a tenth of the budget)."""
    return None if isinstance(best.card.model, GraphFilterConfig) else max(best.seconds, budget / 10)


def _sampled(split: Split) -> Split:
    """The split with at most VALID_USERS validation users (seeded): what a trial measures (the
    choice compares candidates on the same users)."""
    valid = split.valid
    users = np.unique(valid.users)
    if len(users) > VALID_USERS:
        keep = np.sort(np.random.default_rng(0).choice(users, VALID_USERS, replace=False))
        valid = valid.select(np.flatnonzero(np.isin(valid.users, keep)))
    return dataclasses.replace(split, valid=valid)
