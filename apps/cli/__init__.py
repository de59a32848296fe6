"""The `dunning` command line (Typer): `python -m apps.cli` or the installed `dunning`."""

from apps.cli.main import app, main

__all__ = ["app", "main"]
