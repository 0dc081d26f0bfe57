"""The backfill summary: rows in/out, censored, per-feature null rate, time per stage."""

from __future__ import annotations

from typing import Any

from fpipe.distributed.scale import RunScale, human_bytes
from fpipe.engine.build import BuildResult
from fpipe.render.console import make_console


def summary_dict(name: str, result: BuildResult, out: str) -> dict[str, Any]:
    st = result.stats
    return {
        "training_set": name,
        "output": out,
        "rows_in": st.rows_in,
        "rows_out": st.rows_out,
        "rows_censored": st.rows_censored,
        "spine_rows_without_time_or_key": st.spine_rows_without_time_or_key,
        "null_rates": st.null_rates,
        "sources": {
            n: {"rows": s.rows, "never_visible": s.never_visible, "nan_read_as_null": s.nan_as_null} for n, s in st.sources.items()
        },
        "stage_seconds": {k: round(v, 3) for k, v in st.stage_seconds.items()},
    }


def scale_rows(scale: RunScale) -> list[tuple[str, str]]:
    """Summary rows on how the build ran: partitions (and why that many), and peak memory."""
    rows = []
    if scale.engine == "dask":
        rows.append(("engine", f"dask ({scale.scheduler})"))
    if scale.partitions is not None:
        why = f"; inputs {human_bytes(scale.input_bytes)} on disk" if scale.input_bytes is not None else ""
        rows.append(("partitions", f"{scale.partitions} ({scale.partitions_chosen_by}{why})"))
    if scale.peak_rss_bytes is not None:
        peak = human_bytes(scale.peak_rss_bytes)
        if scale.engine == "dask":
            peak += " (this process; the workers' memory is not included)"
        elif scale.memory_limit_bytes is not None:
            peak += f" ({'over' if scale.over_limit else 'under'} the {human_bytes(scale.memory_limit_bytes)} limit)"
        rows.append(("peak memory", peak))
    return rows


def render_summary(name: str, result: BuildResult, out: str, scale: RunScale | None = None, *, no_color: bool = False) -> None:
    console = make_console(no_color=no_color)
    st = result.stats
    from rich.table import Table  # only when a summary is drawn: `--quiet` and `--json` runs skip the import

    head = Table(title=f"backfill {name} -> {out}", show_header=False, box=None, pad_edge=False)
    head.add_column(justify="left")
    head.add_column(justify="right")
    head.add_row("spine rows", f"{st.rows_in:,}")
    head.add_row("rows written", f"{st.rows_out:,}")
    head.add_row("censored (dropped)", f"{st.rows_censored:,}")
    head.add_row("spine rows without time/key", f"{st.spine_rows_without_time_or_key:,}")
    for n, s in st.sources.items():
        extra = f", {sum(s.nan_as_null.values()):,} NaN read as null" if s.nan_as_null else ""
        head.add_row(f"source {n}", f"{s.rows:,} rows, {s.never_visible:,} never visible{extra}")
    head.add_row("time", ", ".join(f"{k} {v:.2f}s" for k, v in st.stage_seconds.items()))
    for label, value in scale_rows(scale) if scale is not None else []:
        head.add_row(label, value)
    console.print(head)
    feats = Table(title="features", show_lines=False)
    feats.add_column("feature")
    feats.add_column("dtype")
    feats.add_column("null rate", justify="right")
    for f in result.features:
        feats.add_row(f, str(result.frame.schema[f]), f"{st.null_rates.get(f, 0.0):.1%}")
    if result.label:
        feats.add_row(f"{result.label} (label)", str(result.frame.schema[result.label]), "")
    console.print(feats)
