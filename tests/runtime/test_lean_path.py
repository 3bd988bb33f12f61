"""The lean query path answers exactly as the rules say: `recommend` (its one-history path),
`recommend_batch` and `top_rows` against a reference written out on the backend alone (a dict of
ids, np.isin exclusion, zero-padded feeds: the runtime as it was before the lean path), on
histories with unknown ids, repeats, more items than H, and almost the whole catalog."""

from __future__ import annotations

import numpy as np
import pytest

from edgegnn.export import export
from edgegnn.runtime import Recommendation, Recommender, RecommendError


def padded_feeds(rec: Recommender, rows, min_width: int) -> dict:
    """The graph inputs of one history, built the plain way: zeros, then the newest rows and mask 1."""
    spec = {s["name"]: s for s in rec.manifest["inputs"]}
    slots = spec["history"]["shape"][1]
    limit = slots if isinstance(slots, int) else rec.history_length
    kept = np.asarray(rows, np.int64)[-limit:] if limit else np.asarray(rows, np.int64)
    width = slots if isinstance(slots, int) else max(1, min_width, len(kept))
    history, mask = np.zeros((1, width), np.int32), np.zeros((1, width), np.float32)
    history[0, :len(kept)], mask[0, :len(kept)] = kept, 1.0
    feeds = {"history": history, "history_mask": mask}
    if "user_base" in spec:
        feeds["user_base"] = np.zeros((1, spec["user_base"]["shape"][1]), np.float32)
    return feeds


def reference(rec: Recommender, history, k: int, exclude_seen: bool = True) -> Recommendation:
    """The documented rules, step by step, on the backend's own outputs."""
    ids = rec.item_ids.tolist()
    row_of = {raw: row for row, raw in enumerate(ids)}
    raw = [str(x) for x in history]
    rows, skipped, seen = [], [], set()
    for item in reversed(raw):                       # newest first: a repeat keeps its newest place
        row = row_of.get(item, -1)
        if row < 0:
            skipped.append(item)
        elif row not in seen:
            seen.add(row)
            rows.append(row)
    rows.reverse()
    skipped.reverse()
    limit = rec.history_length
    truncated = max(0, len(rows) - limit) if limit else 0
    rows = rows[truncated:]
    if not rows:
        popularity = rec.manifest["popularity"]
        total = float(popularity.get("total", 1) or 1)
        pairs = tuple((ids[r], c / total) for r, c in zip(popularity["rows"][:k], popularity["counts"][:k]))
        return Recommendation(pairs, tuple(skipped), truncated, fallback=True)
    exclude = np.array(sorted(seen), np.int64) if exclude_seen else np.zeros(0, np.int64)
    items, scores = rec.backend.run(padded_feeds(rec, rows, len(exclude)))
    kept = ~np.isin(items[0], exclude)
    picked, values = items[0][kept][:k], scores[0][kept][:k].astype(np.float32)
    if len(picked) < k and len(picked) < rec.num_items - len(exclude):      # the TFLite graph's list ran short
        full = rec.backend.full_scores(padded_feeds(rec, rows, 0), rec.num_items).astype(np.float32)
        full[exclude] = -np.inf
        top = np.argsort(-full, kind="stable")[:k]
        picked = top[np.isfinite(full[top])]
        values = full[picked]
    return Recommendation(tuple((ids[r], float(v)) for r, v in zip(picked.tolist(), values.tolist())),
                          tuple(skipped), truncated)


@pytest.fixture(scope="module")
def onnx_window(trained, tmp_path_factory):
    """An ONNX artifact with a window: H = 8 (arm64-linux's graph, any number of slots)."""
    checkpoint, _ = trained
    return export(checkpoint, "arm64-linux", history_length=8, out_dir=tmp_path_factory.mktemp("h8") / "a",
                  cpus=(), emulators=None)


@pytest.fixture(params=["cpu-x86_64", "android-litert", "onnx-h8"])
def rec(request, artifacts, onnx_window) -> Recommender:
    return Recommender.open(onnx_window if request.param == "onnx-h8" else artifacts(request.param))


