"""Ontology registries."""

from ontologies.models.base import OntologyRecord, Source
from ontologies.models.terms import (
    Assay,
    CellType,
    DevelopmentalStage,
    Disease,
    Ethnicity,
    Gene,
    Organism,
    Phenotype,
    Tissue,
)

__all__ = [
    "Assay",
    "CellType",
    "DevelopmentalStage",
    "Disease",
    "Ethnicity",
    "Gene",
    "OntologyRecord",
    "Organism",
    "Phenotype",
    "Source",
    "Tissue",
]
