"""`export(model, target, split=..., out_dir=...)`: one artifact per target, measured on itself.

    from edgegnn.export import export
    export("runs/model.pt", "android-litert", split=split, out_dir="artifacts/android")

Steps, cheapest first, so that a model that cannot run on the target fails in milliseconds:
    1. resolve the model (EdgeModel, checkpoint, MODEL.pt or an edge-model folder) and target;
    2. `check_target`: precision, ops, memory budget (one-line ExportError);
    3. build the graph (ONNX or TFLite) into a temp folder next to `out_dir`, with items.json
       and a manifest holding every file's sha256;
    4. verify it per CPU (`edgegnn.export.verify`): run a few dozen queries (the split's test
       users, or random histories, and stress queries) through the staged artifact with
       `edgegnn.runtime` on this machine and, under QEMU user-mode, on each other CPU feature
       level the target names (`edgegnn.export.emulation`, when an emulator folder is set),
       and compare every score and top list with the numpy simulation within a stated bound;
       a failure names the CPU and is an ExportError (nothing is written);
    5. with a split: rank the test users through the artifact and compare Recall/NDCG@20 with
       the simulation of the same model (`edgegnn.export.evaluate`); a difference beyond the
       tolerance is an ExportError and nothing is written;
    6. write the manifest (the CPUs verified and those not, the metrics) and swap the folder
       in (`edgegnn.export.artifact`).

Tolerances (absolute, on Recall@20 and NDCG@20, artifact vs simulation): fp32 1e-4 (the
same arithmetic in another summation order), int8 and fp16 0.005 (the runtime's int8 kernels
quantize the user vector per query where the simulation keeps it float or uses the static
scale; fp16 tables round every weight).
"""

from __future__ import annotations

import dataclasses
import logging
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgegnn import __version__
from edgegnn.class_head import ClassHead, attach_user_head, has_class_head, item_logits, manifest_record, read_head
from edgegnn.compress.io import edge_digest
from edgegnn.edge_model import EdgeModel
from edgegnn.errors import CheckpointError, ConfigError, ExportError
from edgegnn.export import artifact
from edgegnn.export.check import check_target, graph_options
from edgegnn.export.plan import GraphOptions, io_spec, scored_items
from edgegnn.runtime import items
from edgegnn.runtime.manifest import ITEM_LOGITS
from edgegnn.targets import Target, load_target

log = logging.getLogger(__name__)
TOLERANCE = {"fp32": 1e-4, "fp16": 0.005, "int8": 0.005}
POPULAR = 200           # items kept in the manifest's popularity fallback list
SEEN_ITEMS = ("the graph returns top_k + W items for W history slots and masks nothing; the runtime drops "
              "every item the user has seen, feeding at least as many (masked) slots as seen items where the "
              "graph's history length is dynamic (ONNX), else ranking the 'scores' output when the list runs "
              "short (TFLite), so top_k remain whenever the catalog holds them")