def odd_histories(num_items: int) -> dict[str, list]:
    rng = np.random.default_rng(7)
    order = [f"i{r}" for r in rng.permutation(num_items)]
    return {
        "plain": order[:20],
        "one unknown id": ["i1", "i2", "ghost", "i4"],
        "unknown ids": ["i3", "nope", 7, "i9", "ghost", np.str_("i11"), np.int64(12)],
        "repeats": ["i5", "i6", "i5", "i7", "i6", "i6", "i8"],
        "longer than H": order[:100] + order[:30],            # 100 distinct items, the first 30 again (newest)
        "unknown, repeats and long": (["x"] + order[:90]) * 2 + ["y"],
        "almost the whole catalog": order[:num_items - 10],
        "every item": order,
        "only unknown ids": ["ghost", "nope"],
        "empty": [],
    }


@pytest.mark.parametrize("name", list(odd_histories(800)))
@pytest.mark.parametrize("k", [5, 20])
def test_recommend_answers_as_the_rules_say(rec, name, k):
    history = odd_histories(rec.num_items)[name]
    expected = reference(rec, history, k)
    assert rec.recommend(history, k=k) == expected                    # ids, scores, skipped, truncated, fallback
    assert rec.recommend_batch([history], k=k)[0] == expected
    if name == "almost the whole catalog":
        assert len(expected) == min(k, 10)                            # k whenever the catalog holds k unseen
    assert rec.recommend(history, k=k) == expected                    # again: the ids remembered answer alike


@pytest.mark.parametrize("name", ["plain", "repeats", "longer than H", "almost the whole catalog"])
def test_without_excluding_seen_items_too(rec, name):
    history = odd_histories(rec.num_items)[name]
    expected = reference(rec, history, 10, exclude_seen=False)
    assert rec.recommend(history, k=10, exclude_seen=False) == expected
    assert rec.recommend_batch([history], k=10, exclude_seen=False)[0] == expected


def test_top_rows_pads_with_minus_one_and_nan(rec):
    history = odd_histories(rec.num_items)["almost the whole catalog"]
    rows = rec.items.rows_of(history)
    top, scores = rec.top_rows([rows], 20)
    expected = reference(rec, history, 20)
    assert top[0, :10].tolist() == rec.items.rows_of(expected.ids).tolist() and (top[0, 10:] == -1).all()
    assert scores[0, :10].tolist() == [s for _, s in expected] and np.isnan(scores[0, 10:]).all()


def test_the_one_history_feeds_are_the_padded_ones_and_shared_read_only(artifacts):
    rec = Recommender.open(artifacts("cpu-x86_64"))
    rows = [5, 17, 230, 42]
    for feeds in (rec.feeds([rows], None, 4), rec.feeds([np.array(rows)], None, 0)):
        expected = padded_feeds(rec, rows, 4)
        assert feeds.keys() == expected.keys()
        for name, array in feeds.items():
            assert array.dtype == expected[name].dtype
            np.testing.assert_array_equal(array, expected[name])
    first, second = rec.feeds([rows], None), rec.feeds([[1, 2, 3, 4]], None)
    assert first["history_mask"] is second["history_mask"] and not first["history_mask"].flags.writeable
    assert first["history"].tolist() == [rows]                        # a later call leaves it alone
    np.testing.assert_array_equal(rec.feeds([rows, [3]], None)["history_mask"], [[1, 1, 1, 1], [1, 0, 0, 0]])


@pytest.mark.parametrize("item, shown", [(None, "None (NoneType)"), (1.5, "1.5 (float)"), (True, "True (bool)"),
                                         (b"i1", "b'i1' (bytes)"), ([1], "[1] (list)")])
def test_ids_that_are_no_ids_are_refused_with_the_same_message(artifacts, item, shown):
    rec = Recommender.open(artifacts("cpu-x86_64"))
    message = f"history item 1 is {shown}: item ids are strings or integers"
    for call in (lambda: rec.recommend(["i1", item]), lambda: rec.recommend_batch([["i2"], ["i1", item]])):
        with pytest.raises(RecommendError) as error:
            call()
        assert str(error.value) == message


def test_a_batch_of_odd_histories_answers_each_as_alone(rec):
    """One search and one gather for the whole batch; each answer as the reference's (a wider ONNX
    batch pads the shorter histories: float rounding only)."""
    histories = list(odd_histories(rec.num_items).values())
    batch = rec.recommend_batch(histories, k=20)
    for history, result in zip(histories, batch):
        expected = reference(rec, history, 20)
        assert (result.ids, result.skipped, result.truncated, result.fallback) == \
            (expected.ids, expected.skipped, expected.truncated, expected.fallback)
        np.testing.assert_allclose([s for _, s in result], [s for _, s in expected], rtol=1e-5)
