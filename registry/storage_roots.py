"""Storage roots: the one place that decides what kind of place a root names.

A root is an S3 bucket (``s3://bucket[/prefix]``) or a local folder (an absolute path, or
``file:///path``); nothing else is supported. Everything that must tell them apart — the Storage
record's ``type``, ``artifact.path``, the accessors' backend, release sources and demo
destinations — asks :func:`scheme_of` or uses the helpers below. Pure functions: no Django, no
boto3.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from registry.errors import UnknownStorageError

LOCAL = "local"
S3 = "s3"
SUPPORTED_ROOTS = "an absolute local folder, file:///folder, or s3://bucket[/prefix]"


def scheme_of(root: str) -> str:
    """:data:`S3` or :data:`LOCAL` for a storage root (a relative local path is local too).

    Raises:
        UnknownStorageError: another scheme (``gs://``, ``ftp://``, ...).
    """
    if root.startswith("s3://"):
        return S3
    text = root[len("file://") :] if root.startswith("file://") else root
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise UnknownStorageError(
            f"Unknown storage root {root!r}: the {scheme}:// scheme is not supported. Supported "
            f"roots: {SUPPORTED_ROOTS}."
        )
    return LOCAL


def is_s3(root: str) -> bool:
    """Whether ``root`` is an S3 root (``s3://...``)."""
    return scheme_of(root) == S3


def local_path(root: str) -> Path:
    """The folder of a local root (``file://`` dropped, ``~`` expanded; may be relative)."""
    text = root[len("file://") :] if root.startswith("file://") else root
    return Path(text).expanduser()


def normalise_root(root: str | os.PathLike) -> str:
    """A root as Storage records keep it: S3 roots without a trailing slash; local roots
    absolute (a relative path is resolved against the working directory, once) without
    ``file://`` and without a trailing slash.

    Raises:
        UnknownStorageError: an unsupported scheme.
    """
    root = os.fspath(root)
    if scheme_of(root) == S3:
        return root.rstrip("/")
    return str(local_path(root).resolve())


def split_s3(root: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> (``bucket``, ``some/prefix``).

    Raises:
        UnknownStorageError: not an S3 root, or no bucket.
    """
    parts = urlsplit(root)
    if parts.scheme != "s3" or not parts.netloc:
        raise UnknownStorageError(
            f"Storage root {root!r} is not an S3 root: use s3://bucket or s3://bucket/prefix."
        )
    return parts.netloc, parts.path.strip("/")


def join(root: str, key: str) -> Path | str:
    """Where ``key`` is under ``root``: a local ``Path``, or an ``s3://`` URL string."""
    if is_s3(root):
        return f"{root.rstrip('/')}/{key}"
    return local_path(root) / key
