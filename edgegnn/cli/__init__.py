"""The `edgegnn` command line (Typer + rich). Each command parses, calls one library function, prints."""
