"""The registry: immutable versions, an atomic `current` pointer with promote / rollback, list, compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fpipe.errors import UsageError
from fpipe.io.models import write_version
from fpipe.train.export import export_model
from fpipe.train.registry import promote, read_pointer, rollback
from fpipe.train.trainer import train_model
from test_train_model import FEATURES, LABEL, cli, make_frame, spec


def fake_version(root: Path, name: str = "m") -> str:
    return write_version(root, name, lambda version: {"metadata.json": json.dumps({"version": version, "metrics": {}})})[0]


def test_versions_increment_and_are_never_overwritten(tmp_path: Path) -> None:
    assert [fake_version(tmp_path) for _ in range(3)] == ["v1", "v2", "v3"]
    # a directory that appears meanwhile (another training) is skipped, not overwritten
    (tmp_path / "m" / "v4").mkdir()
    (tmp_path / "m" / "v4" / "marker").write_text("theirs")
    assert fake_version(tmp_path) == "v5"
    assert (tmp_path / "m" / "v4" / "marker").read_text() == "theirs"
    assert not list((tmp_path / "m").glob(".tmp-*"))


def test_a_version_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    def failing(version: str) -> dict[str, bytes | str]:
        raise RuntimeError("building the files failed")

    with pytest.raises(RuntimeError, match="building the files failed"):
        write_version(tmp_path, "m", failing)
    # the second file cannot be written (its folder does not exist): the first one must not be left behind either
    with pytest.raises(FileNotFoundError):
        write_version(tmp_path, "m", lambda version: {"model.ubj": b"x", "missing/metadata.json": "{}"})
    assert list((tmp_path / "m").iterdir()) == []
    assert fake_version(tmp_path) == "v1"
    assert sorted(p.name for p in (tmp_path / "m" / "v1").iterdir()) == ["metadata.json"]


def test_promote_and_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        fake_version(tmp_path)
    d = str(tmp_path)
    assert cli(capsys, "models", "promote", "m", "v1", "--models-dir", d) == (0, "m: current is v1\n", "")
    assert cli(capsys, "models", "promote", "m", "v3", "--models-dir", d) == (0, "m: current is v3 (was v1)\n", "")
    assert cli(capsys, "models", "promote", "m", "2", "--models-dir", d) == (0, "m: current is v2 (was v3)\n", "")
    p = read_pointer(tmp_path, "m")
    assert (p.version, p.previous) == ("v2", ["v1", "v3"])
    assert cli(capsys, "models", "rollback", "m", "--models-dir", d) == (0, "m: current is v3 (rolled back from v2)\n", "")
    assert cli(capsys, "models", "rollback", "m", "--models-dir", d) == (0, "m: current is v1 (rolled back from v3)\n", "")
    code, _, err = cli(capsys, "models", "rollback", "m", "--models-dir", d)
    assert code == 2 and err == (
        "error: nothing to roll back to: 'm' v1 was never preceded by a promoted version\n"
        "  hint: promote a version instead: fpipe models promote m VERSION\n"
    )
    code, _, err = cli(capsys, "models", "promote", "m", "v9", "--models-dir", d)
    assert code == 2 and err == "error: model 'm' has no version 'v9'\n  hint: versions: v1, v2, v3\n"
    log = json.loads((tmp_path / "m" / "current").read_text())["log"]
    assert [(e["action"], e["version"], e["from"]) for e in log] == [
        ("promote", "v1", None), ("promote", "v3", "v1"), ("promote", "v2", "v3"), ("rollback", "v3", "v2"), ("rollback", "v1", "v3"),
    ]
    assert not list((tmp_path / "m").glob(".current.tmp-*"))


def test_rollback_without_promotion_is_refused(tmp_path: Path) -> None:
    fake_version(tmp_path)
    with pytest.raises(UsageError, match="'m' has no promoted version"):
        rollback(tmp_path, "m")


@pytest.fixture(scope="module")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """v1: a good model; v2: trained on shuffled labels (no signal). And a labelled table to compare on."""
    root = tmp_path_factory.mktemp("reg")
    frame = make_frame(seed=1)
    rng = np.random.default_rng(0)
    shuffled = frame.with_columns(pl.Series("label", rng.permutation(frame["label"].to_numpy())))
    args = {"training_set": "s", "spine_time_col": "ts", "key_columns": ["user_id"], "label": "label", "label_dtype": "Boolean", "manifest": None}
    for f in (frame, shuffled):
        export_model(root, train_model(spec(), f, "ts", FEATURES, "label", label_spec=LABEL), spec(), **args)
    table = root / "later.parquet"
    make_frame(seed=2).write_parquet(table)
    return root, table


@pytest.mark.slow
def test_list_and_compare(trained_registry: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root, table = trained_registry
    d = str(root)
    promote(root, "m", "v1")
    code, out, _ = cli(capsys, "models", "list", "--models-dir", d, "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["model"], r["version"], r["current"], r["passed"]) for r in rows] == [
        ("m", "v1", True, True), ("m", "v2", False, False),
    ]
    assert rows[0]["primary_metric"] == "auc" and rows[0]["test"] > 0.75 and rows[0]["baseline"] == 0.5
    code, out, _ = cli(capsys, "models", "show", "m", "--models-dir", d)
    assert code == 0 and out.startswith("# Model card: m v1\n")
    assert cli(capsys, "models", "show", "m", "v2", "--models-dir", d)[1].startswith("# Model card: m v2\n")
    code, out, _ = cli(capsys, "models", "list", "--models-dir", d)
    assert code == 0 and out.splitlines()[1].startswith("m                        v1       *")

    # candidate v2 (no signal) vs current v1 on the most recent slice: worse -> exit 1
    code, out, err = cli(capsys, "models", "compare", "m", "--candidate", "v2", "--training-set", str(table), "--models-dir", d)
    assert code == 1
    assert out.splitlines()[0] == "compare m: candidate v2 vs current v1"
    assert "error: candidate v2 is worse than current v1 on auc: 0." in err and "hint: keep v1 current" in err
    # the other way round passes
    promote(root, "m", "v2")
    code, out, err = cli(capsys, "models", "compare", "m", "--candidate", "v1", "--training-set", str(table), "--models-dir", d, "--json")
    res = json.loads(out)
    assert code == 0 and res["candidate_worse"] is False and res["slice"]["rows"] == 600
    assert res["candidate"]["metrics"]["auc"] > res["current"]["metrics"]["auc"] + 0.2
