"""Object-store and web URLs among input paths (standard library only: the spec loader imports this)."""

from __future__ import annotations

import os
import re

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str | os.PathLike[str]) -> bool:
    """An object-store or web URL (`s3://bucket/key`, `https://host/file.parquet`), not a local path."""
    return bool(_URL.match(str(path)))
