"""The Typer app: the one place where errors become exit codes (0 ok, 1 checks failed, 2 bad input).

Command modules (fpipe/commands/*.py) import nothing heavy at module level (no polars, xgboost, dask)
so that `fpipe --help` starts fast; each registers itself through `register(app)`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from fpipe import __version__
from fpipe.errors import Diagnostic, ExitCode, FpipeError

HELP = """fpipe: point-in-time-correct training data, train/serve skew reports and time-aware models.

Examples:

  fpipe validate                       check the definitions in feature_defs/

  fpipe backfill fraud_v1 --out out/fraud_v1.parquet

  fpipe skew-report fraud_v1 --served sample_data/serving_log.parquet
"""


@dataclass
class GlobalOptions:
    defs: Path
    quiet: bool
    debug: bool
    no_color: bool


app = typer.Typer(
    name="fpipe",
    help=HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"fpipe {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    defs: Path = typer.Option(
        Path("feature_defs"), "--defs", envvar="FPIPE_DEFS", help="Folder of YAML definitions (merged)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summaries."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    no_color: bool = typer.Option(False, "--no-color", envvar="NO_COLOR", help="No colour (NO_COLOR is honoured)."),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version."),
) -> None:
    ctx.obj = GlobalOptions(defs=defs, quiet=quiet, debug=debug, no_color=no_color or bool(os.environ.get("NO_COLOR")))


def options(ctx: typer.Context) -> GlobalOptions:
    """The global options, from any command (also when the command was invoked without the callback)."""
    obj = ctx.find_root().obj
    if isinstance(obj, GlobalOptions):
        return obj
    return GlobalOptions(defs=Path("feature_defs"), quiet=False, debug=False, no_color=bool(os.environ.get("NO_COLOR")))


def _register_commands() -> None:
    from fpipe.commands import ALL_COMMANDS

    for module in ALL_COMMANDS:
        module.register(app)


_register_commands()


def _print_error(diagnostics: list[Diagnostic]) -> None:
    for d in diagnostics:
        sys.stderr.write(d.format() + "\n")
    errors = sum(1 for d in diagnostics if d.severity == "error")
    if errors > 1:
        sys.stderr.write(f"{errors} errors\n")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app, turns user errors into one clear message and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except FpipeError as exc:
        if debug:
            raise
        _print_error(exc.diagnostics)
        sys.exit(int(exc.exit_code))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: no output was written\n")
        sys.exit(130)
    except Exception as exc:  # click usage errors and anything unexpected
        import click

        # Typer >= 0.2x vendors click (typer._click): match its exceptions by class name too
        if isinstance(exc, click.exceptions.ClickException) or any(c.__name__ == "ClickException" for c in type(exc).__mro__):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(int(ExitCode.BAD_INPUT))
        if debug:
            raise
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc}\n  hint: rerun with --debug for a traceback, and report it\n")
        sys.exit(70)
    sys.exit(0)


def run() -> None:
    """The `fpipe` command (and `python -m fpipe`): `main`, then an exit that skips the interpreter's teardown.

    Tearing down a process that held a few GB took about 0.17 s of a 4.8 s backfill (`bench_windows` at M:
    medians of 4 alternating runs each, 4.83 s with the teardown, 4.66 s without). Everything fpipe writes is written and
    renamed before `main` returns; stdout and stderr are flushed here. The plain exit is kept when flushing
    fails (a closed pipe gets Python's own handling), when Dask was loaded (its clusters and clients close
    at exit) or when another non-daemon thread still runs."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise
        code = exc.code or 0
    import threading

    if "distributed" in sys.modules or any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        sys.exit(code)
    os._exit(code)

