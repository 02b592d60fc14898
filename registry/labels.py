"""Labels of an artifact: ``artifact.labels`` (add/get by registry) and ``artifact.features``
(values by feature, the way curation writes them).

Reading: all labels of an artifact come from one UNION ALL query over the link tables.
Writing: one INSERT per link table inside one transaction; links that exist already are kept.
The SQL of both is in :mod:`registry.query.links`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import connections, models, transaction

from registry.formatting import shorten
from registry.models.links import LabelRelation
from registry.query.links import LinkRow, insert_links, linked_labels_sql

if TYPE_CHECKING:
    from registry.models import Artifact, Feature

_DTYPE = re.compile(r"^cat\[(?P<registry>\w+)(\[(?P<type>[^\]]+)\])?\]$")


@dataclass(frozen=True)
class LinkedLabel:
    """One label linked to an artifact."""

    relation: str  # Artifact field, e.g. "cell_types"
    registry: str  # registry class name, e.g. "CellType"
    feature: str | None
    name: str
    n_cells: int | None


def registries_of(artifact_model: Any) -> dict[type[models.Model], LabelRelation]:
    """Label registry -> the Artifact relation that links it."""
    return {relation.registry: relation for relation in artifact_model.label_relations()}


def linked_labels(artifact: Artifact) -> list[LinkedLabel]:
    """Every label of the artifact, across all label registries, in one query."""
    connection = connections[artifact._state.db or "default"]
    sql, n_params, registries = linked_labels_sql(type(artifact).label_relations())
    with connection.cursor() as cursor:
        cursor.execute(sql, [artifact.pk] * n_params)
        rows = cursor.fetchall()
    return [
        LinkedLabel(relation, registries[relation], feature, name, n_cells)
        for relation, feature, name, n_cells in rows
    ]


def group_by_feature(labels: list[LinkedLabel]) -> dict[str, list[LinkedLabel]]:
    """Labels by feature name (the relation name where no feature is recorded), most cells
    first."""
    grouped: dict[str, list[LinkedLabel]] = defaultdict(list)
    for label in labels:
        grouped[label.feature or label.relation].append(label)
    for items in grouped.values():
        items.sort(key=lambda item: (-(item.n_cells or 0), item.name))
    return dict(sorted(grouped.items()))


def _as_list(records: Any) -> list[Any]:
    if isinstance(records, models.Model | str):
        return [records]
    return list(records)


class ArtifactLabels:
    """``artifact.labels``: link labels of any registry, optionally under a feature."""

    def __init__(self, artifact: Artifact) -> None:
        self._artifact = artifact

    def add(
        self,
        records: models.Model | Iterable[models.Model],
        feature: Feature | None = None,
        n_cells: dict[int, int] | None = None,
        n_primary_cells: dict[int, int] | None = None,
    ) -> None:
        """Link label records (any mix of label registries) to the artifact.

        Args:
            records: a label record or several (CellType, Tissue, ..., ULabel).
            feature: the feature (obs column) the labels come from.
            n_cells: optional cell count per label ``pk``.
            n_primary_cells: optional primary-cell count per label ``pk``.

        Raises:
            TypeError: a record is not of a label registry (the message lists them).
        """
        self.write_links(self.link_rows(records, feature, n_cells or {}, n_primary_cells or {}))

    def link_rows(
        self,
        records: Any,
        feature: Feature | None,
        n_cells: dict[int, int],
        n_primary_cells: dict[int, int],
    ) -> dict[type[models.Model], list[LinkRow]]:
        """Link rows for records under one feature, by link table."""
        artifact = self._artifact
        relations = registries_of(type(artifact))
        feature_id = feature.pk if feature is not None else None
        rows: dict[type[models.Model], list[LinkRow]] = defaultdict(list)
        for record in _as_list(records):
            relation = relations.get(type(record))
            if relation is None:
                names = ", ".join(sorted(model.__name__ for model in relations))
                raise TypeError(
                    f"Cannot link {type(record).__name__} {record!r} to an artifact: "
                    f"labels come from {names}."
                )
            rows[relation.through].append(
                (
                    artifact.pk,
                    record.pk,
                    feature_id,
                    n_cells.get(record.pk),
                    n_primary_cells.get(record.pk),
                )
            )
        return rows

    def write_links(self, rows: dict[type[models.Model], list[LinkRow]]) -> None:
        """Insert link rows, one statement per link table, in one transaction."""
        alias = self._artifact._state.db or "default"
        with transaction.atomic(using=alias, savepoint=False):
            for through, links in rows.items():
                insert_links(through, links, alias)

    def get(self, registry: str | type[models.Model]) -> models.QuerySet:
        """The artifact's labels of one registry (by class or name, e.g. ``"CellType"``)."""
        relations = registries_of(type(self._artifact))
        name = registry if isinstance(registry, str) else registry.__name__
        for model, relation in relations.items():
            if model.__name__ == name:
                return getattr(self._artifact, relation.name).all()
        known = ", ".join(sorted(model.__name__ for model in relations))
        raise LookupError(f"No label registry {name!r}; artifacts have labels from {known}.")

    def __repr__(self) -> str:
        labels = linked_labels(self._artifact)
        return f"Labels of {self._artifact.key}: {len(labels)} links"


