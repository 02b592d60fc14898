"""What changed between two curated Census releases: datasets added, removed and revised, and
the labels each kept dataset gained or lost.

A release is the set of dataset artifacts of a tag (``reference_type="cellxgene_dataset_id"``,
``version=<tag>``), as :func:`curation.steps.curate_release` registers them; a dataset is the
artifact's ``reference`` (dataset_id), its version the ``reference_version``
(dataset_version_id). Everything is computed in the database with a fixed number of queries,
whatever the size of the releases: one for the tags, one for the artifacts of both releases,
one for the feature ids, and one per label relation (the links of the datasets in both releases,
grouped by dataset, feature and label: a group found in one release only is a label gained or
lost).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import Count, Max

from curation.collections import CENSUS_KEY
from curation.features import BY_NAME, NAMES
from curation.register import REFERENCE_TYPE
from curation.tags import check_tag
from registry.databases import instance_name
from registry.errors import RegistryError
from registry.models import Artifact, Collection, Feature


class ReleaseDiffError(RegistryError, ValueError):
    """Two releases cannot be compared (an uncurated tag, the same tag twice, an unknown
    feature, a dataset twice in one release)."""


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset of one release (an added or removed one)."""

    dataset_id: str
    dataset_version_id: str
    title: str
    n_cells: int | None
    key: str


@dataclass(frozen=True)
class Revision:
    """A dataset in both releases with a new dataset_version_id."""

    dataset_id: str
    title: str
    old_version_id: str
    new_version_id: str
    old_n_cells: int | None
    new_n_cells: int | None
    old_title: str


@dataclass(frozen=True)
class LabelChange:
    """The labels of one feature that a kept dataset gained and lost (names, sorted)."""

    gained: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()


@dataclass
class DatasetLabelChanges:
    """The label changes of one dataset in both releases, by feature (changed features only)."""

    dataset_id: str
    title: str
    revised: bool
    features: dict[str, LabelChange] = field(default_factory=dict)


@dataclass
class ReleaseDiff:
    """The differences between release ``old`` and release ``new``.

    Attributes:
        added: datasets only in ``new``, by dataset_id.
        removed: datasets only in ``old``, by dataset_id.
        revised: datasets in both with another dataset_version_id, by dataset_id.
        unchanged: how many datasets are in both with the same dataset_version_id.
        label_changes: datasets in both whose labels differ, by dataset_id.
        features: the features whose labels were compared.
    """

    old: str
    new: str
    added: list[DatasetEntry]
    removed: list[DatasetEntry]
    revised: list[Revision]
    unchanged: int
    label_changes: list[DatasetLabelChanges]
    features: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The diff as JSON-ready data; the top-level keys are stable: ``old``, ``new``,
        ``added``, ``removed``, ``revised``, ``unchanged``, ``label_changes``, ``features``."""
        return {
            "old": self.old,
            "new": self.new,
            "added": [_entry(d) for d in self.added],
            "removed": [_entry(d) for d in self.removed],
            "revised": [
                {
                    "dataset_id": r.dataset_id,
                    "title": r.title,
                    "old_title": r.old_title,
                    "old_version_id": r.old_version_id,
                    "new_version_id": r.new_version_id,
                    "old_n_cells": r.old_n_cells,
                    "new_n_cells": r.new_n_cells,
                }
                for r in self.revised
            ],
            "unchanged": self.unchanged,
            "label_changes": {
                c.dataset_id: {
                    "title": c.title,
                    "revised": c.revised,
                    "features": {
                        name: {"gained": list(ch.gained), "lost": list(ch.lost)}
                        for name, ch in c.features.items()
                    },
                }
                for c in self.label_changes
            },
            "features": list(self.features),
        }


def _entry(d: DatasetEntry) -> dict[str, Any]:
    return {
        "dataset_id": d.dataset_id,
        "dataset_version_id": d.dataset_version_id,
        "title": d.title,
        "n_cells": d.n_cells,
        "key": d.key,
    }


def _objects(model: type[models.Model], using: str) -> models.QuerySet:
    """A plain Django queryset (no registry aliases: the filters here are exact ORM paths)."""
    return models.QuerySet(model, using=using)


def curated_tags(using: str = "default") -> list[str]:
    """The release tags curated into instance ``using``: the versions of the
    ``cellxgene-census`` collection and of the dataset artifacts, sorted."""
    collections = _objects(Collection, using).filter(key=CENSUS_KEY, version__isnull=False)
    artifacts = _objects(Artifact, using).filter(
        reference_type=REFERENCE_TYPE, version__isnull=False
    )
    tags = set(collections.values_list("version", flat=True).distinct())
    tags |= set(artifacts.values_list("version", flat=True).distinct())
    return sorted(tags)


def check_tags(old_tag: str, new_tag: str, using: str) -> None:
    """Raise :class:`ReleaseDiffError` unless both tags are distinct curated releases."""
    if old_tag == new_tag:
        raise ReleaseDiffError(
            f"Both releases are {old_tag!r}: name two different release tags (OLD NEW)."
        )
    found = dict(
        _objects(Artifact, using)
        .filter(reference_type=REFERENCE_TYPE, version__in=[old_tag, new_tag])
        .values_list("version")
        .annotate(n=Count("id"))
    )
    missing = [tag for tag in (old_tag, new_tag) if not found.get(tag)]
    if missing:
        tags = curated_tags(using)
        listed = ", ".join(tags) if tags else "none"
        names = " and ".join(repr(t) for t in missing)
        raise ReleaseDiffError(
            f"No curated datasets of release {names} in instance {instance_name(using)!r}. "
            f"Curated releases: {listed}. Curate a release with "
            f"`manage.py curate_release --source ROOT/cell-census/<tag>/`."
        )


def check_features(features: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The features to compare (default: all curated ones), validated, in curation order."""
    if not features:
        return NAMES
    unknown = [f for f in features if f not in BY_NAME]
    if unknown:
        raise ReleaseDiffError(
            f"Unknown feature(s) {', '.join(map(repr, unknown))}; choose from: {', '.join(NAMES)}."
        )
    return tuple(f for f in NAMES if f in features)


def _datasets(old_tag: str, new_tag: str, using: str) -> dict[str, dict[str, tuple]]:
    """tag -> dataset_id -> (version id, title, n_cells, key), from one query."""
    rows = (
        _objects(Artifact, using)
        .filter(reference_type=REFERENCE_TYPE, version__in=[old_tag, new_tag])
        .order_by("id")
        .values_list(
            "version",
            "reference",
            "reference_version",
            "description",
            "n_observations",
            "key",
            "storage__root",
        )
    )
    by_tag: dict[str, dict[str, tuple]] = {old_tag: {}, new_tag: {}}
    where: dict[tuple[str, str], str] = {}
    for tag, dataset_id, version_id, title, n_cells, key, root in rows:
        path = f"{root.rstrip('/')}/{key}"
        if (tag, dataset_id) in where:
            raise ReleaseDiffError(
                f"Release {tag!r} has two artifacts of dataset {dataset_id}: "
                f"{where[tag, dataset_id]} and {path} (curated from two storages?). "
                f"Delete one to compare releases."
            )
        where[tag, dataset_id] = path
        by_tag[tag][dataset_id] = (version_id, title, n_cells, key)
    return by_tag


def _kept(old_tag: str, new_tag: str, using: str) -> models.QuerySet:
    """Subquery: the dataset ids in both releases."""
    return (
        _objects(Artifact, using)
        .filter(reference_type=REFERENCE_TYPE, version__in=[old_tag, new_tag])
        .values("reference")
        .annotate(n_releases=Count("version", distinct=True))
        .filter(n_releases=2)
        .values("reference")
    )


def _unpaired_links(
    through: type[models.Model], old_tag: str, new_tag: str, using: str
) -> models.QuerySet:
    """(dataset_id, feature_id, label name, tag) of the links that a dataset in both releases
    has in release ``tag`` only.

    One aggregate over the links of both releases, grouped by (dataset, feature, label): a group
    with one release is a label gained or lost. There is no correlated subquery and no filter on
    ``feature_id`` (the caller drops the other features' rows, which are only changes): with
    either, the plan depends on the database guessing well which index is selective, and
    without table statistics (after a bulk curation, before ANALYZE) PostgreSQL and SQLite
    guess wrong and take 10-100x longer.
    """
    return (
        _objects(through, using)
        .filter(
            artifact__reference_type=REFERENCE_TYPE,
            artifact__version__in=[old_tag, new_tag],
            artifact__reference__in=_kept(old_tag, new_tag, using),
        )
        .values("artifact__reference", "feature_id", "label_id", "label__name")
        .annotate(
            n_releases=Count("artifact__version", distinct=True), tag=Max("artifact__version")
        )
        .filter(n_releases=1)
        .values_list("artifact__reference", "feature_id", "label__name", "tag")
        .order_by()
    )


