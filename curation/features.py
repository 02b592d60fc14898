"""The one table of curated features: what curation reads from a dataset and where it links it.

Each row names an obs feature of the CELLxGENE schema and everything the pipeline needs to know
about it: the obs column it is read from, the Artifact relation and the registry its values link
to (a ULabel type for free labels), where the values come from, whether every dataset must be
linked for it, and whether one cell may carry several terms (``"A || B"``). The obs scan
(:mod:`curation.annotate`), registration (:mod:`curation.register`), verification
(:mod:`curation.steps`), the release diff, the synthetic registry and the demo generator all read
this table; nothing else lists features.

This module is pure data (no Django): executor workers import it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: where a feature's values come from
OBS = "obs"  # an obs column of every dataset (h5ad submission and the Census store)
CENSUS = "census"  # an obs column the Census build adds: in the SOMA store, not in h5ads
DATASET = "dataset"  # one value per dataset (uns of the h5ad, the experiment of the store)

#: the values of ontology columns that name no term (nothing is linked for them)
NO_TERM = frozenset({"unknown", "na", ""})
MULTI_TERM_DELIMITER = "||"


@dataclass(frozen=True)
class CuratedFeature:
    """One curated obs feature.

    Attributes:
        name: the Feature name, e.g. ``cell_type``.
        relation: the Artifact relation its labels go to, e.g. ``cell_types``.
        registry: the label registry, e.g. ``CellType`` (``ULabel`` for free labels).
        ulabel_type: the ULabel type of free labels (``SuspensionType``, ...), else ``""``.
        source: :data:`OBS`, :data:`CENSUS` or :data:`DATASET`.
        required: verification demands that every dataset is linked for it (unless all of its
            cells say ``unknown``/``na`` there).
        multi_valued: a cell may list several terms, ``"A || B"``.
        summarized: a field of the cell-level summary (``ontologies.Cells``): the cells of every
            dataset are counted per combination of the values of these features.
    """

    name: str
    relation: str
    registry: str
    ulabel_type: str = ""
    source: str = OBS
    required: bool = False
    multi_valued: bool = False
    summarized: bool = True

    @property
    def is_ontology(self) -> bool:
        """Values are ontology term ids (not free labels)."""
        return not self.ulabel_type

    @property
    def obs_column(self) -> str:
        """The obs column of its values: ``cell_type_ontology_term_id``, ``donor_id``, ..."""
        return f"{self.name}_ontology_term_id" if self.is_ontology else self.name

    @property
    def label_column(self) -> str | None:
        """The obs column of the term labels next to the ids (``cell_type``), if any."""
        return self.name if self.is_ontology else None

    @property
    def in_h5ad(self) -> bool:
        """A column of every h5ad's obs (``tissue_general`` is only in the Census store)."""
        return self.source == OBS

    @property
    def dtype(self) -> str:
        """The Feature's dtype, e.g. ``cat[CellType]`` or ``cat[ULabel[Donor]]``."""
        if self.ulabel_type:
            return f"cat[{self.registry}[{self.ulabel_type}]]"
        return f"cat[{self.registry}]"


FEATURES: tuple[CuratedFeature, ...] = (
    CuratedFeature("cell_type", "cell_types", "CellType", required=True),
    CuratedFeature("tissue", "tissues", "Tissue", required=True),
    CuratedFeature("tissue_general", "tissues", "Tissue", source=CENSUS),
    CuratedFeature("disease", "diseases", "Disease", required=True, multi_valued=True),
    CuratedFeature("assay", "assays", "Assay", required=True),
    CuratedFeature("organism", "organisms", "Organism", source=DATASET, required=True),
    CuratedFeature(
        "development_stage", "developmental_stages", "DevelopmentalStage", required=True
    ),
    CuratedFeature("self_reported_ethnicity", "ethnicities", "Ethnicity", multi_valued=True),
    CuratedFeature("sex", "phenotypes", "Phenotype", required=True),
    CuratedFeature("suspension_type", "ulabels", "ULabel", "SuspensionType"),
    CuratedFeature("tissue_type", "ulabels", "ULabel", "TissueType"),
    # in the cell summary too: it adds few rows (figures in bench/RESULTS.md, "Cells")
    CuratedFeature("donor_id", "ulabels", "ULabel", "Donor"),
)
#: the same, by name
BY_NAME: dict[str, CuratedFeature] = {feature.name: feature for feature in FEATURES}
#: the names, in link order
NAMES: tuple[str, ...] = tuple(BY_NAME)
#: features read from obs columns (all but the per-dataset ones)
OBS_FEATURES: tuple[CuratedFeature, ...] = tuple(f for f in FEATURES if f.source != DATASET)
#: the features of the cell-level summary, in the order of its combinations
SUMMARIZED: tuple[CuratedFeature, ...] = tuple(f for f in FEATURES if f.summarized)
#: the column every cell needs besides the features
PRIMARY_COLUMN = "is_primary_data"
DATASET_COLUMN = "dataset_id"


def feature(name: str) -> CuratedFeature:
    """The curated feature ``name``.

    Raises:
        KeyError: naming the curated features.
    """
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a curated feature; curated: {', '.join(NAMES)}.") from None


def split_terms(value: str) -> list[str]:
    """The terms of a multi-valued obs value: ``"A || B"`` -> ``["A", "B"]``.

    A value without the delimiter is returned as it is; the parts of a multi-valued one are
    stripped, and empty or repeated parts are dropped.
    """
    if MULTI_TERM_DELIMITER not in value:
        return [value]
    parts = (part.strip() for part in value.split(MULTI_TERM_DELIMITER))
    return list(dict.fromkeys(part for part in parts if part))