def feature_registry(feature: Feature) -> tuple[type[models.Model], str | None]:
    """The registry (and ULabel type, if any) a categorical feature's values come from.

    ``cat[CellType]`` -> CellType; ``cat[ULabel[SuspensionType]]`` -> ULabel of that type.
    """
    match = _DTYPE.match(feature.dtype)
    if match is None:
        raise ValueError(
            f"Feature {feature.name!r} has dtype {feature.dtype!r}; labels need a categorical "
            "dtype such as 'cat[CellType]' or 'cat[ULabel[SuspensionType]]'."
        )
    name = match["registry"]
    for registry in registries_of(apps.get_model("registry", "Artifact")):
        if registry.__name__ == name:
            return registry, match["type"]
    raise ValueError(
        f"Feature {feature.name!r} has dtype {feature.dtype!r}, but no label registry is named "
        f"{name!r}."
    )


class ArtifactFeatures:
    """``artifact.features``: the artifact's labels by feature (obs column)."""

    def __init__(self, artifact: Artifact) -> None:
        self._artifact = artifact

    def get_values(self) -> dict[str, list[str]]:
        """Feature name -> label names, most cells first (a list even for a single value)."""
        grouped = group_by_feature(linked_labels(self._artifact))
        return {feature: [label.name for label in items] for feature, items in grouped.items()}

    def add_values(self, values: dict[str, Any]) -> None:
        """Link labels by feature: ``{"cell_type": [records or names], "tissue": "lung"}``.

        Names are looked up in the feature's registry (``Feature.dtype``); everything is written
        in one transaction, or nothing when a feature or name is unknown.

        Raises:
            LookupError: an unknown feature or label name; the message names it.
        """
        artifact = self._artifact
        alias = artifact._state.db or "default"
        feature_model = apps.get_model("registry", "Feature")
        features = feature_model.objects.using(alias).in_bulk(list(values), field_name="name")
        missing = sorted(set(values) - set(features))
        if missing:
            raise LookupError(
                f"Unknown feature(s) {', '.join(map(repr, missing))} for Artifact "
                f"{artifact.key!r}; register them first, e.g. "
                f"Feature(name={missing[0]!r}, dtype='cat[CellType]').save()."
            )
        labels = ArtifactLabels(artifact)
        rows: dict[type[models.Model], list[LinkRow]] = defaultdict(list)
        for name, items in values.items():
            feature = features[name]
            for through, links in labels.link_rows(
                self._records(feature, items), feature, {}, {}
            ).items():
                rows[through] += links
        labels.write_links(rows)

    def _records(self, feature: Feature, values: Any) -> list[models.Model]:
        items = _as_list(values)
        names = [item for item in items if isinstance(item, str)]
        records = [item for item in items if not isinstance(item, str)]
        if not names:
            return records
        registry, type_name = feature_registry(feature)
        query = registry.objects.using(self._artifact._state.db or "default").filter(name__in=names)
        if type_name:
            query = query.filter(type__name=type_name)
        found = {record.name: record for record in query}
        unknown = [name for name in names if name not in found]
        if unknown:
            raise LookupError(
                f"Unknown {registry.__name__} value(s) for feature {feature.name!r}: "
                f"{', '.join(map(repr, unknown))}. Check the spelling, or "
                f"{registry.__name__}.search({unknown[0]!r})."
            )
        return records + [found[name] for name in names]

    def __repr__(self) -> str:
        lines = [f"Features of {self._artifact.key}:"]
        for feature, names in self.get_values().items():
            lines.append(f"  {feature}: {shorten(names)}")
        return "\n".join(lines)
