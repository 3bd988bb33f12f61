"""`edgegnn export`, `edgegnn inspect` and `edgegnn recommend`: artifacts for a target, and using them.

    edgegnn export runs/model.pt --target android-litert --data synthetic --out artifacts/android
    edgegnn inspect artifacts/android
    edgegnn recommend artifacts/android --history i12,i55,i301 --k 10

Bad input (an unknown target, a model that does not fit the target, a damaged or tampered
artifact, a newer manifest) is one line on stderr and a non-zero exit; export writes nothing
unless the whole artifact was built and measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.options import DataSource, data_options
from edgegnn.cli.output import next_step, print_json, progress, setup_logging, stdout, table, user_errors

TargetOpt = Annotated[str, typer.Option("--target", help="Target name (cpu-x86_64, arm64-linux, android-litert, "
                                                         "cuda) or a target YAML file.")]


@data_options
def export(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL.pt|EDGE_DIR",
                                               help="A checkpoint, or a folder from `edgegnn compress --out`.")],
    target: TargetOpt,
    out: Annotated[Path, typer.Option("--out", help="Artifact folder to write (created or replaced atomically).")],
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="K: most items a query returns "
                                                                 "(default: the target's).")] = None,
    history_length: Annotated[Optional[int], typer.Option("--history-length", help="H: history items per query "
                                                                                   "(default: the target's).")] = None,
    variant: Annotated[opt.Variant, typer.Option(
        "--variant", help="What a query feeds: a history, or a user embedding.")] = opt.Variant.history,
    precision: Annotated[Optional[opt.Precision], typer.Option(
        "--precision", help="fp16 for an fp32 model on an fp16 target (default: the model's).")] = None,
    max_users: Annotated[Optional[int], typer.Option("--max-users", help="Measure at most "
                                                                         "this many test users.")] = None,
    new_users: Annotated[bool, typer.Option("--new-users", help="Export without the user_base (e_u⁰) input.")] = False,
    cpus: Annotated[Optional[str], typer.Option(
        "--cpus", help="CPU feature levels to verify on, comma-separated (default: the target's; see "
                       "`edgegnn inspect`). This machine's level is always checked.")] = None,
    emulators: opt.Emulators = None,
    heads: Annotated[Optional[list[Path]], typer.Option(
        "--head", help="A class head from `edgegnn classify --out` (repeatable: a user head and an item "
                       "head): user interests as a graph output, item categories as per-item logits.")] = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Export a model for a target (ONNX or TFLite artifact), measured by running it."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.class_head import read_head
        from edgegnn.errors import ConfigError
        from edgegnn.export import export as export_artifact
        from edgegnn.export.api import load_model
        from edgegnn.targets import load_target

        resolved = load_target(target)          # an unknown target fails before anything loads
        model = load_model(model_path)         # a bad model file fails before the data loads
        class_heads = [read_head(path) for path in heads or ()]
        if max_users is not None and max_users < 1:
            raise ConfigError("max-users", max_users, "must be >= 1")
        splits = _split_for(model, source)
        bar = progress(enabled=not json)
        task = bar.add_task(f"export for {resolved.name}", total=None, status="")

        def on_progress(stage: str, done: int, total: int) -> None:
            if not bar.live.is_started:         # shown once the target checks passed: errors stay one line
                bar.start()
            bar.update(task, completed=done, total=total, status=stage)

        try:
            path = export_artifact(model, resolved, out_dir=out, split=splits, top_k=top_k,
                                   history_length=history_length, variant=opt.value(variant),
                                   precision=opt.value(precision),
                                   user_base=False if new_users else None, max_users=max_users,
                                   cpus=None if cpus is None else [c.strip() for c in cpus.split(",") if c.strip()],
                                   emulators=emulators if emulators is not None else "auto",
                                   heads=class_heads, on_progress=on_progress)
        finally:
            bar.stop()
        from edgegnn.runtime import read_manifest

        manifest = read_manifest(path)
    if json:
        print_json({"out": str(path), "manifest": manifest})
        return
    _show_summary(manifest, f"exported {model_path} for {resolved.name}")
    calibration = manifest.get("probability")
    if calibration:
        test = calibration["test"]
        stdout.print(f"probabilities: calibrated on validation users; test AUC {test['auc']:.3f}, log-loss "
                     f"{test['logloss']:.3f} (a constant: {test['logloss_constant']:.3f}); recommend --probabilities")
    stdout.print(f"wrote {path}")
    next_step(f"edgegnn recommend {path} --history ITEM,ITEM", f"edgegnn profile {path}")


def _split_for(model, source: DataSource):
    """The split export measures the artifact on: the one given, else the model's own (when it
    records one and it is still there), else None (no metrics, no popularity fallback)."""
    import logging

    from edgegnn.data.provenance import DataRecord
    from edgegnn.errors import DataError

    recorded = getattr(model, "data", None)
    trained_on = DataRecord.from_dict(recorded) if isinstance(recorded, dict) else recorded
    if source.given():
        return source.load(trained_on)[0]
    if trained_on is None:
        logging.getLogger("edgegnn").warning("no --data and the model records no training data: the artifact gets "
                                             "no metrics and no popularity fallback for empty histories")
        return None
    try:
        return source.load(trained_on)[0]
    except DataError as error:
        logging.getLogger("edgegnn").warning("the model's training data cannot be loaded (%s): no metrics and no "
                                             "popularity fallback; pass --data", error)
        return None


def inspect(
    artifact: Annotated[Path, typer.Argument(metavar="ARTIFACT", help="An artifact folder from `edgegnn export`.")],
    json: opt.Json = False,
    verbose: opt.Verbose = False,
) -> None:
    """Show an artifact's manifest (target, inputs/outputs, files, storage, metrics); checksums verified."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.runtime import read_manifest, verify_files

        manifest = read_manifest(artifact)
        verify_files(artifact, manifest)
    if json:
        print_json({**manifest, "verified": True})
        return
    _show_summary(manifest, f"{artifact}")
    stdout.print(table("tensors", ["tensor", "storage", "shape"],
                       [[name, _storage(desc), "x".join(map(str, desc.get("shape", [])))]
                        for name, desc in sorted(manifest["model"]["tensors"].items())]))
    stdout.print(table("inputs and outputs", ["name", "dtype", "shape"],
                       [[s["name"], s["dtype"], "x".join(map(str, s["shape"]))]
                        for s in manifest["inputs"] + manifest["outputs"]]))
    stdout.print("all checksums verified")


