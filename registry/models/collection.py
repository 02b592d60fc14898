"""Collections: versioned, ordered groups of artifacts (a CELLxGENE collection, a release)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from registry.models.base import VersionedRecord, uid_field


class Collection(VersionedRecord):
    """An ordered set of artifacts, e.g. ``cellxgene-census`` version ``2025-01-30``."""

    name_field: ClassVar[str] = "key"

    uid = uid_field(20)
    key = models.CharField(max_length=255, db_index=True)
    description = models.TextField(blank=True, default="")
    reference = models.CharField(
        max_length=255,
        blank=True,
        default="",
        db_index=True,
        help_text="e.g. the CELLxGENE collection id",
    )
    reference_type = models.CharField(
        max_length=64, blank=True, default="", help_text="e.g. cellxgene_collection_id, doi"
    )
    doi = models.CharField(max_length=255, blank=True, default="")
    artifacts = models.ManyToManyField(
        "registry.Artifact", through="registry.CollectionArtifact", related_name="collections"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key", "version"],
                condition=models.Q(version__isnull=False),
                name="collection_key_version_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.version})" if self.version else self.key
