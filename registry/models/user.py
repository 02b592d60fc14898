"""Users: who created a record (``created_by``). Not Django's login users."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone

from registry.models.base import Record, uid_field


class User(Record):
    """A person or service account that writes records, identified by ``handle``."""

    name_field: ClassVar[str] = "handle"

    uid = uid_field(8)
    handle = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["handle"]
