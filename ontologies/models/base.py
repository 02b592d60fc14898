"""What every ontology registry shares: id, name, synonyms, deprecation, parents, source.

Terms are queried through :class:`ontologies.query.OntologyQuerySet`, which adds
``standardize``/``validate``/``inspect`` and ``descendants``/``ancestors`` to the registry query
surface; the same names work on the class (``CellType.standardize([...])``) and, for the
hierarchy, on a term (``t_cell.descendants(include_self=True)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import models

from ontologies import hierarchy
from ontologies.errors import OntologyIdPrefixError
from ontologies.query import OntologyManager
from registry.models.base import TracedRecord, class_query_method, hashed_uid, uid_field

if TYPE_CHECKING:
    pass

ONTOLOGY_UID_LENGTH = 10
SYNONYM_SEPARATOR = "|"


def id_prefix(ontology_id: str) -> str:
    """The prefix of a CURIE: ``CL`` for ``CL:0000084`` (empty if there is no ``:``)."""
    prefix, sep, _ = ontology_id.partition(":")
    return prefix if sep else ""


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


class CurationMixin:
    """Class-level ``standardize``/``validate``/``inspect`` of a registry (``CellType.inspect``),
    delegating to its manager; see :class:`ontologies.query.TermQuerySet`."""

    standardize = class_query_method("standardize")
    validate = class_query_method("validate")
    inspect = class_query_method("inspect")


class OntologyRecord(CurationMixin, TracedRecord):
    """Abstract ontology term. ``uid`` derives from the registry and ontology id, so a term has
    the same uid in every instance (transfers match on it)."""

    #: the ontology id prefixes this registry accepts, e.g. ("CL",)
    ontology_prefixes: ClassVar[tuple[str, ...]] = ()
    #: the field holding the term's identifier (``standardize`` also matches on it)
    id_field: ClassVar[str] = "ontology_id"

    objects = OntologyManager()

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

    @classmethod
    def check_ontology_ids(cls, ontology_ids: Iterable[str], origin: str = "") -> None:
        """Refuse ontology ids whose prefix this registry does not accept.

        Args:
            ontology_ids: the ids to check.
            origin: where they come from (a file, an ontology release), for the message.

        Raises:
            OntologyIdPrefixError: naming the registry, the ids and the accepted prefixes.
        """
        accepted = set(cls.ontology_prefixes)
        wrong = [i for i in ontology_ids if id_prefix(i) not in accepted]
        if not wrong:
            return
        shown = ", ".join(repr(i) for i in wrong[:5])
        shown += f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        where = f" (from {origin})" if origin else ""
        raise OntologyIdPrefixError(
            f"{len(wrong)} ontology id(s){where} do not belong in {cls.__name__}: {shown}. "
            f"{cls.__name__} accepts ids with the prefixes {', '.join(cls.ontology_prefixes)} "
            f"(PREFIX:LOCAL). Choose the registry of that ontology, or correct the ids."
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, refusing an ontology id of another ontology (e.g. an UBERON id in CellType)."""
        if self.ontology_id:
            self.check_ontology_ids([self.ontology_id])
        super().save(*args, **kwargs)

    @property
    def synonym_list(self) -> list[str]:
        """The synonyms as a list."""
        return [s for s in self.synonyms.split(SYNONYM_SEPARATOR) if s]

    # --- hierarchy of one term ------------------------------------------------------------
    def descendants(self, include_self: bool = False, method: str | None = None) -> Any:
        """All terms below this one (children, their children, ...), computed in SQL.

        The result is a queryset, so it can be refined (``.filter(...)``) or used inside another
        filter: ``Artifact.filter(cell_types__in=t_cell.descendants(include_self=True))``.

        Args:
            include_self: include this term.
            method: ``"closure"`` (closure table) or ``"cte"`` (recursive query); default: the
                faster one, see :mod:`ontologies.hierarchy`.
        """
        return hierarchy.related(self, "descendants", include_self, method)

    def ancestors(self, include_self: bool = False, method: str | None = None) -> Any:
        """All terms above this one (parents, their parents, ...); see :meth:`descendants`."""
        return hierarchy.related(self, "ancestors", include_self, method)
