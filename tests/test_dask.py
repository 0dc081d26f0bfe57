"""`fpipe backfill --engine dask --scheduler ADDR` against a LocalCluster started outside fpipe: the same
bytes as the local engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fpipe.app import app
from fpipe.errors import UsageError

pytest.importorskip("distributed", reason="dask is not installed: pip install 'fpipe[dask]'")

pytestmark = pytest.mark.slow

from tests.test_partition import project_dir  # noqa: E402,F401  (the multi-entity fixture)


def test_dask_engine_output_equals_local(project_dir: Path, scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    runner = CliRunner()
    base = ["--defs", str(project_dir / "defs"), "-q", "backfill"]
    local = tmp_path / "local.parquet"
    res = runner.invoke(app, [*base, "--out", str(local)])
    assert res.exit_code == 0, res.output
    remote = tmp_path / "dask.parquet"
    res = runner.invoke(app, [*base, "--out", str(remote), "--engine", "dask", "--scheduler", scheduler, "--partitions", "3"])
    assert res.exit_code == 0, res.output
    assert remote.read_bytes() == local.read_bytes()


def test_dask_engine_needs_a_scheduler(project_dir: Path) -> None:  # noqa: F811
    res = CliRunner().invoke(app, ["--defs", str(project_dir / "defs"), "backfill", "--engine", "dask"])
    assert isinstance(res.exception, UsageError)  # exit status 2 through fpipe.app.main
    assert str(res.exception.diagnostics[0].message) == "--engine dask needs --scheduler"


@pytest.mark.parametrize("on_fail", ["quarantine", "warn", "fail"])
def test_dask_engine_checks_equal_local(scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], on_fail: str) -> None:
    """Row checks under Dask: the same output bytes, quarantine file, counts (manifest and summary), or the
    same exit code and message, as the plain local build."""
    from tests.test_partition import _checks_project, check_cli_runs

    defs = _checks_project(tmp_path / "p", on_fail)
    runs = {"dask": ["--engine", "dask", "--scheduler", scheduler, "--partitions", "3"]}
    assert check_cli_runs(defs, tmp_path, runs, capsys) == (1 if on_fail == "fail" else 0)


@pytest.mark.parametrize("on_fail", ["fail", "quarantine"])
def test_dask_client_is_closed_however_the_build_ends(
    scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, on_fail: str
) -> None:
    """A build that stops before any task runs (a failed check) still disconnects: a client left open
    keeps reconnecting to the scheduler after it has gone (and drew on the global `random` from Dask's
    thread, which Hypothesis reported in later tests)."""
    from tests.helpers import run_cli
    from tests.test_partition import _checks_project

    from fpipe.distributed import dask_engine

    made = []
    real = dask_engine.make_runner

    def recording(address: str, timeout: float = 30.0) -> tuple[dask_engine.DaskRunner, int]:
        runner, workers = real(address, timeout)
        made.append(runner)
        return runner, workers

    monkeypatch.setattr(dask_engine, "make_runner", recording)
    defs = _checks_project(tmp_path / "p", on_fail)
    argv = ["--defs", str(defs), "-q", "backfill", "--out", str(tmp_path / "o.parquet"), "--engine", "dask", "--scheduler", scheduler]
    code, _, _ = run_cli(argv, capsys)
    assert code == (1 if on_fail == "fail" else 0)
    assert len(made) == 1 and made[0].client.status == "closed"