def export(model, target: Target | str | Path, *, out_dir: str | Path, split=None, top_k: int | None = None,
           history_length: int | None = None, variant: str = "history", precision: str | None = None,
           user_base: np.ndarray | bool | None = None, popularity: np.ndarray | None = None,
           max_users: int | None = None, tolerance: float | None = None,
           external_data_bytes: int | None = None, cpus: Sequence[str] | None = None, emulators="auto",
           heads: Sequence = (), on_progress: Callable[[str, int, int], None] | None = None,
           manifest_fields: dict | None = None) -> Path:
    """Export `model` for `target` into `out_dir` (an artifact directory); returns its path.

    Args:
        model: an EdgeModel, a Checkpoint, a MODEL.pt path, or an edge-model folder
            (`edgegnn compress --out`).
        target: a Target, a target name (targets/NAME.yaml) or a YAML path.
        out_dir: the artifact folder to create or replace (only if it is an artifact).
        split: a `Split`; when given, the artifact is run on its test users (histories = their
            training items) and its Recall/NDCG@20 recorded and checked against the simulation;
            with validation interactions, its scores are calibrated into probabilities too
            (`edgegnn.export.probability`, the manifest's "probability").
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
        cpus: the CPU feature levels to verify the artifact on (`edgegnn.cpu.LEVELS`; default:
            the target's `cpus`). This machine's own level is always checked.
        emulators: an emulator folder (`edgegnn.export.emulation`) for the levels other than this
            machine's; "auto": $EDGEGNN_EMULATORS if set; None: this machine only. Levels that
            cannot run here are listed in the manifest as not verified, with the reason.
        heads: class heads (`edgegnn.class_head.ClassHead` or head.json paths from `edgegnn
            classify --out`), at most one per node: a user head becomes the graph's
            class_probabilities output, an item head the per-item logits file.
        on_progress: called as (stage, done, total).
        manifest_fields: fields set in the manifest last (`edgegnn update`: its record, and the
            base artifact's probability calibration when no split measures a new one).
    """
    target = load_target(target)
    edge, checkpoint = resolve_model(model)
    digest = edge_digest(edge)                       # of the model as given, before a class head joins it
    heads = _heads(heads)
    if "user" in heads:
        edge = attach_user_head(edge, heads["user"])
    options = graph_options(edge, target, variant=variant, top_k=top_k, history_length=history_length,
                            precision=precision, user_base=user_base is not False)
    checked = check_target(edge, target, options)
    out_dir = Path(out_dir)
    artifact.check_out_dir(out_dir)
    fmt = target.format_record
    inputs, outputs = io_spec(edge, options, index_dtype=fmt.index_dtype, full_scores=fmt.full_scores)
    progress = on_progress or (lambda stage, done, total: None)
    with artifact.staged(out_dir) as tmp:
        progress("building graph", 0, 1)
        files = _write_model(edge, target, options, (inputs, outputs), tmp, external_data_bytes)
        files += artifact.write_items(tmp, edge.item_ids)
        if "item" in heads:
            (tmp / ITEM_LOGITS).write_bytes(item_logits(edge, heads["item"]).astype("<f4").tobytes())
            files.append(ITEM_LOGITS)
        counts = _popularity(edge, checkpoint, split, popularity)
        manifest = _manifest(edge, target, options, checked, inputs, outputs, files, counts)
        manifest["model"]["digest"] = digest
        manifest["graph"]["external_data_bytes"] = external_data_bytes
        if heads or has_class_head(edge):
            manifest["class_heads"] = manifest_record(edge, heads)
        manifest["history_length"] = history_length if history_length is not None else target.history_length
        artifact.write_manifest(tmp, manifest, files)
        progress("building graph", 1, 1)
        data = _eval_data(edge, checkpoint, split, options, user_base, max_users) if split is not None else None
        from edgegnn.runtime import Recommender

        recommender = Recommender.open(tmp)        # checksums verified once, for both checks below
        progress("verifying on CPUs", 0, 1)
        manifest["cpus"] = _verify_cpus(tmp, edge, manifest, target, options, data, cpus, emulators, recommender)
        progress("verifying on CPUs", 1, 1)
        if split is not None and variant != "history":
            log.warning("variant %r takes user embeddings, not histories: no metrics measured", variant)
        elif split is not None:
            from edgegnn.data.provenance import DataRecord, compare
            from edgegnn.export.probability import probability_record

            manifest["metrics"] = _measure(edge, data, recommender, options, tolerance, progress)
            manifest["metrics"]["data"] = compare(DataRecord.from_dict(edge.data), split.record)
            calibration = probability_record(edge, checkpoint, split, history_length=manifest["history_length"])
            if calibration is not None:
                manifest["probability"] = _rounded(calibration)
        manifest.update(manifest_fields or {})
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


def _heads(heads: Sequence) -> dict:
    """{node: ClassHead} of heads given as ClassHead objects or head.json paths (one per node)."""
    loaded = [head if isinstance(head, ClassHead) else read_head(head) for head in heads]
    nodes = [head.node for head in loaded]
    if len(set(nodes)) != len(nodes):
        raise ConfigError("heads", nodes, "at most one user head and one item head")
    return {head.node: head for head in loaded}


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
    """The format's writer (`edgegnn.runtime.formats`) puts the model file(s) into `tmp`."""
    writer = target.format_record.writer_module()
    return writer.write(edge, options, io, tmp, external_data_bytes=external_data_bytes)


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
                  "estimated_memory_bytes": checked.estimated_memory, "int4_widened_to_int8": checked.int4_widened,
                  "scoring": checked.scoring.to_dict()},
        "versions": _versions(target), "producer": f"edgegnn {__version__}",
        "popularity": None, "metrics": None, "data": None if edge.data is None else dict(edge.data),
        "retrieval": retrieval_record(edge),
    }
    if counts is not None:
        order = np.argsort(-counts, kind="stable")[:POPULAR]
        manifest["popularity"] = {"rows": order.tolist(), "counts": counts[order].tolist(),
                                  "total": int(counts.sum()), "source": "training interactions per item"}
    return manifest


