"""The model registry's files on disk: immutable version directories and the `current` pointer.

    models/<name>/v1/  model.ubj  metadata.json  model_card.md  *.svg
    models/<name>/current

A version directory is filled under a temporary name and renamed into place, so it appears whole or not at
all, and it is never overwritten: when two trainings race for `vN` the loser takes `vN+1`. The pointer is
replaced with `writers.atomic_path` (flushed to disk before the rename). What goes into the files is built
by `train/` (export.py, registry.py); this module only writes it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from fpipe.errors import UsageError
from fpipe.io.writers import atomic_path

VERSION_RE = re.compile(r"^v(\d+)$")


def versions_of(models_dir: Path, name: str) -> list[str]:
    """The version directories of `name` (`v1`, `v2`, ...), in numeric order."""
    root = models_dir / name
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in root.iterdir() if p.is_dir() and (m := VERSION_RE.match(p.name))]
    return [v for _, v in sorted(found)]


def write_version(
    models_dir: Path, name: str, files_for: Callable[[str], Mapping[str, bytes | str]], attempts: int = 20
) -> tuple[str, Path]:
    """Create the next `vN` of `name` holding `files_for(version)` (file name -> bytes or text); returns (version, path).

    The files are written into a temp directory beside the versions, flushed, and the directory is renamed
    to `vN`; `os.rename` refuses a non-empty `vN` that another process created meanwhile, and then the next
    number is tried.
    """
    root = models_dir / name
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(attempts):
        existing = versions_of(models_dir, name)
        n = int(existing[-1][1:]) + 1 if existing else 1
        version = f"v{n}"
        tmp = root / f".tmp-{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for fname, content in files_for(version).items():
                if isinstance(content, bytes):
                    (tmp / fname).write_bytes(content)
                else:
                    (tmp / fname).write_text(content)
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            final = root / version
            if final.exists():
                continue
            os.rename(tmp, final)  # fails when another process created `final` meanwhile: never overwrites
            return version, final
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    raise UsageError(f"could not create a new version of model '{name}' in {root}", hint="is another training running?")


def write_pointer(path: Path, text: str) -> None:
    """Replace the `current` pointer file atomically."""
    with atomic_path(path, fsync=True) as tmp:
        tmp.write_text(text)
