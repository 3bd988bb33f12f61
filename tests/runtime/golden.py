"""Golden vectors for the other runtimes: small artifacts of every ONNX storage kind and layout, the
queries, and what the Python runtime answers.

    write_golden(root)  ->  root/golden.json + one artifact folder per entry

golden.json: {"artifacts": [{"name", "dir" (relative to root), "variant", "cases": [...],
"class_cases": [...]}]}. A history case: {"history" (raw ids, oldest first), "k", "exclude_seen",
"expected": {"items": [[id, score], ...], "skipped", "truncated", "fallback"}}; where the graph
quantizes the user vector at run time ("runtime-8bit": MatMulNBits, whose kernels differ between
CPUs and WebAssembly), or scores inverted lists in float (integer codes times a rounded x: exact
ties that another kernel's summation order breaks otherwise), a case also carries "bounded":
{"candidates": {id: [reference, bound]} (every item that may appear), "must": [ids in the top k
whatever the rounding]}, the per-score
bound of the CPU verification (`edgegnn.export.verify.score_bound`): a runtime's answer is right
when its scores are within those bounds, as a CPU's is.
a user-variant case: {"embedding" [d], "k", "expected"}; a class case: {"history", "expected"
(probabilities in the head's class order, or null)}. The JavaScript runtime's tests
(runtimes/js/test/golden.test.js under Node, test/browser.mjs in Chromium) must answer the same.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from edgegnn.export import export
from edgegnn.export.plan import Scoring
from edgegnn.export.verify import Queries, required_items, score_bound
from edgegnn.runtime import Recommender
from tests.export import models
from tests.export.test_cpu_matrix import ARTIFACTS, _export

# every ONNX entry of the CPU matrix (each storage kind and big-catalog layout), fp16 included
MATRIX_ONNX = sorted(name for name, (_, target, _, _) in ARTIFACTS.items() if name.startswith("onnx-"))
ODD_IDS = ["café", "ß", "日本", "a", "ab", "abc", "b", "Z", "0", "00", "-1", "i d", "é" * 9, "x" * 40]


def write_golden(root: Path) -> Path:
    """Export the golden artifacts into `root` (emptied first) and write root/golden.json."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    entries = []
    for name in MATRIX_ONNX:
        edge, manifest, directory, _ = _export(name, root)
        varies = manifest["graph"]["scoring"]["x"] == "runtime-8bit" or manifest.get("retrieval") is not None
        entries.append(_entry(name, directory, edge if varies else None))
    entries.append(_entry("onnx-odd-ids-popularity", _odd_ids_artifact(root)))
    entries.append(_entry("onnx-history-length-8", export(models.lightgcn("int8", seed=3), "cpu-x86_64",
                                                          out_dir=root / "onnx-history-length-8", history_length=8,
                                                          cpus=(), emulators=None)))
    tflite = export(models.lightgcn("fp32"), "android-litert", out_dir=root / "tflite-fp32", cpus=(), emulators=None)
    path = root / "golden.json"
    path.write_text(json.dumps({"artifacts": entries, "refused": [{"name": "tflite-fp32",
                                                                   "dir": tflite.name,
                                                                   "error": "the JavaScript runtime runs ONNX"}]},
                               indent=1, ensure_ascii=False))
    return path


def _odd_ids_artifact(root: Path) -> Path:
    """Ids of many byte lengths, non-ASCII and digit-only (the index's byte order), with a
    popularity list (the fallback) on a catalog the size of the id list."""
    edge = models.lightgcn("int8", items=len(ODD_IDS) * 20)
    ids = [f"{odd}{i}" if i else odd for i in range(20) for odd in ODD_IDS]
    edge = dataclasses.replace(edge, item_ids=np.array(ids))
    counts = np.random.default_rng(5).integers(0, 50, edge.num_items)
    return export(edge, "cpu-x86_64", out_dir=root / "onnx-odd-ids-popularity", popularity=counts, cpus=(),
                  emulators=None)


