"""The link tables of the ontology registries to Artifact (bionty's ``ArtifactCellType``, ...).

They belong to the term registries (each term registry declares ``artifacts`` through its table,
so ``Artifact.cell_types`` is the reverse side): the ``ontologies`` app builds on ``registry``,
never the other way round. As in bionty, Artifact reaches the link rows as ``links_cell_type``,
``links_tissue``, ... (``links_experimental_factor`` for assays, as LaminDB names them;
``links_assay`` works too) and each link names its label after the registry
(``links_cell_type__cell_type__name``). Their shape — artifact, label, feature, cell counts,
uniqueness also without a feature — is :class:`registry.models.links.LabelLink`.
"""

from __future__ import annotations

from registry.models.links import LabelLink, link_artifact, link_label


class ArtifactCellType(LabelLink):
    label_name = "cell_type"
    artifact = link_artifact("links_cell_type")
    label = link_label("ontologies.CellType")


class ArtifactTissue(LabelLink):
    label_name = "tissue"
    artifact = link_artifact("links_tissue")
    label = link_label("ontologies.Tissue")


class ArtifactDisease(LabelLink):
    label_name = "disease"
    artifact = link_artifact("links_disease")
    label = link_label("ontologies.Disease")


class ArtifactAssay(LabelLink):
    label_name = "experimental_factor"
    artifact = link_artifact("links_experimental_factor")
    label = link_label("ontologies.Assay")


class ArtifactOrganism(LabelLink):
    label_name = "organism"
    artifact = link_artifact("links_organism")
    label = link_label("ontologies.Organism")


class ArtifactDevelopmentalStage(LabelLink):
    label_name = "developmental_stage"
    artifact = link_artifact("links_developmental_stage")
    label = link_label("ontologies.DevelopmentalStage")


class ArtifactEthnicity(LabelLink):
    label_name = "ethnicity"
    artifact = link_artifact("links_ethnicity")
    label = link_label("ontologies.Ethnicity")


class ArtifactPhenotype(LabelLink):
    label_name = "phenotype"
    artifact = link_artifact("links_phenotype")
    label = link_label("ontologies.Phenotype")
