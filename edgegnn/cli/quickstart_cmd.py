"""`edgegnn quickstart`: the whole pipeline, one command, on synthetic data (or --data).

    edgegnn quickstart --out runs/quickstart

Steps: load the data -> train LightGCN -> fold it into the edge model -> compress it three ways
(fp32 as folded; int8; low-rank (rank d/4) + int8) -> export each for cpu-x86_64 (ONNX) and
android-litert (TFLite), measuring Recall/NDCG@20 on the artifact (on synthetic data, which knows
its users' taste clusters, each artifact also classifies a user's interests from the history:
`edgegnn.class_head`) -> profile the six artifacts
(batch 1, history 20, 1 thread, 200 timed calls, each in a fresh process) -> print the
comparison and write OUT/model.pt, OUT/artifacts/*, OUT/profile.json and OUT/profile.png (and
OUT/user_head.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.options import DataSource, data_options
from edgegnn.cli.output import metrics_table, next_step, print_json, progress, setup_logging, stdout, user_errors

TARGETS = {"cpu-x86_64": "onnx", "android-litert": "tflite"}     # target: the short name in artifact names


@data_options
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Output folder for the model, "
                                                    "artifacts and report.")] = Path("runs/quickstart"),
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 200,
    iterations: Annotated[int, typer.Option("--iterations", help="Timed calls per artifact in the profile.")] = 200,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Synthetic data (or --data) -> train LightGCN -> fold -> compress -> export -> profile; prints the comparison."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.data import describe
        from edgegnn.models import ModelCard
        from edgegnn.profile.report import to_dict, write_json, write_plot
        from edgegnn.profile.runner import Sweep, profile
        from edgegnn.train.api import fit, override_training
        from edgegnn.train.checkpoint import save_checkpoint

        sweep = Sweep(batches=(1,), history_lens=(20,), threads=(1,), iterations=iterations, warmup=20)
        splits, _ = source.load()
        stats = describe(splits)
        if not json:
            stdout.print(f"data: {splits.source}: {stats['users']:,} users, {stats['items']:,} items, "
                         f"{stats['interactions']:,} interactions")
        card = override_training(ModelCard(name="lightgcn"), seed=source.seed_value)
        with progress(enabled=not json) as bar:
            task = bar.add_task("training lightgcn", total=epochs, status="")
            checkpoint, result = fit(splits, card, epochs=epochs,
                                     on_epoch=lambda epoch, _: bar.update(task, completed=epoch))
            model_path = save_checkpoint(checkpoint, Path(out) / "model.pt")
            variants = _variants(checkpoint, splits, bar)
            interests = _interest_head(checkpoint, source, Path(out) / "user_head.json")
            artifacts = _export_all(variants, splits, Path(out) / "artifacts", bar,
                                    heads=[] if interests is None else [interests["path"]])
            task = bar.add_task("profiling", total=len(artifacts), status="")
            profiled = profile(list(artifacts.values()), sweep=sweep, names=list(artifacts),
                               on_progress=lambda stage, done, total: bar.update(task, completed=done, total=total,
                                                                                 status=stage))
        json_path = write_json(profiled, Path(out) / "profile.json")
        plot_path = write_plot(profiled, Path(out) / "profile.png")
    report = {"data": stats, "metrics": checkpoint.metrics, "model": str(model_path),
              "variants": {name: {"recipe": list(edge.recipe), "bytes": int(edge.nbytes)}
                           for name, edge in variants.items()},
              "artifacts": {name: str(path) for name, path in artifacts.items()},
              "profile": to_dict(profiled), "profile_json": str(json_path), "plot": str(plot_path),
              "user_classes": None if interests is None else {k: v for k, v in interests.items() if k != "path"}}
    if json:
        print_json(report)
        return
    from edgegnn.cli.train_cmd import shown_metrics
    from edgegnn.profile.report import results_table

    stdout.print(metrics_table(f"LightGCN on {splits.source}", shown_metrics(checkpoint.metrics)))
    stdout.print(f"trained {result.epochs_run} epochs in {result.seconds:.1f} s; model: {model_path}")
    if interests is not None:
        test, majority = interests["test"], interests["majority"]
        stdout.print(f"user interests (the synthetic taste clusters): held-out accuracy {test['accuracy']:.3f}, "
                     f"macro-F1 {test['macro_f1']:.3f} (majority class {majority['accuracy']:.3f}); every artifact "
                     "returns them: edgegnn recommend ARTIFACT --history ... --classes")
    stdout.print(results_table(profiled))
    stdout.print(f"wrote {json_path} and {plot_path}")
    next_step(f"edgegnn recommend {artifacts['int8-tflite']} --history i1,i2,i3 --classes",
              "on your data: edgegnn train --data FILE.csv --out model.pt")


def _variants(checkpoint, splits, bar) -> dict:
    """{"fp32": folded, "int8": per-row int8, "lr-int8": rank d/4 then int8} EdgeModels."""
    from edgegnn.compress import Calibration, LowRankConfig, QuantizeConfig, compress
    from edgegnn.fold import fold

    task = bar.add_task("fold + compress", total=3, status="fold")
    edge = fold(checkpoint)
    calibration = Calibration.from_split(splits)
    bar.update(task, advance=1, status="int8")
    int8 = compress(edge, QuantizeConfig(), calibration=calibration)
    bar.update(task, advance=1, status="low-rank + int8")
    rank = max(1, edge.embedding_dim // 4)
    lowrank = compress(edge, LowRankConfig(rank=rank), QuantizeConfig(), calibration=calibration)
    bar.update(task, advance=1, status="done")
    return {"fp32": edge, "int8": int8, "lr-int8": lowrank}


def _interest_head(checkpoint, source: DataSource, path: Path) -> dict | None:
    """On synthetic data, which knows its users' taste clusters: the user-interest head
    (`edgegnn.classify`) written to `path`, and its held-out figures; None on other data."""
    import numpy as np

    from edgegnn.classify import Labels, classify, write_head
    from edgegnn.data.dataset import parse_synthetic_spec
    from edgegnn.data.synthetic import taste_clusters
    from edgegnn.fold import fold

    spec = source.data or "synthetic"
    if spec != "synthetic" and not spec.startswith("synthetic:"):
        return None
    _, clusters = taste_clusters(**parse_synthetic_spec(spec, seed=source.seed_value))
    labels = Labels("user", np.array([f"u{u}" for u in range(len(clusters))]),
                    np.char.add("cluster", clusters.astype(str)))
    result = classify(fold(checkpoint), checkpoint.train, labels, seed=source.seed_value)
    write_head(result, path)
    return {"path": path, "test": result["test"], "majority": result["majority"], "classes": result["classes"]}


def _export_all(variants: dict, splits, out: Path, bar, heads=()) -> dict[str, Path]:
    """Every variant for every target in TARGETS, measured on the split, with the class `heads`:
    {name: artifact folder}."""
    from edgegnn.export import export

    task = bar.add_task("export", total=len(variants) * len(TARGETS), status="")
    paths = {}
    for target, short in TARGETS.items():
        for name, edge in variants.items():
            label = f"{name}-{short}"           # short: the tables fit 80 columns
            bar.update(task, status=label)
            paths[label] = export(edge, target, split=splits, out_dir=out / label, heads=heads)
            bar.update(task, advance=1)
    return paths
