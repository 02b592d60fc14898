"""Free labels with a type, e.g. ``SuspensionType`` -> ``cell``, ``nucleus``, ``na``."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from registry.models.base import TracedRecord, uid_field
from registry.models.links import artifact_labels


class ULabel(TracedRecord):
    """A label; ``type`` points at another ULabel that names the kind (``is_type=True``)."""

    uid = uid_field(8)
    name = models.CharField(max_length=255, db_index=True)
    type = models.ForeignKey(
        "self", on_delete=models.PROTECT, related_name="records", null=True, blank=True
    )
    is_type = models.BooleanField(default=False)
    description = models.TextField(blank=True, default="")
    artifacts = artifact_labels("registry.ArtifactULabel", "ulabels")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "type"],
                condition=Q(type__isnull=False),
                name="ulabel_unique_in_type",
            ),
            models.UniqueConstraint(
                fields=["name"], condition=Q(type__isnull=True), name="ulabel_unique_untyped"
            ),
        ]
