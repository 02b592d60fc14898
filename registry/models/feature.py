"""Features: the annotated columns of a dataset (``cell_type``, ``tissue``, ...)."""

from __future__ import annotations

from django.db import models

from registry.models.base import TracedRecord, uid_field


class Feature(TracedRecord):
    """An obs column whose values link to a registry: ``dtype`` like ``cat[CellType]``."""

    uid = uid_field(12)
    name = models.CharField(max_length=150, unique=True)
    dtype = models.CharField(max_length=64, help_text="e.g. cat[CellType], int, str")
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]
