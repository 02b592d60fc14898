"""Closure tables: for every ontology registry, one row per (ancestor, descendant) pair of its
parent DAG, with the length of the shortest path between them.

They make ``descendants()``/``ancestors()`` one indexed lookup (see :mod:`ontologies.hierarchy`,
which writes and reads them). A term is not its own ancestor here: ``include_self`` adds it in
the query, so terms created outside an import need no closure row to be found.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class OntologyClosure(models.Model):
    """Abstract closure table of one registry (``ancestor`` and ``descendant`` are its terms)."""

    #: kept out of ``db.ontologies`` (like the artifact link tables)
    is_link_table: ClassVar[bool] = True

    depth = models.PositiveIntegerField(help_text="edges on the shortest path, at least 1")

    class Meta:
        abstract = True
        constraints = [
            # (ancestor, descendant) first: "descendants of X" is a range scan of this index
            models.UniqueConstraint(fields=["ancestor", "descendant"], name="%(class)s_unique")
        ]
        indexes = [models.Index(fields=["descendant", "ancestor"], name="%(class)s_da")]


def _end(target: str) -> models.ForeignKey:
    # no single-column index: the two composite indexes above serve both directions
    return models.ForeignKey(target, on_delete=models.CASCADE, related_name="+", db_index=False)


class CellTypeClosure(OntologyClosure):
    ancestor = _end("ontologies.CellType")
    descendant = _end("ontologies.CellType")


class TissueClosure(OntologyClosure):
    ancestor = _end("ontologies.Tissue")
    descendant = _end("ontologies.Tissue")


class DiseaseClosure(OntologyClosure):
    ancestor = _end("ontologies.Disease")
    descendant = _end("ontologies.Disease")


class AssayClosure(OntologyClosure):
    ancestor = _end("ontologies.Assay")
    descendant = _end("ontologies.Assay")


class OrganismClosure(OntologyClosure):
    ancestor = _end("ontologies.Organism")
    descendant = _end("ontologies.Organism")


class DevelopmentalStageClosure(OntologyClosure):
    ancestor = _end("ontologies.DevelopmentalStage")
    descendant = _end("ontologies.DevelopmentalStage")


class EthnicityClosure(OntologyClosure):
    ancestor = _end("ontologies.Ethnicity")
    descendant = _end("ontologies.Ethnicity")


class PhenotypeClosure(OntologyClosure):
    ancestor = _end("ontologies.Phenotype")
    descendant = _end("ontologies.Phenotype")
