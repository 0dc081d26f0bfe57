"""Object-store and web URLs among input paths (standard library only: the spec loader imports this)."""

from __future__ import annotations

import os
import re

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str | os.PathLike[str]) -> bool:
    """An object-store or web URL (`s3://bucket/key`, `https://host/file.parquet`), not a local path."""
    return bool(_URL.match(str(path)))


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@]*@")


def shown_url(url: str) -> str:
    """A URL as messages and manifests show it: without its query string, which for a presigned URL is a
    credential (`X-Amz-Signature=...`), and without a user and password before the host (`...@host`)."""
    base, sep, _ = url.partition("?")
    return _USERINFO.sub(r"\1...@", base) + ("?..." if sep else "")


# a URL inside free text (a reader's error message quotes the URL as it requested it, percent-encoded)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def scrub_urls(text: str) -> str:
    """`text` with every URL in it as `shown_url` shows it: an error message from a reader may quote the
    URL it requested, whose query (re-encoded: not the text the user typed) is a presigned credential."""
    return _URL_IN_TEXT.sub(lambda m: shown_url(m.group(0)), text)


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
