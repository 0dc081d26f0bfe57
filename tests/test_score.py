"""`fpipe score`: predictions under the model's feature contract; refuses tables that break it (exit 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fpipe.train.export import export_model
from fpipe.train.registry import load_model, promote
from fpipe.train.trainer import train_model
from test_train_model import FEATURES, LABEL, cli, make_frame, spec


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    trained = train_model(spec(), make_frame(), "ts", FEATURES, "label", label_spec=LABEL)
    export_model(
        root, trained, spec(), training_set="s", spine_time_col="ts", key_columns=["user_id"], label="label",
        label_dtype="Boolean", manifest={"feature_definition_hashes": {"a": "h1", "b": "h2", "c": "h3"}},
    )
    promote(root, "m", "v1")
    return root


@pytest.fixture
def table(tmp_path: Path) -> pl.DataFrame:
    return make_frame(n=300, seed=11).drop("label")


def score(capsys: pytest.CaptureFixture[str], registry: Path, frame: pl.DataFrame, tmp_path: Path, *extra: str) -> tuple[int, str, str, Path]:
    inp, out = tmp_path / "features.parquet", tmp_path / "pred.parquet"
    frame.write_parquet(inp)
    code, stdout, stderr = cli(capsys, "score", "m", "--input", str(inp), "--out", str(out), "--models-dir", str(registry), *extra)
    return code, stdout, stderr, inp


@pytest.mark.slow
def test_scores_with_spine_keys_and_time_and_matches_training_encoding(
    registry: Path, table: pl.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = table.with_columns(pl.when(pl.col("user_id") == 5).then(pl.lit("ZZ")).otherwise(pl.col("c")).alias("c"))
    code, out, err, _ = score(capsys, registry, table, tmp_path)
    assert code == 0, err
    assert out == f"scored 300 rows with m v1 -> {tmp_path / 'pred.parquet'}\n"
    assert err == (
        "warning: column 'c': 1 values (0.3%) are categories the model never saw (e.g. 'ZZ'); "
        "they score as missing, as in training\n"
    )
    pred = pl.read_parquet(tmp_path / "pred.parquet")
    assert pred.columns == ["user_id", "ts", "prediction"] and pred.height == 300
    assert pred["user_id"].to_list() == table["user_id"].to_list()
    # an unseen category scores exactly as a missing one
    as_missing = table.with_columns(pl.when(pl.col("c") == "ZZ").then(None).otherwise(pl.col("c")).alias("c"))
    from fpipe.train.score import score_frame

    again, _ = score_frame(load_model(registry, "m"), as_missing, "x")
    assert np.array_equal(again["prediction"].to_numpy(), pred["prediction"].to_numpy())
    assert pred["prediction"].min() > 0 and pred["prediction"].max() < 1


@pytest.mark.slow
def test_renamed_column_is_refused(registry: Path, table: pl.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err, inp = score(capsys, registry, table.rename({"a": "a_renamed"}), tmp_path)
    assert code == 2 and out == ""
    assert err == (
        f"{inp}: error: column 'a' is missing; model 'm' v1 needs it (Float64)\n"
        "  hint: did you mean 'a_renamed'? rename it back to 'a', as the model was trained\n"
    )
    assert not (tmp_path / "pred.parquet").exists()


@pytest.mark.slow
def test_missing_column_is_refused(registry: Path, table: pl.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err, inp = score(capsys, registry, table.drop("b"), tmp_path)
    assert code == 2
    assert err == (
        f"{inp}: error: column 'b' is missing; model 'm' v1 needs it (Float64)\n"
        "  hint: the model needs its features under their training names: a, b, c\n"
    )


@pytest.mark.slow
def test_retyped_columns_are_refused_all_at_once(
    registry: Path, table: pl.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    retyped = table.with_columns(pl.col("a").cast(pl.String), (pl.col("c") == "DL").alias("c"))
    code, _, err, inp = score(capsys, registry, retyped, tmp_path)
    assert code == 2
    assert err == (
        f"{inp}: error: column 'a' is String, model 'm' v1 expects Float64 (float)\n"
        "  hint: cast 'a' to Float64 upstream, or retrain the model on the new type\n"
        f"{inp}: error: column 'c' is Boolean, model 'm' v1 expects String (categorical)\n"
        "  hint: cast 'c' to String upstream, or retrain the model on the new type\n"
        "2 errors\n"
    )


@pytest.mark.slow
def test_incompatible_categories_are_refused(
    registry: Path, table: pl.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err, inp = score(capsys, registry, table.with_columns(pl.col("c").str.to_lowercase()), tmp_path)
    assert code == 2
    assert err == (
        f"{inp}: error: column 'c': 100% of values are categories model 'm' v1 never saw (e.g. 'aa', 'dl', 'ua')\n"
        "  hint: it was trained on 'AA', 'DL', 'UA', 'WN'; fix the encoding upstream, "
        "or pass --allow-unseen-categories to score them as missing\n"
    )
    code, _, _, _ = score(capsys, registry, table.with_columns(pl.col("c").str.to_lowercase()), tmp_path, "--allow-unseen-categories")
    assert code == 0


@pytest.mark.slow
def test_features_built_from_other_definitions_are_refused(
    registry: Path, table: pl.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inp = tmp_path / "features.parquet"
    Path(f"{inp}.manifest.json").write_text('{"feature_definition_hashes": {"a": "h1", "b": "CHANGED", "c": "h3"}}')
    code, _, err, _ = score(capsys, registry, table, tmp_path)
    assert code == 2
    assert err.startswith(f"{inp}: error: feature 'b' was built from a different definition than m v1 was trained on\n")
    assert score(capsys, registry, table, tmp_path, "--ignore-definitions")[0] == 0


def test_unknown_model_and_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "score", "nope", "--input", "x.parquet", "--out", "y.parquet", "--models-dir", str(tmp_path))
    assert code == 2 and err == f"error: no model 'nope' in {tmp_path}\n  hint: train it first: fpipe train nope\n"


@pytest.mark.slow
def test_multiclass_and_regression_predictions(tmp_path: Path) -> None:
    from fpipe.train.score import score_frame

    for objective, kind in (("multi:softprob", "multiclass"), ("reg:squarederror", "regression")):
        frame = make_frame(n=1500, kind=kind)
        s = spec(objective=objective)
        trained = train_model(s, frame, "ts", FEATURES, "label", label_spec=LABEL)
        export_model(
            tmp_path / kind, trained, s, training_set="s", spine_time_col="ts", key_columns=["user_id"], label="label",
            label_dtype=str(frame.schema["label"]), manifest=None,
        )
        out, warnings = score_frame(load_model(tmp_path / kind, "m", "v1"), frame.drop("label"), "x")
        assert warnings == []
        if kind == "multiclass":
            assert out.columns == ["user_id", "ts", "prediction", "proba_high", "proba_low", "proba_mid"]
            probs = out.select(pl.col("^proba_.*$")).to_numpy()
            assert np.allclose(probs.sum(axis=1), 1.0)
            assert set(out["prediction"].unique()) <= {"high", "low", "mid"}
        else:
            assert out.columns == ["user_id", "ts", "prediction"] and out["prediction"].dtype == pl.Float64


@pytest.mark.slow
def test_input_at_a_url_scores_as_the_local_file(
    registry: Path, table: pl.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from http_store import serve

    served = tmp_path / "store"
    served.mkdir()
    table.write_parquet(served / "features.parquet")
    table.write_csv(served / "features.csv")
    local = tmp_path / "local.parquet"
    assert cli(capsys, "score", "m", "--input", str(served / "features.parquet"), "--out", str(local), "--models-dir", str(registry))[0] == 0
    other = tmp_path / "other.manifest.json"  # any name: --manifest names the file itself
    other.write_text('{"feature_definition_hashes": {"a": "h1", "b": "CHANGED", "c": "h3"}}')
    same = tmp_path / "same.json"
    same.write_text('{"feature_definition_hashes": {"a": "h1", "b": "h2", "c": "h3"}}')
    with serve(served) as base:
        url, out = f"{base}/features.parquet", tmp_path / "pred.parquet"
        code, _, err = cli(capsys, "score", "m", "--input", url, "--out", str(out), "--models-dir", str(registry))
        assert code == 0, err
        assert out.read_bytes() == local.read_bytes()
        # nothing beside a URL is read: the unchecked definitions are said, not skipped in silence
        assert err == (
            f"warning: {url}: the feature definitions were not compared with the model's (no manifest is read beside a "
            "URL); pass --manifest FILE, or --ignore-definitions to silence this\n"
        )
        assert cli(capsys, "score", "m", "--input", url, "--out", str(out), "--models-dir", str(registry), "--ignore-definitions")[2] == ""
        code, _, err = cli(capsys, "score", "m", "--input", url, "--out", str(out), "--models-dir", str(registry), "--manifest", str(same))
        assert (code, err) == (0, "")
        code, _, err = cli(capsys, "score", "m", "--input", url, "--out", str(out), "--models-dir", str(registry), "--manifest", str(other))
        assert code == 2 and err.startswith(f"{url}: error: feature 'b' was built from a different definition than m v1")
        code, _, err = cli(capsys, "score", "m", "--input", url, "--out", str(out), "--models-dir", str(registry), "--manifest", str(tmp_path / "nope.json"))
        assert code == 2 and err.startswith(f"{tmp_path / 'nope.json'}: error: no such file\n")
        csv_out = tmp_path / "pred_csv.parquet"
        code, _, err = cli(capsys, "score", "m", "--input", f"{base}/features.csv", "--out", str(csv_out), "--models-dir", str(registry), "--ignore-definitions")
        assert (code, err) == (0, "")
        assert pl.read_parquet(csv_out).get_column("prediction").equals(pl.read_parquet(local).get_column("prediction"))
        # a missing object is one located error that never shows a presigned URL's credential
        code, _, err = cli(capsys, "score", "m", "--input", f"{base}/missing.parquet?X-Amz-Signature=SECRET", "--out", str(out), "--models-dir", str(registry))
        assert code == 2 and err.startswith(f"{base}/missing.parquet?...: error: cannot read the file: ") and "SECRET" not in err
        # the reader quotes the URL as it requested it (re-encoded), and a password before the host: neither is shown
        host = base.removeprefix("http://")
        for query in ("token=SECRET%20x", "sig='SECRET'", 'sig=SECRET"x', "sig=SECRET#frag", "token=SECRET x"):
            code, _, err = cli(capsys, "score", "m", "--input", f"http://user:PASSWORD@{host}/missing.parquet?{query}", "--out", str(out), "--models-dir", str(registry))
            assert code == 2 and err.startswith(f"http://...@{host}/missing.parquet?...: error: cannot read the file: ")
            assert "SECRET" not in err and "PASSWORD" not in err, err
        code, _, err = cli(capsys, "score", "m", "--input", url, "--out", str(out), "--models-dir", str(registry), "--manifest", str(tmp_path))
        assert code == 2 and err.startswith(f"{tmp_path}: error: a folder, not a manifest file\n")
