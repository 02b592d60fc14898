"""The ontology registries the CELLxGENE schema uses, one per obs feature."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from ontologies.models.base import CurationMixin, OntologyRecord, Source
from ontologies.query import TermManager
from registry.models.base import TracedRecord, hashed_uid, uid_field
from registry.models.links import artifact_labels

GENE_UID_LENGTH = 12


class CellType(OntologyRecord):
    """Cell Ontology (CL) terms: ``cell_type``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("CL",)
    artifacts = artifact_labels("ontologies.ArtifactCellType", "cell_types")


class Tissue(OntologyRecord):
    """UBERON terms (also CL terms for cell cultures): ``tissue``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("UBERON", "CL")
    artifacts = artifact_labels("ontologies.ArtifactTissue", "tissues")


class Disease(OntologyRecord):
    """MONDO terms, plus PATO:0000461 "normal": ``disease``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("MONDO", "PATO")
    artifacts = artifact_labels("ontologies.ArtifactDisease", "diseases")


class Assay(OntologyRecord):
    """Experimental Factor Ontology (EFO) assay terms: ``assay`` (LaminDB: ExperimentalFactor)."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("EFO",)
    artifacts = artifact_labels("ontologies.ArtifactAssay", "assays")


class Organism(OntologyRecord):
    """NCBITaxon organisms admitted by the schema: ``organism``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("NCBITaxon",)
    artifacts = artifact_labels("ontologies.ArtifactOrganism", "organisms")

    scientific_name = models.CharField(max_length=255, blank=True, default="", db_index=True)


class DevelopmentalStage(OntologyRecord):
    """HsapDv / MmusDv terms: ``development_stage``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("HsapDv", "MmusDv", "UBERON")
    artifacts = artifact_labels("ontologies.ArtifactDevelopmentalStage", "developmental_stages")


class Ethnicity(OntologyRecord):
    """HANCESTRO terms (and the AfPO terms HANCESTRO imports): ``self_reported_ethnicity``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("HANCESTRO", "AfPO")
    artifacts = artifact_labels("ontologies.ArtifactEthnicity", "ethnicities")


class Phenotype(OntologyRecord):
    """PATO terms (sex) and other phenotypes: ``sex``."""

    ontology_prefixes: ClassVar[tuple[str, ...]] = ("PATO", "HP")
    artifacts = artifact_labels("ontologies.ArtifactPhenotype", "phenotypes")


class Gene(CurationMixin, TracedRecord):
    """GENCODE / Ensembl genes. ``uid`` derives from the Ensembl id, as for ontology terms."""

    name_field: ClassVar[str] = "symbol"
    id_field: ClassVar[str] = "ensembl_gene_id"

    objects = TermManager()

    uid = uid_field(GENE_UID_LENGTH)
    ensembl_gene_id = models.CharField(max_length=64, unique=True)
    symbol = models.CharField(max_length=255, db_index=True, blank=True, default="")
    biotype = models.CharField(max_length=64, blank=True, default="")
    description = models.TextField(blank=True, default="")
    synonyms = models.TextField(blank=True, default="", help_text="'|'-separated")
    is_deprecated = models.BooleanField(default=False, db_index=True)
    organism = models.ForeignKey(
        Organism, on_delete=models.PROTECT, related_name="genes", null=True, blank=True
    )
    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )

    class Meta:
        ordering = ["symbol"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not args and "uid" not in kwargs and kwargs.get("ensembl_gene_id"):
            kwargs["uid"] = self.uid_for(kwargs["ensembl_gene_id"])
        super().__init__(*args, **kwargs)

    @classmethod
    def uid_for(cls, ensembl_gene_id: str) -> str:
        """The uid a gene gets in every instance."""
        return hashed_uid(f"Gene:{ensembl_gene_id}", GENE_UID_LENGTH)
