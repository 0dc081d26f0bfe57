"""Cause diagnosis for features whose served values mismatch: test explanations, keep the best.

Each explanation either transforms one side of the comparison (no engine needed) or recomputes the
offline values under an override through a `recompute` callable, then measures the match rate again:

| cause            | test                                                                                 |
|------------------|--------------------------------------------------------------------------------------|
| cutoff_boundary  | recompute with the other cutoff (inclusive <-> exclusive)                            |
| ingestion_lag    | recompute with an extra lag on one source, swept over candidate lags, then refined   |
| time_shift       | recompute at t + k hours, k = +-1..+-12 (time zone bugs)                             |
| null_filling     | served constant c where offline is null (nulls served as 0), or served null          |
| scale            | offline x c, c the median served/offline ratio snapped to a unit factor (x100, /1000) |
| offset           | offline + d, d the median served - offline difference                                |
| stale_value      | served equals the offline value at one of the previous requests for the same key,    |
|                  | or the value recomputed at t - age, or at t truncated to a refresh period            |

An explanation is accepted when it removes at least half of the mismatches; among explanations within
0.1 percentage point of the best match rate the first in the table wins (mechanisms before symptoms: a
cutoff bug on a count looks like an offset of +1, an ingestion lag looks like a stale value).

`recompute(spine, features, overrides)` returns one column per feature for the rows of `spine` (its key
and time columns), in order. With many rows the explanations are tested on a seeded sample stratified
by mismatch, weighted back to the whole log (Horvitz-Thompson).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl

from fpipe.skew.compare import Joined, is_missing, match_col, match_expr, offline_col, served_col
from fpipe.skew.report import FAIL, WARN, Candidate, Diagnosis, SkewReport
from fpipe.spec.durations import format_duration


@dataclass(frozen=True)
class Overrides:
    """What to change when recomputing offline values."""

    source_lags: Mapping[str, timedelta] = field(default_factory=dict)  # extra availability delay per source,
    # on top of its available_time (or its declared lag)
    cutoff: str | None = None  # 'inclusive' | 'exclusive' for every feature
    time_shift: timedelta = timedelta(0)  # recompute at t + time_shift
    time_floor: timedelta | None = None  # recompute at t truncated to this period (a periodic refresh)


Recompute = Callable[[pl.DataFrame, list[str], Overrides], pl.DataFrame]


@dataclass(frozen=True)
class FeatureOrigin:
    sources: tuple[str, ...] = ()  # sources the feature reads (a derived feature: its dependencies')
    cutoff: str = "exclusive"  # its effective cutoff
    agg: str | None = None  # its aggregation (None: derived)
    keys: tuple[str, ...] = ()  # key columns of its entity in the log (default: every key column)


PRIORITY = ("cutoff_boundary", "ingestion_lag", "time_shift", "null_filling", "scale", "offset", "stale_value")
CAUSE_TITLES = {
    "cutoff_boundary": "cutoff boundary",
    "ingestion_lag": "ingestion lag",
    "time_shift": "time shift",
    "null_filling": "default/null filling",
    "scale": "constant scale (unit bug)",
    "offset": "constant offset",
    "stale_value": "stale value (cache or TTL)",
}
# explanations that can mimic a mechanism (a lagged count is off by one; a lagged value looks stale)
SYMPTOMS = ("offset", "stale_value")
LAG_GRID = [
    timedelta(seconds=s) for s in (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400)
]
HOUR_SHIFTS = [h * s for h in range(1, 13) for s in (1, -1)]
STALE_AGES = [timedelta(minutes=m) for m in (1, 5, 10, 15, 30)]  # values as of t - age
REFRESH_PERIODS = [timedelta(minutes=m) for m in (1, 5, 15, 60, 1440)]  # values as of floor(t, period)
STALE_DEPTH = 8
UNIT_FACTORS: dict[float, str] = {
    100.0: "cents vs dollars?",
    0.01: "dollars vs cents?",
    1000.0: "milli-units, e.g. ms vs s?",
    0.001: "thousands, e.g. s vs ms?",
    1e6: "micro-units?",
    1e-6: "millions?",
    10.0: "x10",
    0.1: "/10",
    60.0: "minutes vs seconds?",
    1 / 60: "seconds vs minutes?",
    3600.0: "hours vs seconds?",
    1 / 3600: "seconds vs hours?",
    86400.0: "days vs seconds?",
    1 / 86400: "seconds vs days?",
    24.0: "days vs hours?",
    1 / 24: "hours vs days?",
    -1.0: "sign flipped",
    1.609344: "miles vs km?",
    1 / 1.609344: "km vs miles?",
    2.54: "inches vs cm?",
    1 / 2.54: "cm vs inches?",
    0.3048: "feet vs m?",
    1 / 0.3048: "m vs feet?",
    0.45359237: "pounds vs kg?",
    1 / 0.45359237: "kg vs pounds?",
}
FULL = 0.999  # an explanation this good (share of mismatches removed) ends the search early
ACCEPT = 0.5
TIE = 0.001


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _factor_text(c: float) -> str:
    if abs(c) >= 1 or abs(1 / c - round(1 / c)) > 1e-9:
        return f"x {c:.6g}"
    return f"/ {1 / c:g}"


def snap_factor(ratio: float) -> float:
    """A known unit factor within 0.5% of the ratio, else the ratio itself."""
    for f in UNIT_FACTORS:
        if abs(ratio / f - 1) < 0.005:
            return f
    return ratio


@dataclass
class _Sample:
    frame: pl.DataFrame  # covered rows (sampled), with `_w`
    weight_total: float
    sampled: bool

    def rate(self, match: pl.Expr | pl.Series) -> float:
        m = match if isinstance(match, pl.Series) else self.frame.select(match).to_series()
        w = self.frame.get_column("_w")
        return float((w * m.cast(pl.Float64).fill_null(0.0)).sum()) / self.weight_total if self.weight_total else 0.0


def _add_stale_columns(
    frame: pl.DataFrame, j: Joined, features: Sequence[str], origins: Mapping[str, FeatureOrigin]
) -> pl.DataFrame:
    """Per feature, the offline value and time of the k-th previous request of the same entity
    (`_prev{k}_{f}`, `_prevt{k}_{f}`), by one sort per key set and plain shifts (no window functions)."""
    by_keys: dict[tuple[str, ...], list[str]] = {}
    for f in features:
        keys = tuple(origins.get(f, FeatureOrigin()).keys or j.keys)
        if keys:
            by_keys.setdefault(keys, []).append(f)
    if not by_keys:
        return frame
    frame = frame.with_row_index("_orig")
    for keys, feats in by_keys.items():
        frame = frame.sort([*keys, j.time_col, "_orig"])
        exprs: list[pl.Expr] = []
        for k in range(1, STALE_DEPTH + 1):
            same = pl.all_horizontal([pl.col(c).shift(k) == pl.col(c) for c in keys]).fill_null(False)
            for f in feats:
                exprs += [
                    pl.when(same).then(pl.col(offline_col(f)).shift(k)).alias(f"_prev{k}_{f}"),
                    pl.when(same).then(pl.col(j.time_col).shift(k)).alias(f"_prevt{k}_{f}"),
                ]
        frame = frame.with_columns(exprs)
    return frame.sort("_orig").drop("_orig")


def _draw_sample(
    j: Joined, features: Sequence[str], max_rows: int, seed: int, origins: Mapping[str, FeatureOrigin]
) -> _Sample:
    cov = j.covered
    keep = [c for c in cov.columns if not c.startswith(("_s_", "_o_", "_m_"))]
    keep += [c for f in features for c in (served_col(f), offline_col(f), match_col(f))]
    cov = _add_stale_columns(cov.select(keep), j, features, origins)
    n = cov.height
    if n <= max_rows:
        return _Sample(cov.with_columns(pl.lit(1.0).alias("_w")), float(n), False)
    bad_mask = pl.any_horizontal([~pl.col(match_col(f)) for f in features])
    bad = cov.filter(bad_mask)
    good = cov.filter(~bad_mask)
    n_bad = min(bad.height, max_rows // 2)
    n_good = min(good.height, max_rows - n_bad)
    parts = []
    for part, k in ((bad, n_bad), (good, n_good)):
        if k == 0:
            continue
        s = part.sample(n=k, seed=seed, shuffle=False).with_columns(pl.lit(part.height / k).alias("_w"))
        parts.append(s)
    frame = pl.concat(parts).sort(j.time_col, maintain_order=True)
    return _Sample(frame, float(n), True)


def _match(j: Joined, f: str, s: pl.Expr, o: pl.Expr) -> pl.Expr:
    th = j.thresholds[f]
    return match_expr(s, o, j.kinds[f], th.atol, max(th.rtol, 1e-6))


def _transform_candidates(j: Joined, f: str, smp: _Sample, before: float, origin: FeatureOrigin) -> list[Candidate]:
    fr = smp.frame
    kind = j.kinds[f]
    s, o, m = pl.col(served_col(f)), pl.col(offline_col(f)), pl.col(match_col(f))
    out: list[Candidate] = []

    def add(cause: str, desc: str, match: pl.Expr, params: dict[str, Any]) -> None:
        out.append(_cand(cause, desc, smp.rate(match), before, params))

    bad = fr.filter(~m)
    if bad.height == 0:
        return out
    if kind == "numeric":
        fin = bad.filter(s.is_finite() & o.is_finite() & (o != 0) & (s != 0))
        if fin.height:
            ratio = float(fin.select((s / o).median()).item())
            if math.isfinite(ratio) and ratio != 0 and abs(ratio - 1) > 1e-9:
                c = snap_factor(ratio)
                hint = UNIT_FACTORS.get(c)
                add("scale", f"offline values {_factor_text(c)}" + (f" ({hint})" if hint else ""),
                    m | _match(j, f, s, o * c), {"factor": c})
        fin = bad.filter(s.is_finite() & o.is_finite())
        if fin.height:
            d = float(fin.select((s - o).median()).item())
            if math.isfinite(d) and d != 0:
                add("offset", f"offline values {'+' if d > 0 else '-'} {abs(d):g}", m | _match(j, f, s, o + d),
                    {"offset": d})
                if d == 1 and origin.agg in ("count", "count_distinct"):
                    # a count one too high: the scored event itself is counted, an inclusive boundary
                    rate = out[-1].match_rate
                    out.append(Candidate("cutoff_boundary", "an inclusive boundary that counts the scored event "
                                         "itself (served = offline + 1)", rate, out[-1].explained,
                                         {"cutoff": "inclusive", "counts_scored_event": True}))
    o_missing, s_missing = is_missing(o, kind), is_missing(s, kind)
    filled = bad.filter(o_missing & ~s_missing)
    if filled.height:
        c_val = filled.get_column(served_col(f)).mode().sort()[0]
        add("null_filling", f"nulls served as {c_val!r}", m | (o_missing & (s == c_val)), {"served_for_null": c_val})
    dropped = bad.filter(s_missing & ~o_missing)
    if dropped.height:
        vals = dropped.get_column(offline_col(f))
        mode = vals.mode().sort()[0]
        share = float((vals == mode).mean() or 0.0)
        if share >= 0.9:
            desc = f"served null where offline has the default {mode!r}"
            add("null_filling", desc, m | (s_missing & (o == mode)), {"offline_for_null": mode})
        else:
            add("null_filling", "served null where offline has a value (failed lookups?)", m | (s_missing & ~o_missing),
                {"offline_for_null": None})
    if f"_prev1_{f}" in fr.columns:
        hits = [_match(j, f, s, pl.col(f"_prev{k}_{f}")) & pl.col(f"_prevt{k}_{f}").is_not_null()
                for k in range(1, STALE_DEPTH + 1)]
        stale = ~m & pl.any_horizontal(hits)
        age = pl.coalesce(
            [pl.when(h).then(pl.col(j.time_col) - pl.col(f"_prevt{k}_{f}")) for k, h in enumerate(hits, 1)]
        )
        ages = fr.filter(stale).select(age.alias("_age")).to_series()
        if ages.len():
            med = ages.dt.total_microseconds().median()
            med_td = timedelta(microseconds=int(med)) if med is not None else timedelta(0)  # type: ignore[arg-type]
            key_word = "+".join(origin.keys or j.keys)
            add("stale_value",
                f"served values equal the offline value of an earlier request of the same {key_word} "
                f"(median {format_duration(timedelta(seconds=round(med_td.total_seconds())))} older)",
                m | stale, {"median_age_seconds": med_td.total_seconds()})
    return out


def _recompute_rates(
    j: Joined, smp: _Sample, recompute: Recompute, features: list[str], ov: Overrides
) -> dict[str, float]:
    spine_cols = list(dict.fromkeys([*j.keys, j.time_col]))
    spine = smp.frame.select(spine_cols)
    new = recompute(spine, features, ov)
    rates = {}
    for f in features:
        if f not in new.columns or new.height != smp.frame.height:
            continue
        col = new.get_column(f)
        kind = j.kinds[f]
        if kind == "numeric":
            col = col.to_physical().cast(pl.Float64) if col.dtype.is_temporal() else col.cast(pl.Float64)
        elif kind == "categorical":
            col = col.cast(pl.String)
        fr = smp.frame.select(pl.col(served_col(f))).with_columns(col.alias("_new"))
        mm = fr.select(_match(j, f, pl.col(served_col(f)), pl.col("_new"))).to_series()
        rates[f] = smp.rate(mm)
    return rates


def _cand(cause: str, desc: str, rate: float, before: float, params: dict[str, Any]) -> Candidate:
    explained = (rate - before) / (1 - before) if before < 1 else 0.0
    return Candidate(cause, desc, rate, explained, params)


def _choose(cands: list[Candidate]) -> Candidate | None:
    if not cands:
        return None
    best_rate = max(c.match_rate for c in cands)
    near = [c for c in cands if c.match_rate >= best_rate - TIE]
    return min(near, key=lambda c: (PRIORITY.index(c.cause), -c.match_rate))


def _full(cands: list[Candidate], exclude: tuple[str, ...] = ()) -> bool:
    return any(c.explained >= FULL for c in cands if c.cause not in exclude)


def diagnose(
    j: Joined,
    report: SkewReport,
    recompute: Recompute | None = None,
    origins: Mapping[str, FeatureOrigin] | None = None,
    *,
    max_rows: int = 20_000,
    seed: int = 0,
    lag_grid: Sequence[timedelta] = LAG_GRID,
    hour_shifts: Sequence[int] = HOUR_SHIFTS,
    stale_ages: Sequence[timedelta] = STALE_AGES,
    refresh_periods: Sequence[timedelta] = REFRESH_PERIODS,
) -> None:
    """Set `diagnosis` on every feature whose mismatch-rate check warns or fails."""
    origins = origins or {}
    targets = []
    for fs in report.features:
        chk = fs.check("mismatch_rate")
        if chk is not None and chk.status in (FAIL, WARN) and fs.row.mismatches:
            targets.append(fs.name)
    if not targets:
        return
    smp = _draw_sample(j, targets, max_rows, seed, origins)
    before = {f: smp.rate(pl.col(match_col(f))) for f in targets}
    cands = {f: _transform_candidates(j, f, smp, before[f], origins.get(f, FeatureOrigin())) for f in targets}

    if recompute is not None:
        # cutoff boundary: one recompute per cutoff value
        by_cutoff: dict[str, list[str]] = {}
        for f in targets:
            cur = origins.get(f, FeatureOrigin()).cutoff
            by_cutoff.setdefault("inclusive" if cur == "exclusive" else "exclusive", []).append(f)
        for other, feats in by_cutoff.items():
            rates = _recompute_rates(j, smp, recompute, feats, Overrides(cutoff=other))
            for f, r in rates.items():
                cands[f].append(_cand("cutoff_boundary", f"an {other} cutoff", r, before[f], {"cutoff": other}))
        # ingestion lag: per source, over the features that read it
        by_source: dict[str, list[str]] = {}
        for f in targets:
            for src in origins.get(f, FeatureOrigin()).sources:
                by_source.setdefault(src, []).append(f)
        for src, feats in sorted(by_source.items()):
            feats = [f for f in feats if not _full(cands[f], exclude=SYMPTOMS)]
            if feats:
                _sweep_lag(j, smp, recompute, src, feats, before, cands, lag_grid)
        # stale values that no earlier request explains: a fixed age, or a periodic refresh
        rest = [f for f in targets if not _full(cands[f], exclude=SYMPTOMS)]
        for ov, desc, params in [
            *[(Overrides(time_shift=-age), f"values as of {format_duration(age)} before the request",
               {"age_seconds": age.total_seconds()}) for age in stale_ages],
            *[(Overrides(time_floor=per), f"values refreshed every {format_duration(per)}",
               {"refresh_seconds": per.total_seconds()}) for per in refresh_periods],
        ]:
            if not rest:
                break
            rates = _recompute_rates(j, smp, recompute, rest, ov)
            for f, r in rates.items():
                cands[f].append(_cand("stale_value", desc, r, before[f], params))
            rest = [f for f in rest if not _full(cands[f])]
        # whole-hour time shifts, only when nothing explains it yet
        rest = [f for f in targets if not _full(cands[f])]
        for h in hour_shifts:
            if not rest:
                break
            shift = timedelta(hours=h)
            rates = _recompute_rates(j, smp, recompute, rest, Overrides(time_shift=shift))
            for f, r in rates.items():
                sign = "+" if h > 0 else "-"
                cands[f].append(_cand("time_shift", f"request times shifted by {sign}{abs(h)}h", r, before[f],
                                      {"hours": h}))
            rest = [f for f in rest if not _full(cands[f])]

    for f in targets:
        fs = report.feature(f)
        exact_before = fs.row.match_rate
        ordered = sorted(cands[f], key=lambda c: (-c.match_rate, PRIORITY.index(c.cause)))
        for c in ordered:  # the share of mismatches removed, applied to the exact before-rate of the whole log
            c.match_rate = min(1.0, max(0.0, exact_before + c.explained * (1.0 - exact_before)))
        best = _choose(ordered)
        if best is not None and best.explained >= ACCEPT and best.match_rate > exact_before:
            title = CAUSE_TITLES[best.cause]
            evidence = f"with {best.description} the match rate rises from {_pct(exact_before)} to {_pct(best.match_rate)}"
            if best.cause == "stale_value":
                evidence = (f"counting a served value equal to an earlier request's offline value as a match, "
                            f"the match rate rises from {_pct(exact_before)} to {_pct(best.match_rate)}")
            fs.diagnosis = Diagnosis(best.cause, f"{title}: {best.description}", evidence, exact_before,
                                     best.match_rate, best.parameters, ordered, smp.frame.height, smp.sampled)
        else:
            partial = f"; the best candidate ({best.description}) reaches {_pct(best.match_rate)}" if best else ""
            fs.diagnosis = Diagnosis(None, "no single explanation found",
                                     f"no tested explanation removes half of the mismatches{partial}",
                                     exact_before, None, {}, ordered, smp.frame.height, smp.sampled)


def _sweep_lag(
    j: Joined,
    smp: _Sample,
    recompute: Recompute,
    src: str,
    feats: list[str],
    before: Mapping[str, float],
    cands: dict[str, list[Candidate]],
    grid: Sequence[timedelta],
) -> None:
    tried: dict[timedelta, dict[str, float]] = {}

    def run(lag: timedelta) -> None:
        if lag in tried or lag <= timedelta(0):
            return
        tried[lag] = _recompute_rates(j, smp, recompute, feats, Overrides(source_lags={src: lag}))

    for lag in grid:
        run(lag)
        if all(tried[lag].get(f, 0.0) >= 1 - 1e-12 for f in feats):
            break
    # refine between the neighbours of each feature's best grid lag
    for f in feats:
        lags = sorted(tried)
        best = max(lags, key=lambda lg: (tried[lg].get(f, 0.0), -lg.total_seconds()))
        i = lags.index(best)
        lo = lags[i - 1] if i > 0 else best / 2
        hi = lags[i + 1] if i + 1 < len(lags) else best * 2
        for frac in (0.2, 0.35, 0.5, 0.65, 0.8):
            for a, b in ((lo, best), (best, hi)):
                step = timedelta(seconds=max(1, round((a + (b - a) * frac).total_seconds())))
                if tried.get(best, {}).get(f, 0.0) < 1 - 1e-12:
                    run(step)
    for f in feats:
        rates = [(lag, r[f]) for lag, r in tried.items() if f in r]
        if not rates:
            continue
        best_rate = max(r for _, r in rates)
        lag = min(lg for lg, r in rates if r >= best_rate - 1e-12)
        cands[f].append(_cand("ingestion_lag", f"an extra {format_duration(lag)} lag on source {src}", best_rate, before[f],
                              {"source": src, "lag_seconds": lag.total_seconds(),
                               "sweep": {format_duration(lg): r.get(f) for lg, r in sorted(tried.items())}}))


def sample_weights_note(d: Diagnosis) -> str:
    return f"tested on a stratified sample of {d.rows_used:,} rows" if d.sampled else f"tested on {d.rows_used:,} rows"
