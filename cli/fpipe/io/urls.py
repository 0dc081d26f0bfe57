"""Object-store and web URLs among input paths (standard library only: the spec loader imports this)."""

from __future__ import annotations

import os
import re

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str | os.PathLike[str]) -> bool:
    """An object-store or web URL (`s3://bucket/key`, `https://host/file.parquet`), not a local path."""
    return bool(_URL.match(str(path)))


def shown_url(url: str) -> str:
    """A URL as messages and manifests show it: without its query string, which for a presigned URL is a
    credential (`X-Amz-Signature=...`)."""
    base, sep, _ = url.partition("?")
    return base + ("?..." if sep else "")
