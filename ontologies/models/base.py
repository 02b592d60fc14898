"""What every ontology registry shares: id, name, synonyms, deprecation, parents, source."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from registry.models.base import TracedRecord, hashed_uid, uid_field

ONTOLOGY_UID_LENGTH = 10
SYNONYM_SEPARATOR = "|"


class Source(TracedRecord):
    """An ontology release a registry's terms come from, e.g. ``cl`` ``2025-04-10`` for CellType."""

    uid = uid_field(8)
    entity = models.CharField(max_length=64, db_index=True, help_text="registry, e.g. CellType")
    name = models.CharField(max_length=64, help_text="ontology, e.g. cl")
    version = models.CharField(max_length=64)
    organism = models.CharField(max_length=64, blank=True, default="")
    url = models.CharField(max_length=500, blank=True, default="")
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["entity", "name", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["entity", "name", "version", "organism"], name="source_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.entity}: {self.name} {self.version}"


class OntologyRecord(TracedRecord):
    """Abstract ontology term. ``uid`` derives from the registry and ontology id, so a term has
    the same uid in every instance (transfers match on it)."""

    #: the ontology id prefixes this registry accepts, e.g. ("CL",)
    ontology_prefixes: ClassVar[tuple[str, ...]] = ()

    uid = uid_field(ONTOLOGY_UID_LENGTH)
    ontology_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    name = models.CharField(max_length=255, db_index=True)
    synonyms = models.TextField(blank=True, default="", help_text="'|'-separated")
    description = models.TextField(blank=True, default="")
    is_deprecated = models.BooleanField(default=False, db_index=True)
    replaced_by = models.ForeignKey(
        "self", on_delete=models.SET_NULL, related_name="+", null=True, blank=True
    )
    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    parents = models.ManyToManyField("self", symmetrical=False, related_name="children", blank=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not args and "uid" not in kwargs and kwargs.get("ontology_id"):
            kwargs["uid"] = self.uid_for(kwargs["ontology_id"])
        super().__init__(*args, **kwargs)

    @classmethod
    def uid_for(cls, ontology_id: str) -> str:
        """The uid a term of this registry gets in every instance."""
        return hashed_uid(f"{cls.__name__}:{ontology_id}", ONTOLOGY_UID_LENGTH)

    @property
    def synonym_list(self) -> list[str]:
        """The synonyms as a list."""
        return [s for s in self.synonyms.split(SYNONYM_SEPARATOR) if s]
