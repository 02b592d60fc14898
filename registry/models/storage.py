"""Storage locations: where the bytes of artifacts live (local folder or S3 bucket/prefix)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from registry import storage_roots
from registry.models.base import TracedRecord, uid_field


class Storage(TracedRecord):
    """A storage root. ``root + "/" + artifact.key`` is where an artifact's bytes are."""

    name_field: ClassVar[str] = "root"

    class Kind(models.TextChoices):
        LOCAL = storage_roots.LOCAL
        S3 = storage_roots.S3

    uid = uid_field(12)
    root = models.CharField(
        max_length=500, unique=True, help_text="folder path or s3://bucket[/prefix]"
    )
    type = models.CharField(max_length=16, choices=Kind.choices, default=Kind.LOCAL)
    description = models.TextField(blank=True, default="")
    region = models.CharField(max_length=64, blank=True, default="")
    endpoint_url = models.CharField(max_length=500, blank=True, default="")
    anonymous = models.BooleanField(default=False, help_text="unsigned requests (public buckets)")

    class Meta:
        ordering = ["root"]

    def save(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        """Save; the root is normalised (a relative folder becomes absolute, see
        :func:`registry.storage_roots.normalise_root`) and the type follows it."""
        self.root = storage_roots.normalise_root(self.root)
        self.type = storage_roots.scheme_of(self.root)
        super().save(*args, **kwargs)
