"""Write the Census release directory (``DEST/cell-census/release.json``) of demo releases.

Each build adds (or replaces) its release's entry in the directory that is there, keeps the
other releases' entries, and recomputes the aliases ``latest`` and ``stable`` with the registry's
rule (:func:`registry.census_releases.alias_targets`). The shape and the reader are in
:mod:`registry.census_releases`.
"""

from __future__ import annotations

import json
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
from registry.locks import file_lock

if TYPE_CHECKING:
    from demo.census.release import Destination


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

    In a local folder, builds finishing together update it one at a time (a file lock); on S3
    the last writer wins, so build releases into one bucket one after the other.

    Raises:
        ValueError: the directory there is not valid JSON.
    """
    local = None if target.is_s3 else Path(target.dest) / RELEASES_FOLDER / ".release.json.lock"
    with file_lock(local) if local else nullcontext():
        text = target.read_text(DIRECTORY_KEY)
        existing = json.loads(text) if text else {}
        entry = release_entry(target.dest, tag, lts=lts, region=target.region)
        directory = merged_directory(existing, tag, entry)
        target.write_text(DIRECTORY_KEY, json.dumps(directory, indent=2) + "\n")
    return directory
