"""`fpipe backfill [SET]`: build a point-in-time-correct training set."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from fpipe.app import options
from fpipe.distributed.scale import RunScale, human_bytes, parse_size, peak_rss_bytes
from fpipe.io.urls import is_url, shown_url

HELP = """Build a leakage-free training set: exact as-of lookups, windows, labels.

Examples:

  fpipe backfill fraud_v1 --out out/fraud_v1.parquet

  fpipe backfill flights_delay_v1 --start 2013-06-01 --end 2013-07-01 --format csv --out out/june.csv

Writes the table atomically and a manifest beside it (<out>.manifest.json).
"""


def _parse_when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from datetime import UTC

    from fpipe.errors import UsageError

    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option}: cannot parse '{value}' as a date or time", hint="use ISO 8601, e.g. 2024-03-01 or 2024-03-01T12:00:00Z") from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def pick_training_set(names: list[str], given: str | None) -> str:
    from fpipe.errors import UsageError
    from fpipe.spec.suggest import did_you_mean, one_of

    if given is not None:
        if given not in names:
            raise UsageError(f"unknown training set '{given}'", hint=did_you_mean(given, names) or one_of(names))
        return given
    if len(names) == 1:
        return names[0]
    raise UsageError("which training set? several are defined", hint=one_of(names))


def backfill(
    ctx: typer.Context,
    training_set: str = typer.Argument(None, help="Training set name (optional when only one is defined)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output file (default: out/<SET>.<format>)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    spine: str = typer.Option(None, "--spine", help="Spine file (or object-store URL) overriding the training set's spine."),
    start: str = typer.Option(None, "--start", help="Keep spine rows at or after this instant (ISO 8601; naive = UTC)."),
    end: str = typer.Option(None, "--end", help="Keep spine rows before this instant."),
    censored_out: Path = typer.Option(None, "--censored-out", help="Write the spine rows dropped by censoring, with a reason."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    partitions: int | None = typer.Option(None, "--partitions", min=1, help="Hash-partition by entity key and build N partitions one by one (same output)."),
    memory_limit: str = typer.Option(None, "--memory-limit", help="Choose --partitions from the input size to stay under this, e.g. 4GB."),
    engine: str = typer.Option("local", "--engine", help="local, or dask (pip install 'fpipe[dask]')."),
    scheduler: str = typer.Option(None, "--scheduler", help="Dask scheduler address for --engine dask, e.g. tcp://HOST:8786."),
) -> None:
    from fpipe.commands._common import load_project
    from fpipe.errors import UsageError
    from fpipe.io.writers import write_frame, write_json
    from fpipe.render.backfill import render_summary, summary_dict
    from fpipe.render.checks import checks_dict, render_checks
    from fpipe.render.console import stage_progress

    opts = options(ctx)
    if fmt not in ("parquet", "csv"):
        raise UsageError(f"--format: unknown format '{fmt}'", hint="parquet or csv")
    project = load_project(opts)
    name = pick_training_set(list(project.defs.training_sets), training_set)
    out = out or Path("out") / f"{name}.{fmt}"
    t0, t1 = _parse_when(start, "--start"), _parse_when(end, "--end")
    scale, runner = _scale_options(project, name, spine, partitions, memory_limit, engine, scheduler)
    project.fingerprint_inputs_in_background(name)
    try:
        with stage_progress(not opts.quiet and not json_out, opts.no_color) as progress:
            result = project.build_training_set(
                name, spine_path=spine, start=t0, end=t1, progress=progress,
                partitions=scale.partitions, runner=runner,
            )
    finally:
        if runner is not None:
            runner.close()
    write_frame(result.frame, out, fmt)
    scale.peak_rss_bytes = peak_rss_bytes()
    manifest = project.manifest(name, result, str(out), ["fpipe", *(_shown_arg(a) for a in sys.argv[1:])])
    manifest["run"] = scale.as_dict()
    if censored_out is not None:
        write_frame(result.censored, censored_out, "csv" if str(censored_out).endswith(".csv") else "parquet")
        manifest["censored_output"] = str(censored_out)
    quarantine = write_quarantine(result, out)  # row checks (issue 7)
    manifest["checks"] = checks_dict(result.checks, quarantine)
    write_json(manifest, f"{out}.manifest.json")
    if json_out:
        import json

        summary = {**summary_dict(name, result, str(out)), "run": scale.as_dict(), "checks": checks_dict(result.checks, quarantine)}
        typer.echo(json.dumps(summary, indent=2))
    elif not opts.quiet:
        render_summary(name, result, str(out), scale, no_color=opts.no_color)
        render_checks(result.checks, quarantine, no_color=opts.no_color)
    if scale.over_limit:
        from fpipe.errors import Diagnostic

        warning = Diagnostic(
            f"peak memory {human_bytes(scale.peak_rss_bytes or 0)} went over --memory-limit {memory_limit} "
            f"with {scale.partitions or 1} partition(s); the output is complete",
            hint=f"pass --partitions {2 * (scale.partitions or 1)} (more partitions, less memory each)",
            severity="warning",
        )
        sys.stderr.write(warning.format() + "\n")


def _shown_arg(arg: str) -> str:
    """A command-line argument as the manifest records it: a URL (`URL` or `--opt=URL`) without its query."""
    option, eq, value = arg.partition("=")
    if eq and option.startswith("-") and is_url(value):
        return f"{option}={shown_url(value)}"
    return shown_url(arg) if is_url(arg) else arg


def write_quarantine(result: object, out: Path) -> str | None:
    """`<out>.quarantine.parquet`: every row set aside by `on_fail: quarantine`, with `_source`, `_pos`, `_reason`.

    Written (possibly empty) whenever a source quarantines, so a stale file never outlives a clean run."""
    from fpipe.io.writers import remove_output, write_frame

    checks = getattr(result, "checks", None)
    path = Path(f"{out}.quarantine.parquet")
    if checks is None or not any(r.on_fail == "quarantine" for r in checks.results.values()):
        remove_output(path)
        return None
    write_frame(checks.quarantine, path)
    return str(path)


def _scale_options(
    project: Any, name: str, spine: str | None, partitions: int | None, memory_limit: str | None, engine: str, scheduler: str | None
) -> tuple[RunScale, Any]:
    """--partitions / --memory-limit / --engine / --scheduler -> (how the build runs, Dask runner or None)."""
    from fpipe.errors import UsageError

    if engine not in ("local", "dask"):
        raise UsageError(f"--engine: unknown engine '{engine}'", hint="local or dask")
    if engine == "local" and scheduler:
        raise UsageError("--scheduler needs --engine dask")
    runner = None
    scale = RunScale(engine=engine, partitions=partitions, partitions_chosen_by="--partitions" if partitions else None)
    scale.memory_limit_bytes = parse_size(memory_limit) if memory_limit is not None else None  # before connecting to Dask
    if engine == "dask":
        if not scheduler:
            raise UsageError("--engine dask needs --scheduler", hint="e.g. --scheduler tcp://HOST:8786")
        from fpipe.distributed.dask_engine import make_runner

        runner, workers = make_runner(scheduler)
        if partitions is None:
            partitions = max(2, 2 * workers)
            scale.partitions, scale.partitions_chosen_by = partitions, f"2 x {workers} Dask worker(s)"
        scale.scheduler = scheduler
    if scale.memory_limit_bytes is not None and partitions is None:
        from fpipe.distributed.partitioned import input_bytes
        from fpipe.engine.partition import choose_partitions

        _, _, cols = project.training_set_inputs(name)
        spine_path = spine or project.defs.spines[project.defs.training_sets[name].spine].path
        scale.input_bytes = input_bytes(project.defs, cols, spine_path)
        scale.partitions = choose_partitions(scale.input_bytes, scale.memory_limit_bytes)
        scale.partitions_chosen_by = f"--memory-limit {memory_limit}"
    return scale, runner


def register(app: typer.Typer) -> None:
    app.command("backfill", help=HELP)(backfill)
