"""`fpipe explain --at TIME --key user_id=42`: the features of one entity at one instant and the rows behind them."""

from __future__ import annotations

import typer

from fpipe.app import options
from fpipe.commands._complete import names_of

HELP = """Explain feature values: for one entity at one instant, each feature's value and the exact
source rows behind it -- rows inside the window, the row that won a lookup, and rows that existed but
were not yet available (with the instant they became visible). Values equal backfill's.
With --set of a training set that has a label: the label's value (backfill's), whether the row is
censored and what backfill does with it, and the label source's rows in, before and after the label
window (event time only: availability does not matter for labels).

Examples:

  fpipe explain --at 2024-01-12T10:00:58Z --key user_id=1024 --set fraud_v1

  fpipe explain --at 2013-06-01T08:00 --key tailnum=N14228 --feature tail_delay_mean_24h --json
"""


def explain(
    ctx: typer.Context,
    at: str = typer.Option(..., "--at", help="The instant (ISO 8601; naive = the project's timezone)."),
    key: list[str] = typer.Option(..., "--key", "-k", help="Entity key, COLUMN=VALUE (repeat for several entities)."),
    training_set: str = typer.Option(None, "--set", help="Explain this training set's features.", autocompletion=names_of("training_sets")),
    feature: list[str] = typer.Option(None, "--feature", "-f", help="Explain only this feature (repeatable).", autocompletion=names_of("features")),
    limit: int = typer.Option(20, "--limit", help="Rows listed per status and feature (0: all)."),
    summary: bool = typer.Option(False, "--summary", help="Only the values, not the rows."),
    as_json: bool = typer.Option(False, "--json", help="Print the explanation as JSON."),
) -> None:
    from fpipe.commands._common import load_project
    from fpipe.lineage import explain_features, explanation_json, parse_keys

    opts = options(ctx)
    project = load_project(opts)
    ex = explain_features(
        project, at, parse_keys(key, project), training_set=training_set, features=feature or None, limit=limit or None
    )
    if as_json:
        import json

        typer.echo(json.dumps(explanation_json(ex), indent=2, default=str))
        return
    from fpipe.render.explain import render_explanation

    render_explanation(ex, no_color=opts.no_color, rows=not summary)


def register(app: typer.Typer) -> None:
    app.command("explain", help=HELP)(explain)
