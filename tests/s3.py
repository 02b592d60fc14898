"""A real S3 endpoint for tests: moto's server on loopback (never a patched client).

Fixtures (registered in ``tests/conftest.py`` with ``pytest_plugins``):

- ``s3_server`` (session): starts ``moto_server`` on a free port, points ``AWS_ENDPOINT_URL`` and
  test credentials at it for the session, yields the endpoint URL.
- ``s3_bucket``: a fresh, uniquely named bucket on that server (emptied and deleted afterwards).

Helpers: :func:`start_moto_server` (e.g. a second server with IAM auth enforced),
:func:`s3_client`, :func:`upload` (a file or a folder), :func:`make_public`,
:func:`enforce_auth`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: variables that would send the tests' requests elsewhere or with other credentials
_CLEARED = ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SECURITY_TOKEN")


@dataclass
class MotoServer:
    """A running moto server process."""

    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        """Terminate the server (kill it if it does not stop within 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _moto_command(port: int) -> list[str]:
    executable = Path(sys.executable).parent / "moto_server"
    if executable.exists():
        return [str(executable), "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def start_moto_server(env: dict[str, str] | None = None, timeout: float = 30.0) -> MotoServer:
    """Start a moto server on a free loopback port and wait until it answers.

    Args:
        env: extra environment variables of the server (e.g. ``INITIAL_NO_AUTH_ACTION_COUNT``).
        timeout: seconds to wait for the server.
    """
    port = _free_port()
    process = subprocess.Popen(
        _moto_command(port),
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2):
                return MotoServer(url, process)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto server did not start on {url}") from None
            time.sleep(0.1)


def enforce_auth(url: str, enabled: bool = True) -> None:
    """Make a moto server check signatures and IAM permissions of every request from now on
    (``/moto-api/reset-auth``; moto's ``INITIAL_NO_AUTH_ACTION_COUNT``)."""
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth",
        data=b"0" if enabled else b"inf",
        method="POST",
        headers={"Content-Type": "text/plain"},  # not form data: moto reads the raw body
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        json.loads(response.read())


def s3_client(endpoint_url: str | None = None, **config: Any) -> Any:
    """A boto3 S3 client for the test endpoint (``AWS_ENDPOINT_URL`` by default)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or os.environ["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(**config) if config else None,
    )


def upload(bucket: str, path: Path, key: str, *, client: Any = None, **extra: Any) -> str:
    """Upload a file to ``key``, or a folder's files under ``key/`` (relative paths kept).

    Args:
        bucket: the bucket.
        path: a file or a folder.
        key: the object key (or key prefix for a folder).
        client: a boto3 client (default: the test endpoint's).
        **extra: ``ExtraArgs`` of ``upload_file`` (e.g. ``ACL="private"``).

    Returns:
        ``key``.
    """
    client = client or s3_client()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        object_key = key if file == path else f"{key}/{file.relative_to(path).as_posix()}"
        client.upload_file(str(file), bucket, object_key, ExtraArgs=extra or None)
    return key


def make_public(bucket: str, client: Any = None) -> None:
    """Let anyone read the bucket's objects (a bucket policy, as on public data buckets)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    (client or s3_client()).put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def empty_and_delete(bucket: str, client: Any = None) -> None:
    """Delete a bucket and everything in it."""
    client = client or s3_client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server for the session; ``AWS_ENDPOINT_URL`` and test credentials point at it."""
    server = start_moto_server()
    patch = pytest.MonkeyPatch()
    for name in _CLEARED:
        patch.delenv(name, raising=False)
    for name, value in {**TEST_CREDENTIALS, "AWS_ENDPOINT_URL": server.url}.items():
        patch.setenv(name, value)
    try:
        yield server.url
    finally:
        patch.undo()
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> Iterator[str]:
    """A fresh bucket (unique name) on the session's S3 server; deleted after the test."""
    name = f"cr-test-{uuid.uuid4().hex[:16]}"
    client = s3_client(s3_server)
    client.create_bucket(Bucket=name)
    yield name
    empty_and_delete(name, client)
