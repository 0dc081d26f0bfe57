"""`fpipe schema [--out FILE]`: the JSON Schema of the definitions YAML (for editors)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

HELP = """Print the JSON Schema (draft 2020-12) of the definitions YAML, for editor completion.

Examples:

  fpipe schema --out docs/fpipe.schema.json

  fpipe schema > fpipe.schema.json

Point yaml-language-server at it with a first line `# yaml-language-server: $schema=docs/fpipe.schema.json`.
"""


def schema(
    out: Path | None = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
) -> None:
    from fpipe.spec.jsonschema import schema_text

    text = schema_text()
    if out is None:
        sys.stdout.write(text)
        return
    from fpipe.io.writers import write_text

    write_text(text, out)


def register(app: typer.Typer) -> None:
    app.command("schema", help=HELP)(schema)
