"""Out-of-core builds (`--partitions N`, `--memory-limit`): hash-partitioned by entity key, the same bytes as
an unpartitioned build. The fixture has two entities (an integer user key, partitioned by modulo, and a
string merchant key, partitioned by FNV-1a), a source spine, lookups with a ttl, windows, a derived
feature across entities, a label with censoring, null keys and late rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from fpipe.app import app
from fpipe.distributed.partitioned import build_partitioned, plan_groups
from fpipe.distributed.scale import parse_size
from fpipe.engine import partition as P
from fpipe.errors import UsageError
from fpipe.project import Project

DEFS = """
timezone: UTC
entities:
  user: {keys: [user_id]}
  merchant: {keys: [merchant]}
sources:
  txns: {path: ../txns.parquet, event_time: ts, available_time: ingested_at, keys: {user: user_id, merchant: merchant}}
  profiles: {path: ../profiles.parquet, event_time: updated_at, lag: 1h, keys: {user: user_id}}
  chargebacks: {path: ../chargebacks.parquet, event_time: reported_at, keys: {user: user_id}}
features:
  user_count_1d: {entity: user, source: txns, agg: count, window: 1d}
  user_sum_7d: {entity: user, source: txns, column: amount, agg: sum, window: 7d}
  user_max_7d: {entity: user, source: txns, column: amount, agg: max, window: 7d}
  user_last_amount: {entity: user, source: txns, column: amount, agg: latest}
  user_tier: {entity: user, source: profiles, column: tier, agg: latest, ttl: 10d}
  merchant_mean_7d: {entity: merchant, source: txns, column: amount, agg: mean, window: 7d}
  merchant_distinct_users_7d: {entity: merchant, source: txns, column: user_id, agg: count_distinct, window: 7d}
  ratio: {expr: "user_sum_7d / (merchant_mean_7d + 1)"}
labels:
  cb_14d: {entity: user, source: chargebacks, agg: count, horizon: 14d, expr: "cb_14d > 0"}
spines:
  checkouts: {source: txns, columns: [txn_id, user_id, merchant]}
training_sets:
  ts1: {spine: checkouts, features: [user_count_1d, ratio, user_sum_7d, merchant_mean_7d, user_max_7d,
        user_last_amount, user_tier, merchant_distinct_users_7d], label: cb_14d}
