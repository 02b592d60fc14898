"""Readable views of an artifact: ``artifact.describe()`` and ``artifact.features``.

All labels of an artifact are fetched in one UNION ALL query over the link tables, so
describing an artifact costs a handful of queries however many registries there are.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import CharField, Value

if TYPE_CHECKING:
    from registry.models import Artifact


@dataclass(frozen=True)
class LinkedLabel:
    """One label linked to an artifact."""

    relation: str  # Artifact field, e.g. "cell_types"
    registry: str  # registry class name, e.g. "CellType"
    feature: str | None
    name: str
    n_cells: int | None


def linked_labels(artifact: Artifact) -> list[LinkedLabel]:
    """Every label of the artifact, across all label registries, in one query."""
    queries = []
    registries = {}
    for field in type(artifact).label_fields():
        through = field.remote_field.through
        registries[field.name] = field.related_model.__name__
        queries.append(
            through.objects.using(artifact._state.db)
            .filter(artifact_id=artifact.pk)
            .annotate(relation=Value(field.name, output_field=CharField()))
            .values_list("relation", "feature__name", "label__name", "n_cells")
            .order_by()
        )
    if not queries:
        return []
    rows = queries[0].union(*queries[1:], all=True)
    return [
        LinkedLabel(relation, registries[relation], feature, name, n_cells)
        for relation, feature, name, n_cells in rows
    ]


def _group_by_feature(labels: list[LinkedLabel]) -> dict[str, list[LinkedLabel]]:
    grouped: dict[str, list[LinkedLabel]] = defaultdict(list)
    for label in labels:
        grouped[label.feature or label.relation].append(label)
    for items in grouped.values():
        items.sort(key=lambda item: (-(item.n_cells or 0), item.name))
    return dict(sorted(grouped.items()))


class ArtifactFeatures:
    """``artifact.features``: the artifact's labels by feature (obs column)."""

    def __init__(self, artifact: Artifact) -> None:
        self._artifact = artifact

    def get_values(self) -> dict[str, list[str]]:
        """Feature name -> label names, most cells first (a list even for a single value)."""
        grouped = _group_by_feature(linked_labels(self._artifact))
        return {feature: [label.name for label in items] for feature, items in grouped.items()}

    def __repr__(self) -> str:
        lines = [f"Features of {self._artifact.key}:"]
        for feature, names in self.get_values().items():
            lines.append(f"  {feature}: {_shorten(names)}")
        return "\n".join(lines)


def _shorten(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def format_size(size: int | None) -> str:
    """Bytes as a short human-readable string."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _tree(title: str, items: list[str], last: bool) -> list[str]:
    lines = [("└── " if last else "├── ") + title]
    indent = "    " if last else "│   "
    for i, item in enumerate(items):
        lines.append(indent + ("└── " if i == len(items) - 1 else "├── ") + item)
    return lines


def describe_artifact(artifact: Artifact) -> str:
    """The text of ``artifact.describe()``."""
    model = type(artifact)
    record = (
        model.objects.using(artifact._state.db)
        .select_related("storage", "created_by", "run__transform")
        .get(pk=artifact.pk)
    )
    head = f"Artifact {record.suffix or ''} · {record.otype or 'unknown type'}".replace("  ", " ")
    version = f"{record.version or '-'}{' (latest)' if record.is_latest else ''}"
    general = [
        f"uid: {record.uid}    version: {version}",
        f"key: {record.key}",
        f"description: {record.description or '-'}",
        f"size: {format_size(record.size)}    n_observations: "
        + (f"{record.n_observations:,}" if record.n_observations is not None else "-"),
        f"hash: {record.hash or '-'}" + (f" ({record.hash_type})" if record.hash_type else ""),
        f"path: {record.path}",
        f"storage: {record.storage.root} ({record.storage.type})",
    ]
    if record.reference:
        general.append(f"reference: {record.reference} ({record.reference_type or 'id'})")
    labels = []
    for feature, items in _group_by_feature(linked_labels(record)).items():
        names = [
            f"{item.name} ({item.n_cells:,} cells)" if item.n_cells is not None else item.name
            for item in items
        ]
        labels.append(f"{feature} ({len(items)}) · {items[0].registry}: {_shorten(names)}")
    collections = [
        f"{key} ({version})" if version else key
        for key, version in record.collections.order_by("key", "version").values_list(
            "key", "version"
        )
    ]
    provenance = [
        f"created_by: {record.created_by.handle if record.created_by else '-'}",
        f"created_at: {record.created_at:%Y-%m-%d %H:%M:%S %Z}",
    ]
    if record.run is not None:
        transform = record.run.transform
        provenance.append(
            f"run: {record.run.uid} · {transform.key} {transform.version} ({record.run.status})"
        )
    lines = [head]
    lines += _tree("General", general, last=False)
    lines += _tree("Labels", labels or ["(none)"], last=False)
    lines += _tree("Collections", collections or ["(none)"], last=False)
    lines += _tree("Provenance", provenance, last=True)
    return "\n".join(lines)
