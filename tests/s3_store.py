"""A local S3 for tests: moto's S3 served over HTTP on a free port (`moto[s3]` and Flask, test dependencies),
with the environment Polars' object-store reader takes its endpoint and credentials from."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BUCKET = "fpipe-test"


@contextmanager
def s3_server() -> Iterator[Any]:
    """Start the server, create `BUCKET`, point `AWS_*` at it for this process and the processes it starts
    (a Dask LocalCluster's workers); yields a boto3 client. The environment is restored afterwards."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "fpipe-test-key",
        "AWS_SECRET_ACCESS_KEY": "fpipe-test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def upload(client: Any, folder: Path, prefix: str) -> str:
    """Every file under `folder` to `s3://BUCKET/prefix/<its relative path>`; returns that folder's URL."""
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            client.upload_file(str(f), BUCKET, f"{prefix}/{f.relative_to(folder).as_posix()}")
    return f"s3://{BUCKET}/{prefix}"
