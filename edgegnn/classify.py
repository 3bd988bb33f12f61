"""Node classification on a trained recommender: item categories and user interests.

A labels file (CSV with a header: `item,label` or `user,label`) names nodes of the model's graph
and their classes. The features are what the device model computes, so a classifier trained
here can run beside the recommender on the device:
    item i:  item_i, the row of the EdgeModel's scored `item` table          [d]
    user u:  e_u = encode(u's training history), as the device computes it    [d]
(no user table is read: a new user is classified from the first click, like it is served).
The head is scikit-learn's multinomial logistic regression on standardized features
(StandardScaler -> LogisticRegression), fitted on a stratified share of the labelled nodes and
measured on the rest: accuracy and macro-F1, beside the majority class's (what a classifier must
beat to have learned anything).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegnn.errors import ConfigError, DataError

log = logging.getLogger(__name__)
NODE_KINDS = ("item", "user")


@dataclass(frozen=True)
class Labels:
    """Which kind of node is labelled, their raw ids and their classes (str [n] each)."""

    node: str
    ids: np.ndarray
    classes: np.ndarray


def read_labels(path: str | Path) -> Labels:
    """The labels of `path` (module docstring); a DataError naming the line for a bad row."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such labels file", path=path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DataError("the labels file is empty", path=path)
    header = [cell.strip().lower() for cell in rows[0]]
    if len(header) < 2 or header[0] not in NODE_KINDS or header[1] != "label":
        raise DataError(f"{path}:1: the header must be 'item,label' or 'user,label', got {','.join(rows[0])!r}")
    ids, classes = [], []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"{path}:{number}: expected a {header[0]} id and a label, got {','.join(row)!r}")
        ids.append(row[0].strip())
        classes.append(row[1].strip())
    if len(set(classes)) < 2:
        raise DataError(f"{path}: {len(set(classes))} class(es) in {len(classes)} rows; a classifier needs at least 2")
    return Labels(header[0], np.asarray(ids), np.asarray(classes))


def node_features(edge, train, node: str) -> tuple[np.ndarray, np.ndarray]:
    """(raw ids [n], features float32 [n, d]) of every item (its `item` row), or of every user
    with a training history (its device e_u), in the EdgeModel's rows."""
    if node == "item":
        return np.asarray(edge.item_ids).astype(str), edge.tensors["item"].to_dense().astype(np.float32)
    csr = train.to_csr()
    users = np.flatnonzero(np.diff(csr.indptr) > 0)
    features = [edge.encode([csr.indices[csr.indptr[u]:csr.indptr[u + 1]].astype(np.int64)
                             for u in users[start:start + 512]]) for start in range(0, len(users), 512)]
    return np.asarray(train.user_ids)[users].astype(str), np.vstack(features)


def classify(edge, train, labels: Labels, *, test_ratio: float = 0.2, seed: int = 0) -> dict:
    """Fit the head on (1 - test_ratio) of the labelled nodes the model knows (stratified,
    seeded) and measure it on the rest. Returns {"node", "classes", "known", "unknown",
    "test": {accuracy, macro_f1, nodes}, "majority": {...}, "head": the fitted pipeline}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not 0.0 < test_ratio < 1.0:
        raise ConfigError("test_ratio", test_ratio, "must satisfy 0 < test_ratio < 1")
    ids, features = node_features(edge, train, labels.node)
    row = {raw: i for i, raw in enumerate(ids)}
    known = np.array([raw in row for raw in labels.ids])
    if not known.any():
        raise DataError(f"none of the {len(labels.ids)} labelled {labels.node}s is in the model "
                        f"(e.g. {str(labels.ids[0])!r}); label the ids the model was trained on")
    if (~known).any():
        log.warning("%d labelled %ss are not in the model and were left out (e.g. %r)", int((~known).sum()),
                    labels.node, str(labels.ids[~known][0]))
    x = features[[row[raw] for raw in labels.ids[known]]]
    y = labels.classes[known]
    counts = {c: int((y == c).sum()) for c in np.unique(y)}
    if len(counts) < 2:
        raise DataError(f"the {labels.node}s the model knows carry one class ({str(next(iter(counts)))!r})")
    stratify = y if min(counts.values()) >= 2 else None
    fit_x, test_x, fit_y, test_y = train_test_split(x, y, test_size=test_ratio, random_state=seed, stratify=stratify)
    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)).fit(fit_x, fit_y)
    predicted = head.predict(test_x)
    majority = max(counts, key=lambda c: (int((fit_y == c).sum()), c))
    baseline = np.full(len(test_y), majority)
    return {"node": labels.node, "classes": sorted(counts), "known": int(known.sum()), "unknown": int((~known).sum()),
            "stratified": stratify is not None,
            "test": {"accuracy": float(accuracy_score(test_y, predicted)),
                     "macro_f1": float(f1_score(test_y, predicted, average="macro")), "nodes": int(len(test_y))},
            "majority": {"class": str(majority), "accuracy": float(accuracy_score(test_y, baseline)),
                         "macro_f1": float(f1_score(test_y, baseline, average="macro"))},
            "head": head}


def write_head(result: dict, path: str | Path) -> Path:
    """The fitted head as JSON (temp file + rename): logits = ((x - mean) / scale) · weightsᵀ +
    bias over `classes`, x the node's features (module docstring), and the held-out metrics."""
    import json
    import os
    import tempfile

    scaler, regression = result["head"][0], result["head"][-1]
    record = {"node": result["node"], "classes": [str(c) for c in regression.classes_],
              "features": "item: the EdgeModel's item row; user: the device e_u of the history",
              "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
              "weights": regression.coef_.tolist(), "bias": regression.intercept_.tolist(),
              "test": result["test"], "majority": result["majority"]}
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle, indent=2)
    os.replace(tmp, path)
    return path
