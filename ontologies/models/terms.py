"""The ontology registries the CELLxGENE schema uses, one per obs feature."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from ontologies.models.base import OntologyRecord, Source
from registry.models.base import TracedRecord, uid_field


class CellType(OntologyRecord):
    """Cell Ontology (CL) terms: ``cell_type``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("CL",)


class Tissue(OntologyRecord):
    """UBERON terms (also CL terms for cell cultures): ``tissue``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("UBERON", "CL")


class Disease(OntologyRecord):
    """MONDO terms, plus PATO:0000461 "normal": ``disease``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("MONDO", "PATO")


class Assay(OntologyRecord):
    """Experimental Factor Ontology (EFO) assay terms: ``assay`` (LaminDB: ExperimentalFactor)."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("EFO",)


class Organism(OntologyRecord):
    """NCBITaxon organisms admitted by the schema: ``organism``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("NCBITaxon",)

    scientific_name = models.CharField(max_length=255, blank=True, default="", db_index=True)


class DevelopmentalStage(OntologyRecord):
    """HsapDv / MmusDv terms: ``development_stage``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("HsapDv", "MmusDv", "UBERON")


class Ethnicity(OntologyRecord):
    """HANCESTRO terms: ``self_reported_ethnicity``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("HANCESTRO",)


class Phenotype(OntologyRecord):
    """PATO terms (sex) and other phenotypes: ``sex``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("PATO", "HP")


class Gene(TracedRecord):
    """GENCODE / Ensembl genes."""

    name_field: ClassVar[str] = "symbol"

    uid = uid_field(12)
    ensembl_gene_id = models.CharField(max_length=64, unique=True)
    symbol = models.CharField(max_length=255, db_index=True, blank=True, default="")
    biotype = models.CharField(max_length=64, blank=True, default="")
    description = models.TextField(blank=True, default="")
    synonyms = models.TextField(blank=True, default="", help_text="'|'-separated")
    organism = models.ForeignKey(
        Organism, on_delete=models.PROTECT, related_name="genes", null=True, blank=True
    )
    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )

    class Meta:
        ordering = ["symbol"]
