"""`fpipe late [SOURCE]`: late and out-of-order data, per source."""

from __future__ import annotations

import typer

from fpipe.app import options
from fpipe.commands._complete import names_of

HELP = """Late and out-of-order data: per source, the distribution of available_time - event_time
(p50/p95/p99/max), the share of rows later than a threshold, rows out of event-time order (in input
order), events in the future, and a suggested fixed `lag:` (the p99, rounded up).

Examples:

  fpipe late

  fpipe late transactions --late-threshold 30m --json
"""


def late(
    ctx: typer.Context,
    sources: list[str] = typer.Argument(
        None, help="Source names (default: every source with an event_time).", autocompletion=names_of("sources")
    ),
    threshold: str = typer.Option("1h", "--late-threshold", help="A row is late when it arrives this long after its event."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    from fpipe.commands._common import load_project
    from fpipe.dataquality import lateness
    from fpipe.errors import UsageError
    from fpipe.spec.durations import parse_duration
    from fpipe.spec.suggest import did_you_mean, one_of

    opts = options(ctx)
    try:
        th = parse_duration(threshold)
    except Exception as exc:
        raise UsageError(f"--late-threshold: {exc}", hint="e.g. 30m, 1h, 1d") from None
    project = load_project(opts)
    for s in sources or []:
        if s not in project.defs.sources:
            raise UsageError(f"unknown source '{s}'", hint=did_you_mean(s, project.defs.sources) or one_of(project.defs.sources))
        if project.defs.sources[s].event_time is None:
            raise UsageError(f"source '{s}' is a static table (no event_time): nothing can be late")
    reports = lateness(project, list(sources or []) or None, threshold=th)
    if as_json:
        import json

        typer.echo(json.dumps({"threshold_s": th.total_seconds(), "sources": [r.to_json() for r in reports]}, indent=2))
        return
    if not opts.quiet:
        from fpipe.render.checks import render_lateness

        render_lateness(reports, no_color=opts.no_color)


def register(app: typer.Typer) -> None:
    app.command("late", help=HELP)(late)