def retrieval_record(edge: EdgeModel) -> dict | None:
    """The manifest's "retrieval": None (every item scored), or the inverted lists' layout, the
    nprobe, and the top-k overlap with the exact scan measured on calibration users (the
    retrieval pass, `edgegnn.compress.inverted`)."""
    if "retrieval" not in edge.params:
        return None
    record = dict(edge.params["retrieval"])
    return {"method": "inverted-lists", **record, "scored_items": scored_items(edge),
            "overlap_with": "the exact scan of the same model, top-k, on the calibration users"}


def _versions(target: Target) -> dict[str, str]:
    import importlib.metadata as md

    out = {"edgegnn": __version__}
    for name in target.format_record.versions:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


# ---- metrics on the artifact ---------------------------------------------------------------

def _eval_data(edge, checkpoint, split, options: GraphOptions, user_base, max_users):
    """The split's test users in the model's rows (`edgegnn.export.evaluate.EvalData`)."""
    from edgegnn.export.evaluate import eval_data

    if checkpoint is not None:
        base = _checkpoint_bases(checkpoint, user_base, options)
        return eval_data(checkpoint.train, split.test, edge.item_ids, user_ids=checkpoint.train.user_ids,
                         user_base=base, max_users=max_users)
    base = user_base if isinstance(user_base, np.ndarray) and options.user_base else None
    return eval_data(split.train, split.test, edge.item_ids, user_base=base, max_users=max_users)


def _verify_cpus(directory: Path, edge, manifest: dict, target: Target, options: GraphOptions, data, cpus,
                 emulators, recommender) -> dict:
    """The manifest's "cpus" record (`edgegnn.export.verify.verify_cpus`): the split's first test users
    as queries where there is a split, else random histories."""
    from edgegnn.cpu import check_levels
    from edgegnn.export.emulation import find_emulators
    from edgegnn.export.verify import probe_queries, verify_cpus

    histories, base = (), None
    if data is not None:
        users = data.users[:24]
        histories = [data.train_csr.indices[data.train_csr.indptr[u]:data.train_csr.indptr[u + 1]] for u in users]
        base = None if data.user_base is None else data.user_base[users]
    queries = probe_queries(edge, options.variant, histories=histories, user_base=base if options.user_base else None,
                            history_length=manifest["history_length"])
    levels = check_levels(target.cpus if cpus is None else cpus, "cpus")
    found = find_emulators() if emulators == "auto" else (find_emulators(emulators) if emulators else None)
    return verify_cpus(directory, edge, manifest, queries, levels=levels, emulators=found, recommender=recommender)


def _measure(edge, data, recommender, options: GraphOptions, tolerance, progress) -> dict:
    from edgegnn.cpu import describe, host_cpu
    from edgegnn.export.evaluate import CUTOFF, measure

    base = data.user_base
    applied = recommender.manifest["graph"]["scoring"]["applied_scales"]
    as_run = dataclasses.replace(edge, activation_scales={k: v for k, v in edge.activation_scales.items()
                                                          if k in applied})
    result = measure(edge, lambda fed, seen, b: recommender.top_rows(fed, CUTOFF, exclude=seen, user_base=b)[0],
                     data, history_length=recommender.history_length, simulated=as_run,
                     on_batch=lambda done, total: progress("measuring artifact", done, total))
    allowed = TOLERANCE[options.precision] if tolerance is None else float(tolerance)
    delta = {k: abs(result["artifact"][k] - result["simulation"][k]) for k in result["artifact"]}
    result.update(tolerance=allowed, delta=delta,
                  users_as="known (e_u0 input)" if base is not None else "new (no e_u0)",
                  protocol="test users; history = training items (newest H kept); the 20 best items outside the "
                           "user's training items (the artifact: Recommender.top_rows); simulation = numpy EdgeModel "
                           "on the same histories, in the artifact's arithmetic (static scales the graph ignores "
                           f"left out; applied: {', '.join(applied) or 'none'})",
                  measured_with={"runtime": recommender.backend.runtime, "providers": recommender.backend.providers,
                                 "machine": platform.machine(), "cpu": host_cpu()})
    worst = max(delta, key=delta.get)
    if delta[worst] > allowed:
        cpu = host_cpu()
        cause = ("the runtime's integer kernels on this CPU round the user vector otherwise than the simulation"
                 if options.precision == "int8" else "the runtime's float kernels differ beyond the tolerance")
        raise ExportError(f"the {options.precision} artifact's {worst} is {result['artifact'][worst]:.5f}, the "
                          f"simulation's {result['simulation'][worst]:.5f}: |Δ| {delta[worst]:.5f} > {allowed:g} on "
                          f"{cpu['level']} ({describe(cpu)}); likely cause: {cause}",
                          hint="nothing was written; report this with the model, the target and this CPU")
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