"""


def _times(rng: np.random.Generator, n: int) -> pl.Series:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    us = rng.integers(0, 60 * 86_400 * 10**6, n)  # microsecond times: no equal instants
    return pl.Series([start + timedelta(microseconds=int(u)) for u in us]).cast(pl.Datetime("us", "UTC"))


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("partitioned")
    rng = np.random.default_rng(6)
    n = 4000
    ts = _times(rng, n)
    late = pl.Series(rng.exponential(3600 * 6, n).astype(np.int64) * 10**6).cast(pl.Duration("us"))
    users = rng.integers(1, 120, n).astype(float)
    users[rng.random(n) < 0.01] = np.nan
    merchants = np.array([f"m{i}" for i in rng.integers(0, 40, n)], dtype=object)
    merchants[rng.random(n) < 0.01] = None
    pl.DataFrame(
        {
            "txn_id": np.arange(n),
            "user_id": pl.Series(users).fill_nan(None).cast(pl.Int64),
            "merchant": pl.Series(merchants, dtype=pl.String),
            "ts": ts,
            "ingested_at": ts + late,
            "amount": np.round(rng.lognormal(3, 1, n), 2),
        }
    ).write_parquet(root / "txns.parquet")
    m = 300
    pl.DataFrame(
        {"user_id": rng.integers(1, 120, m), "updated_at": _times(rng, m), "tier": rng.choice(["a", "b", "c"], m)}
    ).write_parquet(root / "profiles.parquet")
    pl.DataFrame({"user_id": rng.integers(1, 120, 80), "reported_at": _times(rng, 80)}).write_parquet(
        root / "chargebacks.parquet"
    )
    (root / "defs").mkdir()
    (root / "defs" / "defs.yaml").write_text(DEFS)
    return root


def test_integer_keys_partition_by_modulo_and_nulls_go_to_zero() -> None:
    frame = pl.DataFrame({"k": [0, 1, 5, -3, None, 12]})
    assert P.partition_ids(frame, ["k"], 4).to_list() == [0, 1, 1, 1, 0, 0]


def test_string_hash_is_fnv1a_and_stable() -> None:
    # pinned values: FNV-1a 64 of the UTF-8 bytes; must never change with the Polars version
    assert P.fnv1a(pl.Series(["", "x", "hello world"])).tolist() == [
        14695981039346656037,
        12638214688346347271,
        8618312879776256743,
    ]
    frame = pl.DataFrame({"a": ["x", "hello world", None], "b": [1, 2, 3]})
    def combined(part: int) -> int:  # one key part folded into the FNV state, as partition_ids does
        return ((14695981039346656037 ^ part) * 1099511628211) % 2**64

    expected = [combined(12638214688346347271) % 7, combined(8618312879776256743) % 7, 0]
    assert P.partition_ids(frame, ["a"], 7).to_list() == expected
    # a composite key: the parts' hashes folded in order, separated by 0x1f; a null part sends the row to 0
    def fnv(text: str) -> int:
        h = 14695981039346656037
        for byte in text.encode():
            h = ((h ^ byte) * 1099511628211) % 2**64
        return h

    def composite(*parts: object) -> int:
        h = 14695981039346656037
        for i, part in enumerate(parts):
            if i:
                h = ((h ^ 0x1F) * 1099511628211) % 2**64
            h = ((h ^ fnv(str(part))) * 1099511628211) % 2**64
        return h

    assert P.partition_ids(frame, ["a", "b"], 5).to_list() == [composite("x", 1) % 5, composite("hello world", 2) % 5, 0]


def test_groups_per_entity(project_dir: Path) -> None:
    groups = plan_groups(Project.load(project_dir / "defs").defs, "ts1")
    assert [(g.entity, g.with_label) for g in groups] == [("user", True), ("merchant", False)]
    assert groups[1].features == ("merchant_mean_7d", "merchant_distinct_users_7d")


@pytest.mark.parametrize("n", [1, 3, 8])
def test_partitioned_build_equals_unpartitioned(project_dir: Path, n: int) -> None:
    project = Project.load(project_dir / "defs")
    ref = project.build_training_set("ts1")
    _, _, cols = project.training_set_inputs("ts1")
    got = build_partitioned(project.defs, "ts1", cols, n)
    assert got.frame.equals(ref.frame)
    assert got.frame.schema == ref.frame.schema
    assert got.censored.equals(ref.censored)
    assert ref.stats.rows_censored > 0
    assert (got.stats.rows_in, got.stats.rows_out, got.stats.rows_censored) == (
        ref.stats.rows_in,
        ref.stats.rows_out,
        ref.stats.rows_censored,
    )
    assert got.spine_columns == ref.spine_columns and got.time_column == ref.time_column


def test_cli_partitions_and_memory_limit_write_identical_bytes(project_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    outs = {}
    for label, extra in {"plain": [], "p5": ["--partitions", "5"], "mem": ["--memory-limit", "20KB"]}.items():
        out = tmp_path / f"{label}.parquet"
        res = runner.invoke(app, ["--defs", str(project_dir / "defs"), "-q", "backfill", "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        outs[label] = out.read_bytes()
    assert outs["p5"] == outs["plain"]
    assert outs["mem"] == outs["plain"]


def test_cli_reports_how_the_build_ran(project_dir: Path, tmp_path: Path) -> None:
    """`--json`, the manifest's `run` and the summary say how many partitions were built and why, the input
    bytes a `--memory-limit` read, and this process's peak memory; going over the limit warns, exit 0."""
    import json
    import os

    defs = ["--defs", str(project_dir / "defs")]
    runner = CliRunner()
    runs = {
        "plain": ([], None, None),
        "p3": (["--partitions", "3"], 3, "--partitions"),
        "mem": (["--memory-limit", "20KB"], None, "--memory-limit 20KB"),
    }
    for label, (extra, partitions, chosen_by) in runs.items():
        out = tmp_path / f"{label}.parquet"
        res = runner.invoke(app, [*defs, "backfill", "--out", str(out), "--json", *extra])
        assert res.exit_code == 0, res.output
        run = json.loads(res.stdout)["run"]
        assert run == json.loads(Path(f"{out}.manifest.json").read_text())["run"]
        assert run["engine"] == "local" and run["peak_rss_bytes"] > 10**6
        assert run["partitions_chosen_by"] == chosen_by
        if label == "mem":  # the inputs' bytes on disk drive the choice; a 20KB limit is far below any process
            size = {f: os.path.getsize(project_dir / f"{f}.parquet") for f in ("txns", "profiles", "chargebacks")}
            # the three sources (the spine is txns' rows: a spine file of its own would be added)
            assert run["input_bytes"] == size["txns"] + size["profiles"] + size["chargebacks"]
            assert run["partitions"] == P.choose_partitions(run["input_bytes"], 20_000) and run["partitions"] > 1
            assert run["memory_limit_bytes"] == 20_000
            assert "warning: peak memory" in res.stderr and "went over --memory-limit 20KB" in res.stderr
            assert f"hint: pass --partitions {2 * run['partitions']}" in res.stderr
        else:
            assert run["partitions"] == partitions and run["memory_limit_bytes"] is None
            assert "warning" not in res.stderr
    res = runner.invoke(app, [*defs, "backfill", "--out", str(tmp_path / "t.parquet"), "--partitions", "2", "--memory-limit", "900GB"])
    assert res.exit_code == 0, res.output
    assert re.search(r"partitions\s+2 \(--partitions\)", res.stdout)
    assert re.search(r"peak memory\s+[\d.]+ [kMG]B \(under the 900.00 GB limit\)", res.stdout)


