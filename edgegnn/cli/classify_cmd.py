"""`edgegnn classify`: node classification (item categories, user interests) on a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.output import print_json, setup_logging, stdout, table, user_errors


def classify(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="A checkpoint (MODEL.pt) from `edgegnn train`.")],
    labels: Annotated[Path, typer.Option("--labels", help="CSV with a header 'item,label' or 'user,label'.")],
    test_ratio: Annotated[float, typer.Option("--test-ratio", help="Share of the labelled nodes held out.")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stratified split.")] = 0,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Write the fitted head (scaler, weights, classes) as JSON here.")] = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
) -> None:
    """Classify items or users from the model's device features; accuracy and macro-F1 held out."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.classify import classify as fit_head
        from edgegnn.classify import read_labels, write_head
        from edgegnn.fold import fold
        from edgegnn.train.checkpoint import load_checkpoint

        if out is not None:
            opt.output_file("out", out)
        checkpoint = load_checkpoint(model)
        result = fit_head(fold(checkpoint), checkpoint.train, read_labels(labels), test_ratio=test_ratio, seed=seed)
        if out is not None:
            write_head(result, out)
    shown = {k: v for k, v in result.items() if k != "head"}
    if json:
        print_json(shown)
        return
    rows = [["model", result["test"]["accuracy"], result["test"]["macro_f1"]],
            [f"majority class ({result['majority']['class']})", result["majority"]["accuracy"],
             result["majority"]["macro_f1"]]]
    stdout.print(table(f"{result['node']} classes on {result['test']['nodes']} held-out {result['node']}s",
                       ["", "accuracy", "macro-F1"], rows))
    if result["unknown"]:
        stdout.print(f"left out {result['unknown']} labelled {result['node']}s the model does not know")
    if out is not None:
        stdout.print(f"wrote {out}")
