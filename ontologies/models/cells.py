"""The cell-level summary: per release and dataset, the cells of every combination of obs labels.

One row holds how many cells of one dataset (``artifact``) of one release (``release``: the
release's SOMA store artifact) share one value of every summarized obs feature
(``curation.features.SUMMARIZED``) and one ``is_primary_data``. Ontology features are foreign
keys to their registries, NULL where the value names no term (``unknown``, ``na``, or several
terms ``"A || B"``: such a cell counts once, in no term, as in a Census obs filter on the term
id); ``suspension_type``, ``tissue_type`` and ``donor_id`` are strings as obs has them.

Summing ``n_cells`` over a selection of rows gives its cells: ``ln.Cells`` (see
:mod:`ontologies.cells`) answers "how many cells of T cell or any subtype in lung, by dataset"
from this table without reading a cell. Curation writes it (``curation.cells``) from the same
obs scan as the label counts.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from ontologies.cells import CELLS_METHODS, CellsManager
from registry.models.base import Record, class_query_method

#: the ontology fields of the summary and their registries; each is the obs column
#: ``<field>_ontology_term_id`` of a Census store
TERM_FIELDS: dict[str, str] = {
    "cell_type": "ontologies.CellType",
    "tissue": "ontologies.Tissue",
    "tissue_general": "ontologies.Tissue",
    "disease": "ontologies.Disease",
    "assay": "ontologies.Assay",
    "organism": "ontologies.Organism",
    "development_stage": "ontologies.DevelopmentalStage",
    "self_reported_ethnicity": "ontologies.Ethnicity",
    "sex": "ontologies.Phenotype",
}
#: the fields holding obs values as they are
VALUE_FIELDS: tuple[str, ...] = ("suspension_type", "tissue_type", "donor_id")


def _term(target: str) -> models.ForeignKey:
    # no index of its own: the table's composite indexes serve the queries. No database
    # constraint either: curation writes keys it has just read from the registry, and nine
    # constraint triggers per row would make the bulk write of a release several times slower
    # on PostgreSQL; deleting a term a summary names is still refused (PROTECT, by Django).
    return models.ForeignKey(
        target,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        db_index=False,
        db_constraint=False,
    )


class Cells(Record):
    """Cells of one dataset of one release sharing one combination of obs labels."""

    #: kept out of ``db.ontologies``: it is ``ln.Cells``
    is_link_table: ClassVar[bool] = True
    name_field: ClassVar[str] = "id"

    objects = CellsManager()

    release = models.ForeignKey(
        "registry.Artifact",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        help_text="the release's SOMA store artifact",
    )
    artifact = models.ForeignKey(
        "registry.Artifact", on_delete=models.CASCADE, related_name="+", help_text="the dataset"
    )
    cell_type = _term(TERM_FIELDS["cell_type"])
    tissue = _term(TERM_FIELDS["tissue"])
    tissue_general = _term(TERM_FIELDS["tissue_general"])
    disease = _term(TERM_FIELDS["disease"])
    assay = _term(TERM_FIELDS["assay"])
    organism = _term(TERM_FIELDS["organism"])
    development_stage = _term(TERM_FIELDS["development_stage"])
    self_reported_ethnicity = _term(TERM_FIELDS["self_reported_ethnicity"])
    sex = _term(TERM_FIELDS["sex"])
    suspension_type = models.CharField(max_length=32, blank=True, default="")
    tissue_type = models.CharField(max_length=32, blank=True, default="")
    donor_id = models.CharField(max_length=255, blank=True, default="")
    is_primary_data = models.BooleanField()
    n_cells = models.BigIntegerField()

    class Meta:
        verbose_name_plural = "cells"
        indexes = [
            # a release first: every query names one; then the labels asked about most
            models.Index(fields=["release", "cell_type", "tissue"], name="cells_release_cell_type"),
            models.Index(fields=["release", "tissue"], name="cells_release_tissue"),
            models.Index(fields=["release", "disease"], name="cells_release_disease"),
        ]

    def __str__(self) -> str:
        return f"{self.n_cells} cells of artifact {self.artifact_id} (release {self.release_id})"


for _name in CELLS_METHODS:  # Cells.summarize(...) as Cells.objects.summarize(...)
    setattr(Cells, _name, class_query_method(_name))