def _entry(name: str, directory: Path, bounded_by=None) -> dict:
    """The artifact's cases; `bounded_by`: its EdgeModel, for artifacts whose scores vary by kernel."""
    rec = Recommender.open(directory)
    entry = {"name": name, "dir": directory.name, "variant": rec.manifest["variant"]}
    rng = np.random.default_rng(sum(map(ord, name)))
    ids = rec.item_ids
    if entry["variant"] == "user":
        dim = rec.manifest["inputs"][0]["shape"][1]
        embeddings = rng.standard_normal((3, dim)).astype(np.float32)
        entry["cases"] = [{"embedding": e.tolist(), "k": 10,
                           "expected": _result(rec.recommend_embedding(e, k=10)[0])} for e in embeddings]
        return entry
    entry["cases"] = [_case(rec, history, k, **options) for history, k, options in _histories(ids, rng)]
    if bounded_by is not None:
        for case in entry["cases"]:
            if not case["expected"]["fallback"]:
                case["bounded"] = _bounds(rec, bounded_by, case)
    if rec.classes("user"):
        entry["class_cases"] = [{"history": h, "expected": _probabilities(rec, h)}
                                for h in ([str(ids[1]), str(ids[7])], ["unknown"], [str(i) for i in ids[:30]])]
    return entry


def _histories(ids: np.ndarray, rng) -> list[tuple[list, int, dict]]:
    """(history, k, options): plain, unknown ids and repeats, long, empty, nearly the whole
    catalog, seen items kept, integers for ids that are digits."""
    pick = [str(x) for x in rng.choice(ids, 40, replace=False)]
    rest = [str(x) for x in ids[:-7]]                         # all but 7 items: k=20 gets 7
    cases = [(pick[:5], 10, {}), (["nope", pick[0], pick[1], pick[0], "??", pick[2]], 20, {}),
             (pick, 20, {}), ([], 10, {}), (["nope"], 5, {}), (rest, 20, {}), (pick[:6], 10, {"exclude_seen": False}),
             (pick[:1], 1, {})]
    digits = [int(x) for x in ids if str(x).isdigit() and str(int(x)) == str(x)]
    if digits:
        cases.append((digits[:3], 10, {}))
    return cases


def _case(rec: Recommender, history: list, k: int, exclude_seen: bool = True) -> dict:
    result = rec.recommend(history, k=k, exclude_seen=exclude_seen)
    return {"history": history, "k": k, "exclude_seen": exclude_seen, "expected": _result(result)}


def _bounds(rec: Recommender, edge, case: dict) -> dict:
    """{"candidates", "must"} of a case (module docstring); the Python runtime's own answer meets them."""
    rows = [int(r) for r in rec.items.rows_of([str(x) for x in case["history"]]) if r >= 0]
    unique = list(dict.fromkeys(reversed(rows)))[::-1]          # each item once, at its newest place
    fed = unique[-rec.history_length:] if rec.history_length else unique
    scoring = Scoring.from_dict(rec.manifest["graph"]["scoring"])
    reference, bound = score_bound(edge, scoring, Queries(histories=(np.array(fed, np.int64),)),
                                   precision=rec.manifest["precision"])
    reference, bound = reference[0].astype(np.float64), bound[0]
    allowed = np.ones(len(reference), bool)
    if case["exclude_seen"]:
        allowed[unique] = False
    rows_left = np.flatnonzero(allowed & np.isfinite(reference))     # inverted lists score a few items
    k = min(case["k"], len(rows_left))
    if k == 0:
        return {"candidates": {}, "must": []}
    lowest_in = np.sort(reference[rows_left] - bound[rows_left])[::-1][k - 1]
    candidates = rows_left[reference[rows_left] + bound[rows_left] >= lowest_in]
    must = rows_left[sorted(required_items(reference[rows_left], bound[rows_left], k))]
    record = {"candidates": {rec.items.id_of(r): [float(reference[r]), float(bound[r])] for r in candidates},
              "must": [rec.items.id_of(r) for r in must]}
    for item, score in case["expected"]["items"]:          # the golden's own answer is a right one
        reference_score, allowed_error = record["candidates"][item]
        if abs(score - reference_score) > allowed_error:
            raise AssertionError(f"{item}: the Python runtime's score {score} is outside "
                                 f"{reference_score}±{allowed_error}")
    return record


def _result(result) -> dict:
    return {"items": [[item, score] for item, score in result.items], "skipped": list(result.skipped),
            "truncated": result.truncated, "fallback": result.fallback}


def _probabilities(rec: Recommender, history: list) -> list[float] | None:
    row = rec.class_probabilities([history])[0]
    return None if np.isnan(row).any() else row.tolist()