def test_human_bytes() -> None:
    from fpipe.distributed.scale import human_bytes

    assert [human_bytes(n) for n in (0, 999, 1000, 1_234_567, 4 * 10**9)] == ["0 B", "999 B", "1.00 kB", "1.23 MB", "4.00 GB"]


def test_parse_size() -> None:
    assert parse_size("4GB") == 4 * 10**9
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("0.5GB") == 5 * 10**8 and parse_size("4 GiB") == 4 * 2**30 and parse_size("20KB") == 20_000
    for bad in ("lots", "", "-1GB", "0", "0GB", "4", "1000"):  # no unit: '4' is likely 4GB mistyped, not 4 bytes
        with pytest.raises(UsageError):
            parse_size(bad)


def test_a_tiny_limit_is_capped_at_max_partitions() -> None:
    """`--memory-limit 4B` on 311 kB of inputs once asked for 4,665,150 partitions (a run that never ends)."""
    assert P.choose_partitions(311_014, 4) == P.MAX_PARTITIONS == 1024


def test_choose_partitions() -> None:
    assert P.choose_partitions(10**9, 4 * 10**9, expansion=12, base=0) == 3
    # the L measurement: 1.15 GB of inputs under 4 GB needs ~2.4 GB + 16.7 GB / N -> N >= 11
    assert P.choose_partitions(1_152_000_000, 4 * 10**9) == 12
    assert P.choose_partitions(10, 4 * 10**9) == 1


# ---------- row checks (`checks:`, `on_fail:`) in partitioned builds: exactly the plain build's ----------

