"""`export(model, target, split=..., out_dir=...)`: one artifact per target, measured on itself.

    from edgegnn.export import export
    export("runs/model.pt", "android-litert", split=split, out_dir="artifacts/android")

Steps, cheapest first, so that a model that cannot run on the target fails in milliseconds:
    1. resolve the model (EdgeModel, checkpoint, MODEL.pt or an edge-model folder) and target;
    2. `check_target`: precision, ops, memory budget (one-line ExportError);
    3. build the graph (ONNX or TFLite) into a temp folder next to `out_dir`, with items.json
       and a manifest holding every file's sha256;
    4. with a split: open the staged artifact with `edgegnn.runtime` (checksums verified),
       rank the test users through it, and compare with the numpy simulation of the same
       model (`edgegnn.export.evaluate`); a difference beyond the tolerance is an
       ExportError and nothing is written;
    5. write the manifest with the metrics and swap the folder in (`edgegnn.export.artifact`).

Tolerances (absolute, on Recall@20 and NDCG@20, artifact vs simulation): fp32 1e-4 (the
same arithmetic in another summation order), int8 and fp16 0.005 (the runtime's int8 kernels
quantize the user vector per query where the simulation keeps it float or uses the static
scale; fp16 tables round every weight).
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgegnn import __version__
from edgegnn.edge_model import EdgeModel
from edgegnn.errors import CheckpointError, ExportError
from edgegnn.export import artifact
from edgegnn.runtime import items
from edgegnn.export.check import check_target, graph_options
from edgegnn.export.plan import GraphOptions, io_spec
from edgegnn.targets import Target, load_target

log = logging.getLogger(__name__)
TOLERANCE = {"fp32": 1e-4, "fp16": 0.005, "int8": 0.005}
POPULAR = 200           # items kept in the manifest's popularity fallback list
SEEN_ITEMS = ("the graph returns top_k + H items and masks nothing; the runtime drops the items "
              "of the history (at most H), so top_k remain")


def export(model, target: Target | str | Path, *, out_dir: str | Path, split=None, top_k: int | None = None,
           history_length: int | None = None, variant: str = "history", precision: str | None = None,
           user_base: np.ndarray | bool | None = None, popularity: np.ndarray | None = None,
           max_users: int | None = None, tolerance: float | None = None,
           external_data_bytes: int | None = None, on_progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Export `model` for `target` into `out_dir` (an artifact directory); returns its path.

    Args:
        model: an EdgeModel, a Checkpoint, a MODEL.pt path, or an edge-model folder
            (`edgegnn compress --out`).
        target: a Target, a target name (targets/NAME.yaml) or a YAML path.
        out_dir: the artifact folder to create or replace (only if it is an artifact).
        split: a `Split`; when given, the artifact is run on its test users (histories = their
            training items) and its Recall/NDCG@20 recorded and checked against the simulation.
        top_k: K (default: the target's); outputs hold K + H items.
        history_length: H for fixed-H targets (default: the target's).
        variant: "history" (history -> top-K) or "user" (user embedding -> top-K; no metrics).
        precision: None (the model's own), or "fp16" for an fp32 model on an fp16 target.
        user_base: e_u⁰ of the split's users for the metrics (float32 [U, d⁰]); default: a
            checkpoint's own, else users are measured as new. False: no user_base input at all.
        popularity: interactions per item row [I] for the empty-history fallback (default:
            the split's or checkpoint's training counts).
        max_users: measure at most this many test users (a seeded sample).
        tolerance: override the allowed |Δ| of Recall/NDCG@20 between artifact and simulation.
        external_data_bytes: ONNX tables above this many bytes go to model.onnx.data.
        on_progress: called as (stage, done, total).
    """
    target = load_target(target)
    edge, checkpoint = resolve_model(model)
    options = graph_options(edge, target, variant=variant, top_k=top_k, history_length=history_length,
                            precision=precision, user_base=user_base is not False)
    checked = check_target(edge, target, options)
    out_dir = Path(out_dir)
    artifact.check_out_dir(out_dir)
    inputs, outputs = io_spec(edge, options, index_dtype="int64" if target.format == "onnx" else "int32")
    progress = on_progress or (lambda stage, done, total: None)
    with artifact.staged(out_dir) as tmp:
        progress("building graph", 0, 1)
        files = _write_model(edge, target, options, (inputs, outputs), tmp, external_data_bytes)
        files += artifact.write_items(tmp, edge.item_ids)
        counts = _popularity(edge, checkpoint, split, popularity)
        manifest = _manifest(edge, target, options, checked, inputs, outputs, files, counts)
        manifest["history_length"] = history_length if history_length is not None else target.history_length
        artifact.write_manifest(tmp, manifest, files)
        progress("building graph", 1, 1)
        if split is not None and variant != "history":
            log.warning("variant %r takes user embeddings, not histories: no metrics measured", variant)
        elif split is not None:
            manifest["metrics"] = _measure(edge, checkpoint, split, tmp, options, user_base, max_users,
                                           tolerance, progress)
        artifact.write_manifest(tmp, manifest, files)
    log.info("wrote %s (%s, %s)", out_dir, target.name, options.precision)
    return out_dir


