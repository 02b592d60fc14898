"""The S3 backend: boto3 for metadata, ranged reads and managed (multi-threaded) downloads.

The endpoint is the storage record's ``endpoint_url``, else ``$AWS_ENDPOINT_URL_S3`` or
``$AWS_ENDPOINT_URL`` (e.g. a MinIO or moto server), else AWS. The region is the record's
``region`` (``us-east-1`` when unset). Anonymous storages send unsigned requests (public
buckets); others sign with boto3's usual credential chain (environment, profile, instance role).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber

from registry.accessors.base import Backend, FileEntry, ObjectInfo, check_key
from registry.accessors.remote_file import RemoteFile
from registry.errors import (
    ObjectNotFoundError,
    StorageAccessDeniedError,
    StorageError,
    StorageUnreachableError,
)
from registry.storage_roots import split_s3

DEFAULT_REGION = "us-east-1"
#: boto3's own defaults (what ``client.download_file`` uses): 8 MiB parts, 10 threads
TRANSFER_CONFIG = TransferConfig()
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_DENIED = {
    "403",
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
}
_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)


class _RequestCounter:
    """Counts HTTP requests sent by the clients of this module (a botocore event hook)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def __call__(self, **_: Any) -> None:  # must return None: botocore treats a value as a reply
        with self._lock:
            self.value += 1


_REQUESTS = _RequestCounter()


def etag_hash(etag: str) -> tuple[str, str]:
    """An S3 ETag as (hash, hash_type): ``md5`` for a single-part upload, ``md5-n`` for a
    multipart one (``<hex>-<N>``), empty when there is none."""
    etag = etag.strip('"')
    return etag, ("md5-n" if "-" in etag else ("md5" if etag else ""))


def request_count() -> int:
    """HTTP requests this process has sent to S3 through the backends (tests, benchmarks)."""
    return _REQUESTS.value


def resolve_endpoint(endpoint_url: str = "") -> str:
    """The S3 endpoint to use: the storage's own, else the environment's, else AWS (``""``)."""
    return (
        endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3", "")
        or os.environ.get("AWS_ENDPOINT_URL", "")
    )


@functools.lru_cache(maxsize=32)
def _session_and_client(
    endpoint: str, region: str, anonymous: bool, credential_env: tuple[str | None, ...], pid: int
) -> tuple[boto3.session.Session, Any]:
    """One boto3 session and S3 client per configuration (clients are thread-safe).

    ``credential_env`` and ``pid`` are only part of the cache key: a change of the credential
    variables gives a new client, and so does a forked worker process (a client's connection
    pool must not be shared across a fork).
    """
    session = boto3.session.Session(region_name=region)
    options: dict[str, Any] = {
        "region_name": region,
        "max_pool_connections": 32,
        "retries": {"max_attempts": 4, "mode": "standard"},
    }
    if anonymous:
        options["signature_version"] = UNSIGNED
    if endpoint:
        options["s3"] = {"addressing_style": "path"}  # custom endpoints rarely resolve vhosts
    client = session.client("s3", endpoint_url=endpoint or None, config=Config(**options))
    client.meta.events.register("before-send.s3", _REQUESTS)
    return session, client


class _KnownSize(BaseSubscriber):
    """Tells s3transfer the object's size, so it does not send a HEAD of its own."""

    def __init__(self, size: int) -> None:
        self._size = size

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._size)


