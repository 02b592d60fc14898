"""The core registries. Ontology registries (CellType, ...) and their link tables to Artifact
live in the ``ontologies`` app, which builds on this one."""

from registry.models.artifact import Artifact
from registry.models.collection import Collection
from registry.models.feature import Feature
from registry.models.links import ArtifactULabel, CollectionArtifact, LabelLink
from registry.models.run import Run, Transform
from registry.models.storage import Storage
from registry.models.ulabel import ULabel
from registry.models.user import User

__all__ = [
    "Artifact",
    "ArtifactULabel",
    "Collection",
    "CollectionArtifact",
    "Feature",
    "LabelLink",
    "Run",
    "Storage",
    "Transform",
    "ULabel",
    "User",
]