# ---- the model -----------------------------------------------------------------------------

def resolve_model(model) -> tuple[EdgeModel, object | None]:
    """(EdgeModel, checkpoint or None) from an EdgeModel, Checkpoint, MODEL.pt or edge-model folder."""
    model = load_model(model) if isinstance(model, (str, Path)) else model
    if isinstance(model, EdgeModel):
        return model, None
    from edgegnn.fold import fold

    return fold(model), model            # a Checkpoint


def load_model(path: str | Path):
    """The EdgeModel of an edge-model folder, or the Checkpoint of a MODEL.pt file (not folded)."""
    path = Path(path)
    if path.is_dir():
        if (path / "manifest.json").is_file():
            raise CheckpointError(f"{path}: is an exported artifact; export from MODEL.pt or an edge model folder")
        from edgegnn.compress.io import load_edge_model

        return load_edge_model(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file or edge model folder")
    from edgegnn.train.checkpoint import load_checkpoint

    return load_checkpoint(path)


# ---- the files ----------------------------------------------------------------------------

def _write_model(edge: EdgeModel, target: Target, options: GraphOptions, io, tmp: Path,
                 external_data_bytes: int | None) -> list[str]:
    if target.format == "onnx":
        from edgegnn.export import onnx_graph

        limit = onnx_graph.EXTERNAL_DATA_BYTES if external_data_bytes is None else external_data_bytes
        return onnx_graph.save(onnx_graph.build(edge, options, io), tmp, external_data_bytes=limit)
    from edgegnn.export import tflite_graph

    (tmp / target.model_file).write_bytes(tflite_graph.build(edge, options))
    return [target.model_file]


def _popularity(edge: EdgeModel, checkpoint, split, popularity) -> np.ndarray | None:
    """Training interactions per item row [I], or None if nothing says."""
    if popularity is not None:
        counts = np.asarray(popularity, dtype=np.int64)
        if counts.shape != (edge.num_items,):
            raise ExportError(f"popularity has shape {list(counts.shape)}, expected [{edge.num_items}]")
        return counts
    train = checkpoint.train if checkpoint is not None else (split.train if split is not None else None)
    if train is None:
        return None
    rows = {str(raw): i for i, raw in enumerate(edge.item_ids)}
    counts = np.zeros(edge.num_items, np.int64)
    for raw, count in zip(train.item_ids, train.item_degrees()):
        if str(raw) in rows:
            counts[rows[str(raw)]] += int(count)
    return counts


def _manifest(edge, target, options, checked, inputs, outputs, files, counts) -> dict:
    manifest = {
        "kind": target.format, "model_file": files[0], "items_file": items.IDS, "variant": options.variant,
        "target": target.to_dict(), "precision": options.precision, "inputs": inputs, "outputs": outputs,
        "top_k": options.top_k, "history_length": options.history_length,
        "batch": options.batch, "num_items": edge.num_items, "embedding_dim": edge.embedding_dim,
        "seen_items": SEEN_ITEMS, "model": edge.describe(), "recipe": list(edge.recipe),
        "activation_scales": {k: float(v) for k, v in edge.activation_scales.items()},
        "graph": {"ops": checked.ops, "constant_bytes": checked.const_bytes,
                  "estimated_memory_bytes": checked.estimated_memory, "int4_widened_to_int8": checked.int4_widened},
        "versions": _versions(target), "producer": f"edgegnn {__version__}",
        "popularity": None, "metrics": None,
    }
    if counts is not None:
        order = np.argsort(-counts, kind="stable")[:POPULAR]
        manifest["popularity"] = {"rows": order.tolist(), "counts": counts[order].tolist(),
                                  "total": int(counts.sum()), "source": "training interactions per item"}
    return manifest


def _versions(target: Target) -> dict[str, str]:
    import importlib.metadata as md

    names = ["numpy", "onnx", "onnxruntime"] if target.format == "onnx" else ["numpy", "ai-edge-litert", "flatbuffers"]
    out = {"edgegnn": __version__}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


# ---- metrics on the artifact ---------------------------------------------------------------

def _measure(edge, checkpoint, split, directory: Path, options: GraphOptions, user_base, max_users,
             tolerance, progress) -> dict:
    from edgegnn.export.evaluate import eval_data, measure
    from edgegnn.runtime import Recommender

    if checkpoint is not None:
        base = _checkpoint_bases(checkpoint, user_base, options)
        data = eval_data(checkpoint.train, split.test, edge.item_ids, user_ids=checkpoint.train.user_ids,
                         user_base=base, max_users=max_users)
    else:
        base = user_base if isinstance(user_base, np.ndarray) and options.user_base else None
        data = eval_data(split.train, split.test, edge.item_ids, user_base=base, max_users=max_users)
    recommender = Recommender.open(directory)
    result = measure(edge, recommender.run_rows, data, history_length=recommender.history_length,
                     on_batch=lambda done, total: progress("measuring artifact", done, total))
    allowed = TOLERANCE[options.precision] if tolerance is None else float(tolerance)
    delta = {k: abs(result["artifact"][k] - result["simulation"][k]) for k in result["artifact"]}
    result.update(tolerance=allowed, delta=delta, users_as="known (e_u0 input)" if base is not None else "new (no e_u0)",
                  protocol="test users; history = training items (newest H kept); the artifact's top K+H minus "
                           "training items, cut to 20; simulation = numpy EdgeModel on the same histories",
                  measured_with={"runtime": recommender.backend.runtime, "providers": recommender.backend.providers,
                                 "machine": platform.machine()})
    worst = max(delta, key=delta.get)
    if delta[worst] > allowed:
        raise ExportError(f"the {options.precision} artifact's {worst} is {result['artifact'][worst]:.5f}, the "
                          f"simulation's {result['simulation'][worst]:.5f}: |Δ| {delta[worst]:.5f} > {allowed:g}",
                          hint="nothing was written; report this with the model and target")
    return _rounded(result)


def _checkpoint_bases(checkpoint, user_base, options: GraphOptions):
    if not options.user_base:
        return None
    if isinstance(user_base, np.ndarray):
        return user_base
    from edgegnn.fold import user_bases

    try:
        return user_bases(checkpoint)
    except (KeyError, AttributeError, TypeError):
        return None


def _rounded(value):
    """Metrics to 7 significant digits: stable across reruns, enough to compare."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return float(f"{value:.7g}")
    return value
