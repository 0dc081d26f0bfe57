"""Inputs at object-store URLs (issue 6: "inputs read by the workers from shared storage paths or
object-store URLs that Polars can read"). A local HTTP server with byte ranges stands in for the store: the
same Polars object-store reader serves `s3://`, `gs://`, `az://` and `https://`. A backfill whose sources
and spine are URLs writes the bytes a local-path backfill writes: plain, partitioned, and on a Dask
LocalCluster whose workers read the URLs themselves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.generate import SIZES, generate
from typer.testing import CliRunner

from fpipe.app import app
from fpipe.commands import backfill as backfill_cmd
from fpipe.io.urls import is_url
from helpers import run_cli
from http_store import serve

SET = "bench"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(SIZES["T"], tmp_path_factory.mktemp("urldata"))


@pytest.fixture(scope="module")
def store(data: Path) -> Iterator[str]:
    with serve(data) as base:
        yield base


def url_defs(data: Path, base: str, tmp: Path) -> Path:
    """The bench definitions with every input path replaced by its URL."""
    text = (data / "defs" / "bench.yaml").read_text()
    for name in ("events", "profiles", "spine"):
        assert f"../{name}.parquet" in text
        text = text.replace(f"../{name}.parquet", f"{base}/{name}.parquet")
    defs = tmp / "defs"
    defs.mkdir()
    (defs / "bench.yaml").write_text(text)
    return defs


def backfill(defs: Path, out: Path, *extra: str) -> str:
    res = CliRunner().invoke(app, ["--defs", str(defs), "-q", "backfill", SET, "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def local_bytes(data: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("local") / "local.parquet"
    backfill(data / "defs", out)
    return out.read_bytes()


def test_is_url() -> None:
    assert all(is_url(u) for u in ("s3://b/k.parquet", "gs://b/k", "az://c/p", "https://h/f.csv", "file:///tmp/x"))
    assert not any(is_url(p) for p in ("data/x.parquet", "/abs/x.parquet", "~/x.csv", "C:\\data\\x.csv", "a:b"))


@pytest.mark.parametrize("extra", [[], ["--partitions", "3"]], ids=["plain", "partitioned"])
def test_url_inputs_write_the_local_bytes(data: Path, store: str, local_bytes: bytes, tmp_path: Path, extra: list[str]) -> None:
    defs = url_defs(data, store, tmp_path)
    out = tmp_path / "url.parquet"
    backfill(defs, out, *extra)
    assert out.read_bytes() == local_bytes
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    events = manifest["inputs"]["events"]
    assert events["path"] == f"{store}/events.parquet"  # the URL, not mangled into a local path
    assert events["files"] == [{"path": f"{store}/events.parquet", "bytes": None, "sha256": None, "remote": True}]


def test_url_spine_option_and_loader_keep_the_url(data: Path, store: str, local_bytes: bytes, tmp_path: Path) -> None:
    from fpipe.spec.loader import load_definitions

    defs = url_defs(data, store, tmp_path)
    loaded = load_definitions(defs)
    assert loaded.sources["events"].path == f"{store}/events.parquet"
    assert loaded.spines["requests"].path == f"{store}/spine.parquet"
    # local sources, the spine given as a URL on the command line
    out = tmp_path / "spine_url.parquet"
    backfill(data / "defs", out, "--spine", f"{store}/spine.parquet")
    assert out.read_bytes() == local_bytes


def test_url_inputs_on_dask_workers(data: Path, store: str, local_bytes: bytes, tmp_path: Path, scheduler: str) -> None:
    defs = url_defs(data, store, tmp_path)
    out = tmp_path / "dask.parquet"
    backfill(defs, out, "--engine", "dask", "--scheduler", scheduler)
    assert out.read_bytes() == local_bytes


def test_missing_url_is_one_located_error(data: Path, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    defs = url_defs(data, store, tmp_path)
    text = (defs / "bench.yaml").read_text().replace(f"{store}/events.parquet", f"{store}/nowhere/events.parquet")
    (defs / "bench.yaml").write_text(text)
    code, _, err = run_cli(["--defs", str(defs), "-q", "backfill", SET, "--out", str(tmp_path / "x.parquet")], capsys)
    assert code == 2, err
    assert err.startswith(f"{store}/nowhere/events.parquet: error: cannot read source 'events': ")
    assert "404" in err
    assert not (tmp_path / "x.parquet").exists()


def test_memory_limit_with_url_inputs_asks_for_partitions(data: Path, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    defs = url_defs(data, store, tmp_path)
    code, _, err = run_cli(["--defs", str(defs), "-q", "backfill", SET, "--out", str(tmp_path / "x.parquet"), "--memory-limit", "4GB"], capsys)
    assert code == 2, err
    assert f"--memory-limit chooses the partitions from the inputs' sizes on disk, and {store}/events.parquet is a URL" in err
    assert "hint: pass --partitions N instead" in err


def test_serving_log_at_a_url(data: Path, store: str, tmp_path: Path) -> None:
    """`skew-report --served URL`: the harness's serving log (fpipe's own values) passes."""
    from bench import run

    out = tmp_path / "all.parquet"
    backfill(data / "defs", out)
    run.write_serving_log(data, out, data / "served.parquet")
    try:
        res = CliRunner().invoke(
            app, ["--defs", str(data / "defs"), "-q", "skew-report", SET, "--served", f"{store}/served.parquet", "--format", "json"]
        )
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["status"] == "pass"
    finally:
        (data / "served.parquet").unlink()


def test_a_presigned_urls_query_is_never_written(data: Path, store: str, local_bytes: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A presigned URL's query string is a credential: the build reads it, but the manifest (inputs and
    command line) and error messages show the URL without it."""
    secret = "X-Amz-Signature=s3cr3t"
    defs = url_defs(data, store, tmp_path)
    text = (defs / "bench.yaml").read_text().replace(f"{store}/events.parquet", f"'{store}/events.parquet?{secret}'")
    (defs / "bench.yaml").write_text(text)
    out = tmp_path / "signed.parquet"
    backfill(defs, out, "--spine", f"{store}/spine.parquet?{secret}")
    assert out.read_bytes() == local_bytes
    manifest = Path(f"{out}.manifest.json").read_text()
    assert "s3cr3t" not in manifest
    assert json.loads(manifest)["inputs"]["events"]["path"] == f"{store}/events.parquet?..."
    (defs / "bench.yaml").write_text(text.replace(f"{store}/events.parquet?", f"{store}/gone.parquet?"))
    code, _, err = run_cli(["--defs", str(defs), "-q", "backfill", SET, "--out", str(tmp_path / "x.parquet")], capsys)
    assert code == 2 and err.startswith(f"{store}/gone.parquet?...: error: cannot read")
    assert "s3cr3t" not in err


