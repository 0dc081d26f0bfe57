"""`fpipe train MODEL`: time-split, fit, compare with the baseline, export an immutable version."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from fpipe.app import options


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Model name (under `models:` in the definitions)."),
    training_set: Path | None = typer.Option(
        None, "--training-set", help="A backfill output (parquet + its .manifest.json) instead of building the set."
    ),
    models_dir: Path = typer.Option(Path("models"), "--models-dir", help="Registry root: models/<name>/<version>/."),
    folds: int = typer.Option(0, "--folds", min=0, help="Also run an N-fold rolling-origin backtest and report each fold."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    engine: str = typer.Option("local", "--engine", help="local, or dask: fit with xgboost.dask (pip install 'fpipe[dask]')."),
    scheduler: str = typer.Option(
        None, "--scheduler", help="Dask scheduler for --engine dask, e.g. tcp://HOST:8786 (default: a LocalCluster in this process)."
    ),
) -> None:
    """Train MODEL on its training set, split by time with a purge gap of at least the label horizon.

    Examples:

      fpipe train flights_delay_xgb

      fpipe train flights_delay_xgb --training-set out/flights_delay_v1.parquet --folds 4

      fpipe train flights_delay_xgb --engine dask --scheduler tcp://HOST:8786

    Writes models/MODEL/vN/ (model.ubj, metadata.json, model_card.md, SVG plots). Exit 1 when the
    model does not beat the trivial baseline on the test period or misses a gate (the version is
    still written, for inspection; it is never promoted automatically).
    """
    from fpipe.commands._common import load_project
    from fpipe.errors import ChecksFailed, Diagnostic, UsageError
    from fpipe.render.model_summary import format_train_summary
    from fpipe.train.pipeline import load_training_input, run_train
    from fpipe.train.registry import clean_json

    opts = options(ctx)
    if engine not in ("local", "dask"):
        raise UsageError(f"--engine: unknown engine '{engine}'", hint="local or dask")
    if engine == "local" and scheduler:
        raise UsageError("--scheduler needs --engine dask")
    inp = load_training_input(load_project(opts), model, training_set)
    for note in inp.notes:
        sys.stderr.write(f"note: {note}\n")
    if engine == "dask":
        from fpipe.distributed.dask_train import dask_fitter

        with dask_fitter(scheduler) as fitter:
            trained, version, path, meta = run_train(inp, models_dir, folds, fitter)
    else:
        trained, version, path, meta = run_train(inp, models_dir, folds)
    for w in trained.warnings:
        sys.stderr.write(f"warning: {w}\n")
    if as_json:
        typer.echo(
            json.dumps(
                clean_json(
                    {
                        "model": model,
                        "version": version,
                        "path": str(path),
                        "passed": not trained.failed,
                        "engine": meta["engine"],
                        "metrics": meta["metrics"],
                        "split": meta["split"],
                        "folds": meta["folds"],
                        "warnings": trained.warnings,
                        "model_sha256": meta["model_sha256"],
                    }
                ),
                indent=2,
            )
        )
    elif not opts.quiet:
        typer.echo(format_train_summary(meta, str(path)))
    if trained.failed:
        problems = []
        if not trained.beats_baseline:
            metric = meta["metrics"]["primary_metric"]
            problems.append(
                Diagnostic(
                    f"model '{model}' {version} does not beat the trivial baseline on the test period "
                    f"({metric} {trained.metrics[metric]:.4f} vs baseline {trained.baseline[metric]:.4f})",
                    hint=f"it was written to {path} for inspection and not promoted",
                )
            )
        for f in trained.gate_failures:
            problems.append(Diagnostic(f"model '{model}' {version} misses a gate: {f}", hint=f"see {path}/model_card.md"))
        raise ChecksFailed(problems)
