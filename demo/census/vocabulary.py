"""Curated, real ontology terms to fill demo datasets with, per organism (human and mouse).

The tables below hold term ids only. Names come from ``cellxgene-ontology-guide`` for the
ontology versions of the CELLxGENE schema the demo files follow (:data:`SCHEMA_VERSION`), so they
are exactly the labels ``cellxgene-schema add-labels`` writes and the registry's ontology tables
hold. ``tests/curation/test_demo_h5ad.py`` checks every id against the guide and the schema's
rules for its column: valid, not deprecated, allowed there.

Rules of the schema (7.1.0) that shaped the choices:

- ``tissue_type`` is one of ``tissue``, ``organoid``, ``primary cell culture`` (``cell line``
  needs Cellosaurus ids and ``na`` donors/sex/stage, not used here). A ``tissue`` is an UBERON
  descendant of "anatomical entity" (never "embryo"); an ``organoid`` names the UBERON tissue it
  models; a ``primary cell culture`` names a CL cell type as its tissue. Within a vocabulary a
  tissue id appears once, so it determines its ``tissue_type``.
- Suspension types per assay follow the schema's table (``AssayChoice.suspension_types``; the
  first one is the usual choice, e.g. ``nucleus`` for 10x multiome).
- Human ethnicities are HANCESTRO/AfPO descendants of "ethnicity category" (HANCESTRO:0601) or
  "geography-based population category" (HANCESTRO:0602): ancestry terms such as "European
  ancestry" are not allowed any more. Mouse ethnicity is ``na``.
- Development stages: HsapDv for human, MmusDv for mouse (adult stages first in the tables).

``tissue_general`` is what the Census builder computes: the first term of the guide's curated
``tissue_general`` list that is the tissue or one of its ancestors; the tissue itself when there
is none (a cell culture's CL term, "cortex"), as the Census builder did before the guide.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cellxgene_ontology_guide.curated_ontology_term_lists import get_curated_ontology_term_list
from cellxgene_ontology_guide.entities import CuratedOntologyTermList
from cellxgene_ontology_guide.ontology_parser import OntologyParser

#: the CELLxGENE dataset schema of the bundled cellxgene-schema (7.1.2 -> "7.1.0")
SCHEMA_VERSION = "7.1.0"
#: delimiter of multi-valued term columns (disease, self-reported ethnicity)
MULTI_TERM_DELIMITER = " || "
#: values that are no ontology terms; add-labels writes them as their own label
NON_TERMS = ("unknown", "na")

HUMAN = "NCBITaxon:9606"
MOUSE = "NCBITaxon:10090"
ORGANISMS: tuple[str, ...] = (HUMAN, MOUSE)
#: NCBITaxon labels (the guide's NCBITaxon takes 20 s to load; the test checks these)
ORGANISM_NAMES = {HUMAN: "Homo sapiens", MOUSE: "Mus musculus"}

TISSUE = "tissue"
ORGANOID = "organoid"
PRIMARY_CELL_CULTURE = "primary cell culture"


@dataclass(frozen=True)
class Term:
    """An ontology term (or ``unknown``/``na``, named after itself)."""

    ontology_id: str
    name: str


@dataclass(frozen=True)
class TissueChoice:
    """A tissue as a sample type (``tissue_type``) with the cell types plausible in it."""

    tissue: Term
    tissue_type: str
    tissue_general: Term
    cell_types: tuple[Term, ...]


@dataclass(frozen=True)
class AssayChoice:
    """An assay and the suspension types the schema allows for it (usual one first)."""

    assay: Term
    suspension_types: tuple[str, ...]


@dataclass(frozen=True)
class Vocabulary:
    """Every term a demo dataset of one organism may use."""

    organism: Term
    tissues: tuple[TissueChoice, ...]
    assays: tuple[AssayChoice, ...]
    diseases: tuple[Term, ...]
    development_stages: tuple[Term, ...]
    ethnicities: tuple[Term, ...]
    sexes: tuple[Term, ...]


# --- cell types (CL) ----------------------------------------------------------------------------
T, B, NK = "CL:0000084", "CL:0000236", "CL:0000623"  # T cell, B cell, natural killer cell
MONO, MAC, DC, NEUTRO = "CL:0000576", "CL:0000235", "CL:0000451", "CL:0000775"
CD4, CD8 = "CL:0000624", "CL:0000625"  # CD4-/CD8-positive, alpha-beta T cell
PLASMA, MAST, PDC = "CL:0000786", "CL:0000097", "CL:0000784"
ENDO, FIBRO, SMOOTH, PERI = "CL:0000115", "CL:0000057", "CL:0000192", "CL:0000669"
IMMUNE = (T, B, NK, MONO, MAC, DC, NEUTRO)

KIDNEY = (
    "CL:0002306",  # epithelial cell of proximal tubule
    "CL:1001106",  # kidney loop of Henle thick ascending limb epithelial cell
    "CL:0000653",  # podocyte
    "CL:1001431",  # kidney collecting duct principal cell
    "CL:1000849",  # kidney distal convoluted tubule epithelial cell
    "CL:0000650",  # mesangial cell
    ENDO,
)
LUNG = (
    "CL:0002062",  # pulmonary alveolar type 1 cell
    "CL:0002063",  # pulmonary alveolar type 2 cell
    "CL:0000583",  # alveolar macrophage
    "CL:0000158",  # club cell
    "CL:0000064",  # ciliated cell
    "CL:0002553",  # fibroblast of lung
    ENDO,
)
BRAIN = (
    "CL:0000540",  # neuron
    "CL:0000679",  # glutamatergic neuron
    "CL:0000617",  # GABAergic neuron
    "CL:0000127",  # astrocyte
    "CL:0000128",  # oligodendrocyte
    "CL:0002453",  # oligodendrocyte precursor cell
    "CL:0000129",  # microglial cell
    ENDO,
    PERI,
    MAC,
)
BLOOD = (
    T,
    CD4,
    CD8,
    B,
    "CL:0000788",  # naive B cell
    "CL:0000787",  # memory B cell
    NK,
    MONO,
    "CL:0000860",  # classical monocyte
    "CL:0000875",  # non-classical monocyte
    DC,
    PDC,
    NEUTRO,
    "CL:0000232",  # erythrocyte
    "CL:0000233",  # platelet
    PLASMA,
)
LIVER = (
    "CL:0000182",  # hepatocyte
    "CL:0000091",  # Kupffer cell
    "CL:0000632",  # hepatic stellate cell
    "CL:1000488",  # cholangiocyte
    "CL:1000398",  # endothelial cell of hepatic sinusoid
    T,
    B,
    NK,
    MAC,
    NEUTRO,
    DC,
)
HEART = (
    "CL:0000746",  # cardiac muscle cell
    "CL:0002548",  # fibroblast of cardiac tissue
    ENDO,
    SMOOTH,
    PERI,
    MAC,
    T,
    B,
    NK,
    MAST,
)
LYMPHOID = (B, "CL:0000844", T, CD4, CD8, NK, DC, PDC, PLASMA, MAC)  # 0844: germinal center B
SPLEEN = (B, T, CD4, CD8, NK, MAC, DC, PDC, NEUTRO, PLASMA, MONO, "CL:0000232")
COLON = (
    "CL:0000584",  # enterocyte
    "CL:0011108",  # colon epithelial cell
    "CL:0000160",  # goblet cell
    "CL:0002250",  # intestinal crypt stem cell
    "CL:0000164",  # enteroendocrine cell
    FIBRO,
    SMOOTH,
    PLASMA,
    T,
    B,
    MAC,
    DC,
    NEUTRO,
)
SMALL_INTESTINE = ("CL:0000584", "CL:0000160", "CL:0002250", "CL:0000164")
SKIN = (
    "CL:0000312",  # keratinocyte
    "CL:0000148",  # melanocyte
    "CL:0002551",  # fibroblast of dermis
    "CL:0000453",  # Langerhans cell
    ENDO,
    T,
    MAC,
    DC,
    MAST,
    NEUTRO,
)
BONE_MARROW = (
    "CL:0000037",  # hematopoietic stem cell
    "CL:0000049",  # common myeloid progenitor
    "CL:0000765",  # erythroblast
    "CL:0000556",  # megakaryocyte
    NEUTRO,
    MONO,
    B,
    T,
    NK,
    PLASMA,
    PDC,
)
ISLET = (
    "CL:0000169",  # type B pancreatic cell
    "CL:0000171",  # pancreatic A cell
    "CL:0002064",  # pancreatic acinar cell
    "CL:0002079",  # pancreatic ductal cell
    ENDO,
    MAC,
    T,
)
RETINA = (
    "CL:0000604",  # retinal rod cell
    "CL:0000573",  # retinal cone cell
    "CL:0000636",  # Mueller cell
    "CL:0000748",  # retinal bipolar neuron
    "CL:0000129",  # microglial cell
    "CL:0000127",  # astrocyte
)
BREAST = (
    "CL:0002326",  # luminal epithelial cell of mammary gland
    "CL:0000646",  # basal cell
    "CL:0000136",  # adipocyte
    FIBRO,
    ENDO,
    T,
    B,
    MAC,
    MAST,
)
BRAIN_ORGANOID = (
    "CL:0000540",  # neuron
    "CL:0000679",  # glutamatergic neuron
    "CL:0000617",  # GABAergic neuron
    "CL:0000681",  # radial glial cell
    "CL:0011020",  # neural progenitor cell
    "CL:0000127",  # astrocyte
)
PBMC_CULTURE = (T, CD4, CD8, B, NK, "CL:0000860", DC, PDC)  # 0860: classical monocyte
BMDM_CULTURE = ("CL:0002476", MAC, MONO)  # bone marrow macrophage

# --- per organism: (tissue id, tissue_type, cell type ids) --------------------------------------
HUMAN_TISSUES = (
    ("UBERON:0002113", TISSUE, KIDNEY + IMMUNE),  # kidney
    ("UBERON:0002048", TISSUE, LUNG + IMMUNE),  # lung
    ("UBERON:0000955", TISSUE, BRAIN),  # brain
    ("UBERON:0001851", TISSUE, BRAIN[:7]),  # cortex (tissue_general: itself)
    ("UBERON:0000178", TISSUE, BLOOD),  # blood
    ("UBERON:0002107", TISSUE, LIVER),  # liver
    ("UBERON:0000948", TISSUE, HEART),  # heart
    ("UBERON:0002106", TISSUE, SPLEEN),  # spleen
    ("UBERON:0000029", TISSUE, LYMPHOID),  # lymph node
    ("UBERON:0002372", TISSUE, LYMPHOID),  # tonsil (tissue_general: immune system)
    ("UBERON:0001155", TISSUE, COLON),  # colon
    ("UBERON:0002116", TISSUE, SMALL_INTESTINE + (PLASMA, T, B, MAC, DC, MAST)),  # ileum
    ("UBERON:0002097", TISSUE, SKIN),  # skin of body
    ("UBERON:0002371", TISSUE, BONE_MARROW),  # bone marrow
    ("UBERON:0000006", TISSUE, ISLET),  # islet of Langerhans (tissue_general: pancreas)
    ("UBERON:0000966", TISSUE, RETINA),  # retina (tissue_general: eye)
    ("UBERON:0000310", TISSUE, BREAST),  # breast
    ("UBERON:0000956", ORGANOID, BRAIN_ORGANOID),  # cerebral cortex (organoid)
    ("UBERON:0002108", ORGANOID, SMALL_INTESTINE + (FIBRO,)),  # small intestine (organoid)
    ("CL:2000001", PRIMARY_CELL_CULTURE, PBMC_CULTURE),  # peripheral blood mononuclear cell
)
MOUSE_TISSUES = (
    ("UBERON:0000955", TISSUE, BRAIN),  # brain
    ("UBERON:0002421", TISSUE, BRAIN[:7]),  # hippocampal formation
    ("UBERON:0002048", TISSUE, LUNG + IMMUNE),  # lung
    ("UBERON:0002107", TISSUE, LIVER),  # liver
    ("UBERON:0002113", TISSUE, KIDNEY + (MAC, T)),  # kidney
    ("UBERON:0002106", TISSUE, SPLEEN),  # spleen
    ("UBERON:0000948", TISSUE, HEART[:6]),  # heart
    ("UBERON:0002371", TISSUE, BONE_MARROW[:7]),  # bone marrow
    ("UBERON:0000178", TISSUE, (T, B, NK, MONO, NEUTRO, DC, "CL:0000232", "CL:0000233")),  # blood
    ("UBERON:0001155", TISSUE, COLON[:5] + (T, MAC)),  # colon
    ("UBERON:0000029", TISSUE, (B, T, CD4, CD8, DC, MAC)),  # lymph node
    ("UBERON:0002108", ORGANOID, SMALL_INTESTINE),  # small intestine organoid
    ("CL:0002476", PRIMARY_CELL_CULTURE, BMDM_CULTURE),  # bone marrow macrophage
)

# --- assays (EFO) and the suspension types the schema allows -------------------------------------
CELL_OR_NUCLEUS = ("cell", "nucleus")
HUMAN_ASSAYS = (
    ("EFO:0009899", CELL_OR_NUCLEUS),  # 10x 3' v2
    ("EFO:0009922", CELL_OR_NUCLEUS),  # 10x 3' v3
    ("EFO:0011025", CELL_OR_NUCLEUS),  # 10x 5' v1
    ("EFO:0009900", CELL_OR_NUCLEUS),  # 10x 5' v2
    ("EFO:0008931", CELL_OR_NUCLEUS),  # Smart-seq2
    ("EFO:0008722", CELL_OR_NUCLEUS),  # Drop-seq
    ("EFO:0030059", ("nucleus",)),  # 10x multiome
    ("EFO:0008720", ("nucleus",)),  # DroNc-seq
    ("EFO:0008919", ("cell",)),  # Seq-Well
)
MOUSE_ASSAYS = (
    ("EFO:0009899", CELL_OR_NUCLEUS),  # 10x 3' v2
    ("EFO:0009922", CELL_OR_NUCLEUS),  # 10x 3' v3
    ("EFO:0008931", CELL_OR_NUCLEUS),  # Smart-seq2
    ("EFO:0008722", CELL_OR_NUCLEUS),  # Drop-seq
    ("EFO:0030059", ("nucleus",)),  # 10x multiome
    ("EFO:0008796", ("cell",)),  # MARS-seq
)

# --- diseases (PATO normal first, then MONDO) ----------------------------------------------------
NORMAL = "PATO:0000461"
HUMAN_DISEASES = (
    NORMAL,
    "MONDO:0100096",  # COVID-19
    "MONDO:0005061",  # lung adenocarcinoma
    "MONDO:0005233",  # non-small cell lung carcinoma
    "MONDO:0005002",  # chronic obstructive pulmonary disease
    "MONDO:0005812",  # influenza
    "MONDO:0005148",  # type 2 diabetes mellitus
    "MONDO:0005147",  # type 1 diabetes mellitus
    "MONDO:0004975",  # Alzheimer disease
    "MONDO:0005180",  # Parkinson disease
    "MONDO:0005301",  # multiple sclerosis
    "MONDO:0005300",  # chronic kidney disease
    "MONDO:0002492",  # acute kidney injury
    "MONDO:0005011",  # Crohn disease
    "MONDO:0005101",  # ulcerative colitis
    "MONDO:0005021",  # dilated cardiomyopathy
    "MONDO:0013209",  # metabolic dysfunction-associated steatotic liver disease
    "MONDO:0005083",  # psoriasis
    "MONDO:0007915",  # systemic lupus erythematosus
)
MOUSE_DISEASES = (
    NORMAL,
    "MONDO:0004975",  # Alzheimer disease
    "MONDO:0005148",  # type 2 diabetes mellitus
    "MONDO:0011122",  # obesity disorder
    "MONDO:0005292",  # colitis
    "MONDO:0005061",  # lung adenocarcinoma
)

# --- development stages (adults first) ----------------------------------------------------------
HUMAN_STAGES = (
    "HsapDv:0000119",  # 25-year-old stage
    "HsapDv:0000125",  # 31-year-old stage
    "HsapDv:0000132",  # 38-year-old stage
    "HsapDv:0000139",  # 45-year-old stage
    "HsapDv:0000146",  # 52-year-old stage
    "HsapDv:0000152",  # 58-year-old stage
    "HsapDv:0000159",  # 65-year-old stage
    "HsapDv:0000166",  # 72-year-old stage
    "HsapDv:0000095",  # 80 year-old and over stage
    "HsapDv:0000110",  # 16-year-old stage
    "HsapDv:0000104",  # 10-year-old stage
    "HsapDv:0000097",  # 3-year-old stage
    "HsapDv:0000262",  # newborn stage (0-28 days)
    "HsapDv:0000057",  # 20th week post-fertilization stage
    "HsapDv:0000049",  # 12th week post-fertilization stage
)
MOUSE_STAGES = (
    "MmusDv:0000154",  # 8-week-old stage
    "MmusDv:0000156",  # 10-week-old stage
    "MmusDv:0000158",  # 12-week-old stage
    "MmusDv:0000063",  # 3-month-old stage
    "MmusDv:0000077",  # 6-month-old stage
    "MmusDv:0000089",  # 18-month-old stage
    "MmusDv:0000128",  # 24-month-old stage
    "MmusDv:0000149",  # 4-week-old stage
    "MmusDv:0000029",  # Theiler stage 22
)

# --- self-reported ethnicity (human only) and sex ------------------------------------------------
HUMAN_ETHNICITIES = (
    "HANCESTRO:0590",  # European American
    "HANCESTRO:0568",  # African American
    "HANCESTRO:0612",  # Hispanic or Latin
    "HANCESTRO:0027",  # Han Chinese
    "HANCESTRO:0019",  # Japanese
    "HANCESTRO:0022",  # Korean
    "HANCESTRO:0487",  # Indian
    "HANCESTRO:0462",  # British
)
SEXES = ("PATO:0000383", "PATO:0000384", "unknown")  # female, male

SPECS = {
    HUMAN: (HUMAN_TISSUES, HUMAN_ASSAYS, HUMAN_DISEASES, HUMAN_STAGES, HUMAN_ETHNICITIES),
    MOUSE: (MOUSE_TISSUES, MOUSE_ASSAYS, MOUSE_DISEASES, MOUSE_STAGES, ("na",)),
}


@functools.cache
def guide() -> OntologyParser:
    """The guide's ontologies for :data:`SCHEMA_VERSION` (each loads on first use)."""
    return OntologyParser(schema_version=f"v{SCHEMA_VERSION}")


