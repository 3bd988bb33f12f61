"""Injected noise, to measure robustness: random fake interactions added to a training split.

`inject_noise(train, rate)` adds round(rate · n) rows (user, item): the user drawn in proportion
to the user's training rows (each user gets about `rate` of its own count, as misclicks would),
the item uniformly among the items the user has no row with (a fake row is never a duplicate).
Test and validation stay clean, so a robustness benchmark measures what the noise cost. The
result carries no ratings or timestamps (a fake row has neither).
"""

from __future__ import annotations

import numpy as np

from edgegnn.data.interactions import Interactions
from edgegnn.errors import ConfigError


def inject_noise(train: Interactions, rate: float, *, seed: int = 0) -> tuple[Interactions, np.ndarray]:
    """(train with the fake rows appended, bool [n + fakes]: True on a fake row)."""
    if not 0.0 <= rate <= 10.0 or not np.isfinite(rate):
        raise ConfigError("noise_rate", rate, "must satisfy 0 <= noise_rate <= 10 (a share of the training rows)")
    rng = np.random.default_rng(seed)
    wanted = int(round(rate * len(train)))
    seen = set((train.users * np.int64(train.num_items) + train.items).tolist())
    users = rng.choice(train.users, size=wanted) if wanted else np.zeros(0, np.int64)
    fake_users, fake_items = [], []
    for user in users:          # rejection sampling: the catalog is far larger than a history
        for _ in range(100):
            item = int(rng.integers(train.num_items))
            key = int(user) * train.num_items + item
            if key not in seen:
                seen.add(key)
                fake_users.append(int(user))
                fake_items.append(item)
                break
    noisy = Interactions(users=np.r_[train.users, np.asarray(fake_users, np.int64)],
                         items=np.r_[train.items, np.asarray(fake_items, np.int64)],
                         user_ids=train.user_ids, item_ids=train.item_ids)
    return noisy, np.r_[np.zeros(len(train), bool), np.ones(len(fake_users), bool)]
