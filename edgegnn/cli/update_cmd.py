"""`edgegnn update`: new items into a shipped artifact without retraining, and the patch to ship.

    edgegnn update artifacts/shop --model runs/edge --items new_items.csv [--remove gone.txt] --out artifacts/shop-2
    edgegnn update artifacts/shop --model runs/edge --remove gone.txt --out artifacts/shop-2

    edgegnn apply-patch artifacts/shop artifacts/shop-2.patch --out artifacts/shop-2

Writes the new artifact (--out), the patch from the old one (--patch, default OUT.patch), and the
updated model (--model-out, default OUT.model: the --model of the next update). Bad input (a
model the artifact was not exported from, items already in the catalog, only unknown users, a
removed id not in the catalog) is one line on stderr and a non-zero exit, before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.output import next_step, print_json, setup_logging, stdout, user_errors


def update(
    artifact: Annotated[Path, typer.Argument(metavar="ARTIFACT",
                                             help="The artifact to update (`edgegnn export --out`).")],
    model: Annotated[Path, typer.Option("--model", help="The model ARTIFACT was exported from (an edge-model "
                                                        "folder or MODEL.pt; the last update's --model-out).")],
    out: Annotated[Path, typer.Option("--out", help="The new artifact folder (created or replaced atomically).")],
    items: Annotated[Optional[Path], typer.Option(
        "--items", help="CSV of the new items' interactions, with user and item columns (users from the model's "
                        "training data).")] = None,
    remove: Annotated[Optional[Path], typer.Option("--remove", help="Item ids to take out, one per line.")] = None,
    patch: Annotated[Optional[Path], typer.Option("--patch",
                                                  help="The patch file to write [default: OUT.patch]")] = None,
    model_out: Annotated[Optional[Path], typer.Option(
        "--model-out", help="The updated model folder [default: OUT.model]")] = None,
    data: Annotated[Optional[str], typer.Option(
        "--data", help="The model's training interactions (CSV, or a LightGCN folder's train.txt) "
                       "[default: the data the model records]")] = None,
    heads: Annotated[Optional[list[Path]], typer.Option(
        "--head", help="The class heads ARTIFACT was exported with (`edgegnn classify --out`; repeatable): "
                       "carried over, new items get item logits too.")] = None,
    emulators: opt.Emulators = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
) -> None:
    """Add new items to an artifact (and remove others) without retraining; write the patch."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.catalog.update import update_artifact

        result = update_artifact(artifact, model, items=items, out=out, removed=remove, patch=patch,
                                 model_out=model_out, data=data, heads=heads or (),
                                 emulators=emulators if emulators is not None else "auto")
    if json:
        print_json({"out": str(result.artifact), "patch": str(result.patch), "model": str(result.model),
                    "update": result.record})
        return
    record = result.record
    stdout.print(f"added {record['added']} items, removed {record['removed']} "
                 f"({record['items_before']:,} -> {record['items_after']:,} items)")
    if record["rows_with_unknown_users"] or record["items_without_known_users"]:
        stdout.print(f"skipped {record['rows_with_unknown_users']} rows of users the model does not know; "
                     f"{record['items_without_known_users']} new items had no known user and were not added")
    if record["fold"] is not None:
        fits = ", ".join(f"{name} R² {entry['r2_check_items']:.3f}" for name, entry in record["fold"]["tables"].items())
        stdout.print(f"new rows from their users' encodings ({fits} on the model's own items, held out)")
    if "retrieval_overlap" in record:
        stdout.print(f"inverted lists: top-k overlap with the exact scan now {record['retrieval_overlap']:.4f}")
    stdout.print(f"wrote {result.artifact} ({result.artifact_bytes:,} bytes), {result.model}")
    stdout.print(f"wrote {result.patch}: {result.patch_bytes:,} bytes, "
                 f"{100.0 * result.patch_bytes / result.artifact_bytes:.1f} % of the new artifact")
    next_step(f"edgegnn recommend {result.artifact} --history ITEM,ITEM",
              f"Recommender.open('{artifact}', patch='{result.patch}') on the device")


def apply_patch(
    artifact: Annotated[Path, typer.Argument(metavar="ARTIFACT", help="The artifact the patch was made from.")],
    patch: Annotated[Path, typer.Argument(metavar="PATCH", help="The patch (`edgegnn update --patch`).")],
    out: Annotated[Path, typer.Option("--out", help="The patched artifact folder (created or replaced "
                                                    "atomically; may be ARTIFACT itself).")],
    verbose: opt.Verbose = False,
) -> None:
    """Apply a patch to an artifact: checked against the artifact's manifest, rebuilt, verified."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.runtime.manifest import read_manifest
        from edgegnn.runtime.patch import apply_patch as apply

        written = apply(artifact, patch, out)
        manifest = read_manifest(written)
    stdout.print(f"wrote {written}: {manifest['num_items']:,} items, verified against its manifest")
