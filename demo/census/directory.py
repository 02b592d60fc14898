"""Write the Census release directory (``DEST/cell-census/release.json``) of demo releases.

Each build adds (or replaces) its release's entry in the directory that is there, keeps the
other releases' entries, and recomputes the aliases ``latest`` and ``stable`` with the registry's
rule (:func:`registry.census_releases.alias_targets`). The shape and the reader are in
:mod:`registry.census_releases`.
"""

from __future__ import annotations

import json
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.census_releases import (
    DIRECTORY_KEY,
    RELEASES_FOLDER,
    alias_targets,
    locator,
    release_key,
    split_directory,
)
from registry.errors import RegistryError
from registry.locks import file_lock

if TYPE_CHECKING:
    from demo.census.release import Destination

#: reads and conditional writes of an S3 release directory before a build gives up
DIRECTORY_ATTEMPTS = 20


class DirectoryContentionError(RegistryError):
    """The release directory changed under every attempt to add a release to it."""


def release_entry(dest: str, tag: str, *, lts: bool, region: str | None) -> dict[str, Any]:
    """The directory entry of release ``tag`` built at ``dest`` (the bucket root)."""
    return {
        "release_date": None,
        "release_build": tag,
        "soma": locator(dest, release_key(tag, "soma"), region),
        "h5ads": locator(dest, release_key(tag, "h5ads"), region),
        "flags": {"lts": lts, "retracted": False},
    }


def merged_directory(existing: dict[str, Any], tag: str, entry: dict[str, Any]) -> dict[str, Any]:
    """``existing`` with ``entry`` as release ``tag``, the aliases recomputed: aliases first,
    then releases, newest first (the order of the Census's file)."""
    releases, _ = split_directory(existing)
    releases[tag] = entry
    directory: dict[str, Any] = dict(sorted(alias_targets(releases).items(), reverse=True))
    for name in sorted(releases, reverse=True):
        directory[name] = releases[name]
    return directory


def update_release_directory(target: Destination, tag: str, *, lts: bool) -> dict[str, Any]:
    """Add release ``tag`` to the directory at ``target``; the directory written.

    Builds finishing together each add their release: in a local folder they update it one at a
    time (a file lock); on S3 each writes only the version it read (a conditional write), and
    one that finds it changed meanwhile reads it again and merges its release into that, up to
    :data:`DIRECTORY_ATTEMPTS` times.

    Raises:
        ValueError: the directory there is not valid JSON.
        DirectoryContentionError: on S3, other writers changed it before every attempt.
    """
    local = None if target.is_s3 else Path(target.dest) / RELEASES_FOLDER / ".release.json.lock"
    entry = release_entry(target.dest, tag, lts=lts, region=target.region)
    with file_lock(local) if local else nullcontext():
        for attempt in range(DIRECTORY_ATTEMPTS):
            text, etag = target.read_versioned(DIRECTORY_KEY)
            directory = merged_directory(json.loads(text) if text else {}, tag, entry)
            if target.write_if_unchanged(
                DIRECTORY_KEY, json.dumps(directory, indent=2) + "\n", etag
            ):
                return directory
            time.sleep(random.uniform(0, 0.05 * (attempt + 1)))  # the others' writes go first
    raise DirectoryContentionError(
        f"{target.dest}/{DIRECTORY_KEY} changed under each of {DIRECTORY_ATTEMPTS} attempts to add "
        f"release {tag!r}: too many builds at once. Build {tag!r} again with --overwrite."
    )
