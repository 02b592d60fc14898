"""Register a release's datasets by reference and link them to their terms, one transaction each.

Each dataset becomes one Artifact (key ``cell-census/<tag>/h5ads/<id>.h5ad`` on the release's
storage; size and ETag from the listing; ``reference`` = dataset_id, ``reference_version`` =
dataset_version_id; ``version`` = tag) that revises the artifact of the same dataset_id in the
previous release, and is linked to the terms of every feature with cell counts. A dataset is
written in one transaction, so an interrupted run leaves whole datasets or nothing; a rerun skips
the datasets that are there, updates those the release changed since, and removes those it no
longer holds.

Feature -> registry: ontology features link to the ontology registries by ontology id (the values
``unknown`` and ``na`` mean "no term" and link nothing); ``suspension_type``, ``tissue_type`` and
``donor_id`` link to ULabels of the types ``SuspensionType``, ``TissueType`` and ``Donor`` (a
donor label is named by its donor_id as the dataset gives it; CELLxGENE only guarantees donor ids
to be unique within a dataset). Unknown or deprecated term ids are problems of the dataset: they
are reported with the column and values, and the dataset's other links land.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import models, transaction

from curation.annotate import DatasetCounts, TermCount
from curation.features import FEATURES, NAMES, NO_TERM, CuratedFeature
from curation.manifest import DatasetRow, Manifest
from registry.locks import advisory_lock
from registry.models import Artifact, CollectionArtifact, Feature, Storage, ULabel
from registry.models.base import delete_version, save_version
from registry.query.links import insert_links

REFERENCE_TYPE = "cellxgene_dataset_id"


@dataclass(frozen=True)
class Problem:
    """Something wrong with one dataset, for the run report."""

    dataset_id: str
    reason: str
    column: str = ""
    values: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        """JSON form for ``Run.report``."""
        return {
            "dataset_id": self.dataset_id,
            "reason": self.reason,
            "column": self.column,
            "values": list(self.values),
        }


@dataclass
class Vocabulary:
    """Term id -> pk per feature, Feature pks, and the deprecated terms met (with replacement)."""

    features: dict[str, int]
    terms: dict[str, dict[str, int]]
    deprecated: dict[str, dict[str, str]] = field(default_factory=dict)


def ensure_features(using: str) -> dict[str, int]:
    """The Feature records of the curated obs columns and the ULabel types (created if absent;
    safe when another run creates them at the same time)."""
    ids = {}
    for spec in FEATURES:
        feature, _ = Feature.objects.db_manager(using).get_or_create(
            name=spec.name, defaults={"dtype": spec.dtype}
        )
        ids[spec.name] = feature.pk
        if spec.ulabel_type:
            ULabel.objects.db_manager(using).get_or_create(
                name=spec.ulabel_type, type=None, defaults={"is_type": True}
            )
    return ids


def label_registry(spec: CuratedFeature) -> type[models.Model]:
    """The registry a feature's values link to: the one behind its Artifact relation."""
    for relation in Artifact.label_relations():
        if relation.name == spec.relation:
            return relation.registry
    raise LookupError(f"Artifact has no relation {spec.relation!r} (feature {spec.name!r}).")


def resolve_terms(counts: Iterable[DatasetCounts], using: str) -> Vocabulary:
    """Map every value met in ``counts`` to a registry pk (creating the ULabels it needs)."""
    values: dict[str, set[str]] = {name: set() for name in NAMES}
    for dataset in counts:
        for feature, terms in dataset.items():
            if feature in values:
                values[feature].update(t for t in terms if t not in NO_TERM)
    vocab = Vocabulary(features=ensure_features(using), terms={})
    for spec in FEATURES:
        name, wanted = spec.name, values[spec.name]
        if spec.ulabel_type:
            vocab.terms[name] = _ulabels(spec.ulabel_type, wanted, using)
            continue
        model = label_registry(spec)
        found: dict[str, int] = {}
        deprecated: dict[str, str] = {}
        rows = model.objects.db_manager(using).filter(ontology_id__in=wanted)
        for pk, ontology_id, is_deprecated, replaced_by in rows.values_list(
            "pk", "ontology_id", "is_deprecated", "replaced_by__ontology_id"
        ):
            if is_deprecated:
                deprecated[ontology_id] = replaced_by or ""
            else:
                found[ontology_id] = pk
        vocab.terms[name] = found
        vocab.deprecated[name] = deprecated
    return vocab


def _ulabels(type_name: str, names: set[str], using: str) -> dict[str, int]:
    manager = ULabel.objects.db_manager(using)
    kind = manager.get(name=type_name, type=None)
    existing = dict(manager.filter(type=kind, name__in=names).values_list("name", "pk"))
    missing = sorted(names - set(existing))
    if missing:
        manager.bulk_create(
            [ULabel(name=name, type=kind) for name in missing], ignore_conflicts=True
        )
        existing = dict(manager.filter(type=kind, name__in=names).values_list("name", "pk"))
    return existing