def recommend(
    artifact: Annotated[Path, typer.Argument(metavar="ARTIFACT", help="An artifact folder from `edgegnn export`.")],
    history: Annotated[str, typer.Option("--history", help="Raw item ids, oldest first, "
                                                           "comma-separated (may be empty).")],
    k: Annotated[int, typer.Option("--k", help="How many items to recommend.")] = 10,
    include_seen: Annotated[bool, typer.Option("--include-seen", help="Keep the history's items "
                                                                      "in the results.")] = False,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Runtime threads "
                                                                     "(default: the target's).")] = None,
    probabilities: Annotated[bool, typer.Option(
        "--probabilities", help="Show P(user likes item) (the artifact's calibration) instead of scores.")] = False,
    classes: Annotated[bool, typer.Option(
        "--classes", help="Also show the user's interest classes (artifacts exported with a user --head).")] = False,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
) -> None:
    """Recommend items for a history by running the artifact (torch-free runtime)."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.runtime import Recommender

        recommender = Recommender.open(artifact, threads=threads)
        ids = [x.strip() for x in history.split(",") if x.strip()]
        result = recommender.recommend(ids, k=k, exclude_seen=not include_seen, probabilities=probabilities)
        interests = recommender.classify(ids) if classes else None
    value = "probability" if probabilities else "score"
    if json:
        print_json({"items": [{"item": item, value: score} for item, score in result],
                    "skipped": list(result.skipped), "truncated": result.truncated, "fallback": result.fallback,
                    **({} if interests is None else
                       {"classes": [{"class": name, "probability": p} for name, p in interests]})})
        return
    if interests is not None:
        stdout.print(table("interest classes" if interests else "interest classes: no known history item",
                           ["class", "probability"], [[name, p] for name, p in interests[:5]]))
    title = ("most popular items (no known history)" if result.fallback else
             f"top {len(result)} for {len(ids)} history items")
    stdout.print(table(title, ["rank", "item", value],
                       [[i + 1, item, score] for i, (item, score) in enumerate(result)]))
    if result.skipped:
        stdout.print(f"skipped {len(result.skipped)} unknown item id(s): {', '.join(result.skipped[:10])}")
    if not len(result):
        stdout.print("no recommendations: no known history item, and the artifact has no popularity list (export it "
                     "with --data)" if result.fallback else "nothing left to recommend: the history covers every "
                     "item the model knows (--include-seen keeps them)")
    if result.truncated:
        stdout.print(f"used the newest {recommender.history_length} history items "
                     f"({result.truncated} older ones left out)")


def _show_cpus(cpus: dict | None) -> None:
    """Which CPU feature levels the artifact was verified on at export, and which not (and why)."""
    if not cpus:
        stdout.print("CPUs: not recorded (exported by an edgegnn before 0.2)")
        return
    rows = [[entry["level"], "emulated" if entry["emulated"] else "this machine",
             f"passed, worst error {entry['max_error_over_bound']:.2f} of the bound"] for entry in cpus["verified"]]
    rows += [[entry["level"], "not verified", entry["reason"]] for entry in cpus["not_verified"]]
    stdout.print(table(f"verified on CPUs (target: {', '.join(cpus['target']) or 'none named'})",
                       ["level", "how", "result"], rows))


def _storage(desc: dict) -> str:
    if desc.get("storage") == "low-rank":
        return f"low-rank r={desc['rank']} ({_storage(desc['left'])}, {_storage(desc['right'])})"
    return str(desc.get("storage"))


def _show_summary(manifest: dict, title: str) -> None:
    target = manifest["target"]
    how = ", ".join(target.get("providers") or []) or f"delegate {target.get('delegate')}"
    rows = [["target", target["name"]], ["runtime", f"{target['runtime']} ({how})"], ["arch", target["arch"]],
            ["precision", manifest["precision"]], ["variant", manifest["variant"]],
            ["items", manifest["num_items"]], ["top_k", manifest["top_k"]],
            ["history length", manifest["history_length"] if manifest["history_length"] else "any"],
            ["estimated memory (bytes)", manifest["graph"]["estimated_memory_bytes"]]]
    rows += [[f"file {name}", entry["bytes"]] for name, entry in sorted(manifest["files"].items())]
    lists = manifest.get("retrieval")
    if lists:
        overlap = "" if lists.get("overlap") is None else \
            f", top-{lists['k']} overlap {lists['overlap']:.3f} with the exact scan"
        rows.append(["retrieval", f"{lists['lists']} inverted lists of {lists['capacity']}, nprobe {lists['nprobe']} "
                                  f"({lists['scored_items']:,} items scored per query{overlap})"])
    for node, head in sorted((manifest.get("class_heads") or {}).items()):
        held_out = head.get("test")
        rows.append([f"{node} classes", f"{len(head['classes'])}" + (
            f" (held-out accuracy {held_out['accuracy']:.3f}, "
            f"macro-F1 {held_out['macro_f1']:.3f})" if held_out else "")])
    stdout.print(table(title, ["", "value"], rows))
    _show_cpus(manifest.get("cpus"))
    metrics = manifest.get("metrics")
    if metrics:
        names = sorted(metrics["artifact"])
        stdout.print(table(f"measured on {metrics['users']:,} test users ({metrics['users_as']}), "
                           f"tolerance {metrics['tolerance']:g}",
                           ["metric", "artifact", "simulation", "reference", "popularity"],
                           [[n, metrics["artifact"][n], metrics["simulation"][n], metrics["reference"][n],
                             metrics.get("popularity", {}).get(n, "")] for n in names]))
