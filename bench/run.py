"""`make bench`: generate the data, run every tool in its own process, check agreement, report.

    python -m bench.run --sizes S,M [--parts all,lookups,windows] [--repeat 3] [--out docs/benchmarks.md]

Each tool runs as a child process; wall time is measured around it and CPU time and peak RSS come from
`os.wait4` (the child's own rusage: ru_utime + ru_stime, ru_maxrss). Every tool runs `--repeat` times,
the tools taking turns (so a slow minute on a shared machine falls on all of them), and the table reports
the median wall and CPU time, the range of the walls, and the largest peak RSS. Outputs are compared with
fpipe's before any number is reported; a disagreement is printed loudly and marked in the table, and the
exit status is 1.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from bench.compare import compare_frames, rows_differing
from bench.generate import DATA_ROOT, SIZES, generate

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("fpipe", "polars", "duckdb", "duckdb_frames", "pandas")
# duckdb_frames: the windows as RANGE-frame window functions, the way the goal was first measured; it cannot
# check arrival, so it is timed and its differing rows counted, but it is not an agreeing peer
INEXACT = {"duckdb_frames": "windows"}
PANDAS_SIZES = {"T", "S"}
SET_FOR_PART = {"all": "bench", "lookups": "bench_lookups", "windows": "bench_windows"}


@dataclass
class Measurement:
    size: str
    part: str
    tool: str
    wall: float
    cpu: float
    rss_mib: float
    returncode: int
    problems: list[str] = field(default_factory=list)
    note: str = ""
    walls: list[float] = field(default_factory=list)  # every run's wall time (`wall` is their median)

    @property
    def wall_range(self) -> str:
        return f"{min(self.walls):.2f}-{max(self.walls):.2f}" if len(self.walls) > 1 else ""


def fpipe_exe() -> str:
    exe = Path(sys.executable).parent / "fpipe"
    return str(exe) if exe.exists() else "fpipe"


def command(tool: str, data: Path, part: str, out: Path, extra: list[str]) -> list[str]:
    if tool == "fpipe":
        return [fpipe_exe(), "--defs", str(data / "defs"), "-q", "backfill", SET_FOR_PART[part], "--out", str(out), *extra]
    return [sys.executable, "-m", f"bench.tools.{tool}_peer", str(data), str(out), "--part", part]


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, int, str]:
    """(wall s, cpu s, peak RSS MiB, return code, stderr tail) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, proc.returncode, err[-2000:]


def run_size(size: str, parts: list[str], tools: list[str], results_dir: Path, fpipe_args: list[str], repeat: int = 1) -> list[Measurement]:
    data = generate(SIZES[size])
    rows: list[Measurement] = []
    for part in parts:
        ref: pl.DataFrame | None = None
        todo = [t for t in tools if not (t == "pandas" and size not in PANDAS_SIZES) and not (t in INEXACT and part != INEXACT[t])]
        runs: dict[str, list[tuple[float, float, float]]] = {t: [] for t in todo}
        done: dict[str, Measurement] = {}
        for rep in range(repeat):
            for tool in todo:
                if tool in done and done[tool].returncode != 0:
                    continue  # a failed tool is reported once
                out = results_dir / f"{size}_{part}_{tool}.parquet"
                out.unlink(missing_ok=True)
                wall, cpu, rss, rc, err = measure(command(tool, data, part, out, fpipe_args if tool == "fpipe" else []))
                runs[tool].append((wall, cpu, rss))
                print(f"{size:2s} {part:8s} {tool:7s} run {rep + 1}/{repeat} wall {wall:8.2f} s  cpu {cpu:8.2f} s  rss {rss:8.0f} MiB", flush=True)
                if rep > 0 and rc == 0:
                    continue
                m = done.setdefault(tool, Measurement(size, part, tool, wall, cpu, rss, rc))
                m.returncode = rc
                if rc != 0:
                    m.problems.append(f"exit status {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}")
                    continue
                frame = pl.read_parquet(out)  # outputs are checked on the first run
                if ref is None:
                    ref = frame
                elif tool in INEXACT:
                    n = rows_differing(ref, frame)
                    m.note = f"{n:,} of {ref.height:,} rows differ (rows counted before they arrived)"
                else:
                    m.problems = compare_frames(ref, frame)
        for tool in todo:
            m = done[tool]
            walls, cpus, rsss = zip(*runs[tool], strict=True)
            m.wall, m.cpu, m.rss_mib, m.walls = statistics.median(walls), statistics.median(cpus), max(rsss), list(walls)
            rows.append(m)
            status = m.note or ("ok" if not m.problems else "DISAGREES")
            print(f"{size:2s} {part:8s} {tool:7s} median wall {m.wall:8.2f} s ({m.wall_range or 'one run'})  cpu {m.cpu:8.2f} s  "
                  f"rss {m.rss_mib:8.0f} MiB  {status}", flush=True)
            for p in m.problems:
                print(f"   !!! {tool} vs fpipe: {p}", file=sys.stderr, flush=True)
    return rows