def test_re_signing_a_url_keeps_the_definition_hash(data: Path, store: str, tmp_path: Path) -> None:
    """A presigned URL is re-signed when its credential expires; the definitions have not changed, so neither
    does `definition_hash` (models and `score` compare it). Another object is another definition."""
    from fpipe.project import Project

    defs = url_defs(data, store, tmp_path)
    text = (defs / "bench.yaml").read_text()

    def definition_hash(events_url: str) -> str:
        (defs / "bench.yaml").write_text(text.replace(f"{store}/events.parquet", events_url))
        return Project.load(defs).definition_hash(SET)

    one = definition_hash(f"'{store}/events.parquet?X-Amz-Signature=one&X-Amz-Date=20261128T000000Z'")
    assert definition_hash(f"'{store}/events.parquet?X-Amz-Signature=two&X-Amz-Date=20261129T000000Z'") == one
    assert definition_hash(f"'{store}/events.parquet?sv=2024&se=2026-12-01&sig=abc'") == one  # an Azure SAS
    # the same object unsigned is the same definition; another object, or another version of it, is not
    assert definition_hash(f"{store}/events.parquet") == one
    others = {definition_hash(f"'{store}/events2.parquet?X-Amz-Signature=one'"),
              definition_hash(f"'{store}/events.parquet?versionId=1&X-Amz-Signature=one'"),
              definition_hash(f"'{store}/events.parquet?versionId=2&X-Amz-Signature=one'")}
    assert one not in others and len(others) == 3
    # only input paths lose their credential: a URL-like string elsewhere (a default) is hashed whole
    for default in ("https://shop/?ref=a", "https://shop/?ref=b"):
        (defs / "bench.yaml").write_text(text.replace(
            "user_tier: {entity: user, source: profiles, column: tier, agg: latest}",
            f"user_tier: {{entity: user, source: profiles, column: tier, agg: latest, default: '{default}'}}"))
        others.add(Project.load(defs).definition_hash(SET))
    assert len(others) == 5
    # the manifest's hash is this one
    (defs / "bench.yaml").write_text(text.replace(f"{store}/events.parquet", f"'{store}/events.parquet?X-Amz-Signature=three'"))
    out = tmp_path / "signed.parquet"
    backfill(defs, out)
    assert json.loads(Path(f"{out}.manifest.json").read_text())["definition_hash"] == one


