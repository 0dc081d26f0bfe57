"""`fpipe drift [SET] --every 1w`: feature distributions of a training set across time buckets."""

from __future__ import annotations

from pathlib import Path

import typer

from fpipe.app import options
from fpipe.commands._complete import names_of

HELP = """Drift over time: PSI (with its noise floor), null rate and category shares of each feature per
time bucket of a training set, against the first bucket or a reference range. Exit 1 when a feature
drifts (over the threshold and over its noise floor).

Examples:

  fpipe drift fraud_v1 --every 1w

  fpipe drift fraud_v1 --training-set out/fraud_v1.parquet --format html --out drift.html

  fpipe drift flights_delay_v1 --every 4w --reference 2013-01-01..2013-03-01 --format json
"""


def drift(
    ctx: typer.Context,
    training_set: str = typer.Argument(
        None, help="Training set name (optional when only one is defined).", autocompletion=names_of("training_sets")
    ),
    every: str = typer.Option("1w", "--every", help="Bucket length (a duration: 1d, 1w, 4w)."),
    table_file: Path = typer.Option(None, "--training-set", help="Read this backfill output instead of building the set."),
    reference: str = typer.Option(None, "--reference", help="Reference range START..END (ISO 8601); default: the first bucket."),
    feature: list[str] = typer.Option(None, "--feature", "-f", help="Only these features (repeatable).", autocompletion=names_of("features")),
    threshold: float = typer.Option(None, "--threshold", help="PSI over which a bucket drifts (default: the project's psi_fail)."),
    fmt: str = typer.Option("table", "--format", help="table, json, markdown or html."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the report here (default: stdout)."),
    start: str = typer.Option(None, "--start", help="Build only spine rows at or after this instant."),
    end: str = typer.Option(None, "--end", help="Build only spine rows before this instant."),
) -> None:
    import dataclasses

    from fpipe.commands._common import load_project
    from fpipe.commands.backfill import _parse_when, pick_training_set
    from fpipe.errors import ExitCode, UsageError
    from fpipe.skew.drift import compute_drift
    from fpipe.spec.durations import parse_duration

    opts = options(ctx)
    if fmt not in ("table", "json", "markdown", "html"):
        raise UsageError(f"--format: unknown format '{fmt}'", hint="table, json, markdown or html")
    try:
        step = parse_duration(every)
    except Exception as exc:
        raise UsageError(f"--every: {exc}", hint="e.g. 1d, 1w, 4w") from None
    if step.total_seconds() <= 0:
        raise UsageError("--every must be positive", hint="e.g. 1w")
    ref = None
    if reference is not None:
        if ".." not in reference:
            raise UsageError("--reference: expected START..END", hint="e.g. 2024-01-01..2024-02-01")
        a, b = reference.split("..", 1)
        ref = (_parse_when(a, "--reference"), _parse_when(b, "--reference"))
    project = load_project(opts)
    name = pick_training_set(list(project.defs.training_sets), training_set)
    time_col = project.spine_time_column(name)
    if table_file is not None:
        from fpipe.io.sources import read_frame

        frame = read_frame(str(table_file), None, what="training set")
        if time_col not in frame.columns:
            raise UsageError(f"--training-set: no column '{time_col}' (the spine time of '{name}')", hint="pass a backfill output of this training set")
    else:
        frame = project.build_training_set(name, start=_parse_when(start, "--start"), end=_parse_when(end, "--end")).frame
    features = list(feature) if feature else [f for f in project.defs.training_sets[name].features if f in frame.columns]
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise UsageError(f"feature '{missing[0]}' is not in the training set")
    th = project.defs.skew.defaults
    if threshold is not None:
        th = dataclasses.replace(th, psi_fail=threshold, psi_warn=min(th.psi_warn, threshold))
    report = compute_drift(frame, time_col, features, step, reference=ref, thresholds=th, training_set=name)  # type: ignore[arg-type]
    from fpipe.render import drift as R

    if fmt == "table" and out is None:
        if not opts.quiet:
            R.render_table(report, no_color=opts.no_color)
    else:
        text = {"json": R.render_json, "markdown": R.render_markdown, "html": R.render_html}.get(fmt, R.render_markdown)(report)
        if out is not None:
            from fpipe.io.writers import write_text

            write_text(text, out)
        else:
            typer.echo(text, nl=False)
    if report.failed:
        raise typer.Exit(int(ExitCode.CHECKS_FAILED))


def register(app: typer.Typer) -> None:
    app.command("drift", help=HELP)(drift)
