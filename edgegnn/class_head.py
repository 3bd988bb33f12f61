"""A node classifier on the device: user interests from the history, item categories per item.

`edgegnn classify --out head.json` fits a linear head on the model's device features
(`edgegnn.classify`): logits = ((x - mean) / scale) · Wᵀ + b over C classes. An export with
that head carries it in one of two forms:

user head (x = e_u, the device encoding of the history, d wide):
    the standardization is folded into the weights once,
        class_weight = W / scale                     [C, d]
        class_bias   = b - (mean / scale) · Wᵀ        [C]
    and the graph gains the output
        class_probabilities = softmax(e_u · class_weightᵀ + class_bias)      [B, C]
    computed beside the scores from the same e_u (float: the head reads e_u before the "user"
    activation rounding the scoring applies). `class_logits` is this device math, written
    once against `edgegnn.kinds.ops`, so the simulation, the error bounds and both graph
    writers share it; the CPU verification checks the output on every CPU of the target.
item head (x = the item's scored row, fixed per item):
    the logits of every item are computed here, from the exported model's own item table,
    and ship as a float32 table [I, C] beside the graph (`ITEM_LOGITS`); the runtime turns a
    row into probabilities. Nothing about them depends on a query, so no graph runs for it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegnn.errors import ConfigError, DataError
from edgegnn.runtime.manifest import CLASS_OUTPUT, ITEM_LOGITS
from edgegnn.runtime.recommender import softmax

CLASS_WEIGHT, CLASS_BIAS = "class_weight", "class_bias"
HEAD_FIELDS = ("node", "classes", "mean", "scale", "weights", "bias")


@dataclass(frozen=True)
class ClassHead:
    """A fitted head (see the module docstring): classes [C]; mean, scale [d]; weights [C, d]; bias [C]."""

    node: str
    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    metrics: dict

    @property
    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """(class_weight float32 [C, d], class_bias float32 [C]): the standardization folded in."""
        weight = self.weights / self.scale[None, :]
        return weight.astype(np.float32), (self.bias - weight @ self.mean).astype(np.float32)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 [N, C] of features x [N, d]."""
        weight, bias = self.folded
        return (np.asarray(x, np.float32) @ weight.T + bias).astype(np.float32)


def read_head(path: str | Path) -> ClassHead:
    """The head `edgegnn classify --out` wrote; a DataError naming the file and the field otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such head file (write one with `edgegnn classify MODEL --labels F --out HEAD`)",
                        path=path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a JSON head file ({exc})") from None
    missing = [name for name in HEAD_FIELDS if not isinstance(record, dict) or name not in record]
    if missing:
        raise DataError(f"{path}: not a head from `edgegnn classify --out` (missing {', '.join(missing)})")
    if record["node"] not in ("item", "user"):
        raise DataError(f"{path}: node is {record['node']!r}; allowed: item, user")
    try:
        arrays = {name: np.asarray(record[name], np.float64) for name in ("mean", "scale", "weights", "bias")}
    except (TypeError, ValueError):
        raise DataError(f"{path}: mean, scale, weights and bias must be numbers") from None
    classes, (width,) = tuple(str(c) for c in record["classes"]), arrays["mean"].shape
    shapes = {"scale": (width,), "weights": (len(classes), width), "bias": (len(classes),)}
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise DataError(f"{path}: {name} has shape {list(arrays[name].shape)}, expected {list(shape)} "
                            f"({len(classes)} classes, {width} features)")
    if len(classes) < 2 or not np.isfinite(np.concatenate([a.ravel() for a in arrays.values()])).all() \
            or (arrays["scale"] <= 0).any():
        raise DataError(f"{path}: a head needs at least 2 classes, finite numbers and positive scales")
    return ClassHead(record["node"], classes, metrics={k: record.get(k) for k in ("test", "majority")}, **arrays)


def check_width(head: ClassHead, width: int, what: str) -> None:
    """A ConfigError when the head was fitted on features of another width than the model's."""
    if head.mean.shape[0] != width:
        raise ConfigError("head", f"{head.node} head on {head.mean.shape[0]} features",
                          f"this model's {what} is {width} wide: fit the head on this model "
                          "(edgegnn classify MODEL --labels F --out HEAD)")


