"""Provenance: Transforms (what runs: a pipeline, script or notebook) and their Runs."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone

from registry.models.base import TracedRecord, uid_field


class Transform(TracedRecord):
    """A versioned piece of code that creates records, e.g. ``curate_release`` 0.1.0."""

    name_field: ClassVar[str] = "key"

    uid = uid_field(16)
    key = models.CharField(max_length=255, db_index=True)
    version = models.CharField(max_length=64, blank=True, default="")
    type = models.CharField(max_length=32, default="pipeline")
    description = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="transform_key_version_unique")
        ]
        ordering = ["key", "version"]


class Run(TracedRecord):
    """One execution of a Transform; records its parameters, status and report."""

    name_field: ClassVar[str] = "uid"

    class Status(models.TextChoices):
        STARTED = "started"
        COMPLETED = "completed"
        FAILED = "failed"

    uid = uid_field(20)
    transform = models.ForeignKey(Transform, on_delete=models.PROTECT, related_name="runs")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTED)
    params = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(
        default=dict,
        blank=True,
        help_text="what the run's finished steps produced, read back when an interrupted run "
        "resumes (e.g. cell counts)",
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.transform.key} run {self.uid} ({self.status})"
