"""The link tables of the ontology registries to Artifact (bionty's ``ArtifactCellType``, ...).

They belong to the term registries (each term registry declares ``artifacts`` through its table,
so ``Artifact.cell_types`` is the reverse side): the ``ontologies`` app builds on ``registry``,
never the other way round. Their shape — artifact, label, feature, cell counts, uniqueness also
without a feature — is :class:`registry.models.links.LabelLink`.
"""

from __future__ import annotations

from registry.models.links import LabelLink, link_label


class ArtifactCellType(LabelLink):
    label = link_label("ontologies.CellType")


class ArtifactTissue(LabelLink):
    label = link_label("ontologies.Tissue")


class ArtifactDisease(LabelLink):
    label = link_label("ontologies.Disease")


class ArtifactAssay(LabelLink):
    label = link_label("ontologies.Assay")


class ArtifactOrganism(LabelLink):
    label = link_label("ontologies.Organism")


class ArtifactDevelopmentalStage(LabelLink):
    label = link_label("ontologies.DevelopmentalStage")


class ArtifactEthnicity(LabelLink):
    label = link_label("ontologies.Ethnicity")


class ArtifactPhenotype(LabelLink):
    label = link_label("ontologies.Phenotype")
