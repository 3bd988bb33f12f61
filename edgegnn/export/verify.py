"""Is an artifact right? Its outputs against the numpy device math, within a stated bound, per CPU.

The reference is the simulation (`EdgeModel.encode` / `score`, float32 numpy) on the same
inputs. What the graph may do differently, and the bound on |score error| it earns per user u
and item r (`score_bound`):
    float arithmetic in another order       1e-5 · max_r |s_ur| + 1e-6;
    a static activation scale s the graph   the same rounding, except where x/s lies within
      applies (Scoring.applied_scales)      ROUNDING_WINDOW of a rounding boundary: float32
                                            noise may round it either way there, one step s;
    a static scale the graph ignores        the graph keeps x where the simulation rounded
                                            (and clipped) it: |x - round(x)| per coordinate;
    the scored vector v quantized on the    half a step per coordinate, the step max|v|/63
      way into the scoring op (Scoring.x)   ("per-query-7bit") or max|v|/127 ("runtime-8bit";
                                            an asymmetric 8-bit step (max - min)/255 is not
                                            larger);
    float16 tables (precision "fp16")       every value and v rounded to float16 (unit
                                            u = 2^-11) and a float16 sum of d products:
                                            (d + 3) · u · Σ_c |T_rc| |v_c|.
A coordinate error δv_c moves score r by at most Σ_c |T_rc| δv_c (T: the scored table; in
low-rank space its left factor, v = x · right), times |row_scale_r| for a row-scaled table.
An integer kernel that saturates (ONNX Runtime's u8 x s8 with 8-bit x on x86 without VNNI)
misses by thousands of steps: far outside these bounds.

`check_outputs` then asks three things of a graph's (top_items, top_scores) [B, W]: every
returned score within its bound of the reference; every item that must be in the top W
whatever the rounding (fewer than W items could reach its lowest possible score) returned,
so top-K compare as sets and ties may reorder; scores best first.

A user class head's probabilities (`edgegnn.class_head`) are checked the same way
(`class_bound`: the head's logits on BoundOps, then the softmax's own bound).

`verify_cpus` runs these checks for an artifact on this machine and, under QEMU user-mode
(`edgegnn.export.emulation`), on each other CPU feature level its target names.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegnn.class_head import class_logits, has_class_head, probability_bound, softmax
from edgegnn.edge_model import ACTIVATION_LEVELS, EdgeModel, NumpyOps, gather_rows, matmul, segment_softmax
from edgegnn.errors import ExportError
from edgegnn.export.plan import Scoring
from edgegnn.kinds import item_scores, kind
from edgegnn.tensors import DenseTensor, LowRankTensor, RowScaledTensor

log = logging.getLogger(__name__)
ROUNDING_WINDOW = 1e-3      # steps; float32 noise in x/s (|x|/s <= 127) is ~1e-5 steps
FLOAT_RTOL = 1e-5
FLOAT16_UNIT = 2.0 ** -11
_QUERY_STEPS = {"float": None, "static-7bit": None, "per-query-7bit": ACTIVATION_LEVELS["user"], "runtime-8bit": 127}


@dataclass(frozen=True, eq=False)
class Queries:
    """The inputs a verification runs: item-row histories (with optional e_u⁰), or user embeddings.

    Attributes:
        histories: int64 row arrays (history variant), or None.
        user_base: float32 [B, d⁰] or None.
        embeddings: float32 [B, d] (user variant), or None.
    """

    histories: tuple[np.ndarray, ...] | None = None
    user_base: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.embeddings) if self.embeddings is not None else len(self.histories)


def score_bound(edge: EdgeModel, scoring: Scoring, queries: Queries, *, precision: str = "int8"
                ) -> tuple[np.ndarray, np.ndarray]:
    """(reference scores float32 [B, I], bound float64 [B, I]) for these queries (module docstring)."""
    (x, dx), term = _user_vector(edge, scoring, queries, precision)
    reference = edge.score(x)
    if term is not None:       # the kind's item_scores term: its float sum in another order
        reference = (reference + term[0]).astype(np.float32)
    if "user" in edge.activation_scales:
        dx = rounding_error(x, float(edge.activation_scales["user"]), ACTIVATION_LEVELS["user"],
                            "user" in scoring.applied_scales, dx)
    x = edge.quantize_activation("user", x)
    table, row_scale = edge.tensors["item"], None
    if isinstance(table, RowScaledTensor):
        table, row_scale = table.base, np.abs(table.row_scale.to_dense().astype(np.float64))
    if isinstance(table, LowRankTensor):   # scored in the rank-r space: v = x · right, table = left
        right = np.abs(table.right.to_dense().astype(np.float64))
        x, dx, table = matmul(x, table.right).astype(np.float64), dx @ right, table.left
    magnitude = np.abs(table.to_dense().astype(np.float32))           # |T| [R, c]; float32: 1M rows in 256 MB
    levels = _QUERY_STEPS[scoring.x]
    if levels is not None:    # the step the graph's own x (within dx of the simulation's) gets
        dx = dx + (np.abs(x) + dx).max(axis=1, keepdims=True) / levels / 2
    bound = (dx.astype(np.float32) @ magnitude.T).astype(np.float64)
    if precision == "fp16":
        bound += (x.shape[1] + 3) * FLOAT16_UNIT * ((np.abs(x) + dx).astype(np.float32) @ magnitude.T)
    if row_scale is not None:
        bound *= row_scale[None, :]
    if term is not None:
        bound += term[1]
    bound += FLOAT_RTOL * largest_score(reference) + 1e-6
    return reference, bound


def largest_score(reference: np.ndarray) -> np.ndarray:
    """[B, 1]: the largest |score| of each row among the scored items (inverted lists leave the
    others at -inf, which scale no bound)."""
    return np.where(np.isfinite(reference), np.abs(reference), 0.0).max(axis=1, keepdims=True)


def rounding_error(x: np.ndarray, scale: float, levels: int, applied: bool, dx: np.ndarray) -> np.ndarray:
    """Per-coordinate bound on |graph - simulation| after the simulation's static rounding
    clip(rint(x/s), -L, L)·s, given |graph - simulation| <= dx before it: where the graph ignores
    the rounding, dx plus what the rounding (and clipping) moved x; where it applies it, 0 unless
    x/s lies within dx/s + ROUNDING_WINDOW of a rounding boundary."""
    x = x.astype(np.float64)
    if not applied:
        return dx + np.abs(x - np.clip(np.rint(x / scale), -levels, levels) * scale)
    steps = np.abs(x) / scale
    distance = np.abs(steps - np.floor(steps) - 0.5)
    near = distance * scale <= dx + ROUNDING_WINDOW * scale
    return np.where(near, scale * np.ceil(dx / scale + ROUNDING_WINDOW), 0.0)


def _user_vector(edge: EdgeModel, scoring: Scoring, queries: Queries, precision: str):
    """(e_u [B, d] as the simulation computes it (before the "user" rounding), a bound on the
    graph's difference per coordinate), and the kind's item_scores term as (value, bound) [B, I]
    or None: the kind's own device math run on `BoundOps`."""
    if queries.embeddings is not None:    # fed as they are
        x = np.asarray(queries.embeddings, np.float32)
        return (x, np.zeros(x.shape, np.float64)), None
    ops = BoundOps(edge, scoring, list(queries.histories), queries.user_base, precision)
    return kind(edge.kind).encode(ops, edge.params), item_scores(edge.kind, ops, edge.params)


def _absolute(edge: EdgeModel) -> EdgeModel:
    """The same model with |values| in every (dense) tensor: its pools bound the terms' magnitudes."""
    return dataclasses.replace(edge, activation_scales={},
                               tensors={name: DenseTensor(np.abs(t.to_dense()).astype(np.float32))
                                        for name, t in edge.tensors.items()})


class BoundOps:
    """The kinds' ops (`edgegnn.kinds.ops`) over (value, bound) pairs: the value is the
    simulation's (`NumpyOps`), the bound how far the graph's may be from it per coordinate.

    history_pool: float noise, 1e-6 of the row's largest value (+ u · Σ |rows| for float16
    tables); matmul: |dx| @ |table| (+ float noise, + u · |x| @ |table| for float16); add and
    scale: the sums and |c| times; relu: 1-Lipschitz; activation: `rounding_error`.
    """

    def __init__(self, edge: EdgeModel, scoring: Scoring, histories, user_base, precision: str) -> None:
        self.values = NumpyOps(edge, histories, user_base)
        self.edge, self.scoring, self.half = edge, scoring, precision == "fp16"
        self.magnitudes = NumpyOps(_absolute(edge), histories, None if user_base is None else np.abs(user_base)) \
            if self.half else None

    @staticmethod
    def _noise(x: np.ndarray) -> np.ndarray:
        return np.full(x.shape, 1e-6) * np.abs(x).max(axis=1, keepdims=True)

    def _abs(self, table: str) -> np.ndarray:
        return np.abs(self.edge.tensors[table].to_dense().astype(np.float64))

    def history_pool(self, table: str, norm: str):
        x = self.values.history_pool(table, norm)
        dx = self._noise(x)
        if self.half:          # every table value rounded to float16: u of each term's magnitude
            dx = dx + FLOAT16_UNIT * self.magnitudes.history_pool(table, norm)
        return x, dx

    def history_attention(self, table: str):
        """Float noise of the softmax and the weighted sum: FLOAT_RTOL (exp, sum and divide
        each a few ulps) of Σ_h α_h |m_h| per coordinate; with float16 tables, u of that for
        the messages and 2u·max|a| of it for the logits' rounding (δα_h <= 2 α_h max|δa|)."""
        x = self.values.history_attention(table)
        ops = self.values
        rows = gather_rows(self.edge.tensors[table], ops.index).astype(np.float64)
        weights = segment_softmax(rows[:, -1].astype(np.float32), ops.segment, len(ops.counts))
        magnitude = np.zeros((len(ops.counts), rows.shape[1] - 1))
        np.add.at(magnitude, ops.segment, np.abs(rows[:, :-1]) * weights[:, None])
        factor = FLOAT_RTOL
        if self.half:
            largest = np.zeros(len(ops.counts))
            np.maximum.at(largest, ops.segment, np.abs(rows[:, -1]))
            factor = factor + FLOAT16_UNIT * (1.0 + 2.0 * largest[:, None])
        return x, factor * magnitude + self._noise(x)

    def user_base(self):
        base = self.values.user_base()
        return None if base is None else (base, np.zeros(base.shape))

    def has(self, name: str) -> bool:
        return self.values.has(name)

    def matmul(self, v, table: str):
        x = self.values.matmul(v[0], table)
        return x, self._product_error(v, self._abs(table), x)

    def matmul_t(self, v, table: str):
        x = self.values.matmul_t(v[0], table)
        return x, self._product_error(v, self._abs(table).T, x)

    def _product_error(self, v, magnitude: np.ndarray, x: np.ndarray) -> np.ndarray:
        dx = v[1] @ magnitude + self._noise(x)
        if self.half:
            dx = dx + FLOAT16_UNIT * (np.abs(v[0]) @ magnitude)
        return dx

    def add(self, a, b):
        return self.values.add(a[0], b[0]), a[1] + b[1]

    def scale(self, v, factor: float):
        return self.values.scale(v[0], factor), abs(factor) * v[1]

    def relu(self, v):
        return self.values.relu(v[0]), v[1]

    def bias(self, name: str):
        b = self.values.bias(name)
        return b, np.zeros(b.shape)

    def neighbor_scores(self, ids: str, weights: str):
        """The scattered sum's float noise: FLOAT_RTOL of Σ |w| per item (its terms' magnitude),
        plus u of it where the weights ship in float16."""
        x = self.values.neighbor_scores(ids, weights)
        absolute = DenseTensor(np.abs(self.edge.tensors[weights].to_dense()).astype(np.float32))
        magnitudes = dataclasses.replace(self.edge, tensors={**self.edge.tensors, weights: absolute})
        magnitude = NumpyOps(magnitudes, self.values.histories).neighbor_scores(ids, weights)
        return x, (FLOAT_RTOL + (FLOAT16_UNIT if self.half else 0.0)) * magnitude.astype(np.float64)

    def activation(self, name: str, v):
        scale = self.edge.activation_scales.get(name)
        if scale is None:
            return v
        dx = rounding_error(v[0], float(scale), ACTIVATION_LEVELS[name], name in self.scoring.applied_scales, v[1])
        return self.values.activation(name, v[0]), dx


def check_outputs(reference: np.ndarray, bound: np.ndarray, items: np.ndarray, scores: np.ndarray) -> dict:
    """How a graph's top lists compare with the reference (see the module docstring).

    Returns {"max_error_over_bound", "scores_out_of_bound", "missing_top_items", "unsorted_rows",
    "queries", "passed"}.
    """
    items = np.asarray(items, np.int64)
    width = items.shape[1]
    pad = items < 0        # inverted lists holding fewer items than the width: -1 at -inf, nothing else
    expected = np.take_along_axis(reference, np.maximum(items, 0), axis=1).astype(np.float64)
    allowed = np.take_along_axis(bound, np.maximum(items, 0), axis=1)
    with np.errstate(invalid="ignore"):
        ratio = np.abs(np.asarray(scores, np.float64) - expected) / allowed
    ratio = np.where(pad, np.where(np.isneginf(scores), 0.0, np.inf), np.nan_to_num(ratio, nan=np.inf))
    missing = sum(len(required_items(reference[r], bound[r], width) - set(items[r].tolist()))
                  for r in range(len(items)))
    slack = FLOAT_RTOL * largest_score(reference)
    with np.errstate(invalid="ignore"):      # -inf - -inf between two pads: NaN, not a disorder
        unsorted = int((np.diff(scores, axis=1) > slack).any(axis=1).sum())
    worst = float(ratio.max()) if ratio.size else 0.0
    return {"max_error_over_bound": round(worst, 4), "scores_checked": int(ratio.size),
            "scores_out_of_bound": int((ratio > 1).sum()), "missing_top_items": int(missing),
            "unsorted_rows": unsorted, "queries": len(items), "passed": worst <= 1 and missing == 0 and unsorted == 0}


def class_bound(edge: EdgeModel, scoring: Scoring, queries: Queries, *, precision: str = "int8"
                ) -> tuple[np.ndarray, np.ndarray]:
    """(reference class probabilities float32 [B, C], bound float64 [B, C]) of a model with a user
    class head: the head's logits on BoundOps (the e_u bound through |class_weight|), then
    `class_head.probability_bound` through the softmax."""
    ops = BoundOps(edge, scoring, list(queries.histories), queries.user_base, precision)
    logits, logit_bound = class_logits(ops, kind(edge.kind).encode(ops, edge.params))
    reference = softmax(logits)
    return reference, probability_bound(reference, logit_bound)


def check_classes(result: dict, reference: np.ndarray, bound: np.ndarray, probabilities: np.ndarray) -> dict:
    """`check_outputs`' result with the class probabilities' check added (every one within its
    bound of the reference; `passed` requires it)."""
    ratio = np.abs(np.asarray(probabilities, np.float64) - reference) / bound
    worst = float(ratio.max()) if ratio.size else 0.0
    return {**result, "class_max_error_over_bound": round(worst, 4), "class_probabilities_checked": int(ratio.size),
            "class_probabilities_out_of_bound": int((ratio > 1).sum()), "passed": result["passed"] and worst <= 1}


def required_items(reference: np.ndarray, bound: np.ndarray, width: int) -> set[int]:
    """Items that are in the top `width` whatever the rounding: at most `width` items (itself
    included) can reach its lowest possible score."""
    upper = np.sort(reference + bound)
    lower = reference - bound
    reach = len(upper) - np.searchsorted(upper, lower, side="left")     # #{j: upper_j >= lower_i}
    return set(np.flatnonzero(reach <= width).tolist())


# ---- the queries a verification runs ---------------------------------------------------------

def probe_queries(edge: EdgeModel, variant: str, *, histories: Sequence[np.ndarray] = (),
                  user_base: np.ndarray | None = None, history_length: int | None = None, count: int = 24,
                  seed: int = 0) -> Queries:
    """Up to `count` of the given histories (real users, the newest H items), or seeded random ones,
    plus 8 stress queries: one-item histories of the rows with the largest entries, whose
    full-scale coordinates drive integer kernels to the edges of their ranges.

    For the "user" variant the same histories, encoded (EdgeModel.encode), are the embeddings.
    """
    rng = np.random.default_rng(seed)
    limit = history_length or 50
    kept = [i for i, h in enumerate(list(histories)[:count]) if len(h)]
    chosen = [np.asarray(histories[i], np.int64)[-limit:] for i in kept]
    base = None if user_base is None or not kept else np.asarray(user_base, np.float32)[kept]
    if not chosen:
        lengths = rng.integers(1, min(limit, edge.num_items) + 1, count)
        chosen = [rng.choice(edge.num_items, int(n), replace=False).astype(np.int64) for n in lengths]
    first = edge.tensors[kind(edge.kind).HISTORY_TABLES[0]].to_dense()
    stress = np.argsort(-np.abs(first).max(axis=1), kind="stable")[:8]
    chosen += [np.array([row], np.int64) for row in stress]
    if base is not None:
        base = np.concatenate([base, np.zeros((len(stress), base.shape[1]), np.float32)])
    if variant == "user":
        return Queries(embeddings=edge.encode(chosen, base))
    return Queries(histories=tuple(chosen), user_base=base)


# ---- running the checks on CPUs ----------------------------------------------------------------

def verify_cpus(directory: Path, edge: EdgeModel, manifest: dict, queries: Queries, *, levels: Sequence[str],
                emulators, recommender=None) -> dict:
    """Run the artifact in `directory` on this CPU (through `recommender` if it is open already)
    and on the emulated `levels`; compare each run.

    Returns the manifest's "cpus" record: {"target": levels, "verified": [...], "not_verified":
    [...]}; raises ExportError naming the CPU (and the likely cause) on the first failed check.
    """
    from edgegnn.cpu import LEVELS, describe, host_cpu
    from edgegnn.export.emulation import run_on_levels
    from edgegnn.runtime.replay import run_queries

    scoring = Scoring.from_dict(manifest["graph"]["scoring"])
    reference, bound = score_bound(edge, scoring, queries, precision=manifest["precision"])
    classes = class_bound(edge, scoring, queries, precision=manifest["precision"]) if has_class_head(edge) else None

    def check(outputs) -> dict:
        result = check_outputs(reference, bound, *outputs[:2])
        return result if classes is None else check_classes(result, *classes, outputs[2])

    host = host_cpu()
    outputs, runtime = run_queries(recommender or directory, queries.histories, queries.user_base, queries.embeddings)
    verified = [_record(host["level"], f"this machine: {describe(host)}", False, runtime,
                        _checked(check(outputs), host["level"], "this machine", manifest))]
    wanted = [name for name in levels if name != host["level"]]
    runnable, not_verified = [], []
    for name in wanted:
        reason = _cannot_emulate(LEVELS[name], host, emulators)
        (not_verified.append({"level": name, "reason": reason}) if reason else runnable.append(name))
    for name, [(outputs, runtime, how)] in run_on_levels(emulators, runnable, [(directory, queries)]).items():
        result = _checked(check(outputs), name, how, manifest)
        verified.append(_record(name, how, True, runtime, result))
    return {"target": list(levels), "verified": verified, "not_verified": not_verified,
            "bound": "edgegnn.export.verify.score_bound (per score; top-K as sets)"}


def _cannot_emulate(level, host: dict, emulators) -> str | None:
    if level.qemu_cpu is None:
        return "hardware only (QEMU emulates no AVX-512): verified only when exported on such a CPU"
    if emulators is None:
        return "no emulator: set EDGEGNN_EMULATORS to a folder from scripts/setup_emulators.sh"
    return emulators.missing(level, host["arch"])


def _record(level: str, how: str, emulated: bool, runtime: str, result: dict) -> dict:
    return {"level": level, "how": how, "emulated": emulated, "runtime": runtime, **result}


def _checked(result: dict, level: str, how: str, manifest: dict) -> dict:
    """`result`, or an ExportError naming the CPU and the likely cause when it failed."""
    if result["passed"]:
        return result
    integer = manifest["graph"]["scoring"]["op"] not in ("MatMul", "FULLY_CONNECTED", "lookup")
    cause = ("its integer kernels there do not give the exact integer result (e.g. int16 pair sums of u8 x s8 "
             "products that saturate on x86 without VNNI)" if integer else
             "its float kernels there differ beyond rounding")
    if result.get("class_probabilities_out_of_bound") and not result["scores_out_of_bound"] \
            and not result["missing_top_items"]:
        cause = "the class head's float kernels there (matmul, softmax) differ beyond rounding"
    classes = (f", {result['class_probabilities_out_of_bound']} of {result['class_probabilities_checked']} class "
               "probabilities beyond theirs" if "class_probabilities_checked" in result else "")
    raise ExportError(f"the {manifest['precision']} artifact is wrong on {level} ({how}): "
                      f"{result['scores_out_of_bound']} of {result['scores_checked']} scores beyond their bound "
                      f"(worst {result['max_error_over_bound']:.3g}x){classes}, "
                      f"{result['missing_top_items']} top items missing; likely cause: {cause}",
                      hint="nothing was written; report this with the model, the target and this CPU")