def link_rows(
    artifact_id: int, dataset: DatasetRow, counts: DatasetCounts, vocab: Vocabulary
) -> tuple[dict[str, list[tuple]], list[Problem]]:
    """Link rows per relation for one dataset, and its problems (unknown/deprecated terms)."""
    rows: dict[str, list[tuple]] = {}
    problems: list[Problem] = []
    for spec in FEATURES:
        name = spec.name
        terms: dict[str, TermCount] = counts.get(name, {})
        unknown, deprecated = [], []
        for value, count in sorted(terms.items()):
            if value in NO_TERM and not spec.ulabel_type:
                continue
            pk = vocab.terms[name].get(value)
            if pk is None:
                (deprecated if value in vocab.deprecated.get(name, {}) else unknown).append(value)
                continue
            rows.setdefault(spec.relation, []).append(
                (artifact_id, pk, vocab.features[name], count.n_cells, count.n_primary_cells)
            )
        column = spec.obs_column
        if unknown:
            problems.append(Problem(dataset.dataset_id, "unknown term ids", column, tuple(unknown)))
        if deprecated:
            replaced = [f"{v} (replaced by {vocab.deprecated[name][v] or '?'})" for v in deprecated]
            problems.append(
                Problem(dataset.dataset_id, "deprecated terms", column, tuple(replaced))
            )
    return rows, problems


#: what registering a dataset did
ADDED, UNCHANGED, REVISED = "added", "unchanged", "revised"


def _fields(manifest: Manifest, dataset: DatasetRow) -> dict:
    """The Artifact fields of a dataset of the release (what a rerun compares and updates)."""
    entry = manifest.files[dataset.h5ad_path]
    return {
        "description": dataset.title,
        "size": entry.size,
        "hash": entry.hash,
        "hash_type": entry.hash_type,
        "n_observations": dataset.n_cells,
        "reference_version": dataset.dataset_version_id,
    }


def register_dataset(
    manifest: Manifest,
    dataset: DatasetRow,
    counts: DatasetCounts,
    vocab: Vocabulary,
    storage: Storage,
    run_id: int | None,
    using: str,
) -> tuple[Artifact, str, list[Problem]]:
    """Register one dataset and its links in one transaction.

    A dataset registered already for this release is left as it is when its record matches
    the release (``unchanged``: a resumed or repeated run), and updated in place with its links
    replaced when the release changed it since (``revised``: a new dataset_version_id or file).
    The dataset's problems are returned in every case (a resumed run reports them too).

    Returns:
        The artifact, what was done (:data:`ADDED`, :data:`UNCHANGED`, :data:`REVISED`), and
        the dataset's problems (unknown or deprecated terms).
    """
    key = manifest.root.h5ad_key(dataset.h5ad_path)
    fields = _fields(manifest, dataset)
    manager = Artifact.objects.db_manager(using)
    with transaction.atomic(using=using):
        advisory_lock(dataset.dataset_id, using)
        artifact = manager.filter(storage=storage, key=key, version=manifest.root.tag).first()
        if artifact is not None:
            if all(getattr(artifact, name) == value for name, value in fields.items()):
                return artifact, UNCHANGED, link_rows(artifact.pk, dataset, counts, vocab)[1]
            for name, value in fields.items():
                setattr(artifact, name, value)
            artifact.save(using=using, update_fields=list(fields))
            for relation in Artifact.label_relations():
                relation.through.objects.db_manager(using).filter(artifact=artifact).delete()
            outcome = REVISED
        else:
            artifact = Artifact(
                key=key,
                storage=storage,
                suffix=".h5ad",
                otype=Artifact.OType.ANNDATA,
                reference=dataset.dataset_id,
                reference_type=REFERENCE_TYPE,
                version=manifest.root.tag,
                run_id=run_id,
                **fields,
            )
            family = manager.filter(storage=storage, reference=dataset.dataset_id)
            save_version(artifact, family, using)
            outcome = ADDED
        rows, problems = link_rows(artifact.pk, dataset, counts, vocab)
        for relation, relation_rows in rows.items():
            insert_links(Artifact.link_table(relation), relation_rows, using)
    return artifact, outcome, problems


def release_artifacts(manifest: Manifest, storage: Storage, using: str) -> models.QuerySet:
    """The dataset artifacts registered for the release (``version`` = its tag)."""
    return Artifact.objects.db_manager(using).filter(
        storage=storage, version=manifest.root.tag, reference_type=REFERENCE_TYPE
    )


def remove_dataset(artifact: Artifact, using: str) -> None:
    """Take a dataset that its release no longer holds out of the registry: its memberships of
    the release's collections, its links and its record (the version family is mended), in one
    transaction."""
    with transaction.atomic(using=using):
        advisory_lock(artifact.reference, using)
        CollectionArtifact.objects.db_manager(using).filter(artifact=artifact).delete()
        delete_version(artifact, using)