def term_label(term_id: str) -> str:
    """The label add-labels writes for a term id: the guide's label; ``unknown``/``na`` as is;
    for ``"A || B"`` the labels joined the same way.

    Raises:
        ValueError: a term id the guide does not know (names it).
    """
    if term_id in NON_TERMS:
        return term_id
    parts = term_id.split(MULTI_TERM_DELIMITER)
    try:
        return MULTI_TERM_DELIMITER.join(guide().get_term_label(part) for part in parts)
    except (KeyError, ValueError) as exc:  # unknown id / unknown ontology
        raise ValueError(
            f"{term_id!r} is not a term of the ontologies of CELLxGENE schema {SCHEMA_VERSION}: "
            f"{exc}"
        ) from exc


def term(term_id: str) -> Term:
    """The :class:`Term` of an id, named by the guide."""
    return Term(term_id, term_label(term_id))


@functools.cache
def tissue_general(tissue_id: str) -> Term:
    """The Census ``tissue_general`` of a tissue (see the module docstring)."""
    curated = get_curated_ontology_term_list(CuratedOntologyTermList.TISSUE_GENERAL)
    ancestors = set(guide().get_term_ancestors(tissue_id, include_self=True))
    return term(next((t for t in curated if t in ancestors), tissue_id))


@functools.cache
def vocabulary(organism_id: str) -> Vocabulary:
    """The curated terms of one organism (``NCBITaxon:9606`` or ``NCBITaxon:10090``).

    Raises:
        ValueError: an organism without a vocabulary; names the known ones.
    """
    if organism_id not in SPECS:
        raise ValueError(
            f"No demo vocabulary for organism {organism_id!r}; known: {', '.join(ORGANISMS)}."
        )
    tissues, assays, diseases, stages, ethnicities = SPECS[organism_id]
    return Vocabulary(
        organism=Term(organism_id, ORGANISM_NAMES[organism_id]),
        tissues=tuple(
            TissueChoice(term(t), kind, tissue_general(t), tuple(term(c) for c in cells))
            for t, kind, cells in tissues
        ),
        assays=tuple(AssayChoice(term(a), suspension) for a, suspension in assays),
        diseases=tuple(term(d) for d in diseases),
        development_stages=tuple(term(s) for s in stages),
        ethnicities=tuple(term(e) for e in ethnicities),
        sexes=tuple(term(s) for s in SEXES),
    )
