"""Collections of a curated release: CELLxGENE collections, the release collection, the SOMA store.

- Each CELLxGENE collection is a Collection (key = collection name, reference = collection id,
  doi kept). It has a version at release ``T`` (version = tag) when it is in ``T`` and its
  membership — its datasets and their dataset_version_ids — differs from its version at the
  release before (the newest older version); otherwise the older version stands for it.
  :func:`reconcile_collection` makes this hold whatever order releases are curated in (a release
  curated after a newer one may make the newer one's version redundant: it is then removed), and
  when a release is curated again after it changed.
- ``cellxgene-census`` version = tag holds all of the release's dataset artifacts, in manifest
  order, and revises the previous release's.
- The SOMA store is one Artifact (key ``cell-census/<tag>/soma``, otype tiledbsoma,
  n_observations = the release's cells) revising the previous release's store.

Each collection is reconciled in one transaction holding the collection's advisory lock, so
concurrent runs of different releases see each other's versions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.db import transaction

from curation.manifest import DatasetRow, Manifest
from registry.census_releases import SOMA_REFERENCE
from registry.locks import advisory_lock
from registry.models import Artifact, Collection, CollectionArtifact, Storage
from registry.models.base import delete_version, save_version

CENSUS_KEY = "cellxgene-census"
COLLECTION_REFERENCE = "cellxgene_collection_id"

#: a membership: (dataset_id, dataset_version_id) of every member
Membership = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Wanted:
    """What a CELLxGENE collection is in the release being curated."""

    collection_id: str
    key: str
    description: str
    doi: str
    members: list[Artifact]  # in manifest order (empty: not in the release)

    @property
    def membership(self) -> Membership:
        return frozenset((a.reference, a.reference_version) for a in self.members)


def _add_members(collection: Collection, artifacts: list[Artifact], using: str) -> None:
    CollectionArtifact.objects.db_manager(using).bulk_create(
        [
            CollectionArtifact(collection=collection, artifact=artifact, order=order)
            for order, artifact in enumerate(artifacts)
        ]
    )


def _set_members(collection: Collection, artifacts: list[Artifact], using: str) -> bool:
    """Make ``artifacts`` (in this order) the members of ``collection``; True if it changed."""
    links = CollectionArtifact.objects.db_manager(using).filter(collection=collection)
    if list(links.order_by("order").values_list("artifact_id", flat=True)) == [
        a.pk for a in artifacts
    ]:
        return False
    links.delete()
    _add_members(collection, artifacts, using)
    return True


def _membership(collection: Collection, using: str) -> Membership:
    members = Artifact.objects.db_manager(using).filter(collections=collection)
    return frozenset(members.values_list("reference", "reference_version"))


def wanted_collections(manifest: Manifest, artifacts: dict[str, Artifact]) -> list[Wanted]:
    """The release's CELLxGENE collections with their registered members, in manifest order.

    A collection name that two collections of the release share gets the first 8 characters of
    the collection id appended to the key of both (so the key does not depend on which of them
    is curated first).
    """
    groups: dict[str, list[DatasetRow]] = {}
    for row in manifest.datasets:
        if row.dataset_id in artifacts:
            groups.setdefault(row.collection_id, []).append(row)
    names = Counter(rows[0].collection_name for rows in groups.values())
    wanted = []
    for collection_id, rows in groups.items():
        first = rows[0]
        key = first.collection_name
        if names[key] > 1:
            key = f"{key} [{collection_id[:8]}]"
        members = [artifacts[r.dataset_id] for r in rows]
        description, doi = first.collection_doi_label, first.collection_doi
        wanted.append(Wanted(collection_id, key, description, doi, members))
    return wanted


def reconcile_collection(wanted: Wanted, tag: str, run_id: int | None, using: str) -> str:
    """Bring the versions of one CELLxGENE collection in line with release ``tag``.

    Returns:
        ``created``, ``revised`` (a new version of an existing collection, or its version at
        this tag updated), ``removed`` (its version at this tag is gone: the collection left the
        release or equals its older version) or ``unchanged``.
    """
    manager = Collection.objects.db_manager(using)
    with transaction.atomic(using=using):
        advisory_lock(wanted.collection_id, using)
        family = sorted(
            manager.filter(reference=wanted.collection_id, reference_type=COLLECTION_REFERENCE),
            key=lambda c: c.version,
        )
        current = next((c for c in family if c.version == tag), None)
        older = [c for c in family if c.version < tag]
        previous = older[-1] if older else None
        needed = bool(wanted.members) and (
            previous is None or _membership(previous, using) != wanted.membership
        )
        outcome = "unchanged"
        if needed and current is None:
            current = Collection(
                key=wanted.key,
                description=wanted.description,
                reference=wanted.collection_id,
                reference_type=COLLECTION_REFERENCE,
                doi=wanted.doi,
                version=tag,
                run_id=run_id,
            )
            save_version(current, family, using)
            _add_members(current, wanted.members, using)
            outcome = "revised" if family else "created"
        elif needed:
            changed = _set_members(current, wanted.members, using)
            fields = {"key": wanted.key, "description": wanted.description, "doi": wanted.doi}
            stale = [name for name, value in fields.items() if getattr(current, name) != value]
            for name in stale:
                setattr(current, name, fields[name])
            if stale:
                current.save(using=using, update_fields=stale)
            outcome = "revised" if changed or stale else "unchanged"
        elif current is not None:
            delete_version(current, using)
            outcome = "removed"
        if _drop_redundant_versions(wanted.collection_id, using):
            outcome = "revised" if outcome == "unchanged" else outcome
    return outcome


def _drop_redundant_versions(collection_id: str, using: str) -> bool:
    """Remove versions whose membership equals the version before them (left by releases
    curated out of order); True if one was removed."""
    manager = Collection.objects.db_manager(using)
    family = sorted(
        manager.filter(reference=collection_id, reference_type=COLLECTION_REFERENCE),
        key=lambda c: c.version,
    )
    removed, kept = False, None
    for version in family:
        membership = _membership(version, using)
        if kept is not None and membership == kept:
            delete_version(version, using)
            removed = True
        else:
            kept = membership
    return removed


def curate_collections(
    manifest: Manifest, artifacts: dict[str, Artifact], run_id: int | None, using: str
) -> dict[str, int]:
    """Reconcile the release's collections (also those that left it) and its release collection;
    counts of what was done.

    Args:
        artifacts: dataset_id -> this release's artifact (datasets that were registered).
    """
    tag = manifest.root.tag
    stats = Counter({"created": 0, "revised": 0, "unchanged": 0, "removed": 0})
    wanted = wanted_collections(manifest, artifacts)
    listed = {w.collection_id for w in wanted}
    gone = (
        Collection.objects.db_manager(using)
        .filter(version=tag, reference_type=COLLECTION_REFERENCE)
        .exclude(reference__in=listed)
        .values_list("reference", flat=True)
    )
    wanted += [Wanted(collection_id, "", "", "", []) for collection_id in sorted(set(gone))]
    for collection in wanted:
        stats[reconcile_collection(collection, tag, run_id, using)] += 1
    members = [artifacts[r.dataset_id] for r in manifest.datasets if r.dataset_id in artifacts]
    stats[_release_collection(tag, members, run_id, using)] += 1
    return dict(stats)


def _release_collection(tag: str, members: list[Artifact], run_id: int | None, using: str) -> str:
    """The ``cellxgene-census`` version of the release, holding all of its datasets."""
    manager = Collection.objects.db_manager(using)
    with transaction.atomic(using=using):
        advisory_lock(CENSUS_KEY, using)
        family = list(manager.filter(key=CENSUS_KEY))
        current = next((c for c in family if c.version == tag), None)
        if current is not None:
            return "revised" if _set_members(current, members, using) else "unchanged"
        census = Collection(
            key=CENSUS_KEY,
            description=f"CELLxGENE Census release {tag}: every dataset as an .h5ad",
            version=tag,
            run_id=run_id,
        )
        save_version(census, family, using)
        _add_members(census, members, using)
    return "created"


def register_soma(manifest: Manifest, storage: Storage, run_id: int | None, using: str) -> bool:
    """Register the release's SOMA store, or bring its size and cell count up to date; True if
    something was written."""
    key = manifest.root.soma_key
    manager = Artifact.objects.db_manager(using)
    fields = {"size": manifest.soma_size, "n_observations": manifest.total_cells}
    with transaction.atomic(using=using):
        advisory_lock(SOMA_REFERENCE, using)
        there = manager.filter(storage=storage, key=key, version=manifest.root.tag).first()
        if there is not None:
            stale = [name for name, value in fields.items() if getattr(there, name) != value]
            for name in stale:
                setattr(there, name, fields[name])
            if stale:
                there.save(using=using, update_fields=stale)
            return bool(stale)
        soma = Artifact(
            key=key,
            storage=storage,
            suffix="",
            otype=Artifact.OType.TILEDBSOMA,
            description=f"CELLxGENE Census {manifest.root.tag}: all cells (TileDB-SOMA)",
            reference=SOMA_REFERENCE,
            reference_type="census_soma",
            version=manifest.root.tag,
            run_id=run_id,
            **fields,
        )
        save_version(soma, manager.filter(storage=storage, reference=SOMA_REFERENCE), using)
    return True
