"""io/writers.py: atomic writes leave the whole new file or the old one, with an ordinary file mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpipe.io import writers
from fpipe.io.writers import atomic_path, write_text


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_output_has_the_mode_of_a_plain_write(tmp_path: Path, umask_022: None) -> None:
    write_text("x\n", tmp_path / "out" / "a.txt")
    (tmp_path / "plain.txt").write_text("x\n")
    assert stat.S_IMODE((tmp_path / "out" / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_fsync_flushes_the_temp_file_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    target = tmp_path / "a.txt"
    monkeypatch.setattr(writers.os, "fsync", lambda fd: synced.append(not target.exists()))
    with atomic_path(target) as tmp:
        tmp.write_text("x")
    assert synced == []
    target.unlink()
    with atomic_path(target, fsync=True) as tmp:
        tmp.write_text("x")
    assert synced == [True] and target.read_text() == "x"