CHECKS_DEFS = """
timezone: UTC
entities:
  user: {{keys: [user_id]}}
  merchant: {{keys: [merchant]}}
sources:
  txns:
    path: ../txns.parquet
    event_time: ts
    keys: {{user: user_id, merchant: merchant}}
    on_fail: {on_fail}
    checks:
      merchant: {{regex: "m[0-9]+"}}
      txn_id: {{not_null: true, unique: true}}
      amount: {{min: 0, max: 500}}
      "user_id, ts": {{unique: true}}
      currency: {{in: [USD, EUR]}}
  profiles:
    path: ../profiles.parquet
    event_time: updated_at
    keys: {{user: user_id}}
    on_fail: {on_fail}
    checks: {{tier: {{in: [a, b, c]}}}}
features:
  user_count_7d: {{entity: user, source: txns, agg: count, window: 7d}}
  user_sum_7d: {{entity: user, source: txns, column: amount, agg: sum, window: 7d}}
  user_last_amount: {{entity: user, source: txns, column: amount, agg: latest}}
  user_tier: {{entity: user, source: profiles, column: tier, agg: latest}}
  merchant_mean_7d: {{entity: merchant, source: txns, column: amount, agg: mean, window: 7d}}
spines:
  checkouts: {{source: txns, columns: [txn_id, user_id, merchant]}}
training_sets:
  ts1: {{spine: checkouts, features: [user_count_7d, user_sum_7d, user_last_amount, user_tier, merchant_mean_7d]}}
"""


