"""Locks that serialise work across processes: an advisory lock in the database (concurrent runs
writing versions of the same thing) and an exclusive lock on a local file (one download, one demo
build at a time)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connections


def advisory_lock(name: str, using: str) -> None:
    """Serialise, until the current transaction ends, the writers of ``name`` (a dataset, a
    collection, the SOMA store): each then sees the other's rows. PostgreSQL takes a
    transaction-level advisory lock; SQLite needs none (its write lock serialises writers).
    Call it inside ``transaction.atomic``."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])


@contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block.

    With ``blocking=False`` the block runs at once and gets ``False`` when another process holds
    the lock (then nothing is held); otherwise it waits and gets ``True``. The kernel releases
    the lock when the process dies. Needs a local file system (not every NFS supports flock).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock
