"""Summary statistics of a `Split`, as plain JSON-serializable values."""

from __future__ import annotations

import numpy as np

from edgegnn.data.interactions import Split


def describe(split: Split) -> dict:
    """Sizes, density and degree spread of a split.

    Returns:
        {"source": str, "users": int, "items": int,
         "interactions": int (train + valid + test),
         "train", "valid", "test": int (valid 0 if there is none),
         "density": interactions / (users * items),
         "user_degree", "item_degree": {"p50", "p90", "p99" (floats), "max" (int)}
             over every user/item of the id space, counted in train (the graph the
             model propagates over),
         "users_without_train", "items_without_train": ids with no train row (int),
         "skipped": {reason: rows} (ints),
         "anomalies": {what: count} (ints; `edgegnn.data.anomalies`)}
    """
    counts = {"train": len(split.train),
              "valid": 0 if split.valid is None else len(split.valid),
              "test": len(split.test)}
    total = sum(counts.values())
    cells = split.num_users * split.num_items
    user_deg = split.train.user_degrees()
    item_deg = split.train.item_degrees()
    return {
        "source": split.source,
        "users": int(split.num_users),
        "items": int(split.num_items),
        "interactions": total,
        **counts,
        "density": float(total / cells) if cells else 0.0,
        "user_degree": _spread(user_deg),
        "item_degree": _spread(item_deg),
        "users_without_train": int((user_deg == 0).sum()),
        "items_without_train": int((item_deg == 0).sum()),
        "skipped": {str(k): int(v) for k, v in split.skipped.items()},
        "anomalies": {str(k): int(v) for k, v in split.anomalies.items()},
    }


def _spread(degrees: np.ndarray) -> dict:
    if len(degrees) == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0}
    p50, p90, p99 = np.percentile(degrees, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99),
            "max": int(degrees.max())}
