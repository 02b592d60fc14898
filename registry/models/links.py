"""Through tables linking artifacts to labels, and collections to their artifacts.

:class:`LabelLink` is the shape of every label link: which artifact, which label, which feature
(obs column) it came from and how many cells carry the label. A label is linked at most once per
artifact and feature; the constraint holds also when ``feature`` is NULL (a second, conditional
unique constraint), so duplicates cannot creep in.

Each label registry owns its link table and declares the many-to-many field on its own side
(``artifacts = artifact_labels(...)``), as bionty does: the ontology registries live in the
``ontologies`` app, which depends on this one and never the other way round, and
``Artifact.cell_types`` is the reverse side of ``CellType.artifacts``. :func:`label_relations`
finds them all at run time, whichever app declares them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

from django.apps import apps
from django.db import models
from django.db.models import Q

from registry.models.base import Record


class LabelLink(Record):
    """Abstract link of an artifact to one label of a registry.

    A subclass adds ``label`` (:func:`link_label`) and its ``artifact`` (:func:`link_artifact`,
    which names the links on Artifact as LaminDB does: ``links_cell_type``), and sets
    ``label_name`` (``cell_type``): the name LaminDB gives the label column, accepted wherever a
    query names a field (``links_cell_type__cell_type__name``) and readable as an attribute.
    """

    is_link_table: ClassVar[bool] = True
    name_field: ClassVar[str] = "id"
    label_name: ClassVar[str] = "label"

    artifact = models.ForeignKey("registry.Artifact", on_delete=models.CASCADE, related_name="+")
    feature = models.ForeignKey(
        "registry.Feature", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    n_cells = models.BigIntegerField(null=True, blank=True)
    n_primary_cells = models.BigIntegerField(null=True, blank=True)

    class Meta:
        abstract = True
        # label first: "which artifacts have label X" is answered from the index alone
        indexes = [models.Index(fields=["label", "artifact"], name="%(class)s_la")]
        constraints = [
            models.UniqueConstraint(
                fields=["artifact", "label", "feature"],
                condition=Q(feature__isnull=False),
                name="%(class)s_unique_with_feature",
            ),
            models.UniqueConstraint(
                fields=["artifact", "label"],
                condition=Q(feature__isnull=True),
                name="%(class)s_unique_without_feature",
            ),
        ]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.label_name != "label" and cls.label_name not in cls.__dict__:
            setattr(cls, cls.label_name, property(lambda link: link.label))


def link_label(target: str) -> models.ForeignKey:
    """The ``label`` column of a link table (no index of its own: the (label, artifact) index of
    :class:`LabelLink` serves label lookups); a label reaches its links as ``links_artifact``."""
    return models.ForeignKey(
        target, on_delete=models.PROTECT, related_name="links_artifact", db_index=False
    )


def link_artifact(links_name: str) -> models.ForeignKey:
    """The ``artifact`` column of a link table; ``links_name`` is the name of the links on
    Artifact (``links_cell_type``), so filters and ``include`` reach the link rows' counts."""
    return models.ForeignKey("registry.Artifact", on_delete=models.CASCADE, related_name=links_name)


def artifact_labels(through: str, related_name: str) -> models.ManyToManyField:
    """The many-to-many field a label registry declares to artifacts, through its link table;
    ``related_name`` is the name on Artifact (``cell_types``)."""
    return models.ManyToManyField(
        "registry.Artifact",
        through=through,
        through_fields=("label", "artifact"),
        related_name=related_name,
        blank=True,
    )


@dataclass(frozen=True)
class LabelRelation:
    """One label relation of Artifact: its name there, the label registry, the link table."""

    name: str  # e.g. "cell_types"
    registry: type[models.Model]  # e.g. CellType
    through: type[LabelLink]  # e.g. ArtifactCellType


@functools.cache
def label_relations() -> tuple[LabelRelation, ...]:
    """Every label relation of Artifact, in the order the apps declare them."""
    artifact = apps.get_model("registry", "Artifact")
    found = []
    for relation in artifact._meta.related_objects:
        through = getattr(relation, "through", None)
        if relation.many_to_many and through is not None and issubclass(through, LabelLink):
            name = relation.get_accessor_name()
            found.append(LabelRelation(name, relation.related_model, through))
    return tuple(found)


class ArtifactULabel(LabelLink):
    label_name = "ulabel"
    artifact = link_artifact("links_ulabel")
    label = link_label("registry.ULabel")


class CollectionArtifact(Record):
    """Membership of an artifact in a collection, with its position."""

    is_link_table: ClassVar[bool] = True
    name_field: ClassVar[str] = "id"

    collection = models.ForeignKey(
        "registry.Collection", on_delete=models.CASCADE, related_name="+"
    )
    artifact = models.ForeignKey("registry.Artifact", on_delete=models.PROTECT, related_name="+")
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["collection", "order"]
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "artifact"], name="collectionartifact_unique"
            )
        ]
