"""The demo of ``manage.py demo``: CELLxGENE ontologies, two demo Census releases, their curation.

The demo instance is built the way a lab builds its own: the CELLxGENE ontologies are imported
(``load_ontologies``), two consecutive demo Census releases are written as local files
(``build_demo_release``, into ``$CELLREGISTRY_HOME/<instance>/census-bucket``) and each is curated
(``curate_release``). Every step is skipped when its result is there already, so a second run only
queries, and an interrupted run is finished by the next one. The releases carry the real Census
LTS tags the LaminDB guide queries, and one demo step mirrors the public instance: the versions of
the collection that holds the guide's kidney dataset get the uid of the guide's study collection
(``quQDnLsMLkP3JRsC8gp5``, :data:`demo.synthetic.STUDY_UID`; transfers match records on uids).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cellxgene_ontology_guide.entities import Ontology
from django.db import connections, transaction

from curation.collections import COLLECTION_REFERENCE
from curation.steps import CurationSummary, curate_release
from demo.census.plan import KIDNEY_TITLE
from demo.census.release import build_release, release_root
from demo.synthetic import STUDY_UID
from ontologies.importers.guide import UNITS, import_guide
from ontologies.models import Source
from registry import instances
from registry.connection import app_registries
from registry.databases import instance_name, writing_as
from registry.models import Collection, Storage
from registry.storage_roots import normalise_root

#: the demo's releases, oldest first: the Census LTS tags of the LaminDB guide
RELEASES = ("2024-07-01", "2025-01-30")
DATASETS, CELLS_PER_DATASET = 60, 1000
#: the description of the demo's bucket storage: it marks an instance as the demo's
BUCKET_DESCRIPTION = "The demo Census releases of `manage.py demo` (local files)"
#: who curates the demo releases: the curator of the public instance, so that the LaminDB guide's
#: ``created_by=users.sunnyosun`` finds the demo's datasets as it finds the public ones
CURATOR = "sunnyosun"
#: registries whose records do not make an instance "used" (every writer gets a User record)
IGNORED_REGISTRIES = {"User"}

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoBuild:
    """What a demo run did: whether it wrote anything, and the curation of each release."""

    wrote: bool
    curated: list[CurationSummary]


def bucket_of(instance: str) -> Path:
    """Where the demo releases of ``instance`` are written (an absolute local folder)."""
    return instances.home().resolve() / instance / "census-bucket"


def used_registries(using: str) -> list[str]:
    """The registries (core and ontology) that hold records, users and the instance's default
    storage (which ``init`` records) aside."""
    own_storage = normalise_root(connections.settings[using]["STORAGE"])
    used = []
    for app in ("registry", "ontologies"):
        for name, model in app_registries(app).items():
            records = model.objects.db_manager(using)
            if model is Storage:
                records = records.exclude(root=own_storage)
            if name not in IGNORED_REGISTRIES and records.exists():
                used.append(name)
    return used


def demo_bucket(using: str) -> Path | None:
    """The bucket of the demo the instance holds (the storage :func:`claim` recorded), if any."""
    storage = Storage.objects.db_manager(using).filter(description=BUCKET_DESCRIPTION).first()
    return Path(storage.root) if storage is not None else None


def claim(using: str, bucket: Path) -> None:
    """Mark the instance as the demo's (its bucket recorded as a storage): from now on a rerun
    continues the demo in it, even if this run is interrupted before anything else is written."""
    Storage.objects.db_manager(using).get_or_create(
        root=str(bucket), defaults={"description": BUCKET_DESCRIPTION}
    )


def missing_ontologies(using: str) -> list[str]:
    """The guide imports (e.g. ``CL -> CellType``) whose ontology source the instance lacks."""
    have = set(Source.objects.db_manager(using).values_list("entity", "name"))
    return [u.label for u in UNITS if (u.registry, Ontology[u.ontology].value) not in have]


def ensure_ontologies(using: str, say: Say) -> bool:
    """Import the CELLxGENE ontologies unless the instance has all of them; True if imported."""
    if not missing_ontologies(using):
        return False
    say("Importing the CELLxGENE ontologies (CL, UBERON, MONDO, EFO, ...) ...")
    import_guide(using=using)
    return True


def ensure_releases(bucket: Path, say: Say) -> tuple[list[str], bool]:
    """Build the demo releases missing from ``bucket``; their release roots (oldest first) and
    whether any was built."""
    previous, built = None, False
    for tag in RELEASES:
        if not Path(release_root(str(bucket), tag)).exists():
            say(f"Building demo release {tag} in {bucket} ...")
            build_release(
                str(bucket),
                tag,
                previous=previous,
                n_datasets=DATASETS,
                cells_per_dataset=CELLS_PER_DATASET,
            )
            built = True
        previous = tag
    return [release_root(str(bucket), tag) + "/" for tag in RELEASES], built


def curate_all(roots: list[str], using: str, say: Say) -> list[CurationSummary]:
    """Curate each release (no-ops for curated ones: nothing is said about them)."""
    summaries = []
    for root in roots:
        with writing_as(CURATOR):
            summary = curate_release(root, using=using)
        if not summary.already_curated:
            say(f"Curated {root}: {summary.added} datasets registered.")
        summaries.append(summary)
    return summaries


def mirror_study_uid(using: str) -> bool:
    """Give the versions of the collection holding the guide's kidney dataset the stem of
    :data:`STUDY_UID`, and its latest version the whole uid; True if uids changed.

    Raises:
        LookupError: no curated collection holds the kidney dataset.
    """
    manager = Collection.objects.db_manager(using)
    holders = manager.filter(
        reference_type=COLLECTION_REFERENCE, artifacts__description=KIDNEY_TITLE
    )
    reference = holders.values_list("reference", flat=True).first()
    if reference is None:
        raise LookupError(
            f"No collection of instance {instance_name(using)!r} holds the dataset "
            f"{KIDNEY_TITLE!r}: curate the demo releases first (`python manage.py demo`)."
        )
    versions = list(manager.filter(reference=reference).order_by("version"))
    latest = versions[-1]
    if latest.uid == STUDY_UID:
        return False
    stem = STUDY_UID[: Collection.STEM_LENGTH]
    with transaction.atomic(using=using):
        for older in versions[:-1]:
            manager.filter(pk=older.pk).update(uid=stem + older.uid[len(stem) :])
        manager.filter(pk=latest.pk).update(uid=STUDY_UID)
    return True


def build(using: str, bucket: Path, say: Say) -> DemoBuild:
    """Every step of the demo on the instance behind ``using`` (each skipped when done)."""
    claim(using, bucket)
    imported = ensure_ontologies(using, say)
    roots, built = ensure_releases(bucket, say)
    curated = curate_all(roots, using, say)
    renamed = mirror_study_uid(using)
    wrote = imported or built or renamed or any(not s.already_curated for s in curated)
    return DemoBuild(wrote=wrote, curated=curated)
