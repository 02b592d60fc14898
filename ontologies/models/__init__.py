"""Ontology registries, their sources, their closure tables and their link tables to Artifact."""

from ontologies.models.base import OntologyRecord, Source
from ontologies.models.cells import Cells
from ontologies.models.closure import (
    AssayClosure,
    CellTypeClosure,
    DevelopmentalStageClosure,
    DiseaseClosure,
    EthnicityClosure,
    OntologyClosure,
    OrganismClosure,
    PhenotypeClosure,
    TissueClosure,
)
from ontologies.models.links import (
    ArtifactAssay,
    ArtifactCellType,
    ArtifactDevelopmentalStage,
    ArtifactDisease,
    ArtifactEthnicity,
    ArtifactOrganism,
    ArtifactPhenotype,
    ArtifactTissue,
)
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

#: the registries with a parent hierarchy, in the order the guide import fills them
HIERARCHY_REGISTRIES = (
    CellType,
    Tissue,
    Disease,
    Assay,
    Organism,
    DevelopmentalStage,
    Ethnicity,
    Phenotype,
)

__all__ = [
    "ArtifactAssay",
    "ArtifactCellType",
    "ArtifactDevelopmentalStage",
    "ArtifactDisease",
    "ArtifactEthnicity",
    "ArtifactOrganism",
    "ArtifactPhenotype",
    "ArtifactTissue",
    "HIERARCHY_REGISTRIES",
    "Assay",
    "AssayClosure",
    "CellType",
    "CellTypeClosure",
    "Cells",
    "DevelopmentalStage",
    "DevelopmentalStageClosure",
    "Disease",
    "DiseaseClosure",
    "Ethnicity",
    "EthnicityClosure",
    "Gene",
    "OntologyClosure",
    "OntologyRecord",
    "Organism",
    "OrganismClosure",
    "Phenotype",
    "PhenotypeClosure",
    "Source",
    "Tissue",
    "TissueClosure",
]
