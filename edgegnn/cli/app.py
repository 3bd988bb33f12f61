"""Wires the command groups; each command lives in its own module."""

from __future__ import annotations

import typer

from edgegnn.cli import (
    classify_cmd,
    compress_cmd,
    data_cmd,
    demo_cmd,
    export_cmd,
    profile_cmd,
    quickstart_cmd,
    train_cmd,
    update_cmd,
)

app = typer.Typer(
    name="edgegnn",
    help="Take a GNN recommender from training to an edge device.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # known errors are one line; EDGEGNN_DEBUG=1 for tracebacks
    add_completion=False,
    rich_markup_mode=None,   # click's plain help: wraps at any width, no type placeholders on flags
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
app.command("demo")(demo_cmd.demo)
app.command("update")(update_cmd.update)
app.command("apply-patch")(update_cmd.apply_patch)


def main() -> None:
    """Run the CLI; a usage mistake (an unknown option, a value outside its choices) is one line
    on stderr naming the option, and exit 2 (click's code for usage errors), like every other
    user mistake is one line and exit 1."""
    import sys

    try:       # typer >= 0.2x vendors click (no public name for its usage error); older typer uses click
        from typer._click.exceptions import UsageError
    except ImportError:
        from click import UsageError

    try:
        code = app(standalone_mode=False)
    except UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "edgegnn"
        sys.stderr.write(f"error: {error.format_message()} (see: {command} --help)\n")
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("aborted\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
