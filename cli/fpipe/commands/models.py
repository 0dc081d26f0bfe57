"""`fpipe models list|promote|rollback|compare`: the model registry."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from fpipe.app import options

HELP = """The model registry: list versions, promote, roll back, compare, show a card.

Examples:

  fpipe models list

  fpipe models promote flights_delay_xgb v2

  fpipe models compare flights_delay_xgb --candidate v3 --training-set out/flights_delay_v1.parquet

  fpipe models rollback flights_delay_xgb
"""

models_app = typer.Typer(help=HELP, no_args_is_help=True)

MODELS_DIR = typer.Option(Path("models"), "--models-dir", help="Registry root: models/<name>/<version>/.")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


@models_app.command("list")
def list_(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only this model."),
    models_dir: Path = MODELS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every model version, its test metric beside the baseline, and which one is current.

    Example: fpipe models list fraud_xgb --json
    """
    from fpipe.render.model_summary import format_models_list
    from fpipe.train.registry import clean_json, list_models, require_model

    if name is not None:
        require_model(models_dir, name)
    rows = [r for r in list_models(models_dir) if name is None or r["model"] == name]
    if as_json:
        typer.echo(json.dumps(clean_json(rows), indent=2))
    else:
        typer.echo(format_models_list(rows))


@models_app.command("show")
def show(
    name: str = typer.Argument(..., help="Model name."),
    version: str | None = typer.Argument(None, help="Version (default: the current one, else the latest)."),
    models_dir: Path = MODELS_DIR,
) -> None:
    """Print a version's model card (model_card.md).

    Example: fpipe models show fraud_xgb v2
    """
    from fpipe.train.registry import card_path

    typer.echo(card_path(models_dir, name, version).read_text(), nl=False)


@models_app.command("promote")
def promote(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="Version to make current, e.g. v3."),
    models_dir: Path = MODELS_DIR,
) -> None:
    """Point `current` at VERSION (atomically); the previous current can be restored with rollback.

    Example: fpipe models promote fraud_xgb v3
    """
    from fpipe.train.registry import promote as do_promote

    p = do_promote(models_dir, name, version)
    if not options(ctx).quiet:
        prev = p.previous[-1] if p.previous else None
        typer.echo(f"{name}: current is {p.version}" + (f" (was {prev})" if prev else ""))


@models_app.command("rollback")
def rollback(ctx: typer.Context, name: str = typer.Argument(..., help="Model name."), models_dir: Path = MODELS_DIR) -> None:
    """Point `current` back at the version promoted before it.

    Example: fpipe models rollback fraud_xgb
    """
    from fpipe.train.registry import rollback as do_rollback

    p = do_rollback(models_dir, name)
    if not options(ctx).quiet:
        typer.echo(f"{name}: current is {p.version} (rolled back from {p.log[-1]['from']})")


@models_app.command("compare")
def compare(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    candidate: str = typer.Option(..., "--candidate", help="Candidate version, e.g. v4."),
    training_set: Path = typer.Option(..., "--training-set", help="A labelled table (a backfill output)."),
    slice_fraction: float = typer.Option(0.15, "--slice", help="Share of the most recent rows (by spine time) to compare on."),
    tolerance: float = typer.Option(0.005, "--tolerance", help="How much worse (in the primary metric) is still accepted."),
    models_dir: Path = MODELS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Canary check before promotion: candidate vs current on the most recent time slice.

    Exit 1 when the candidate is worse than current by more than --tolerance on the primary metric
    (AUC for binary, RMSE for regression, log loss for multiclass).

    Example: fpipe models compare fraud_xgb --candidate v4 --training-set out/fraud_v1.parquet
    """
    from fpipe.errors import ChecksFailed
    from fpipe.render.model_summary import format_compare
    from fpipe.train.pipeline import compare_models, read_table
    from fpipe.train.registry import clean_json

    frame = read_table(training_set)
    result = compare_models(models_dir, name, candidate, frame, str(training_set), slice_fraction, tolerance)
    for w in result["warnings"]:
        sys.stderr.write(f"warning: {w}\n")
    if as_json:
        typer.echo(json.dumps(clean_json(result), indent=2))
    elif not options(ctx).quiet:
        typer.echo(format_compare(result))
    if result["candidate_worse"]:
        m = result["metric"]
        raise ChecksFailed(
            f"candidate {result['candidate']['version']} is worse than current {result['current']['version']} "
            f"on {m}: {result['candidate']['metrics'][m]:.4f} vs {result['current']['metrics'][m]:.4f} "
            f"(tolerance {tolerance:g})",
            hint=f"keep {result['current']['version']} current",
        )
