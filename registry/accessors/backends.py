"""Pick the backend of a storage root: a local folder or S3.

Any object with the fields of a Storage record (``root``, ``endpoint_url``, ``region``,
``anonymous``) will do, saved or not; nothing here queries the database.
"""

from __future__ import annotations

from registry import storage_roots
from registry.accessors.base import Backend, StorageLike
from registry.accessors.local import LocalBackend
from registry.accessors.s3 import S3Backend
from registry.errors import UnknownStorageError
from registry.storage_roots import SUPPORTED_ROOTS


def backend_for(storage: StorageLike) -> Backend:
    """The backend that reads the objects of ``storage``.

    Raises:
        UnknownStorageError: the root's scheme is not supported (``gs://``, ``ftp://``, ...), or
            a local root is relative or not an existing folder.
    """
    root = storage.root
    if storage_roots.scheme_of(root) == storage_roots.S3:
        return S3Backend(
            root,
            endpoint_url=storage.endpoint_url or "",
            region=storage.region or "",
            anonymous=bool(storage.anonymous),
        )
    path = storage_roots.local_path(root)
    if not path.is_absolute():
        raise UnknownStorageError(
            f"Unknown storage root {root!r}: a local root must be an absolute path (it would "
            f"depend on the working directory). Supported roots: {SUPPORTED_ROOTS}. Fix the root "
            "of the Storage record."
        )
    if not path.is_dir():
        raise UnknownStorageError(
            f"Unknown storage root {root!r}: no such folder on this machine. Mount or restore "
            f"it, or fix the root of the Storage record (supported roots: {SUPPORTED_ROOTS})."
        )
    return LocalBackend(str(path))


def tiledb_config(storage: StorageLike) -> dict[str, str]:
    """TileDB configuration (``vfs.s3.*``) to read ``storage`` with TileDB-SOMA.

    Empty for a local storage. For S3: region, ``no_sign_request`` (anonymous storages),
    ``endpoint_override`` + ``scheme`` + path-style addressing for a custom endpoint, and the
    boto3 session's credentials for signed access.
    """
    return backend_for(storage).tiledb_config()
