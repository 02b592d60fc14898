"""``artifact.describe()``: a readable tree of an artifact's fields, labels, collections and
provenance, in four queries however many label registries there are."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.formatting import format_size, shorten
from registry.labels import group_by_feature, linked_labels

if TYPE_CHECKING:
    from registry.models import Artifact


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
    for feature, items in group_by_feature(linked_labels(record)).items():
        names = [
            f"{item.name} ({item.n_cells:,} cells)" if item.n_cells is not None else item.name
            for item in items
        ]
        labels.append(f"{feature} ({len(items)}) · {items[0].registry}: {shorten(names)}")
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
