"""The CLI surface: help, version, import weight, and validate/list/schema output, parsed field by field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fpipe import __version__
from fpipe.app import app, main
from helpers import VALID_COUNTS
from helpers import run_cli as run

ROOT = Path(__file__).resolve().parent.parent
DEFS = ROOT / "tests" / "fixtures" / "defs"
VALID = "tests/fixtures/defs/valid_spec_example"
ENV = {"NO_COLOR": "1", "COLUMNS": "120", "TERM": "dumb"}


@pytest.fixture(autouse=True)
def _from_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")


def command_names() -> list[str]:
    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    return sorted(group.commands)


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"], env=ENV)
    assert result.exit_code == 0
    names = command_names()
    assert {"validate", "list", "schema"} <= set(names)
    for name in names:
        assert f"  {name} " in result.output, name


@pytest.mark.parametrize("name", command_names())
def test_every_command_help_has_an_example(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`fpipe {name} --help` shows no example"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert (code, out) == (0, f"fpipe {__version__}\n")


def test_importing_the_app_is_light() -> None:
    code = "import sys, fpipe.app; print(sorted(m for m in ('polars', 'xgboost', 'dask', 'numpy', 'pyarrow') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--defs", VALID, "validate"], capsys)
    assert code == 0
    assert out == "ok: 2 files, 1 entity, 3 sources, 4 features, 1 label, 1 spine, 1 training set, 1 model, 1 serving log\n"
    assert err == ""


def test_validate_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--defs", VALID, "--quiet", "validate"], capsys) == (0, "", "")


def test_validate_ok_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--defs", VALID, "validate", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True
    assert doc["errors"] == []
    assert doc["counts"] == VALID_COUNTS


def test_validate_one_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--defs", "tests/fixtures/defs/bad_unknown_field.yaml", "validate"], capsys)
    assert code == 2
    assert out == ""
    assert err == (
        "tests/fixtures/defs/bad_unknown_field.yaml:10:5: error: unknown field 'windw' in feature 'clicks_7d'\n"
        "  hint: did you mean 'window'?\n"
        "1 error\n"
    )


def test_validate_many_errors_ends_with_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--defs", "tests/fixtures/defs/many_errors", "validate"], capsys)
    assert code == 2
    lines = err.splitlines()
    assert lines[-1] == "7 errors"
    assert sum(1 for line in lines if ": error: " in line) == 7
    assert sum(1 for line in lines if line.startswith("  hint: ")) == 7


def test_validate_errors_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--defs", "tests/fixtures/defs/bad_cycle.yaml", "validate", "--json"], capsys)
    assert code == 2
    assert err == ""
    doc = json.loads(out)
    assert doc["ok"] is False
    assert doc["counts"] == {}
    assert len(doc["errors"]) == 2
    first = doc["errors"][0]
    assert first["file"] == "tests/fixtures/defs/bad_cycle.yaml"
    assert first["line"] == 2
    assert first["col"] == 13
    assert first["severity"] == "error"
    assert first["message"] == "cycle among derived features: a -> b -> c -> a"
    assert first["hint"] == "a derived feature cannot depend on itself, directly or through others"
    assert doc["errors"][1]["message"] == "cycle among derived features: d -> d"


def test_validate_data_flag_is_accepted(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import fpipe.commands.validate as validate_cmd

    monkeypatch.setattr(validate_cmd, "_check_data", lambda defs: [])
    code, out, _ = run(["--defs", VALID, "validate", "--data"], capsys)
    assert code == 0 and out.startswith("ok: ")


def test_validate_data_failures_exit_1(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import fpipe.commands.validate as validate_cmd
    from fpipe.errors import Diagnostic

    bad = Diagnostic("column 'amount' has 3 negative values", file="sample_data/tx.parquet", hint="check: min 0")
    monkeypatch.setattr(validate_cmd, "_check_data", lambda defs: [bad])
    code, _, err = run(["--defs", VALID, "validate", "--data"], capsys)
    assert code == 1
    assert err == "sample_data/tx.parquet: error: column 'amount' has 3 negative values\n  hint: check: min 0\n1 error\n"


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--defs", VALID, "list", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert list(doc) == ["entities", "sources", "features", "labels", "spines", "training_sets", "models", "serving_logs"]
    assert [f["name"] for f in doc["features"]] == ["user_spend_7d", "user_spend_30d", "user_country", "spend_ratio"]
    spend = doc["features"][0]
    assert spend["entity"] == "user"
    assert spend["source"] == "transactions"
    assert spend["agg"] == "sum"
    assert spend["window"] == "7d"
    assert spend["where"] == "status = 'approved'"
    assert doc["features"][2]["ttl"] == "30d"
    assert doc["sources"][0]["keys"] == {"user": ["user_id"]}
    assert doc["labels"][0]["horizon"] == "30d"
    assert doc["training_sets"][0]["features"] == ["user_spend_7d", "user_country", "spend_ratio"]
    assert doc["models"][0]["objective"] == "binary:logistic"
    assert doc["serving_logs"][0]["name"] == "fraud_v1"


def test_list_tables() -> None:
    result = CliRunner().invoke(app, ["--defs", VALID, "list"], env=ENV)
    assert result.exit_code == 0, result.output
    out = result.output
    for title in ("entities", "sources", "features", "labels", "spines", "training sets", "models", "serving logs"):
        assert title in out
    row = next(line for line in out.splitlines() if "user_spend_7d" in line and "transactions" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][:6] == ["user_spend_7d", "user", "transactions", "sum", "amount", "7d"]


def test_list_bad_definitions_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--defs", "tests/fixtures/defs/bad_ttl_zero.yaml", "list"], capsys)
    assert code == 2
    assert "error: ttl must be positive in feature 'last_amount' (got 0)" in err


def test_schema_stdout_and_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(["schema"], capsys)
    assert code == 0
    assert json.loads(out)["title"] == "fpipe definitions"
    target = tmp_path / "nested" / "s.json"
    code, out, _ = run(["schema", "--out", str(target)], capsys)
    assert (code, out) == (0, "")
    assert target.read_text() == (ROOT / "docs" / "fpipe.schema.json").read_text()


def test_debug_shows_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from fpipe.errors import DefinitionError

    with pytest.raises(DefinitionError):
        main(["--debug", "--defs", "tests/fixtures/defs/bad_cycle.yaml", "validate"])


def test_the_command_flushes_its_output_and_keeps_exit_codes() -> None:
    """`python -m fpipe` (as the `fpipe` script) skips the interpreter's teardown: what it printed still
    arrives whole through a pipe, and the exit codes are main's."""
    fpipe = [sys.executable, "-m", "fpipe"]
    env = {**ENV, "PATH": "/usr/bin:/bin"}
    listed = subprocess.run([*fpipe, "--defs", VALID, "list", "--json"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["features"]  # the whole document: nothing left in a buffer
    version = subprocess.run([*fpipe, "--version"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert (version.returncode, version.stdout) == (0, f"fpipe {__version__}\n")
    bad = subprocess.run([*fpipe, "--defs", str(ROOT / "no-such-folder"), "validate"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert bad.returncode == 2 and "error: definitions folder" in bad.stderr and bad.stderr.endswith("1 error\n")


@pytest.mark.parametrize("dask_loaded", [False, True])
def test_run_exits_fast_only_without_dask(monkeypatch: pytest.MonkeyPatch, dask_loaded: bool) -> None:
    import threading

    import fpipe.app as fapp

    exits: list[int] = []

    def fake_main() -> None:
        sys.exit(2)

    monkeypatch.setattr(fapp, "main", fake_main)
    monkeypatch.setattr(fapp.os, "_exit", exits.append)
    monkeypatch.setattr("threading.enumerate", lambda: [threading.main_thread()])  # threads earlier tests left
    if dask_loaded:
        monkeypatch.setitem(sys.modules, "distributed", sys.modules["json"])
    else:
        monkeypatch.delitem(sys.modules, "distributed", raising=False)
    if dask_loaded:  # Dask's clusters and clients close at exit: the plain exit
        with pytest.raises(SystemExit) as exc:
            fapp.run()
        assert exc.value.code == 2 and exits == []
    else:
        fapp.run()
        assert exits == [2]
