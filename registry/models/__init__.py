"""The core registries. Label registries (CellType, ...) live in the ``ontologies`` app."""

from registry.models.artifact import Artifact
from registry.models.collection import Collection
from registry.models.feature import Feature
from registry.models.links import (
    ArtifactAssay,
    ArtifactCellType,
    ArtifactDevelopmentalStage,
    ArtifactDisease,
    ArtifactEthnicity,
    ArtifactOrganism,
    ArtifactPhenotype,
    ArtifactTissue,
    ArtifactULabel,
    CollectionArtifact,
)
from registry.models.run import Run, Transform
from registry.models.storage import Storage
from registry.models.ulabel import ULabel
from registry.models.user import User

__all__ = [
    "Artifact",
    "ArtifactAssay",
    "ArtifactCellType",
    "ArtifactDevelopmentalStage",
    "ArtifactDisease",
    "ArtifactEthnicity",
    "ArtifactOrganism",
    "ArtifactPhenotype",
    "ArtifactTissue",
    "ArtifactULabel",
    "Collection",
    "CollectionArtifact",
    "Feature",
    "Run",
    "Storage",
    "Transform",
    "ULabel",
    "User",
]