def attach_user_head(edge, head: ClassHead):
    """`edge` with the head's folded tensors and its classes (params["classes"]): its graphs
    gain the `CLASS_OUTPUT` output."""
    from edgegnn.tensors import DenseTensor

    if head.node != "user":
        raise ConfigError("head", head.node, "only a user head runs in the graph; an item head ships as logits")
    width = int(np.asarray(edge.encode([np.zeros(1, np.int64)])).shape[1])
    check_width(head, width, "user encoding e_u")
    weight, bias = head.folded
    with_head = edge.with_tensors(**{CLASS_WEIGHT: DenseTensor(weight), CLASS_BIAS: DenseTensor(bias)})
    return dataclasses.replace(with_head, params={**edge.params, "classes": list(head.classes)})


def has_class_head(edge) -> bool:
    """Whether `edge`'s graphs compute class probabilities (`attach_user_head`)."""
    return CLASS_WEIGHT in edge.tensors


def class_logits(ops, e_u):
    """logits [B, C] = e_u · class_weightᵀ + class_bias, on a backend's ops (`edgegnn.kinds.ops`)."""
    return ops.add(ops.matmul_t(e_u, CLASS_WEIGHT), ops.bias(CLASS_BIAS))


def probability_bound(probabilities: np.ndarray, logit_bound: np.ndarray) -> np.ndarray:
    """|p' - p| per class [B, C] when every logit moves by at most δ_c (logit_bound [B, C]):
    p'_c / p_c lies in [e^{-2δ}, e^{2δ}] with δ = max_c δ_c, so |p' - p| <= p (e^{2δ} - 1)
    (+ float32 rounding of the softmax itself)."""
    delta = np.asarray(logit_bound, np.float64).max(axis=1, keepdims=True)
    return np.asarray(probabilities, np.float64) * np.expm1(2.0 * delta) + 1e-6


def simulate(edge, histories, user_base=None) -> np.ndarray:
    """The simulation's class probabilities float32 [B, C] of `edge` (with a user head)."""
    from edgegnn.edge_model import NumpyOps
    from edgegnn.kinds import kind

    ops = NumpyOps(edge, histories, user_base)
    return softmax(class_logits(ops, kind(edge.kind).encode(ops, edge.params)))


def item_logits(edge, head: ClassHead) -> np.ndarray:
    """float32 [I, C]: the item head on every row of the model's scored item table (as stored:
    an int8 table's dequantized rows, the values the device scores)."""
    if head.node != "item":
        raise ConfigError("head", head.node, "per-item logits come from an item head")
    check_width(head, edge.embedding_dim, "item table")
    return head.logits(edge.tensors["item"].to_dense())


def manifest_record(edge, heads: dict) -> dict:
    """The manifest's "class_heads": {node: its classes, where its output is, how it was measured}
    for `edge`'s user head (attached here or before) and an item head in `heads`."""
    records = {}
    if has_class_head(edge):
        user = heads.get("user")
        records["user"] = {"classes": list(edge.params["classes"]), "output": CLASS_OUTPUT,
                           "empty_history": "no probabilities (NaN): nothing to classify", **_measured(user)}
    if "item" in heads:
        item = heads["item"]
        records["item"] = {"classes": list(item.classes), "file": ITEM_LOGITS, "dtype": "float32",
                           "shape": [edge.num_items, len(item.classes)], **_measured(item)}
    return records


def _measured(head: ClassHead | None) -> dict:
    if head is None:
        return {"measured": None}
    return {"measured": "held-out labelled nodes of `edgegnn classify`, on the float model's features",
            **{k: v for k, v in head.metrics.items() if v is not None}}