def machine() -> dict[str, str]:
    info = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "polars": pl.__version__,
    }
    try:
        import psutil

        info["memory"] = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:
        info["memory"] = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
        info["cpu"] = model
    except OSError:
        pass
    for mod in ("duckdb", "pandas", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = "not installed"
    from fpipe import __version__

    info["fpipe"] = __version__
    with contextlib.suppress(OSError):
        info["fpipe commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    return info


# the speed and memory goals of the issue that asked for this harness, read from the same run
GOALS = (
    ("15 windows: fpipe wall / DuckDB wall", "windows", "duckdb", "wall", 0.5),
    ("3 lookups: fpipe wall / DuckDB wall", "lookups", "duckdb", "wall", 1.0),
    ("all 18 features: fpipe wall / hand-written Polars wall", "all", "polars", "wall", 1.3),
    ("all 18 features: fpipe peak RSS / DuckDB peak RSS", "all", "duckdb", "rss_mib", 1.0),
    ("15 windows: fpipe wall / DuckDB RANGE-frame window functions", "windows", "duckdb_frames", "wall", 0.5),
)


def goals(rows: list[Measurement]) -> list[str]:
    """A table of the goals at M (where they are set) as measured in this run, each marked met or not."""
    by = {(m.size, m.part, m.tool): m for m in rows if m.returncode == 0}
    out = []
    for label, part, peer, attr, limit in GOALS:
        ours, theirs = by.get(("M", part, "fpipe")), by.get(("M", part, peer))
        if ours is None or theirs is None or not getattr(theirs, attr):
            continue
        ratio = getattr(ours, attr) / getattr(theirs, attr)
        verdict = "met" if ratio <= limit else "**not met**"
        if peer in INEXACT:
            verdict = f"for reference only, that SQL is not exact: {theirs.note}"
        out.append(f"| {label} | <= {limit:.1f} | {ratio:.2f} | {verdict} |")
    if not out:
        return []
    return [
        "",
        "### Goals at M",
        "",
        "The window goal was set when DuckDB's windows were measured as RANGE-frame window functions (about",
        "20 s at M). Those frames order by event time only, so they count rows that had not arrived yet",
        "(bench/tools/duckdb_frames_peer.py); the goal is judged against the exact DuckDB range join",
        "(bench/tools/duckdb_peer.py), and the frame timing is shown for reference only.",
        "",
        "| ratio | goal | this run (medians) | |",
        "|---|---:|---:|---|",
        *out,
    ]


def render(rows: list[Measurement], info: dict[str, str], profile: dict[str, list[tuple[str, str, float]]], extras: list[Measurement]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`); do not edit by hand. Every tool runs as its own",
        "process (reading the parquet inputs and writing the parquet output are included); CPU time is user +",
        "system of that process, peak RSS its `ru_maxrss`. Outputs are compared with fpipe's first (same rows",
        "in spine order, values within 1e-9 relative); a tool that disagrees is marked **DISAGREES**.",
        f"Each tool ran {max((len(m.walls) for m in rows), default=1)} time(s), the tools taking turns: wall and CPU are the",
        "medians (`wall range`: the fastest and slowest run), peak RSS the largest; ratios are of the medians.",
        "",
        "Workload (bench/generate.py, seeded): a file spine of prediction requests at random instants over 2024,",
        "events with realistic lateness (`ingested_at`: seconds to days late, 0.1% never), profiles (an SCD,",
        "~3 versions per user); 3 `latest` lookups (one with `ttl: 30d`) and 15 windowed aggregations",
        "(count/sum/mean/min/max of `amount` over 1d/7d/30d), exclusive cutoff. `part` = all 18 features,",
        "only the 3 lookups, or only the 15 windows.",
        "",
        "Sizes: " + "; ".join(f"{s.name}: {s.events:,} events, {s.entities:,} users, {s.spine:,} spine rows" for s in SIZES.values() if s.name != "T"),
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "## Results",
        "",
        "| size | part | tool | wall s | wall range s | CPU s | peak RSS MiB | fpipe wall / tool | fpipe RSS / tool | outputs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    fp = {(m.size, m.part): m for m in rows if m.tool == "fpipe"}
    for m in rows:
        ref = fp.get((m.size, m.part))
        ratio_w = f"{ref.wall / m.wall:.2f}" if ref and m.tool != "fpipe" and m.wall else ""
        ratio_r = f"{ref.rss_mib / m.rss_mib:.2f}" if ref and m.tool != "fpipe" and m.rss_mib else ""
        agree = "reference" if m.tool == "fpipe" else ("agree" if not m.problems else "**DISAGREES**")
        if m.tool in INEXACT and m.note:
            agree = f"not exact: {m.note}"
        if m.returncode != 0:
            agree = f"**FAILED** ({m.problems[0] if m.problems else m.returncode})"
        lines.append(
            f"| {m.size} | {m.part} | {m.tool} | {m.wall:.2f} | {m.wall_range} | {m.cpu:.2f} | {m.rss_mib:.0f} | {ratio_w} | {ratio_r} | {agree} |"
        )
    lines += goals(rows)
    bad = [m for m in rows if m.problems]
    if bad:
        lines += ["", "### Disagreements", ""]
        for m in bad:
            lines += [f"- {m.size} {m.part} {m.tool}: {p}" for p in m.problems]
    if extras:
        lines += [
            "",
            "## Other commands",
            "",
            "Each a whole process too. `skew-report` reads a serving log written by the harness: the bench spine",
            "(`served_at` = request time) with fpipe's own backfill values as the served features, so every",
            "feature must pass; it recomputes all 18 features at the served instants and compares. `train` fits",
            "`bench_xgb` (XGBoost, binary `active_7d`: an event in the 7 days after the request; time split with",
            "a 7d purge gap, early stopping, at most 200 rounds, 1 thread) on the output of the timed",
            "`backfill bench_train` row above it.",
            "",
            "| size | command | wall s | CPU s | peak RSS MiB | note |",
            "|---|---|---:|---:|---:|---|",
        ]
        for m in extras:
            note = "; ".join([*(f"**FAILED** ({p})" for p in m.problems), *([m.note] if m.note else [])])
            lines.append(f"| {m.size} | {m.tool} | {m.wall:.2f} | {m.cpu:.2f} | {m.rss_mib:.0f} | {note} |")
    for size, prof in profile.items():
        total = sum(s for _, _, s in prof)
        lines += [
            "",
            f"## fpipe per feature at {size}",
            "",
            "`python -m bench.profile_features " + size + "`: inputs read and normalised once, then each feature alone",
            "through `engine.build.compute_feature_columns` (in-process, so no start-up or IO).",
            "",
            "| feature | kind | seconds | share |",
            "|---|---|---:|---:|",
        ]
        for name, kind, sec in sorted(prof, key=lambda r: -r[2]):
            lines.append(f"| {name} | {kind} | {sec:.3f} | {100 * sec / total:.0f}% |")
        lines.append(f"| total | | {total:.3f} | |")
    return "\n".join(lines) + "\n"


def write_serving_log(data: Path, fpipe_out: Path, log: Path) -> int:
    """The bench spine as a serving log (`served_at` = the request time, `request_id` the row id) whose
    served values are fpipe's own backfill output: `fpipe skew-report` over it must pass. Returns its rows."""
    spine = pl.read_parquet(data / "spine.parquet")
    served = pl.read_parquet(fpipe_out)
    if not served.get_column("request_id").equals(spine.get_column("request_id")):
        raise RuntimeError(f"{fpipe_out}: rows are not in spine order")
    features = [c for c in served.columns if c not in spine.columns]
    frame = spine.select("request_id", "user_id", pl.col("t").alias("served_at")).hstack(served.select(features))
    frame.write_parquet(log)
    return frame.height


def _timed(size: str, name: str, cmd: list[str], ok_codes: tuple[int, ...] = (0,)) -> Measurement:
    wall, cpu, rss, rc, err = measure(cmd)
    m = Measurement(size, "", name, wall, cpu, rss, rc)
    if rc not in ok_codes:
        m.problems.append(f"exit status {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}")
    print(f"{size:2s} {name:35s} wall {wall:8.2f} s  cpu {cpu:8.2f} s  rss {rss:8.0f} MiB  {'ok' if not m.problems else 'FAILED'}", flush=True)
    return m


def extra_commands(size: str, data: Path, results_dir: Path, all_out: Path | None, fpipe_args: list[str]) -> list[Measurement]:
    """Whole-process timings of `fpipe skew-report` (over a serving log made of fpipe's own backfill values,
    so it must pass) and of `fpipe train` (model bench_xgb; its training set with the label is built by a
    timed `fpipe backfill bench_train` first). `all_out`: this run's fpipe output of part `all`, if any."""
    import json
    import shutil

    from bench.generate import LABEL, MODEL, TRAIN_SET

    defs = ["--defs", str(data / "defs"), "-q"]
    out: list[Measurement] = []

    if all_out is None:  # not measured in this run: build it, untimed
        all_out = results_dir / f"{size}_served_values.parquet"
        subprocess.run([fpipe_exe(), *defs, "backfill", "bench", "--out", str(all_out)], cwd=ROOT, check=True)
    log = results_dir / f"{size}_serving_log.parquet"
    rows = write_serving_log(data, all_out, log)
    report = results_dir / f"{size}_skew.json"
    report.unlink(missing_ok=True)
    m = _timed(size, "fpipe skew-report", [fpipe_exe(), *defs, "skew-report", "bench", "--served", str(log), "--format", "json", "--out", str(report)], (0, 1))
    if report.exists():
        rep = json.loads(report.read_text())
        counts = ", ".join(f"{v} {k}" for k, v in rep["summary"].items() if v)
        m.note = f"{rep['status']} ({counts}); {rows:,} served rows (fpipe's own backfill values)"
        if rep["status"] != "pass":
            m.problems.append(f"the report is '{rep['status']}', expected pass (served = fpipe's own values)")
    out.append(m)

    train_set = results_dir / f"{size}_{TRAIN_SET}.parquet"
    train_set.unlink(missing_ok=True)
    m = _timed(size, f"fpipe backfill {TRAIN_SET}", [fpipe_exe(), *defs, "backfill", TRAIN_SET, "--out", str(train_set), *fpipe_args])
    if not m.problems:
        n = pl.scan_parquet(train_set).select(pl.len()).collect().item()
        m.note = f"18 features + label {LABEL} (7d forward window; {n:,} rows after censoring), for the train row"
    out.append(m)
    if m.problems:
        return out

    models = results_dir / f"{size}_models"
    shutil.rmtree(models, ignore_errors=True)
    m = _timed(size, "fpipe train", [fpipe_exe(), *defs, "train", MODEL, "--training-set", str(train_set), "--models-dir", str(models)])
    meta_path = models / MODEL / "v1" / "metadata.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        r = meta["split"]["ranges"]
        test, base = meta["metrics"]["test"], meta["metrics"]["baseline"]
        m.note = (
            f"{MODEL} ({meta['engine']} engine): {r['train']['rows']:,} / {r['valid']['rows']:,} / {r['test']['rows']:,} "
            f"train / valid / test rows, best iteration {meta['best_iteration']} of {meta['num_boost_round']}, "
            f"test AUC {test['auc']:.3f} (baseline {base['auc']:.3f})"
        )
    out.append(m)
    return out


def compile_fpipe() -> None:
    """Write the bytecode of fpipe's modules before timing it, as installing a wheel does. An editable install
    (`make`) leaves the sources uncompiled, and with PYTHONDONTWRITEBYTECODE set (as on this machine) every
    fpipe process would compile its 25 modules again: 0.15 s of each run (imports 0.80 -> 0.65 s, measured)."""
    import fpipe

    compileall.compile_dir(Path(fpipe.__file__).parent, quiet=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="S,M", help="comma-separated: T (tiny), S, M, L")
    ap.add_argument("--parts", default="all,lookups,windows")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="report (use '-' for none)")
    ap.add_argument("--profile", default="S", help="sizes to profile per feature (comma-separated, '' for none)")
    ap.add_argument("--fpipe-arg", action="append", default=[], help="extra option for `fpipe backfill` (repeatable)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of every tool (medians are reported)")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    compile_fpipe()
    sizes = [s for s in args.sizes.split(",") if s]
    rows: list[Measurement] = []
    extras: list[Measurement] = []
    profile: dict[str, list[tuple[str, str, float]]] = {}
    for size in sizes:
        parts, tools = args.parts.split(","), args.tools.split(",")
        rows += run_size(size, parts, tools, args.results, args.fpipe_arg, max(1, args.repeat))
        all_out = args.results / f"{size}_all_fpipe.parquet" if "all" in parts and "fpipe" in tools else None
        extras += extra_commands(size, DATA_ROOT / size, args.results, all_out if all_out is not None and all_out.exists() else None, args.fpipe_arg)
        if size in args.profile.split(","):
            from bench.profile_features import profile as run_profile

            profile[size] = run_profile(DATA_ROOT / size)
    if str(args.out) != "-":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render(rows, machine(), profile, extras))
        print(f"wrote {args.out}")
    bad = [m for m in rows if m.problems]
    if bad:
        print(f"!!! {len(bad)} tool run(s) DISAGREE with fpipe or failed; see above", file=sys.stderr)
    for m in extras:
        for p in m.problems:
            print(f"!!! {m.size} {m.tool}: {p}", file=sys.stderr)
    return 1 if bad or any(m.problems for m in extras) else 0


if __name__ == "__main__":
    sys.exit(main())