def label_changes(
    old_tag: str, new_tag: str, features: tuple[str, ...], using: str
) -> dict[str, dict[str, LabelChange]]:
    """dataset_id -> feature -> labels gained and lost, for the datasets in both releases whose
    labels of ``features`` differ. One query per label relation."""
    ids = dict(_objects(Feature, using).filter(name__in=features).values_list("name", "id"))
    names = {pk: name for name, pk in ids.items()}
    relations = {BY_NAME[name].relation for name in ids}
    gained: dict[tuple[str, str], set[str]] = defaultdict(set)
    lost: dict[tuple[str, str], set[str]] = defaultdict(set)
    for relation in sorted(relations):
        through = Artifact.link_table(relation)
        for dataset_id, feature_id, label, tag in _unpaired_links(through, old_tag, new_tag, using):
            if feature_id in names:
                (gained if tag == new_tag else lost)[dataset_id, names[feature_id]].add(label)
    changes: dict[str, dict[str, LabelChange]] = defaultdict(dict)
    for dataset_id, feature in sorted(set(gained) | set(lost)):
        changes[dataset_id][feature] = LabelChange(
            gained=tuple(sorted(gained.get((dataset_id, feature), ()))),
            lost=tuple(sorted(lost.get((dataset_id, feature), ()))),
        )
    order = {name: i for i, name in enumerate(features)}
    return {
        dataset_id: dict(sorted(by_feature.items(), key=lambda item: order[item[0]]))
        for dataset_id, by_feature in changes.items()
    }


def release_diff(
    old_tag: str,
    new_tag: str,
    using: str = "default",
    features: list[str] | tuple[str, ...] | None = None,
) -> ReleaseDiff:
    """Compare two curated releases of instance ``using``.

    Args:
        old_tag: the tag of the earlier release, e.g. ``2024-07-01``.
        new_tag: the tag of the later release.
        using: the database alias of the instance.
        features: the features whose labels to compare (default: all curated features).

    Returns:
        The datasets added, removed and revised, the number unchanged, and the label changes of
        the datasets in both releases; lists sorted by dataset_id.

    Raises:
        InvalidTagError: a tag is malformed (checked before the database is asked).
        ReleaseDiffError: a tag has no curated datasets (the message lists the curated tags),
            both tags are the same, or a feature is unknown.
    """
    check_tag(old_tag, "old release tag")
    check_tag(new_tag, "new release tag")
    chosen = check_features(features)
    check_tags(old_tag, new_tag, using)
    by_tag = _datasets(old_tag, new_tag, using)
    old, new = by_tag[old_tag], by_tag[new_tag]
    kept = sorted(set(old) & set(new))
    revised = [
        Revision(
            dataset_id=d,
            title=new[d][1],
            old_version_id=old[d][0],
            new_version_id=new[d][0],
            old_n_cells=old[d][2],
            new_n_cells=new[d][2],
            old_title=old[d][1],
        )
        for d in kept
        if old[d][0] != new[d][0]
    ]
    revised_ids = {r.dataset_id for r in revised}
    changes = label_changes(old_tag, new_tag, chosen, using)
    return ReleaseDiff(
        old=old_tag,
        new=new_tag,
        added=[_dataset_entry(d, new[d]) for d in sorted(set(new) - set(old))],
        removed=[_dataset_entry(d, old[d]) for d in sorted(set(old) - set(new))],
        revised=revised,
        unchanged=len(kept) - len(revised),
        label_changes=[
            DatasetLabelChanges(d, new[d][1], d in revised_ids, changes[d]) for d in sorted(changes)
        ],
        features=chosen,
    )


def _dataset_entry(dataset_id: str, row: tuple) -> DatasetEntry:
    version_id, title, n_cells, key = row
    return DatasetEntry(dataset_id, version_id, title, n_cells, key)
