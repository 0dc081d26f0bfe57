"""`fpipe skew-report`: compare what serving served with what fpipe computes at the same instants."""

from __future__ import annotations

from pathlib import Path

import typer

from fpipe.app import options
from fpipe.errors import Diagnostic, UsageError

FORMATS = ("table", "json", "markdown", "html", "junit")

HELP = """Recompute the served features at the logged request times and compare them row by row and by
distribution; diagnose the likely cause of each mismatch. Exit 0 pass, 1 skew, 2 bad input.

Examples:

  fpipe skew-report fraud_v1

  fpipe skew-report fraud_v1 --served logs/served.parquet --format markdown --out skew.md

  fpipe skew-report --served served.csv --format junit --out skew.xml --fail-on warn
"""

_THRESHOLD_FLAGS = {
    "coverage_warn": "--coverage-warn",
    "coverage_fail": "--coverage-fail",
    "mismatch_warn": "--mismatch-warn",
    "mismatch_fail": "--mismatch-fail",
    "psi_warn": "--psi-warn",
    "psi_fail": "--psi-fail",
    "category_warn": "--category-warn",
    "category_fail": "--category-fail",
    "null_rate_warn": "--null-rate-warn",
    "null_rate_fail": "--null-rate-fail",
    "atol": "--atol",
    "rtol": "--rtol",
}


def register(app: typer.Typer) -> None:
    @app.command("skew-report", help=HELP)
    def skew_report(
        ctx: typer.Context,
        training_set: str | None = typer.Argument(None, metavar="SET", help="Training set whose serving log to check."),
        served: str | None = typer.Option(None, "--served", help="Serving log (parquet, csv, ndjson; a path or an object-store URL); default: the one declared under serving_logs:."),
        fmt: str = typer.Option("table", "--format", "-f", help="table | json | markdown | html | junit."),
        json_out: bool = typer.Option(False, "--json", help="Same as --format json."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Write the report here (atomically) instead of stdout."),
        samples_out: Path | None = typer.Option(None, "--samples-out", help="Write the mismatched rows here (parquet)."),
        fail_on: str = typer.Option("fail", "--fail-on", help="fail | warn: which status exits 1."),
        time_col: str | None = typer.Option(None, "--time-col", help="Request time column (default: serving_logs time:, else served_at)."),
        row_id: str | None = typer.Option(None, "--row-id", help="Row id column."),
        ignore: list[str] = typer.Option([], "--ignore-column", help="A served column that is not a feature (repeatable)."),
        only: list[str] = typer.Option([], "--feature", help="Compare only this feature (repeatable)."),
        no_diagnose: bool = typer.Option(False, "--no-diagnose", help="Skip cause diagnosis."),
        diagnosis_rows: int = typer.Option(20_000, "--diagnosis-rows", help="Rows sampled to test explanations."),
        coverage_warn: float | None = typer.Option(None, "--coverage-warn", help="Warn below this join coverage (0.99)."),
        coverage_fail: float | None = typer.Option(None, "--coverage-fail", help="Fail below this join coverage (0.95)."),
        mismatch_warn: float | None = typer.Option(None, "--mismatch-warn", help="Warn above this mismatch rate (0.001)."),
        mismatch_fail: float | None = typer.Option(None, "--mismatch-fail", help="Fail above this mismatch rate (0.01)."),
        psi_warn: float | None = typer.Option(None, "--psi-warn", help="Warn at this PSI (0.1)."),
        psi_fail: float | None = typer.Option(None, "--psi-fail", help="Fail at this PSI (0.25)."),
        category_warn: float | None = typer.Option(None, "--category-warn", help="Warn at this category share change (0.05)."),
        category_fail: float | None = typer.Option(None, "--category-fail", help="Fail at this category share change (0.10)."),
        null_rate_warn: float | None = typer.Option(None, "--null-rate-warn", help="Warn at this null-rate change (0.01)."),
        null_rate_fail: float | None = typer.Option(None, "--null-rate-fail", help="Fail at this null-rate change (0.05)."),
        atol: float | None = typer.Option(None, "--atol", help="Absolute tolerance (1e-9)."),
        rtol: float | None = typer.Option(None, "--rtol", help="Relative tolerance (1e-6)."),
    ) -> None:
        g = options(ctx)
        fmt = "json" if json_out else fmt.lower()
        if fmt not in FORMATS:
            raise UsageError(Diagnostic(f"unknown format '{fmt}' for --format", hint="allowed: " + ", ".join(FORMATS)))
        if fail_on not in ("fail", "warn"):
            raise UsageError(Diagnostic(f"unknown value '{fail_on}' for --fail-on", hint="allowed: fail, warn"))
        given = {
            "coverage_warn": coverage_warn, "coverage_fail": coverage_fail, "mismatch_warn": mismatch_warn,
            "mismatch_fail": mismatch_fail, "psi_warn": psi_warn, "psi_fail": psi_fail,
            "category_warn": category_warn, "category_fail": category_fail, "null_rate_warn": null_rate_warn,
            "null_rate_fail": null_rate_fail, "atol": atol, "rtol": rtol,
        }
        cli = {k: v for k, v in given.items() if v is not None}
        for k, v in cli.items():
            if v < 0:
                raise UsageError(Diagnostic(f"{_THRESHOLD_FLAGS[k]} must not be negative, got {v}"))

        from fpipe.project import Project
        from fpipe.skew.run import SkewOptions, run_skew_report

        project = Project.load(g.defs)
        opts = SkewOptions(
            set_name=training_set, served=served, time_col=time_col, row_id=row_id,
            ignore=tuple(ignore), only=tuple(only), thresholds=cli, fail_on=fail_on, diagnose=not no_diagnose,
            diagnosis_rows=diagnosis_rows,
        )
        report, joined, _ = run_skew_report(project, opts)

        if samples_out is not None:
            from fpipe.io.writers import write_frame
            from fpipe.skew.compare import mismatched_rows

            write_frame(mismatched_rows(joined), samples_out)
        _emit(report, fmt, out, color=not g.no_color, quiet=g.quiet)
        if report.exit_code:
            raise typer.Exit(report.exit_code)


def _emit(report: object, fmt: str, out: Path | None, *, color: bool, quiet: bool) -> None:
    import sys

    from fpipe.skew.report import SkewReport

    assert isinstance(report, SkewReport)
    if fmt == "table" and out is None:
        from rich.console import Console

        from fpipe.render.skew_table import skew_renderable

        Console(no_color=not color, highlight=False, soft_wrap=False).print(skew_renderable(report))
        return
    if fmt == "table":
        from fpipe.render.skew_table import render_table

        text = render_table(report)
    elif fmt == "json":
        from fpipe.render.skew_json import render_json

        text = render_json(report)
    elif fmt == "markdown":
        from fpipe.render.skew_markdown import render_markdown

        text = render_markdown(report)
    elif fmt == "junit":
        from fpipe.render.skew_junit import render_junit

        text = render_junit(report)
    else:
        from fpipe.render.skew_html import render_html

        text = render_html(report)
    if out is None:
        sys.stdout.write(text)
        return
    from fpipe.io.writers import write_text
    from fpipe.render.skew_common import headline

    write_text(text, out)
    if not quiet:
        sys.stderr.write(f"{headline(report)}\nwrote {out}\n")