class S3Backend(Backend):
    """Objects under ``s3://bucket[/prefix]``.

    Args:
        root: the storage root, ``s3://bucket`` or ``s3://bucket/prefix``.
        endpoint_url: custom endpoint (MinIO, moto, ...); ``""`` for the environment/AWS.
        region: bucket region; ``""`` for us-east-1.
        anonymous: send unsigned requests (public buckets, no credentials needed).
    """

    def __init__(
        self, root: str, *, endpoint_url: str = "", region: str = "", anonymous: bool = False
    ) -> None:
        self.root = root
        self.bucket, self.prefix = split_s3(root)
        self.endpoint_url = resolve_endpoint(endpoint_url)
        self.region = region or DEFAULT_REGION
        self.anonymous = anonymous

    # --- clients and names ------------------------------------------------------------------

    def _session_client(self) -> tuple[boto3.session.Session, Any]:
        env = tuple(os.environ.get(name) for name in _CREDENTIAL_VARIABLES)
        return _session_and_client(self.endpoint_url, self.region, self.anonymous, env, os.getpid())

    @property
    def client(self) -> Any:
        """The boto3 S3 client of this storage's configuration."""
        return self._session_client()[1]

    def object_key(self, key: str) -> str:
        """The S3 key of an artifact key (the root's prefix joined with the key)."""
        check_key(key, self.root)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def cache_relpath(self, key: str) -> PurePosixPath:
        return PurePosixPath(self.bucket, *self.object_key(key).split("/"))

    @property
    def endpoint_label(self) -> str:
        """The endpoint, as shown in messages."""
        return self.endpoint_url or f"AWS S3 ({self.region})"

    # --- errors -----------------------------------------------------------------------------

    def _denied_hint(self) -> str:
        if self.anonymous:
            return (
                "The storage is read anonymously (unsigned requests, Storage.anonymous=True) and "
                "the object is not public: set anonymous=False on the Storage record and provide "
                "AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) allowed "
                "to s3:GetObject on it."
            )
        return (
            "Check the AWS credentials in use (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
            f"AWS_PROFILE): they must be valid for {self.endpoint_label} and allowed "
            "s3:GetObject and s3:ListBucket there; for a public bucket set anonymous=True on the "
            "Storage record."
        )

    def translate(self, exc: Exception, key: str) -> StorageError:
        """A user-facing error for a boto3 failure on ``key`` (names key, root, what to do)."""
        where = f"artifact key {key!r} in storage {self.root!r} ({self.uri(key)})"
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _NOT_FOUND or status == 404:
                what = (
                    f"bucket {self.bucket!r} does not exist"
                    if code == "NoSuchBucket"
                    else "no such object"
                )
                return ObjectNotFoundError(
                    f"Cannot read {where}: {what} (HTTP 404 {code}) at {self.endpoint_label}. "
                    "Check the artifact's key and the storage root and endpoint; if the object was "
                    "moved or deleted, restore it or delete the artifact record."
                )
            if code in _DENIED or status == 403:
                return StorageAccessDeniedError(
                    f"Access denied to {where} (HTTP 403 {code}). {self._denied_hint()}"
                )
            message = error.get("Message", "")
            return StorageError(f"Cannot read {where}: S3 error {code} (HTTP {status}) {message}")
        if isinstance(exc, NoCredentialsError):
            return StorageAccessDeniedError(
                f"Cannot read {where}: no AWS credentials found. {self._denied_hint()}"
            )
        if isinstance(exc, EndpointConnectionError | BotoConnectionError):
            return StorageUnreachableError(
                f"Cannot reach {self.endpoint_label} to read {where}: {exc}. Check the network "
                "and the endpoint (Storage.endpoint_url or AWS_ENDPOINT_URL)."
            )
        return StorageError(f"Cannot read {where}: {exc}")

    @staticmethod
    def _is_not_found(exc: ClientError) -> bool:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return (
            code in _NOT_FOUND
            or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
        )

    # --- Backend ----------------------------------------------------------------------------

    def stat(self, key: str, *, with_hash: bool = False) -> ObjectInfo:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if self._is_not_found(exc):
                files = self.list_files(key)
                if files:
                    return ObjectInfo(size=sum(f.size for f in files), is_dir=True)
            raise self.translate(exc, key) from exc
        except BotoCoreError as exc:
            raise self.translate(exc, key) from exc
        etag, hash_type = etag_hash(head.get("ETag", ""))
        return ObjectInfo(size=head["ContentLength"], hash=etag, hash_type=hash_type)

    def multipart_part_size(self, key: str) -> int | None:
        """The size of part 1 of a multipart upload (HEAD with ``partNumber=1``), else ``None``.

        Only a hint for recomputing a multipart ETag: a storage that does not answer is not an
        error, the caller then tries the usual part sizes.
        """
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=self.object_key(key), PartNumber=1
            )
        except (ClientError, BotoCoreError):
            return None
        return int(head["ContentLength"]) if head.get("PartsCount") else None

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            response = self.client.get_object(
                Bucket=self.bucket,
                Key=self.object_key(key),
                Range=f"bytes={start}-{start + length - 1}",
            )
            return response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self.translate(exc, key) from exc

    def _transfer(self, key: str, items: Sequence[tuple[str, Path, int | None]]) -> None:
        """Download ``(s3 key, destination, size)`` items with boto3's managed transfer."""
        try:
            with TransferManager(self.client, TRANSFER_CONFIG) as manager:
                futures = [
                    manager.download(
                        self.bucket,
                        s3_key,
                        str(dest),
                        subscribers=[_KnownSize(size)] if size is not None else None,
                    )
                    for s3_key, dest, size in items
                ]
                for future in futures:
                    future.result()
        except (ClientError, BotoCoreError) as exc:
            raise self.translate(exc, key) from exc

    def download(self, key: str, dest: Path, size: int | None = None) -> None:
        self._transfer(key, [(self.object_key(key), dest, size)])

    def list_files(self, key: str) -> list[FileEntry]:
        prefix = self.object_key(key).rstrip("/") + "/"
        files = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    rel = obj["Key"][len(prefix) :]
                    if rel and not rel.endswith("/"):
                        etag, hash_type = etag_hash(obj.get("ETag", ""))
                        files.append(FileEntry(rel, int(obj["Size"]), etag, hash_type))
        except (ClientError, BotoCoreError) as exc:
            raise self.translate(exc, key) from exc
        return files

    def download_files(self, key: str, files: Sequence[FileEntry], dest: Path) -> None:
        prefix = self.object_key(key).rstrip("/") + "/"
        items = []
        for entry in files:
            target = dest / entry.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            items.append((prefix + entry.relpath, target, entry.size))
        self._transfer(key, items)

    def put_file(self, key: str, source: Path) -> None:
        """Upload with boto3's managed transfer: streamed from the file, multipart (8 MiB parts)
        above 8 MiB, so the object's ETag is the hash :func:`registry.accessors.hashing.
        upload_hash` gives. A failed multipart upload is aborted by the transfer; a killed one
        leaves only parts, never an object at the key."""
        try:
            self.client.upload_file(
                str(source), self.bucket, self.object_key(key), Config=TRANSFER_CONFIG
            )
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            # boto3 wraps the client's error without chaining it as the cause
            cause = (
                (exc.__cause__ or exc.__context__) if isinstance(exc, S3UploadFailedError) else exc
            )
            translated = self.translate(cause or exc, key)
            raise type(translated)(str(translated).replace("Cannot read", "Cannot write")) from exc

    def remove(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self.translate(exc, key) from exc

    def open(self, key: str) -> RemoteFile:
        info = self.stat(key)
        if info.is_dir:
            raise StorageError(
                f"Artifact key {key!r} in storage {self.root!r} is a folder ({self.uri(key)}), "
                "not a file: open it as a tiledbsoma artifact or cache() it."
            )
        return RemoteFile(functools.partial(self.read_range, key), info.size, self.uri(key))

    def tiledb_config(self) -> dict[str, str]:
        """TileDB VFS settings for this storage (region, endpoint, signing, credentials)."""
        config = {
            "vfs.s3.region": self.region,
            "vfs.s3.no_sign_request": "true" if self.anonymous else "false",
        }
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            config["vfs.s3.endpoint_override"] = parts.netloc + parts.path.rstrip("/")
            config["vfs.s3.scheme"] = parts.scheme or "https"
            # path-style requests: custom endpoints (MinIO, moto) rarely resolve bucket vhosts
            config["vfs.s3.use_virtual_addressing"] = "false"
        if not self.anonymous:
            credentials = self._session_client()[0].get_credentials()
            if credentials is not None:
                frozen = credentials.get_frozen_credentials()
                config["vfs.s3.aws_access_key_id"] = frozen.access_key
                config["vfs.s3.aws_secret_access_key"] = frozen.secret_key
                if frozen.token:
                    config["vfs.s3.aws_session_token"] = frozen.token
        return config