def _checks_project(root: Path, on_fail: str, *, bad: bool = True) -> Path:
    """Two entities over one checked source (an integer and a string key), a second checked source, string
    event times, and failing rows of every kind: a `txn_id` repeated by other users and merchants (so in
    other partitions), one also failing `min` (two reasons), a repeated (user_id, ts) pair, nulls,
    values out of range or list, a bad merchant, unparseable times (not under `fail`)."""
    rng = np.random.default_rng(11)
    n = 1500
    ts = _times(rng, n).dt.strftime("%Y-%m-%d %H:%M:%S%.6f")
    frame = pl.DataFrame(
        {
            "txn_id": np.arange(n),
            "user_id": rng.integers(1, 60, n),
            "merchant": [f"m{i}" for i in rng.integers(0, 25, n)],
            "ts": ts,
            "amount": np.round(rng.lognormal(3, 1, n), 2).clip(0, 400),
            "currency": rng.choice(["USD", "EUR"], n),
            "note": [f"row {i}" for i in range(n)],  # read by no feature: quarantined rows carry every column
        }
    )
    if bad:
        rows = frame.to_dicts()
        for j in range(150, n, 97):  # interleaved, never first: every partition starts with a parseable time
            kind = (j // 97) % 8
            r = rows[j]
            if kind == 0:
                r["txn_id"] = j - 140  # a repeat of an earlier row, almost surely of another user/merchant
            elif kind == 1:
                r["txn_id"], r["amount"] = j - 120, -j / 10  # two reasons, `unique` first
            elif kind == 2:
                r["txn_id"] = None
            elif kind == 3:
                r["amount"] = 900.0 + j  # every example names its own row
            elif kind == 4:
                r["currency"] = f"X{j}"
            elif kind == 5:
                r["merchant"] = f"shop{j}"
            elif kind == 6:
                r["user_id"], r["ts"] = rows[j - 30]["user_id"], rows[j - 30]["ts"]  # a repeated pair
            elif on_fail != "fail":  # `fail` leaves unparseable times to the engine (exit 2)
                r["ts"] = f"not a time {j}"
        frame = pl.DataFrame(rows, schema=frame.schema)
    root.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(root / "txns.parquet")
    m = 200
    tiers = rng.choice(["a", "b", "c"], m).astype(object)
    if bad:
        tiers[[17, 80, 133]] = "zz"
    pl.DataFrame(
        {"user_id": rng.integers(1, 60, m), "updated_at": _times(rng, m), "tier": pl.Series(tiers, dtype=pl.String)}
    ).write_parquet(root / "profiles.parquet")
    (root / "defs").mkdir(exist_ok=True)
    (root / "defs" / "defs.yaml").write_text(CHECKS_DEFS.format(on_fail=on_fail))
    return root / "defs"


def _assert_same_checks(got: object, ref: object) -> None:
    from fpipe.engine.checks import ChecksOutcome
    from fpipe.render.checks import checks_dict

    assert isinstance(got, ChecksOutcome) and isinstance(ref, ChecksOutcome)
    assert got.quarantine.equals(ref.quarantine)
    assert got.quarantine.schema == ref.quarantine.schema
    assert checks_dict(got) == checks_dict(ref)
    for name, r in ref.results.items():
        g = got.results[name]
        assert g.failed.equals(r.failed) and g.failed.columns == r.failed.columns, name
        assert [(c.column, c.check, c.failed, c.example) for c in g.counts] == [
            (c.column, c.check, c.failed, c.example) for c in r.counts
        ], name
        assert g.column_problems == r.column_problems


@pytest.mark.parametrize("chunk_rows", [None, 97])
@pytest.mark.parametrize("on_fail", ["quarantine", "warn"])
@pytest.mark.parametrize("n", [1, 3])
def test_partitioned_checks_equal_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int, on_fail: str, chunk_rows: int | None
) -> None:
    from fpipe.distributed import checks as DC

    if chunk_rows is not None:  # many chunks and `unique` buckets, as on a large source
        monkeypatch.setattr(DC, "CHUNK_ROWS", chunk_rows)
    project = Project.load(_checks_project(tmp_path, on_fail))
    ref = project.build_training_set("ts1")
    got = project.build_training_set("ts1", partitions=n)
    assert ref.checks is not None
    counts = ref.checks.counts()
    assert counts["txns"]["failed_checks"]["txn_id: unique"] > 0 and counts["txns"]["failed_checks"]["user_id, ts: unique"] > 0
    assert counts["profiles"]["failed_checks"] == {"tier: in": 3}
    if on_fail == "quarantine":
        assert ref.checks.n_quarantined == counts["txns"]["quarantined"] + 3  # type: ignore[operator]
        assert "note" in ref.checks.quarantine.columns
        assert any(re.fullmatch(r"txn_id \d+ repeats row \d+; amount -[\d.]+ < min 0", r) for r in ref.checks.quarantine.get_column("_reason").to_list())
    else:
        assert counts["txns"]["warned"] > 0 and ref.stats.sources["txns"].never_visible > 0
    _assert_same_checks(got.checks, ref.checks)
    assert got.frame.equals(ref.frame) and got.frame.schema == ref.frame.schema
    assert {s: st.rows for s, st in got.stats.sources.items()} == {s: st.rows for s, st in ref.stats.sources.items()}
    assert {s: st.never_visible for s, st in got.stats.sources.items()} == {s: st.never_visible for s, st in ref.stats.sources.items()}
    assert (got.stats.rows_in, got.stats.rows_out) == (ref.stats.rows_in, ref.stats.rows_out)


@pytest.mark.parametrize("n", [1, 3])
def test_partitioned_checks_fail_like_plain(tmp_path: Path, n: int) -> None:
    from fpipe.errors import ChecksFailed

    project = Project.load(_checks_project(tmp_path, "fail"))
    with pytest.raises(ChecksFailed) as ref:
        project.build_training_set("ts1")
    with pytest.raises(ChecksFailed) as got:
        project.build_training_set("ts1", partitions=n)
    assert "fail check 'unique' on 'txn_id'" in str(ref.value) and "check 'unique' on 'user_id, ts'" in str(ref.value)
    assert [d.__dict__ for d in got.value.diagnostics] == [d.__dict__ for d in ref.value.diagnostics]


