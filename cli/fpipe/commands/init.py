"""`fpipe init DIR`: a new project (definitions, a little data, a README) that validates and backfills."""

from __future__ import annotations

from pathlib import Path

import typer

from fpipe.app import options

HELP = """Create a new project in DIR: feature_defs/ with example definitions (sources with row checks,
windowed and lookup features, a derived feature, a label, a spine, a training set, a model),
sample_data/ generated deterministically from --seed, and a README.

Examples:

  fpipe init my_project && cd my_project && fpipe validate --data && fpipe backfill

  fpipe init demo --seed 42
"""


def init(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Folder to create (must be new or empty)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the generated data (same seed, same bytes)."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty folder (overwrites fpipe's files)."),
) -> None:
    from fpipe.scaffold import init_project

    opts = options(ctx)
    result = init_project(directory, seed=seed, force=force)
    if not opts.quiet:
        for f in result.files:
            typer.echo(f"created {f}")
        typer.echo(
            f"\n{result.orders:,} orders of {result.customers} customers ({result.bad_rows} broken on purpose). Next:\n\n"
            f"  cd {directory}\n  fpipe validate --data\n  fpipe backfill reorder_v1\n"
        )


def register(app: typer.Typer) -> None:
    app.command("init", help=HELP)(init)
