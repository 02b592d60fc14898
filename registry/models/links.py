"""Through tables linking artifacts to labels, and collections to their artifacts.

Every label link records which feature (obs column) it came from and how many cells carry the
label. A label is linked at most once per artifact and feature; the constraint holds also when
``feature`` is NULL (a second, conditional unique constraint), so duplicates cannot creep in.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q

from registry.models.base import Record


class LabelLink(Record):
    """Abstract link of an artifact to one label of a registry."""

    is_link_table: ClassVar[bool] = True
    name_field: ClassVar[str] = "id"

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


def _label(target: str) -> models.ForeignKey:
    # no index of its own: the (label, artifact) index of LabelLink serves label lookups
    return models.ForeignKey(target, on_delete=models.PROTECT, related_name="+", db_index=False)


class ArtifactCellType(LabelLink):
    label = _label("ontologies.CellType")


class ArtifactTissue(LabelLink):
    label = _label("ontologies.Tissue")


class ArtifactDisease(LabelLink):
    label = _label("ontologies.Disease")


class ArtifactAssay(LabelLink):
    label = _label("ontologies.Assay")


class ArtifactOrganism(LabelLink):
    label = _label("ontologies.Organism")


class ArtifactDevelopmentalStage(LabelLink):
    label = _label("ontologies.DevelopmentalStage")


class ArtifactEthnicity(LabelLink):
    label = _label("ontologies.Ethnicity")


class ArtifactPhenotype(LabelLink):
    label = _label("ontologies.Phenotype")


class ArtifactULabel(LabelLink):
    label = _label("registry.ULabel")


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