def test_partitioned_checks_on_clean_data_change_nothing(tmp_path: Path) -> None:
    project = Project.load(_checks_project(tmp_path, "fail", bad=False))
    ref = project.build_training_set("ts1")
    got = project.build_training_set("ts1", partitions=3)
    _assert_same_checks(got.checks, ref.checks)
    assert got.frame.equals(ref.frame)


def _backfill(defs: Path, out: Path, extra: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`fpipe backfill --json` through `fpipe.app.main` (errors become exit codes there): code, stdout, stderr."""
    from fpipe.app import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["--defs", str(defs), "backfill", "ts1", "--out", str(out), "--json", *extra])
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


def check_cli_runs(defs: Path, tmp_path: Path, runs: dict[str, list[str]], capsys: pytest.CaptureFixture[str]) -> int:
    """Each run's output, quarantine file and manifest/summary counts equal the plain run's (or the same
    exit code and message); also used by tests/test_dask.py."""
    import json

    results = {}
    for label, extra in {"plain": [], **runs}.items():
        out = tmp_path / label / "ts1.parquet"
        out.parent.mkdir()
        code, text, err = _backfill(defs, out, extra, capsys)
        results[label] = (code, out, text, err)
    code, out, text, err = results["plain"]
    for label, (c, o, t, e) in results.items():
        assert c == code, (label, e)
        if code:
            assert e == err, label  # the same located lines and hint
            assert not o.exists()
            continue
        assert o.read_bytes() == out.read_bytes(), label
        q, qo = Path(f"{out}.quarantine.parquet"), Path(f"{o}.quarantine.parquet")
        assert q.exists() == qo.exists(), label
        if q.exists():
            assert pl.read_parquet(qo).equals(pl.read_parquet(q)), label
        m, mo = (json.loads(Path(f"{p}.manifest.json").read_text()) for p in (out, o))
        assert {k: v for k, v in mo["checks"].items() if k != "quarantine_output"} == {
            k: v for k, v in m["checks"].items() if k != "quarantine_output"
        }, label
        assert mo["rows"] == m["rows"] and mo["sources"] == m["sources"], label
        s, so = json.loads(text)["checks"], json.loads(t)["checks"]
        assert so["sources"] == s["sources"] and so["quarantined"] == s["quarantined"], label
    return code


@pytest.mark.parametrize("on_fail", ["quarantine", "warn", "fail"])
def test_cli_partitioned_checks_write_what_plain_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str], on_fail: str) -> None:
    defs = _checks_project(tmp_path / "p", on_fail)
    runs = {"p1": ["--partitions", "1"], "p3": ["--partitions", "3"], "mem": ["--memory-limit", "40KB"]}
    code = check_cli_runs(defs, tmp_path, runs, capsys)
    assert code == (1 if on_fail == "fail" else 0)  # failing checks: exit 1 (ChecksFailed), as a plain backfill


@pytest.mark.parametrize("on_fail", ["quarantine", "warn"])
def test_partitioned_checks_with_a_time_range_equal_plain(tmp_path: Path, on_fail: str) -> None:
    """--start/--end: a plain build reads (and so checks) only the range of a non-quarantining source with
    aware times (`profiles` here), and every row of a quarantining one; so does the partitioned build."""
    project = Project.load(_checks_project(tmp_path, on_fail))
    start, end = datetime(2024, 1, 20, tzinfo=UTC), datetime(2024, 1, 30, tzinfo=UTC)
    ref = project.build_training_set("ts1", start=start, end=end)
    got = project.build_training_set("ts1", start=start, end=end, partitions=3)
    assert ref.checks is not None
    read = ref.checks.counts()["profiles"]["read"]
    assert read == 200 if on_fail == "quarantine" else 0 < read < 200  # type: ignore[operator]
    _assert_same_checks(got.checks, ref.checks)
    assert got.frame.height > 0 and got.frame.equals(ref.frame)
