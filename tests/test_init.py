"""`fpipe init`: a new project validates and backfills as created; its data is deterministic.
Also CLI-wide: every command's --help has an example, and shell completion works."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from fpipe.app import app, main
from fpipe.lineage import explain_features
from fpipe.project import Project

FPIPE = str(Path(sys.executable).parent / "fpipe")


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("init") / "shop"
    assert _run(["--quiet", "init", str(root)]) == 0
    return root


def test_init_creates_the_layout(project_dir: Path) -> None:
    names = sorted(str(p.relative_to(project_dir)) for p in project_dir.rglob("*") if p.is_file())
    assert names == [".gitignore", "README.md", "feature_defs/project.yaml", "feature_defs/reorder.yaml", "sample_data/orders.parquet", "sample_data/plans.csv"]
    readme = (project_dir / "README.md").read_text()
    assert readme.startswith("# shop\n") and "$" not in readme


def test_validates_with_data_and_backfills_as_created(project_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    defs = str(project_dir / "feature_defs")
    assert _run(["--defs", defs, "validate", "--data", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert sum(1 for e in report["errors"] if e["severity"] == "warning") == 4  # the broken rows, quarantined on backfill
    out = project_dir / "out" / "reorder_v1.parquet"
    assert _run(["--defs", defs, "backfill", "reorder_v1", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    frame = pl.read_parquet(out)
    assert frame.height == summary["rows_out"] > 1000
    assert summary["rows_in"] == summary["rows_out"] + summary["rows_censored"]
    checks = summary["checks"]["sources"]["orders"]
    assert (checks["read"], checks["used"], checks["quarantined"]) == (checks["used"] + 4, checks["read"] - 4, 4)
    q = pl.read_parquet(f"{out}.quarantine.parquet")
    assert sorted(q.get_column("_reason").to_list()) == sorted(
        ["amount -12.5 < min 0", "order_id is null", "channel 'fax' not in [web, app]", q.filter(pl.col("_reason").str.contains("repeats"))["_reason"][0]]
    )
    assert frame.get_column("reorder_14d").mean() is not None
    # explain agrees with backfill on this project too (a CSV source with a fixed lag and a ttl lookup)
    project = Project.load(defs)
    for i in (5, 500, 2000):
        row = frame.row(i, named=True)
        ex = explain_features(project, row["ts"], {"customer_id": str(row["customer_id"])}, training_set="reorder_v1")
        values = ex.values()
        assert sorted(values) == sorted(project.defs.training_sets["reorder_v1"].features), (i, ex.skipped)
        for f, v in values.items():
            assert v == row[f] or (v is None and row[f] is None), (i, f, v, row[f])


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path, project_dir: Path) -> None:
    assert _run(["--quiet", "init", str(tmp_path / "a")]) == 0
    assert _run(["--quiet", "init", str(tmp_path / "b"), "--seed", "8"]) == 0
    for f in ("sample_data/orders.parquet", "sample_data/plans.csv", "feature_defs/reorder.yaml"):
        assert _digest(tmp_path / "a" / f) == _digest(project_dir / f)
    assert _digest(tmp_path / "b" / "sample_data/orders.parquet") != _digest(project_dir / "sample_data/orders.parquet")


def test_refuses_a_non_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    assert _run(["init", str(tmp_path / "x")]) == 2
    assert "error: '" in capsys.readouterr().err
    assert _run(["--quiet", "init", str(tmp_path / "x"), "--force"]) == 0
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_every_command_help_has_an_example() -> None:
    import typer.main

    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    assert {"explain", "drift", "init", "late", "validate", "backfill"} <= set(commands)
    for name, cmd in commands.items():
        subs = getattr(cmd, "commands", None)
        for sub in [cmd, *(subs.values() if subs else [])]:
            text = sub.help or ""
            assert "Example" in text and "fpipe " in text.split("Example", 1)[1], f"'{name} {sub.name}' --help has no example"


def test_shell_completion_script_and_completions() -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    # Typer names the shell from the parent process (shellingham): run it from bash, as a user would, whatever
    # started pytest (a detached runner has no shell above it, and the script then names none)
    script = subprocess.run(
        ["bash", "-c", '"$0" --show-completion; exit $?', FPIPE], capture_output=True, text=True, env=env, timeout=60
    )
    assert script.returncode == 0 and "_fpipe_completion" in script.stdout
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [FPIPE], capture_output=True, text=True, timeout=60, cwd=root,
        env={**env, "_FPIPE_COMPLETE": "complete_bash", "COMP_WORDS": "fpipe drift fr", "COMP_CWORD": "2"},
    )
    assert done.returncode == 0 and done.stdout.split() == ["fraud_v1"]
    cmds = subprocess.run(
        [FPIPE], capture_output=True, text=True, timeout=60, cwd=root,
        env={**env, "_FPIPE_COMPLETE": "complete_bash", "COMP_WORDS": "fpipe ex", "COMP_CWORD": "1"},
    )
    assert cmds.stdout.split() == ["explain"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["validate", "--bogus"], "No such option: --bogus"), (["explain", "--key", "user_id=1"], "Missing option '--at'"), (["drift", "--format", "pdf"], "unknown format 'pdf'")],
)
def test_usage_errors_exit_2_with_one_clear_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[1]
    assert _run(["--defs", str(root / "feature_defs"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err and "Traceback" not in err
