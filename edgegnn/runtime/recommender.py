"""`Recommender`: open an exported artifact and recommend items from a user's history.

    from edgegnn.runtime import Recommender
    rec = Recommender.open("artifacts/cpu")          # verifies the manifest and every checksum
    top = rec.recommend(["i12", "i55", "i301"], k=10)  # [(raw item id, score), ...] best first
    top.skipped                                       # ids the model does not know (also logged)

Only numpy and the artifact's runtime (onnxruntime for model.onnx, ai_edge_litert for
model.tflite) are imported, the runtime lazily when an artifact of its kind is opened.

What happens to a history (raw item ids, oldest first):
    unknown ids        skipped and listed in `Recommendation.skipped` (logged at debug level);
    repeated ids       counted once (the user's ego-graph is a set of items);
    too long           the newest H items are kept, H = the artifact's history length
                       (`Recommender.history_length`, None = any length);
    empty (or only unknown ids) and no user_base
                       popularity fallback: the most popular training items, scored by
                       their share of training interactions (`Recommendation.fallback` True);
                       an artifact without that list answers empty (warned once);
    None, floats, ...  refused (RecommendError naming the position): ids are strings or integers.
With `exclude_seen` (default) every known history item is left out of the results, also
those older than the window H, and k items come back whenever the catalog holds k unseen
ones (`top_rows`): the graph returns K + W items for W history slots, so an ONNX query is fed
at least as many (masked) slots as the user has seen items; a TFLite graph's W is fixed, so
when its list runs short the query's whole score row (the graph's "scores" output) is ranked.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgegnn.runtime.backends import open_backend
from edgegnn.runtime.errors import RecommendError
from edgegnn.runtime.items import ItemIndex
from edgegnn.runtime.manifest import CLASS_OUTPUT, read_manifest, verify_files
from edgegnn.runtime.patch import apply_patch

log = logging.getLogger("edgegnn.runtime")


@dataclass(frozen=True)
class Recommendation(Sequence):
    """Recommended (raw item id, score) pairs, best first; a read-only sequence of pairs.

    Attributes:
        items: the pairs.
        skipped: history ids the artifact does not know (in the order given).
        truncated: history items left out because the history was longer than H (oldest first).
        fallback: True when the popularity list answered (no usable history, no user_base).
    """

    items: tuple[tuple[str, float], ...]
    skipped: tuple[str, ...] = ()
    truncated: int = 0
    fallback: bool = False

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return iter(self.items)

    @property
    def ids(self) -> list[str]:
        return [item for item, _ in self.items]


class _Query(NamedTuple):
    """One history in the model's terms (a tuple: built once per query, cheaper than a dataclass).

    Attributes:
        rows: int [n <= H] (a list) the rows fed to the graph, oldest first: each known item once
            (where it was seen last), the newest H.
        seen: every known row of the history (also those older than H): what `exclude_seen` leaves out.
        skipped: the unknown ids, in the order given.
        truncated: known items left out of `rows` because the history was longer than H.
    """

    rows: list[int]
    seen: set[int]
    skipped: tuple[str, ...]
    truncated: int


class Recommender:
    """A loaded artifact. Create with `Recommender.open(path)`.

    ONNX Runtime sessions may be shared between threads; a LiteRT interpreter may not: give each
    thread its own Recommender for a .tflite artifact.
    """

    def __init__(self, directory: Path, manifest: dict, items: ItemIndex, backend) -> None:
        self.directory = directory
        self.manifest = manifest
        self.items = items          # row <-> raw id, memory-mapped (edgegnn.runtime.items)
        self.backend = backend
        self._inputs = {spec["name"]: spec for spec in manifest["inputs"]}
        self._said_no_popularity = False
        self._workspace: tempfile.TemporaryDirectory | None = None     # a patched copy's folder (`open`)
        self._masks: dict[int, np.ndarray] = {}     # width -> read-only mask of ones (`_ones`)
        slots = self._inputs["history"]["shape"][1] if "history" in self._inputs else None
        self._slots = slots if isinstance(slots, int) else None      # W of a fixed-H graph (TFLite), else None
        self._limit = self._slots if self._slots is not None else self.history_length   # rows kept per history

    @classmethod
    def open(cls, path: str | Path, *, threads: int | None = None, providers: list[str] | None = None,
             delegate: str | None = None, verify: bool = True, patch: str | Path | None = None) -> "Recommender":
        """Load an artifact directory.

        Args:
            path: the folder `edgegnn export` wrote.
            patch: a patch file (`edgegnn update --patch`) to apply to `path` first: the patched
                artifact is rebuilt and verified in a private temporary folder that lives as long
                as the Recommender (`edgegnn.runtime.patch`; `apply_patch` writes a lasting copy).
            threads: runtime threads (default: the target's).
            providers: ONNX Runtime providers (default: the target's, those available here).
            delegate: LiteRT delegate, "xnnpack" or "none" (default: the target's).
            verify: check every file's sha256 against the manifest (a few ms per 10 MB).
        """
        directory, workspace = Path(path), None
        if patch is not None:
            workspace = tempfile.TemporaryDirectory(prefix="edgegnn-patched-")
            directory = apply_patch(directory, patch, Path(workspace.name) / "artifact")
        manifest = read_manifest(directory)
        if verify and workspace is None:           # a patched copy was verified as it was rebuilt
            verify_files(directory, manifest)
        items = ItemIndex.open(directory, manifest)
        backend = open_backend(directory / manifest["model_file"], manifest, threads=threads,
                               providers=providers, delegate=delegate)
        recommender = cls(directory, manifest, items, backend)
        recommender._workspace = workspace        # removed with the Recommender
        return recommender

    # ---- what the artifact takes ---------------------------------------------------------------

    @property
    def max_k(self) -> int:
        """The largest k a query may ask for (the K the graph was exported with)."""
        return int(self.manifest["top_k"])

    @property
    def history_length(self) -> int | None:
        """H: history items per query the artifact uses (the newest); None = any length."""
        return self.manifest.get("history_length")

    @property
    def has_user_base(self) -> bool:
        return "user_base" in self._inputs

    @property
    def num_items(self) -> int:
        return len(self.items)

    @property
    def item_ids(self) -> np.ndarray:
        """str [I]: every raw id by table row (materialized on each call; queries use `items`)."""
        return self.items.all_ids()

    # ---- recommending --------------------------------------------------------------------------

    @property
    def calibration(self) -> tuple[float, float] | None:
        """(a, b) with P(user likes item) = σ(a · score + b) (the manifest's "probability", fitted
        at export on validation users), or None for an artifact exported without validation data."""
        record = self.manifest.get("probability")
        return None if not record else (float(record["scale"]), float(record["offset"]))

    def recommend(self, history: Iterable, k: int = 10, *, exclude_seen: bool = True,
                  user_base: np.ndarray | None = None, probabilities: bool = False) -> Recommendation:
        """Top-k (raw item id, score) for one user's history (raw item ids, oldest first).

        Args:
            history: raw item ids (str or int), oldest first.
            k: 1 <= k <= max_k.
            exclude_seen: leave the history's items out of the results.
            user_base: float32 [d⁰] e_u⁰ of a known user (artifacts exported with it), or None.
            probabilities: give P(user likes item) instead of the score (`calibration`); a
                popularity fallback gets the model's probability for an empty history, σ(b).
        """
        if user_base is not None or probabilities:
            base = None if user_base is None else self._user_base(user_base, batch=None)[None, :]
            return self.recommend_batch([history], k, exclude_seen=exclude_seen, user_base=base,
                                        probabilities=probabilities)[0]
        # One history, no user_base: recommend_batch's steps for a batch of one, without its
        # per-batch lists (what a serving loop calls; tests check that both answer alike).
        self._check_history_query(k)
        query = self._query(history)
        if not query.rows:
            return self._popular(query, k)
        seen = query.seen if exclude_seen else set()
        [(rows, scores)] = self._top_lists([query.rows], k, [seen], None, min_width=len(seen))
        return Recommendation(tuple(zip(self.items.ids_of(rows), scores)), query.skipped, query.truncated)

    def recommend_batch(self, histories: Sequence[Iterable], k: int = 10, *, exclude_seen: bool = True,
                        user_base: np.ndarray | None = None, probabilities: bool = False) -> list[Recommendation]:
        """`recommend` for many users at once (one runtime call per batch on ONNX).

        Args:
            histories: one history per user.
            user_base: float32 [B, d⁰] or None.
            probabilities: as in `recommend`.
        """
        if probabilities and self.calibration is None:
            raise RecommendError("this artifact has no probability calibration (export it with --data that has a "
                                 "validation split)")
        self._check_history_query(k)
        if isinstance(histories, (str, bytes)) or not isinstance(histories, Sequence):
            raise RecommendError("histories must be a list of histories (lists of item ids)")
        base = None if user_base is None else self._user_base(user_base, batch=len(histories))
        queries = self._queries(histories)
        active = [i for i, q in enumerate(queries) if len(q.rows) or base is not None]
        results: list[Recommendation | None] = [None] * len(queries)
        if active:
            exclude = [queries[i].seen if exclude_seen else set() for i in active]
            picks = self._top_lists([queries[i].rows for i in active], k, exclude,
                                    None if base is None else base[active], min_width=max(len(e) for e in exclude))
            ids, start = self.items.ids_of([row for rows, _ in picks for row in rows]), 0   # one gather for all
            for i, (rows, scores) in zip(active, picks):
                pairs = tuple(zip(ids[start:start + len(rows)], scores))
                results[i] = Recommendation(pairs, queries[i].skipped, queries[i].truncated)
                start += len(rows)
        for i, query in enumerate(queries):
            if results[i] is None:
                results[i] = self._popular(query, k)
        return [self._as_probabilities(r) for r in results] if probabilities else results

    def _as_probabilities(self, result: Recommendation) -> Recommendation:
        """`result` with each score s replaced by σ(a·s + b) (σ(b) for a fallback: score 0)."""
        scale, offset = self.calibration
        scores = np.array([0.0 if result.fallback else score for _, score in result.items])
        probability = 0.5 * (1.0 + np.tanh(0.5 * (scale * scores + offset)))     # σ, overflow-free
        return dataclasses.replace(result, items=tuple((item, float(p)) for (item, _), p
                                                       in zip(result.items, probability.tolist())))

    def recommend_embedding(self, user_embedding: np.ndarray, k: int = 10) -> list[Recommendation]:
        """Top-k for user embeddings e_u (artifacts exported with variant "user"): [d] or [B, d]."""
        if self.manifest["variant"] != "user":
            raise RecommendError("this artifact takes histories: use recommend()")
        self._check_k(k)
        x = self._float_matrix("user_embedding", user_embedding, self._inputs["user_embedding"]["shape"][1])
        items, scores = self.backend.run({"user_embedding": x})
        found = [items[row][items[row] >= 0][:k] for row in range(len(x))]     # -1: inverted lists ran short
        return [Recommendation(tuple(zip(self.items.ids_of(rows.tolist()), scores[row][:len(rows)].tolist())))
                for row, rows in enumerate(found)]

    # ---- classes (artifacts exported with a head, `edgegnn export --head`) -----------------------

    def classes(self, node: str = "user") -> list[str] | None:
        """The class labels of the artifact's user (interests) or item (categories) head, or None."""
        head = (self.manifest.get("class_heads") or {}).get(node)
        return None if head is None else list(head["classes"])

    def class_probabilities(self, histories: Sequence[Iterable]) -> np.ndarray:
        """float32 [B, C]: P(class | history) of each user's history (raw item ids) from the graph's
        user head, in the order of `classes("user")`; a row of NaN for a history with no known
        item (nothing to classify). Unknown ids are skipped as in `recommend`."""
        if self.classes("user") is None:
            raise RecommendError("this artifact has no user class head (export it with --head HEAD.json from "
                                 "`edgegnn classify --labels users.csv --out HEAD.json`)")
        if isinstance(histories, (str, bytes)) or not isinstance(histories, Sequence):
            raise RecommendError("histories must be a list of histories (lists of item ids)")
        queries = self._queries(histories)
        out = np.full((len(queries), len(self.classes("user"))), np.nan, np.float32)
        active = [i for i, q in enumerate(queries) if len(q.rows)]
        if active:
            feeds = self.feeds([queries[i].rows for i in active], None)
            out[active] = self.backend.run_outputs(feeds, [CLASS_OUTPUT])[0]
        return out

    def classify(self, history: Iterable) -> list[tuple[str, float]]:
        """(class, probability) of one history, most likely first; [] for no known item."""
        probabilities = self.class_probabilities([history])[0]
        if np.isnan(probabilities).any():
            return []
        order = np.argsort(-probabilities, kind="stable")
        return [(self.classes("user")[c], float(probabilities[c])) for c in order]

    def item_class_probabilities(self, item_ids: Iterable) -> np.ndarray:
        """float32 [N, C]: P(class | item) from the artifact's per-item logits (its item head),
        in the order of `classes("item")`; an unknown id is a RecommendError naming it."""
        head = (self.manifest.get("class_heads") or {}).get("item")
        if head is None:
            raise RecommendError("this artifact has no item class head (export it with --head HEAD.json from "
                                 "`edgegnn classify --labels items.csv --out HEAD.json`)")
        raw = [str(x) for x in item_ids]
        rows = np.asarray(self._rows_of(raw), np.int64)
        if (rows < 0).any():
            raise RecommendError(f"item {raw[int(np.flatnonzero(rows < 0)[0])]!r} is not in this artifact")
        logits = np.memmap(self.directory / head["file"], dtype="<f4", mode="r", shape=tuple(head["shape"]))
        return softmax(logits[rows])

    # ---- the graph call ------------------------------------------------------------------------

    def top_rows(self, histories: Sequence[np.ndarray], k: int, *, exclude: Sequence[np.ndarray] | None = None,
                 user_base: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best item rows per history, leaving out `exclude[u]` (default: the history's own rows):
        (rows int64 [B, k], scores float32 [B, k]), -1 / NaN where fewer than k rows are left.

        Histories longer than the artifact's H keep their last H rows (also for the scores); the
        rows excluded may be more (a user's whole history). k rows come back whenever the catalog
        holds k rows not excluded (see the module docstring).
        """
        exclude = [np.asarray(h, np.int64) for h in (histories if exclude is None else exclude)]
        picks = self._top_lists(histories, k, [set(e.tolist()) for e in exclude], user_base,
                                min_width=max([len(e) for e in exclude] + [0]))
        rows = np.full((len(picks), k), -1, np.int64)
        values = np.full((len(picks), k), np.nan, np.float32)
        for r, (picked, picked_scores) in enumerate(picks):
            rows[r, :len(picked)], values[r, :len(picked)] = picked, picked_scores
        return rows, values

    def _top_lists(self, histories: Sequence[Sequence[int]], k: int, exclude: Sequence[set[int]],
                   user_base: np.ndarray | None, *, min_width: int) -> list[tuple[list[int], list[float]]]:
        """`top_rows` as Python lists, one (rows, scores) pair of lists per history, best first:
        what `recommend_batch` turns into (id, score) pairs without building arrays in between.

        Args:
            exclude: per history, the rows to leave out (a set: a graph row is tested in O(1)).
            min_width: history slots to feed at least (the most rows excluded, see the module docstring).
        """
        items, scores = self.backend.run(self.feeds(histories, user_base, min_width))      # = run_rows
        items, scores = items.tolist(), scores.astype(np.float32, copy=False).tolist()   # float32: as top_rows'
        out = []
        for r, seen in enumerate(exclude):
            rows, values = items[r], scores[r]
            if rows and rows[-1] < 0:                     # inverted lists short of the width: -1 pads the end
                rows, values = rows[:rows.index(-1)], values[:rows.index(-1)]
            if seen.isdisjoint(rows[:k]):                 # the graph's first k are all unseen: they are the answer
                picked, picked_scores = rows[:k], values[:k]
            else:
                unseen = [row not in seen for row in rows]
                picked, picked_scores = list(compress(rows, unseen))[:k], list(compress(values, unseen))[:k]
            if len(picked) < k and len(picked) < self.num_items - len(seen):     # seen items filled the list
                picked, picked_scores = self._ranked_in_full(histories[r], seen, k, user_base, r) or \
                    (picked, picked_scores)
            out.append((picked, picked_scores))
        return out

    def _ranked_in_full(self, history: Sequence[int], exclude: set[int], k: int, user_base,
                        row: int) -> tuple[list[int], list[float]] | None:
        """Top k rows outside `exclude` from the query's whole score row (TFLite graphs' "scores")."""
        base = None if user_base is None else user_base[row:row + 1]
        full = self.backend.full_scores(self.feeds([history], base), self.num_items)        # [I]
        if full is None and self.backend.kind == "onnx":    # it scored all it could (inverted lists ran short)
            return None
        if full is None:
            log.warning("this artifact has no scores output (exported before edgegnn 0.2): fewer than k items "
                        "for a history whose seen items fill its top list; export it again")
            return None
        full = full.astype(np.float32)
        full[np.fromiter(exclude, np.int64, len(exclude))] = -np.inf
        top = np.argsort(-full, kind="stable")[:k]
        top = top[np.isfinite(full[top])]
        return top.tolist(), full[top].tolist()

    def run_rows(self, histories: Sequence[np.ndarray], user_base: np.ndarray | None = None, *,
                 min_width: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Run the graph on item-row histories: (top rows int64 [B, W'], top scores [B, W']), W' =
        min(K + W, I) for W history slots: the longest history, or `min_width` if more (ONNX;
        TFLite graphs have a fixed W).

        Histories longer than the artifact's H keep their last H rows; padding has mask 0.
        """
        return self.backend.run(self.feeds(histories, user_base, min_width))

    def feeds(self, histories: Sequence[Sequence[int]], user_base: np.ndarray | None, min_width: int = 0) -> dict:
        """The graph's inputs for these histories (item rows: arrays or lists), padded with mask 0
        to the width (see `run_rows`): {"history": int32 [B, W], "history_mask": float32 [B, W], ...}."""
        limit = self._limit
        kept = [h[-limit:] for h in histories] if limit else histories
        width = self._slots if self._slots is not None else max(1, min_width, max(map(len, kept)))
        if len(kept) == 1 and len(kept[0]) == width:     # one history filling every slot (ONNX, batch 1): no padding
            history, mask = np.array(kept, np.int32), self._ones(width)
        else:
            history = np.zeros((len(kept), width), np.int32)
            mask = np.zeros((len(kept), width), np.float32)
            for r, rows in enumerate(kept):
                history[r, :len(rows)] = rows
                mask[r, :len(rows)] = 1.0
        feeds = {"history": history, "history_mask": mask}
        if self.has_user_base:
            dim = self._inputs["user_base"]["shape"][1]
            feeds["user_base"] = np.zeros((len(kept), dim), np.float32) if user_base is None else \
                np.ascontiguousarray(user_base, np.float32)
        elif user_base is not None:
            raise RecommendError("this artifact was exported without a user_base input")
        return feeds

    def _ones(self, width: int) -> np.ndarray:
        """float32 [1, width] of ones, the mask of an unpadded history: made once per width and
        shared, read-only (the runtimes only read their inputs), so threads may share it too."""
        mask = self._masks.get(width)
        if mask is None:
            mask = np.ones((1, width), np.float32)
            mask.flags.writeable = False
            if len(self._masks) < 256:      # a bound: ONNX widths follow the users' history lengths
                self._masks[width] = mask
        return mask

    # ---- helpers -------------------------------------------------------------------------------

    def _queries(self, histories: Sequence[Iterable]) -> list[_Query]:
        """`_query` of each history, their ids looked up in one search."""
        raws = [self._raw_ids(h) for h in histories]
        found = self.items.row_list([item for raw in raws for item in raw])
        queries, start = [], 0
        for raw in raws:
            queries.append(self._known(raw, found[start:start + len(raw)]))
            start += len(raw)
        return queries

    def _query(self, history: Iterable) -> _Query:
        """One history (raw ids, oldest first) in the model's terms; the rules: the module docstring."""
        raw = self._raw_ids(history)
        return self._known(raw, self.items.row_list(raw))

    def _known(self, raw: list[str], found: list[int]) -> _Query:
        """The query of a history's raw ids and their rows (`ItemIndex.row_list`, -1 = unknown)."""
        seen = set(found)
        if len(seen) == len(found) and -1 not in seen:      # every id known, none repeated: the rows as given
            rows, skipped = found, []
        else:
            rows, skipped = _known_once(raw, found)
            seen.discard(-1)
        if skipped:
            shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
            # debug, not warning: the result says it (`Recommendation.skipped`), once, where the caller shows it
            log.debug("skipped %d item id(s) the model does not know: %s", len(skipped), shown)
        limit = self.history_length
        truncated = max(0, len(rows) - limit) if limit else 0
        return _Query(rows[truncated:], seen, tuple(skipped), truncated)

    @staticmethod
    def _raw_ids(history: Iterable) -> list[str]:
        """The history's ids as strings; None, floats, bools, bytes and other types refused, naming
        the position."""
        if isinstance(history, (str, bytes)):
            raise RecommendError("a history must be a list of item ids, not one string")
        try:
            items = history if type(history) is list else list(history)       # read only: no copy needed
        except TypeError:
            raise RecommendError(f"a history must be a list of item ids, not {type(history).__name__}") from None
        if set(map(type, items)) <= {str}:      # plain strings (the usual history): nothing to refuse or convert
            return items
        bad = next((i for i, x in enumerate(items) if x is None or isinstance(x, (float, bool, bytes))
                    or not isinstance(x, (str, int, np.integer))), None)
        if bad is not None:
            raise RecommendError(f"history item {bad} is {items[bad]!r} ({type(items[bad]).__name__}): item ids are "
                                 "strings or integers")
        return [str(x) for x in items]

    def _rows_of(self, raw: list[str]) -> list[int]:
        """Table row of each raw id, -1 where the artifact does not know it."""
        return self.items.row_list(raw)

    def _popular(self, query: _Query, k: int) -> Recommendation:
        popularity = self.manifest.get("popularity")
        if not popularity:     # one new user must not fail a batch: an empty answer, said once
            if not self._said_no_popularity:
                log.warning("a history holds no item this model knows, and the artifact has no popularity list to "
                            "fall back on (export it with --data): such users get no recommendations")
                self._said_no_popularity = True
            return Recommendation((), query.skipped, query.truncated, fallback=True)
        total = float(popularity.get("total", 1) or 1)
        rows, counts = popularity["rows"][:k], popularity["counts"][:k]
        pairs = tuple(zip(self.items.ids_of(rows), [count / total for count in counts]))
        return Recommendation(pairs, query.skipped, query.truncated, fallback=True)

    def _check_history_query(self, k) -> None:
        if self.manifest["variant"] != "history":
            raise RecommendError("this artifact takes user embeddings: use recommend_embedding()")
        self._check_k(k)

    def _check_k(self, k) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.max_k:
            raise RecommendError(f"k={k!r} is invalid: must be an integer in [1, {self.max_k}] "
                                 f"(the artifact returns at most top_k={self.max_k}; export with a larger --top-k)")

    def _user_base(self, value, *, batch: int | None) -> np.ndarray:
        if not self.has_user_base:
            raise RecommendError("this artifact was exported without a user_base input")
        dim = self._inputs["user_base"]["shape"][1]
        if batch is None:
            array = self._float_matrix("user_base", value, dim, single=True)
            return array[0]
        array = self._float_matrix("user_base", value, dim)
        if len(array) != batch:
            raise RecommendError(f"user_base has {len(array)} rows for {batch} histories")
        return array

    @staticmethod
    def _float_matrix(name: str, value, dim: int, *, single: bool = False) -> np.ndarray:
        """A finite float32 [B, dim] array (from [dim] or [B, dim]); else RecommendError."""
        array = np.asarray(value)
        if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
            raise RecommendError(f"{name} must hold numbers (float32), not {array.dtype}")
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != dim or (single and array.shape[0] != 1):
            want = f"[{dim}]" if single else f"[{dim}] or [batch, {dim}]"
            raise RecommendError(f"{name} has shape {list(np.shape(value))}, expected {want}")
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise RecommendError(f"{name} holds NaN or infinite values")
        return array


def _known_once(raw: list[str], found: list[int]) -> tuple[list[int], list[str]]:
    """(each known row once, where it was seen last, oldest first; the unknown ids in the order
    given) of a history's raw ids and their rows (-1 = unknown)."""
    rows, skipped, kept = [], [], set()
    for item, row in zip(reversed(raw), reversed(found)):   # newest first: the last repeat is the one kept
        if row < 0:
            skipped.append(item)
        elif row not in kept:
            kept.add(row)
            rows.append(row)
    rows.reverse()
    skipped.reverse()
    return rows, skipped


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, float32 [B, C] (shifted by the row maximum: no overflow)."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
