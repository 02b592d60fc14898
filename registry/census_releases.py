"""The Census release directory, ``<bucket root>/cell-census/release.json``: reading it, and the
alias rule.

The file has the shape the real Census publishes (and ``cellxgene_census`` reads): each release
tag maps to its description, and an alias maps to a tag::

    {
      "latest": "2025-01-30",
      "stable": "2025-01-30",
      "2025-01-30": {
        "release_date": null,
        "release_build": "2025-01-30",
        "soma": {"uri": "s3://bucket/cell-census/2025-01-30/soma/",
                 "relative_uri": "/cell-census/2025-01-30/soma/", "s3_region": "us-east-1"},
        "h5ads": {"uri": "s3://bucket/cell-census/2025-01-30/h5ads/",
                  "relative_uri": "/cell-census/2025-01-30/h5ads/", "s3_region": "us-east-1"},
        "flags": {"lts": true, "retracted": false}
      }
    }

A retracted release also has ``"retraction": {"date", "reason", "info_url", "replaced_by"}``.
``relative_uri`` is relative to the bucket root (the mirror's base), and wins over ``uri``.
The writer is ``demo.census.directory`` (``build_demo_release``); :func:`alias_targets` is the
one rule for ``latest`` (the newest release) and ``stable`` (the newest LTS release).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from registry import storage_roots
from registry.accessors.backends import backend_for
from registry.accessors.base import StorageLike
from registry.errors import (
    CensusDirectoryNotFoundError,
    CensusError,
    CensusVersionError,
    ObjectNotFoundError,
)

RELEASES_FOLDER = "cell-census"
DIRECTORY_KEY = f"{RELEASES_FOLDER}/release.json"
#: the ``reference`` of the SOMA store artifact curation registers for each release
SOMA_REFERENCE = "cellxgene-census-soma"
LATEST, STABLE = "latest", "stable"
#: the fields of a release description (as cellxgene_census keeps them)
DESCRIPTION_FIELDS = ("release_date", "release_build", "soma", "h5ads", "flags", "retraction")

Description = dict[str, Any]


def release_key(tag: str, part: str) -> str:
    """The key of a release's ``soma`` or ``h5ads`` folder inside the bucket root."""
    return f"{RELEASES_FOLDER}/{tag}/{part}"


def locator(root: str, key: str, region: str | None) -> dict[str, Any]:
    """A Census locator (``uri``, ``relative_uri``, ``s3_region``) of a folder under ``root``."""
    return {
        "uri": f"{storage_roots.join(root, key)}/",
        "relative_uri": f"/{key}/",
        "s3_region": region or None,
    }


def is_lts(description: Mapping[str, Any]) -> bool:
    """Whether a release is flagged long-term stable."""
    return bool(description.get("flags", {}).get("lts", False))


def is_retracted(description: Mapping[str, Any]) -> bool:
    """Whether a release is flagged retracted."""
    return bool(description.get("flags", {}).get("retracted", False))


def alias_targets(releases: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``latest``: the newest release; ``stable``: the newest LTS release (none without one).

    Retracted releases are never an alias's target; tags compare as strings (dates sort).
    """
    live = sorted(tag for tag, description in releases.items() if not is_retracted(description))
    aliases = {}
    if live:
        aliases[LATEST] = live[-1]
    lts = [tag for tag in live if is_lts(releases[tag])]
    if lts:
        aliases[STABLE] = lts[-1]
    return aliases


def split_directory(raw: Mapping[str, Any]) -> tuple[dict[str, Description], dict[str, str]]:
    """(tag -> description, alias -> tag) of a release directory; aliases of aliases are
    followed, and an alias that leads nowhere is dropped (as ``cellxgene_census`` does)."""
    releases = {
        name: {k: value[k] for k in DESCRIPTION_FIELDS if k in value}
        for name, value in raw.items()
        if isinstance(value, dict)
    }
    aliases = {}
    for name, value in raw.items():
        seen = {name}
        while isinstance(value, str) and value not in seen:
            seen.add(value)
            target, value = value, raw.get(value)
            if isinstance(value, dict):
                aliases[name] = target
    return releases, aliases


def directory_view(
    releases: Mapping[str, Description],
    aliases: Mapping[str, str],
    *,
    lts: bool | None = None,
    retracted: bool | None = False,
) -> dict[str, Description]:
    """The directory as ``cellxgene_census.get_census_version_directory`` returns it: aliases
    first (``stable``, ``latest``), then tags, newest first, each with its description; filtered
    by the flags (``None``: either)."""

    def wanted(description: Mapping[str, Any]) -> bool:
        return (lts is None or is_lts(description) == lts) and (
            retracted is None or is_retracted(description) == retracted
        )

    view: dict[str, Description] = {}
    for alias in sorted(aliases, reverse=True):
        if wanted(releases[aliases[alias]]):
            view[alias] = dict(releases[aliases[alias]])
    for tag in sorted(releases, reverse=True):
        if wanted(releases[tag]):
            view[tag] = dict(releases[tag])
    return view


def read_directory(storage: StorageLike) -> dict[str, Any]:
    """The release directory of a bucket root, as written (aliases unresolved).

    Raises:
        CensusDirectoryNotFoundError: the bucket has no ``cell-census/release.json``.
        CensusError: the file is not a JSON object.
        StorageError: the storage cannot be read (access denied, unreachable, ...).
    """
    backend = backend_for(storage)
    where = storage_roots.join(storage.root, DIRECTORY_KEY)
    try:
        size = backend.stat(DIRECTORY_KEY).size
    except ObjectNotFoundError:
        raise CensusDirectoryNotFoundError(
            f"No Census release directory at {where}: {storage.root!r} is not a Census bucket "
            "(or none of its releases was built with a directory). Build one with "
            "`manage.py build_demo_release --dest ROOT`, open a store by its path with "
            "open_soma(uri=...), or open a curated release by version without mirror=."
        ) from None
    text = backend.read_range(DIRECTORY_KEY, 0, size)
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise CensusError(f"The Census release directory {where} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise CensusError(
            f"The Census release directory {where} is not a JSON object of release tags."
        )
    return raw


def soma_key(description: Mapping[str, Any], root: str, version: str) -> str:
    """The key (inside ``root``) of a release's SOMA store: its ``relative_uri``, else its
    ``uri`` when that lies under ``root``.

    Raises:
        CensusVersionError: the description locates no SOMA store under ``root``.
    """
    soma = description.get("soma") or {}
    relative = (soma.get("relative_uri") or "").strip("/")
    if relative:
        return relative
    uri = (soma.get("uri") or "").rstrip("/")
    prefix = str(storage_roots.join(root, "")).rstrip("/") + "/"
    if uri.startswith(prefix):
        return uri[len(prefix) :]
    raise CensusVersionError(
        f"Census version {version!r} of {root!r} has no SOMA store under that root (soma: "
        f"{soma!r}): fix its entry in {DIRECTORY_KEY}, or open the store with open_soma(uri=...)."
    )
