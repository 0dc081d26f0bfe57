"""Sources on S3 (issue 6: "inputs read by the workers from ... object-store URLs that Polars can read").

A moto S3 server holds the bench events split into three files, as parquet, CSV and NDJSON, and the
definitions name them by `s3://` glob or folder; the credentials and endpoint come from the environment
(`AWS_*`), as they would for a real bucket. Each backfill writes the bytes that the same files on local
disk give: plain, partitioned, and on Dask workers that list and read the bucket themselves. The CSV and
NDJSON files differ in column order and types from file to file, which a local glob reads and Polars' own
multi-file scan of a URL glob refused ("schema names differ", "cannot parse '1.5' as Int64")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from bench.generate import SIZES, generate
from typer.testing import CliRunner

from fpipe.app import app
from fpipe.io.sources import url_files
from helpers import local_cluster, run_cli
from s3_store import BUCKET, s3_server, upload

pytest.importorskip("moto", reason="the S3 tests need moto[s3] and flask (pip install -e '.[dev]')")

SET = "bench"
FORMS = {  # (format, path form) -> the path under a folder holding the three files
    ("parquet", "glob"): "*.parquet",
    ("csv", "glob"): "part-*.csv",
    ("ndjson", "glob"): "*.ndjson",
    ("parquet", "folder"): "",
    ("csv", "folder"): "",
    ("parquet", "hive"): "",  # a folder of part=<i>/ folders
}


def _write_parts(events: pl.DataFrame, root: Path) -> None:
    """The events as three row ranges per format under root/<format>/, in an order the file names keep.

    CSV: the second file has its columns in another order, the third one more column; NDJSON: the first
    file's amounts are whole numbers (an integer column there, floats in the others). A `_SUCCESS` marker, a
    hidden file and a `_temporary/` folder sit in the folders, as a Spark or Hadoop job leaves them."""
    n = events.height
    parts = [events.slice(0, n // 3), events.slice(n // 3, n // 3), events.slice(2 * (n // 3), n)]
    parts[0] = parts[0].with_columns(pl.col("amount").round(0))  # whole amounts, in every format
    for fmt in ("parquet", "csv", "ndjson"):
        (root / fmt).mkdir(parents=True)
        (root / fmt / "_SUCCESS").write_text("")
        (root / fmt / ".part-9.crc").write_text("x")
    # an unfinished job's output under `_temporary/`: a folder's reader leaves it out (else its rows count twice)
    (root / "parquet" / "_temporary" / "0").mkdir(parents=True)
    parts[0].write_parquet(root / "parquet" / "_temporary" / "0" / "part-0.parquet")
    (root / "csv" / "_temporary" / "0").mkdir(parents=True)
    parts[0].write_csv(root / "csv" / "_temporary" / "0" / "part-0.csv")
    for i, part in enumerate(parts):
        part.write_parquet(root / "parquet" / f"part-{i}.parquet")
        (root / "hive" / f"part={i}").mkdir(parents=True)
        part.write_parquet(root / "hive" / f"part={i}" / "data.parquet")
        csv = part.select(list(reversed(part.columns))) if i == 1 else part
        if i == 2:
            csv = csv.with_columns(pl.lit("web").alias("channel"))
        csv.write_csv(root / "csv" / f"part-{i}.csv")
        nd = part.with_columns(pl.col("amount").cast(pl.Int64)) if i == 0 else part
        nd.write_ndjson(root / "ndjson" / f"part-{i}.ndjson")


def _defs(data: Path, tmp: Path, events_path: str, fmt: str) -> Path:
    """The bench definitions with the events at `events_path` (format declared for a folder); the other
    inputs at their absolute local paths."""
    text = (data / "defs" / "bench.yaml").read_text()
    line = "  events: {path: ../events.parquet, "
    assert line in text
    declared = f"format: {fmt}, " if events_path.endswith("/") else ""
    text = text.replace(line, f"  events: {{path: '{events_path}', {declared}")
    for name in ("profiles", "spine"):
        text = text.replace(f"../{name}.parquet", str(data / f"{name}.parquet"))
    defs = tmp / "defs"
    defs.mkdir(parents=True)
    (defs / "bench.yaml").write_text(text)
    return defs


def _backfill(defs: Path, out: Path, *extra: str) -> bytes:
    res = CliRunner().invoke(app, ["--defs", str(defs), "-q", "backfill", SET, "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return out.read_bytes()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = generate(SIZES["T"], tmp_path_factory.mktemp("s3data"))
    _write_parts(pl.read_parquet(data / "events.parquet"), data / "parts")
    return data


@pytest.fixture(scope="module")
def s3(data: Path) -> Iterator[Any]:
    with s3_server() as client:
        upload(client, data / "parts", "events")
        yield client


@pytest.fixture(scope="module")
def local(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], bytes]:
    """The output of a backfill reading each form from local disk."""
    out = {}
    for (fmt, form), pattern in FORMS.items():
        tmp = tmp_path_factory.mktemp(f"local-{fmt}-{form}")
        path = str(data / "parts" / folder(fmt, form) / pattern) if pattern else str(data / "parts" / folder(fmt, form)) + "/"
        out[(fmt, form)] = _backfill(_defs(data, tmp, path, fmt), tmp / "out.parquet")
    return out


def folder(fmt: str, form: str) -> str:
    return "hive" if form == "hive" else fmt


def s3_path(fmt: str, form: str) -> str:
    base = f"s3://{BUCKET}/events/{folder(fmt, form)}/"
    return base + FORMS[(fmt, form)] if form == "glob" else base


@pytest.mark.parametrize(("fmt", "form"), list(FORMS))
def test_s3_glob_or_folder_writes_the_local_bytes(
    data: Path, s3: Any, local: dict[tuple[str, str], bytes], tmp_path: Path, fmt: str, form: str
) -> None:
    assert _backfill(_defs(data, tmp_path, s3_path(fmt, form), fmt), tmp_path / "out.parquet") == local[(fmt, form)]


def test_the_forms_agree_with_each_other(local: dict[tuple[str, str], bytes]) -> None:
    """The split files hold the one events table: every format and form gives the same training set (CSV and
    NDJSON times and amounts survive the round trip)."""
    frames = {k: pl.read_parquet(v) for k, v in local.items()}
    assert len(frames) == len(FORMS)
    first = frames[("parquet", "glob")]
    assert first.height == SIZES["T"].spine
    for frame in frames.values():
        assert frame.equals(first)


def test_s3_csv_glob_partitioned(data: Path, s3: Any, local: dict[tuple[str, str], bytes], tmp_path: Path) -> None:
    defs = _defs(data, tmp_path, s3_path("csv", "glob"), "csv")
    assert _backfill(defs, tmp_path / "out.parquet", "--partitions", "3") == local[("csv", "glob")]


def test_s3_inputs_on_dask_workers(data: Path, s3: Any, local: dict[tuple[str, str], bytes], tmp_path: Path) -> None:
    """The workers start with the credentials in their environment, list the bucket and read it themselves."""
    with local_cluster() as scheduler:
        for fmt in ("csv", "parquet"):
            defs = _defs(data, tmp_path / fmt, s3_path(fmt, "glob"), fmt)
            out = _backfill(defs, tmp_path / f"{fmt}.parquet", "--engine", "dask", "--scheduler", scheduler)
            assert out == local[(fmt, "glob")]


def test_url_files_lists_like_a_local_glob(s3: Any) -> None:
    base = f"s3://{BUCKET}/events/csv"
    assert url_files(f"{base}/part-*.csv") == ([f"{base}/part-{i}.csv" for i in range(3)], False)
    assert url_files(f"{base}/") == ([f"{base}/part-{i}.csv" for i in range(3)], False)  # no _SUCCESS, no hidden file
    hive = f"s3://{BUCKET}/events/hive"
    assert url_files(f"{hive}/") == ([f"{hive}/part={i}/data.parquet" for i in range(3)], True)
    # as Python's glob, `*` does not match a hidden name (`.part-9.crc`); a pattern that spells the dot out does
    assert url_files(f"{base}/*part-*") == ([f"{base}/part-{i}.csv" for i in range(3)], False)
    assert url_files(f"{base}/.part-*") == ([f"{base}/.part-9.crc"], False)
    # one object, or a store without listings: Polars reads the URL as it is
    assert url_files(f"{base}/part-0.csv") is None
    assert url_files("https://example.com/data/*.csv") is None
    assert url_files(f"{base}/part-*.csv?versionId=3") is None


def test_an_s3_glob_matching_nothing_is_one_located_error(
    data: Path, s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = f"s3://{BUCKET}/events/csv/nothing-*.csv"
    defs = _defs(data, tmp_path, path, "csv")
    code, _, err = run_cli(["--defs", str(defs), "-q", "backfill", SET, "--out", str(tmp_path / "x.parquet")], capsys)
    assert code == 2, err
    assert err.startswith(f"{path}: error: no object matches this glob\n  hint: ")
    assert not (tmp_path / "x.parquet").exists()


def test_a_missing_bucket_is_one_located_error_without_the_secret(
    data: Path, s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = "s3://no-such-bucket/events/*.csv"
    defs = _defs(data, tmp_path, path, "csv")
    code, _, err = run_cli(["--defs", str(defs), "-q", "backfill", SET, "--out", str(tmp_path / "x.parquet")], capsys)
    assert code == 2, err
    assert re.match(rf"{re.escape(path)}: error: cannot list the objects: .*404 Not Found", err), err
    assert err.splitlines()[1] == "  hint: check the bucket, the path and the credentials in the environment"
    assert "fpipe-test-secret" not in err and len(err.splitlines()) == 2
    assert not (tmp_path / "x.parquet").exists()


def test_names_with_glob_characters_are_read_once(s3: Any, tmp_path: Path) -> None:
    """A listed object (or a local file) named `a[1].csv` is that file, not a pattern matching `a1.csv` too."""
    from fpipe.errors import DataError
    from fpipe.io.sources import scan

    local = tmp_path / "odd"
    (local / "csv").mkdir(parents=True)
    (local / "nd").mkdir()
    for name, a in (("a[1]", 1), ("a1", 2), ("b", 3)):
        (local / "csv" / f"{name}.csv").write_text(f"a\n{a}\n")
        (local / "nd" / f"{name}.ndjson").write_text(f'{{"a": {a}}}\n')
    base = upload(s3, local, "odd")
    for path in (f"{base}/csv/*.csv", f"{base}/csv/", str(local / "csv" / "*.csv"), str(local / "csv")):
        lf, files = scan(path, "csv")
        assert len(files) == 3 and sorted(lf.collect().get_column("a").to_list()) == [1, 2, 3], path
    for path in (f"{base}/nd/*.ndjson", f"{base}/nd/", str(local / "nd")):  # Polars reads an NDJSON name as a glob
        with pytest.raises(DataError, match=r"an NDJSON file whose name holds '\*', '\?' or '\[' cannot be read by name"):
            scan(path, "ndjson")


@pytest.mark.parametrize("name", ["café", "p%41", "a b", "k=1"])
def test_a_folder_with_a_marker_and_any_name_is_listed(s3: Any, tmp_path: Path, name: str) -> None:
    """A folder holding `_SUCCESS` and `.crc` files is listed whole; a name Polars' glob would percent-encode twice still lists."""
    from fpipe.io.sources import scan

    folder = tmp_path / "named" / name
    folder.mkdir(parents=True)
    pl.DataFrame({"a": [1]}).write_parquet(folder / "part-0.parquet")
    pl.DataFrame({"a": [2]}).write_parquet(folder / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-0.parquet.crc").write_text("x")  # Polars refuses to list a folder of mixed file types
    base = upload(s3, tmp_path / "named", f"named-{len(name)}-{ord(name[0])}")
    lf, files = scan(f"{base}/{name}/", "parquet")
    assert files == [f"{base}/{name}/part-{i}.parquet" for i in range(2)]
    assert lf.collect().get_column("a").to_list() == [1, 2]
