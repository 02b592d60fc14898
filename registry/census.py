"""``ln.census``: the CELLxGENE Census API on this registry's stores, offline.

``open_soma(census_version=...)`` resolves a version — a release tag, ``"latest"`` or
``"stable"`` (the default, as in ``cellxgene_census``) — in one of two places:

- **the registry** (default): the SOMA store artifacts that ``curate_release`` registered
  (``reference="cellxgene-census-soma"``, ``version`` = tag) in the default instance, or in
  ``instance=`` (a name or an ``ln.DB`` handle). ``latest`` is the newest curated release,
  ``stable`` the newest curated LTS release; a release's flags (LTS, retracted) come from its
  bucket's ``cell-census/release.json`` when there is one (a release it does not list counts as
  LTS: curation mirrors the LTS releases).
- **a bucket** (``mirror="s3://bucket"`` or a local folder, the root the releases are under):
  its ``cell-census/release.json``, as the Census's own directory is read; nothing needs to be
  curated.

Either way the store opens with its storage's settings (the Storage record of the root when the
instance has one — endpoint, region, anonymous access — else the environment's S3 settings) and
is the Census's top-level ``tiledbsoma.Collection``. ``uri=`` opens a store by its location.
``get_anndata``, ``get_obs``, ``get_var`` and ``get_presence_matrix`` take the Census API's
arguments (:mod:`registry.census_queries`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from registry import storage_roots
from registry.accessors.base import StorageLike
from registry.census_queries import (
    get_anndata,
    get_experiment,
    get_obs,
    get_presence_matrix,
    get_var,
)
from registry.census_releases import (
    LATEST,
    SOMA_REFERENCE,
    STABLE,
    Description,
    alias_targets,
    directory_view,
    is_retracted,
    locator,
    read_directory,
    release_key,
    soma_key,
    split_directory,
)
from registry.errors import (
    CensusDirectoryNotFoundError,
    CensusError,
    CensusVersionError,
    CensusVersionRetractedError,
    ObjectNotFoundError,
    StorageNotFoundError,
)

__all__ = [
    "DEFAULT_CENSUS_VERSION",
    "get_anndata",
    "get_census_version_description",
    "get_census_version_directory",
    "get_experiment",
    "get_obs",
    "get_presence_matrix",
    "get_var",
    "open_soma",
]

DEFAULT_CENSUS_VERSION = STABLE


@dataclass(frozen=True)
class BucketStorage:
    """The settings of a root the instance has no Storage record for (the environment's)."""

    root: str
    endpoint_url: str = ""
    region: str = ""
    anonymous: bool = False


@dataclass(frozen=True)
class StoreLocation:
    """Where a release's SOMA store is: a key in a storage (what the accessors open)."""

    key: str
    storage: StorageLike
    suffix: str = ""
    otype: str = "tiledbsoma"
    size: int | None = None
    hash: str = ""
    hash_type: str = ""


@dataclass
class Directory:
    """The releases one place knows: descriptions by tag, aliases, and each store's location."""

    where: str
    releases: dict[str, Description]
    aliases: dict[str, str]
    stores: dict[str, StoreLocation]
    #: tags listed in the buckets' release.json but not curated (registry directories only)
    uncurated: dict[str, str] = field(default_factory=dict)

    def tag_of(self, version: str) -> str:
        """The release tag of a version (a tag or an alias).

        Raises:
            CensusVersionError: an unknown version; the message lists the known ones.
        """
        if version in self.releases:
            return version
        if version in self.aliases:
            return self.aliases[version]
        known = ", ".join([*sorted(self.aliases, reverse=True), *sorted(self.releases)])
        hint = "Use get_census_version_directory() to list them."
        if version in self.uncurated:
            root = self.uncurated[version]
            hint = (
                f"Release {version!r} is in the release directory of {root!r} but not curated "
                f"here: curate it (manage.py curate_release --source "
                f"{storage_roots.join(root, release_key(version, ''))}) or open it from the "
                f"bucket with open_soma(census_version={version!r}, mirror={root!r})."
            )
        elif version in (LATEST, STABLE):
            hint = f"No release of {self.where} is {'LTS' if version == STABLE else 'live'}."
        raise CensusVersionError(
            f"Unknown Census version {version!r} in {self.where}: known versions are "
            f"{known or 'none'}. {hint}"
        )


def _alias_of(instance: Any) -> str:
    """The database alias of ``instance`` (None: the default instance; a name; an ``ln.DB``)."""
    from registry import connection

    if instance is None:
        connection.setup()
        return "default"
    if isinstance(instance, connection.DB):
        return instance.alias
    return connection.DB(str(instance)).alias


def _instance_label(alias: str) -> str:
    from registry.databases import instance_name

    return f"instance {instance_name(alias)!r}"


def _storage_for(root: str, alias: str | None) -> StorageLike:
    """The Storage record of ``root`` in the instance, else the environment's settings."""
    normalised = storage_roots.normalise_root(root)
    if alias is not None:
        from registry.accessors.storages import storage_for_root

        try:
            return storage_for_root(normalised, alias)
        except StorageNotFoundError:
            pass
    return BucketStorage(normalised)


def _published(storage: StorageLike) -> dict[str, Description]:
    """The releases a bucket's directory lists (none when it has no directory)."""
    try:
        return split_directory(read_directory(storage))[0]
    except CensusDirectoryNotFoundError:
        return {}


def bucket_directory(mirror: Any, alias: str | None = None) -> Directory:
    """The releases of a bucket root, from its ``cell-census/release.json``.

    Args:
        mirror: the bucket root (``s3://bucket[/prefix]`` or a folder), or a Storage record.
        alias: the instance whose Storage records give the root's settings (None: none).
    """
    given_root = isinstance(mirror, str | os.PathLike)
    storage = _storage_for(os.fspath(mirror), alias) if given_root else mirror
    releases, aliases = split_directory(read_directory(storage))
    stores = {
        tag: StoreLocation(soma_key(description, storage.root, tag), storage)
        for tag, description in releases.items()
    }
    return Directory(f"the release directory of {storage.root!r}", releases, aliases, stores)


def registry_directory(alias: str) -> Directory:
    """The releases curated in the instance behind ``alias`` (their SOMA store artifacts).

    Raises:
        CensusVersionError: no release is curated there.
        CensusError: one tag is curated from two storages.
    """
    from django.apps import apps

    artifact_model = apps.get_model("registry", "Artifact")
    artifacts = list(
        artifact_model.objects.db_manager(alias)
        .filter(reference=SOMA_REFERENCE, otype="tiledbsoma")
        .exclude(version=None)
        .select_related("storage")
        .order_by("version", "id")
    )
    where = _instance_label(alias)
    if not artifacts:
        raise CensusVersionError(
            f"No Census release is curated in {where}: curate one (manage.py curate_release "
            "--source ROOT/cell-census/<tag>/), or open a bucket's release with "
            "open_soma(mirror=ROOT) or a store with open_soma(uri=...)."
        )
    published: dict[str, dict[str, Description]] = {}
    releases: dict[str, Description] = {}
    stores: dict[str, StoreLocation] = {}
    for artifact in artifacts:
        tag, storage = artifact.version, artifact.storage
        if tag in stores and stores[tag].storage.root != storage.root:
            raise CensusError(
                f"Census release {tag!r} is curated twice in {where}, from "
                f"{stores[tag].storage.root!r} and {storage.root!r}: open one of them with "
                f"open_soma(census_version={tag!r}, mirror=ROOT)."
            )
        if storage.root not in published:
            published[storage.root] = _published(storage)
        description = dict(
            published[storage.root].get(tag)
            or {
                "release_date": None,
                "release_build": tag,
                "h5ads": locator(storage.root, release_key(tag, "h5ads"), storage.region),
                "flags": {"lts": True, "retracted": False},
            }
        )
        description["soma"] = locator(storage.root, artifact.key, storage.region)
        releases[tag] = description
        stores[tag] = StoreLocation(artifact.key, storage)
    uncurated = {
        tag: root for root, listed in published.items() for tag in listed if tag not in releases
    }
    return Directory(where, releases, alias_targets(releases), stores, uncurated)


def _directory(mirror: Any, instance: Any) -> Directory:
    if mirror is not None:
        return bucket_directory(mirror, _alias_of(instance))
    return registry_directory(_alias_of(instance))


def get_census_version_directory(
    *,
    lts: bool | None = None,
    retracted: bool | None = False,
    mirror: Any = None,
    instance: Any = None,
) -> dict[str, Description]:
    """The Census versions there are, as ``cellxgene_census.get_census_version_directory``:
    aliases (``stable``, ``latest``) first, then release tags, newest first, each with its
    description (``release_build``, ``soma``, ``h5ads``, ``flags``).

    Args:
        lts: only LTS releases (True), only others (False), or both (None, the default).
        retracted: only retracted releases (True), only others (False, the default), or both.
        mirror: a bucket root to read ``cell-census/release.json`` of; None: the releases curated
            in the instance.
        instance: the instance (a name or an ``ln.DB``); None: the default one.
    """
    directory = _directory(mirror, instance)
    return directory_view(directory.releases, directory.aliases, lts=lts, retracted=retracted)


def get_census_version_description(
    census_version: str, *, mirror: Any = None, instance: Any = None
) -> Description:
    """The description of one Census version (a tag or an alias), retracted ones included.

    Raises:
        CensusVersionError: an unknown version; the message lists the known ones.
    """
    directory = _directory(mirror, instance)
    return dict(directory.releases[directory.tag_of(census_version)])


def _location_of_uri(uri: str, alias: str | None) -> StoreLocation:
    """The store at ``uri``, in the registered storage whose root holds it (longest root), else
    in its bucket (S3) or folder with the environment's settings."""
    text = storage_roots.normalise_root(uri)
    if alias is not None and storage_roots.is_s3(text):
        from django.apps import apps

        roots = apps.get_model("registry", "Storage").objects.db_manager(alias)
        for storage in sorted(roots.all(), key=lambda s: len(s.root), reverse=True):
            if text.startswith(storage.root.rstrip("/") + "/"):
                return StoreLocation(text[len(storage.root.rstrip("/")) + 1 :], storage)
    if storage_roots.is_s3(text):
        bucket, key = storage_roots.split_s3(text)
        return StoreLocation(key, BucketStorage(f"s3://{bucket}"))
    path = storage_roots.local_path(text)
    return StoreLocation(path.name, BucketStorage(str(path.parent)))


def open_soma(
    *,
    census_version: str | None = DEFAULT_CENSUS_VERSION,
    mirror: Any = None,
    uri: str | None = None,
    tiledb_config: dict[str, Any] | None = None,
    context: Any = None,
    instance: Any = None,
) -> Any:
    """Open a Census release's SOMA store by version, as ``cellxgene_census.open_soma`` does,
    from the registry or a bucket, offline.

    Args:
        census_version: a release tag, ``"latest"`` or ``"stable"`` (the default).
        mirror: a bucket root (``s3://bucket[/prefix]`` or a folder) whose
            ``cell-census/release.json`` resolves the version; None: the curated releases.
        uri: the store's location; if given, the version is not looked up.
        tiledb_config: TileDB settings, over the storage's.
        context: a ``tiledbsoma.SOMATileDBContext`` to start from (not with ``tiledb_config``).
        instance: the instance (a name or an ``ln.DB``); None: the default one.

    Returns:
        The top-level ``tiledbsoma.Collection`` (``census_info``, ``census_data``); use it as a
        context manager.

    Raises:
        CensusVersionError: an unknown version (the message lists the known ones), or none given.
        CensusVersionRetractedError: a retracted version (with the reason and its replacement).
        CensusDirectoryNotFoundError: ``mirror`` has no ``cell-census/release.json``.
        ObjectNotFoundError: the version's store is not where the registry or directory says.
    """
    from registry.accessors.api import open_soma_store

    if tiledb_config is not None and context is not None:
        raise CensusError("Give open_soma() either tiledb_config or context, not both.")
    if uri is not None:
        location = _location_of_uri(str(uri), _alias_of(instance))
        return open_soma_store(location, tiledb_config=tiledb_config, context=context)
    if census_version is None:
        raise CensusVersionError(
            "open_soma() needs a census_version (a tag, 'latest' or 'stable') or a uri."
        )
    directory = _directory(mirror, instance)
    tag = directory.tag_of(census_version)
    description = directory.releases[tag]
    if is_retracted(description):
        retraction = description.get("retraction") or {}
        details = ", ".join(f"{k}: {v}" for k, v in retraction.items() if v)
        replaced = retraction.get("replaced_by")
        instead = f"use {replaced!r}" if replaced else "use 'stable' or 'latest'"
        raise CensusVersionRetractedError(
            f"Census version {census_version!r} (release {tag}) of {directory.where} is "
            f"retracted{f' ({details})' if details else ''}: {instead}."
        )
    try:
        return open_soma_store(directory.stores[tag], tiledb_config=tiledb_config, context=context)
    except ObjectNotFoundError as exc:
        raise ObjectNotFoundError(
            f"The SOMA store of Census version {census_version!r} (release {tag}, "
            f"{directory.where}) is missing: {exc}"
        ) from exc
