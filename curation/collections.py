"""Collections of a curated release: CELLxGENE collections, the release collection, the SOMA store.

- Each CELLxGENE collection is a Collection (key = collection name, reference = collection id,
  doi kept). A new version (version = tag, revising the previous one) is made when the
  collection's membership — its datasets and their dataset_version_ids — differs from its latest
  version; an unchanged collection keeps its latest version.
- ``cellxgene-census`` version = tag holds all of the release's dataset artifacts, in manifest
  order, and revises the previous release's.
- The SOMA store is one Artifact (key ``cell-census/<tag>/soma``, otype tiledbsoma,
  n_observations = the release's cells) revising the previous release's store.
"""

from __future__ import annotations

from django.db import transaction

from curation.manifest import Manifest
from registry.locks import advisory_lock
from registry.models import Artifact, Collection, CollectionArtifact, Storage
from registry.models.base import save_version

CENSUS_KEY = "cellxgene-census"
COLLECTION_REFERENCE = "cellxgene_collection_id"
SOMA_REFERENCE = "cellxgene-census-soma"


def _add_members(collection: Collection, artifacts: list[Artifact], using: str) -> None:
    CollectionArtifact.objects.db_manager(using).bulk_create(
        [
            CollectionArtifact(collection=collection, artifact=artifact, order=order)
            for order, artifact in enumerate(artifacts)
        ]
    )


def _membership(collection: Collection, using: str) -> set[tuple[str, str]]:
    members = Artifact.objects.db_manager(using).filter(collections=collection)
    return set(members.values_list("reference", "reference_version"))


def curate_collections(
    manifest: Manifest, artifacts: dict[str, Artifact], run_id: int | None, using: str
) -> dict[str, int]:
    """Create or revise the release's collections; counts of what was done.

    Args:
        artifacts: dataset_id -> this release's artifact (datasets that were registered).
    """
    tag = manifest.root.tag
    stats = {"created": 0, "revised": 0, "unchanged": 0}
    manager = Collection.objects.db_manager(using)
    groups: dict[str, list] = {}
    for row in manifest.datasets:
        if row.dataset_id in artifacts:
            groups.setdefault(row.collection_id, []).append(row)
    for collection_id, rows in groups.items():
        with transaction.atomic(using=using):
            advisory_lock(collection_id, using)
            family = list(
                manager.filter(reference=collection_id, reference_type=COLLECTION_REFERENCE)
            )
            if any(c.version == tag for c in family):
                stats["unchanged"] += 1
                continue
            wanted = {(r.dataset_id, r.dataset_version_id) for r in rows}
            latest = max(
                (c for c in family if c.version < tag), key=lambda c: c.version, default=None
            )
            if latest is not None and _membership(latest, using) == wanted:
                stats["unchanged"] += 1
                continue
            first = rows[0]
            key = first.collection_name
            if manager.filter(key=key, version=tag).exists():  # another collection, same name
                key = f"{key} [{collection_id[:8]}]"
            collection = Collection(
                key=key,
                description=first.collection_doi_label,
                reference=collection_id,
                reference_type=COLLECTION_REFERENCE,
                doi=first.collection_doi,
                version=tag,
                run_id=run_id,
            )
            save_version(collection, family, using)
            _add_members(collection, [artifacts[r.dataset_id] for r in rows], using)
            stats["revised" if family else "created"] += 1
    with transaction.atomic(using=using):
        advisory_lock(CENSUS_KEY, using)
        family = list(manager.filter(key=CENSUS_KEY))
        if not any(c.version == tag for c in family):
            census = Collection(
                key=CENSUS_KEY,
                description=f"CELLxGENE Census release {tag}: every dataset as an .h5ad",
                version=tag,
                run_id=run_id,
            )
            save_version(census, family, using)
            members = [
                artifacts[r.dataset_id] for r in manifest.datasets if r.dataset_id in artifacts
            ]
            _add_members(census, members, using)
            stats["created"] += 1
    return stats


def register_soma(manifest: Manifest, storage: Storage, run_id: int | None, using: str) -> bool:
    """Register the release's SOMA store (False if it was there already)."""
    key = manifest.root.soma_key
    manager = Artifact.objects.db_manager(using)
    with transaction.atomic(using=using):
        advisory_lock(SOMA_REFERENCE, using)
        if manager.filter(storage=storage, key=key, version=manifest.root.tag).exists():
            return False
        soma = Artifact(
            key=key,
            storage=storage,
            suffix="",
            otype=Artifact.OType.TILEDBSOMA,
            description=f"CELLxGENE Census {manifest.root.tag}: all cells (TileDB-SOMA)",
            size=manifest.soma_size,
            n_observations=manifest.total_cells,
            reference=SOMA_REFERENCE,
            reference_type="census_soma",
            version=manifest.root.tag,
            run_id=run_id,
        )
        save_version(soma, manager.filter(storage=storage, reference=SOMA_REFERENCE), using)
    return True
