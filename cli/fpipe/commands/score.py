"""`fpipe score MODEL --input F --out F`: batch predictions under the model's feature contract."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from fpipe.app import options


def register(app: typer.Typer) -> None:
    app.command("score")(score)


def score(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Model name in the registry."),
    input: str = typer.Option(
        ..., "--input", "-i", help="Feature table (parquet, csv or ndjson): a path or an object-store URL (s3://, gs://, az://, https://)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Predictions file (parquet, csv or ndjson), written atomically."),
    version: str | None = typer.Option(None, "--version", help="Version to use (default: the promoted one)."),
    models_dir: Path = typer.Option(Path("models"), "--models-dir", help="Registry root."),
    allow_unseen_categories: bool = typer.Option(
        False, "--allow-unseen-categories", help="Score columns made mostly of unseen categories (as missing)."
    ),
    ignore_definitions: bool = typer.Option(
        False, "--ignore-definitions", help="Score a table built from other feature definitions than the model's."
    ),
    manifest: Path = typer.Option(
        None, "--manifest", help="The table's backfill manifest (default: <input>.manifest.json beside a local file)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Predict for every row of --input, keeping its spine keys and time.

    Examples:

      fpipe score flights_delay_xgb --input out/flights_delay_v1.parquet --out out/predictions.parquet

      fpipe score flights_delay_xgb --version v2 --input features.csv --out predictions.csv

      fpipe score flights_delay_xgb --input s3://bucket/features.parquet --manifest features.parquet.manifest.json --out p.parquet

    Refuses (exit 2) a table whose feature columns are missing, renamed, retyped, or whose categories
    do not match what the model was trained on.
    """
    from fpipe.errors import DataError, Diagnostic
    from fpipe.io.urls import is_url, shown_url
    from fpipe.io.writers import write_table
    from fpipe.train.pipeline import load_manifest, read_manifest, read_table
    from fpipe.train.registry import load_model
    from fpipe.train.score import check_definitions, score_frame

    opts = options(ctx)
    loaded = load_model(models_dir, model, version)
    frame = read_table(input)
    where = shown_url(input) if is_url(input) else input
    unchecked: list[str] = []
    if not ignore_definitions:
        if manifest is not None:
            if not manifest.is_file():
                what = "a folder, not a manifest file" if manifest.is_dir() else "no such file"
                raise DataError(Diagnostic(what, file=str(manifest), hint="the backfill writes it beside its output: <out>.manifest.json"))
            found = load_manifest(manifest)
            if found is None:
                raise DataError(Diagnostic("not a backfill manifest (a JSON object)", file=str(manifest)))
            check_definitions(loaded, found, where)
        elif is_url(input):  # nothing beside a URL can be looked for: say the definitions went unchecked
            unchecked.append(
                f"{where}: the feature definitions were not compared with the model's (no manifest is read beside a URL); "
                "pass --manifest FILE, or --ignore-definitions to silence this"
            )
        else:
            check_definitions(loaded, read_manifest(input), where)
    preds, warnings = score_frame(loaded, frame, where, allow_unseen_categories)
    warnings = unchecked + warnings
    write_table(preds, out)
    for w in warnings:
        sys.stderr.write(f"warning: {w}\n")
    if as_json:
        typer.echo(json.dumps({"model": model, "version": loaded.version, "rows": preds.height, "out": str(out), "warnings": warnings}))
    elif not opts.quiet:
        typer.echo(f"scored {preds.height} rows with {model} {loaded.version} -> {out}")
