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


# query parameters of presigned URLs that carry a credential or its validity, not which object is read:
# AWS SigV4/V2 (X-Amz-*, AWSAccessKeyId, Signature, Expires), GCS (X-Goog-*, GoogleAccessId), Azure SAS
_CREDENTIAL_PREFIXES = ("x-amz-", "x-goog-")
_CREDENTIAL_NAMES = frozenset({
    "awsaccesskeyid", "signature", "expires", "googleaccessid", "sig", "se", "st", "sv", "sp", "spr", "sr", "srt",
    "ss", "si", "sip", "skoid", "sktid", "skt", "ske", "sks", "skv", "sdd", "token", "access_token",
})


def identity_url(url: str) -> str:
    """A URL as far as it names the data: without the query parameters of a presigned URL's credential, so
    re-signing it keeps its identity; parameters that select data (`versionId`, `generation`) stay."""
    from urllib.parse import parse_qsl, urlencode

    base, sep, query = url.partition("?")
    if not sep:
        return url
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
            if not (k.lower().startswith(_CREDENTIAL_PREFIXES) or k.lower() in _CREDENTIAL_NAMES)]
    return base + ("?" + urlencode(sorted(kept)) if kept else "")
