"""Wires the command groups; each command lives in its own module."""

from __future__ import annotations

import typer

from edgegnn.cli import classify_cmd, compress_cmd, data_cmd, export_cmd, profile_cmd, quickstart_cmd, train_cmd

app = typer.Typer(
    name="edgegnn",
    help="Take a GNN recommender from training to an edge device.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # known errors are one line; EDGEGNN_DEBUG=1 for tracebacks
    add_completion=False,
)
app.command("quickstart")(quickstart_cmd.quickstart)
app.add_typer(data_cmd.app, name="data")
app.command("train")(train_cmd.train)
app.command("evaluate")(train_cmd.evaluate)
app.command("import")(train_cmd.import_pyg)
app.command("classify")(classify_cmd.classify)
app.command("compress")(compress_cmd.compress)
app.command("export")(export_cmd.export)
app.command("inspect")(export_cmd.inspect)
app.command("recommend")(export_cmd.recommend)
app.command("profile")(profile_cmd.profile)


def main() -> None:
    app()