def test_no_query_string_in_partitioned_errors_option_forms_or_list(
    data: Path, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where a plain build already hid a presigned URL's query, the other paths must too: a missing URL under
    --partitions (was an internal error printing the URL and the server's page), `--spine=URL` in the
    manifest's command, the --memory-limit error, and `fpipe list` (which also broke `http://` into `http:/`)."""
    secret = "X-Amz-Signature=s3cr3t"
    defs = url_defs(data, store, tmp_path)
    text = (defs / "bench.yaml").read_text()
    (defs / "bench.yaml").write_text(text.replace(f"{store}/events.parquet", f"'{store}/gone.parquet?{secret}'"))
    code, _, err = run_cli(["--defs", str(defs), "-q", "backfill", SET, "--out", str(tmp_path / "x.parquet"), "--partitions", "3"], capsys)
    assert code == 2 and err.startswith(f"{store}/gone.parquet?...: error: cannot read source") and "s3cr3t" not in err, err
    code, _, err = run_cli(["--defs", str(defs), "-q", "backfill", SET, "--out", str(tmp_path / "x.parquet"), "--memory-limit", "4GB"], capsys)
    assert code == 2 and f"{store}/gone.parquet?... is a URL" in err and "s3cr3t" not in err, err
    code, out, err = run_cli(["--defs", str(defs), "--no-color", "list"], capsys)
    assert code == 0 and "gone.parquet?..." in out and "s3cr3t" not in out and "http:/1" not in out, out
    # the manifest's command line: `--spine URL` and `--spine=URL` alike
    assert backfill_cmd._shown_arg(f"--spine={store}/spine.parquet?{secret}") == f"--spine={store}/spine.parquet?..."
    assert backfill_cmd._shown_arg(f"{store}/spine.parquet?{secret}") == f"{store}/spine.parquet?..."
    assert backfill_cmd._shown_arg("--out=a?b.parquet") == "--out=a?b.parquet"  # not a URL: as typed


def test_any_diagnostic_hides_a_urls_query() -> None:
    """The mechanism under every message: whatever `file` a diagnostic is given, a URL shows without its
    query (in text and JSON); local paths stay as given."""
    from fpipe.errors import Diagnostic

    d = Diagnostic("cannot read", file="https://h/f.parquet?X-Amz-Signature=s3cr3t", line=3)
    assert d.format() == "https://h/f.parquet?...:3: error: cannot read"
    assert d.to_json()["file"] == "https://h/f.parquet?..."
    assert Diagnostic("x", file="data/a?b.csv").format() == "data/a?b.csv: error: x"


def test_shown_urls_carry_no_credential() -> None:
    from fpipe.io.urls import scrub_urls, shown_url

    assert shown_url("s3://bucket/events/*.parquet") == "s3://bucket/events/*.parquet"
    assert shown_url("https://h/e.parquet?X-Amz-Signature=abc&versionId=1") == "https://h/e.parquet?..."
    assert shown_url("https://user:pw@h:8080/e.parquet") == "https://...@h:8080/e.parquet"
    assert shown_url("s3://key@bucket/e.parquet?sig=1") == "s3://...@bucket/e.parquet?..."
    assert shown_url("https://h/a@b.parquet") == "https://h/a@b.parquet"  # an @ in the path is not a user
    message = "GET https://u:pw@h/x.parquet?sig=%27S%27 in 3ms - 404; also 'gs://b/y.parquet?X-Goog-Signature=S2'"
    assert scrub_urls(message) == "GET https://...@h/x.parquet?... in 3ms - 404; also 'gs://b/y.parquet?...'"
