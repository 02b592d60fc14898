"""The SOMA store of a demo release, laid out as the Census schema (2.x) lays it out.

``census_info/{summary, datasets, summary_cell_counts, organisms}`` and, per organism,
``census_data/<organism>`` (a SOMA Experiment: ``obs``, measurement ``RNA`` with ``var``,
``X["raw"]`` and ``feature_dataset_presence_matrix``). Datasets are added one at a time in
manifest order; obs rows and counts are buffered and written in large batches (few fragments),
so memory stays bounded by the batch size, not by the release.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import tiledbsoma as soma
from scipy import sparse

from curation.features import FEATURES

CENSUS_SCHEMA_VERSION = "2.4.0"
#: obs columns of the Census, in its order (labels next to their ontology term ids)
LABELLED = tuple(sorted(f.label_column for f in FEATURES if f.in_h5ad and f.is_ontology))
OBS_STRINGS = (
    "dataset_id",
    "assay",
    "assay_ontology_term_id",
    "cell_type",
    "cell_type_ontology_term_id",
    "development_stage",
    "development_stage_ontology_term_id",
    "disease",
    "disease_ontology_term_id",
    "donor_id",
    "observation_joinid",
    "self_reported_ethnicity",
    "self_reported_ethnicity_ontology_term_id",
    "sex",
    "sex_ontology_term_id",
    "suspension_type",
    "tissue",
    "tissue_ontology_term_id",
    "tissue_type",
    "tissue_general",
    "tissue_general_ontology_term_id",
)
#: string columns are dictionary-encoded, as Census builds store them (observation_joinid, unique
#: per cell, stays plain)
CATEGORY = pa.dictionary(pa.int32(), pa.large_string())
PLAIN_STRINGS = frozenset({"observation_joinid"})
OBS_SCHEMA = pa.schema(
    [("soma_joinid", pa.int64())]
    + [(name, pa.large_string() if name in PLAIN_STRINGS else CATEGORY) for name in OBS_STRINGS]
    + [
        ("is_primary_data", pa.bool_()),
        ("raw_sum", pa.float64()),
        ("nnz", pa.int64()),
        ("raw_mean_nnz", pa.float64()),
        ("raw_variance_nnz", pa.float64()),
        ("n_measured_vars", pa.int64()),
    ]
)
VAR_SCHEMA = pa.schema(
    [
        ("soma_joinid", pa.int64()),
        ("feature_id", pa.large_string()),
        ("feature_name", pa.large_string()),
        ("feature_length", pa.int64()),
        ("nnz", pa.int64()),
        ("n_measured_obs", pa.int64()),
    ]
)
#: the summary_cell_counts categories (besides "all") and whether they have term ids
COUNT_CATEGORIES = {
    "cell_type": True,
    "assay": True,
    "tissue": True,
    "tissue_general": True,
    "disease": True,
    "self_reported_ethnicity": True,
    "sex": True,
    "suspension_type": False,
}
WRITE_BATCH_NNZ = 16_000_000
#: tile extents of the sparse arrays; writes arrive sorted in this tiling's global order
TILE = 2048
TILES = {
    "tiledb": {"create": {"dims": {"soma_dim_0": {"tile": TILE}, "soma_dim_1": {"tile": TILE}}}}
}
GLOBAL_ORDER = {"tiledb": {"write": {"sort_coords": False}}}


@dataclass(frozen=True)
class CensusPart:
    """One dataset's contribution to an experiment, computed where the dataset is generated.

    ``rows`` are cell positions within the dataset, ``cols`` positions in the organism's gene
    table; ``cell_counts`` feed ``summary_cell_counts``.
    """

    obs: pa.Table  # OBS_SCHEMA without soma_joinid
    rows: np.ndarray
    cols: np.ndarray
    data: np.ndarray
    measured: np.ndarray
    donors: frozenset[str]
    cell_counts: Counter

    @property
    def n_cells(self) -> int:
        """Cells of the dataset."""
        return self.obs.num_rows


def census_part(
    dataset_id: str, obs: pd.DataFrame, counts: sparse.csr_matrix, gene_index: np.ndarray
) -> CensusPart:
    """A dataset's cells as the store holds them.

    Args:
        dataset_id: the dataset's id (the ``dataset_id`` column).
        obs: the published obs (term ids and labels, ``donor_id``, ``is_primary_data``,
            ``suspension_type``, ``tissue_type``, ``observation_joinid``) plus
            ``tissue_general`` and ``tissue_general_ontology_term_id``.
        counts: raw counts, cells x measured genes.
        gene_index: position in the organism's gene table of each measured gene.
    """
    counts = sparse.csr_matrix(counts)
    n = counts.shape[0]
    nnz = np.diff(counts.indptr).astype(np.int64)
    raw_sum = np.asarray(counts.sum(axis=1)).ravel().astype(np.float64)
    squares = np.asarray(counts.multiply(counts).sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(nnz > 0, raw_sum / np.maximum(nnz, 1), np.nan)
        variance = np.where(nnz > 0, squares / np.maximum(nnz, 1) - mean**2, np.nan)
    columns: dict[str, object] = {"dataset_id": np.full(n, dataset_id, dtype=object)}
    for name in OBS_STRINGS[1:]:
        columns[name] = obs[name].astype(str).to_numpy(dtype=object)
    for name in OBS_STRINGS:
        values = pa.array(columns[name], pa.large_string())
        columns[name] = values if name in PLAIN_STRINGS else values.dictionary_encode()
    columns.update(
        is_primary_data=obs["is_primary_data"].to_numpy(dtype=bool),
        raw_sum=raw_sum,
        nnz=nnz,
        raw_mean_nnz=mean,
        raw_variance_nnz=variance,
        n_measured_vars=np.full(n, len(gene_index), dtype=np.int64),
    )
    coo = counts.tocoo()
    return CensusPart(
        obs=pa.Table.from_pydict(columns, schema=OBS_SCHEMA.remove(0)),
        rows=coo.row.astype(np.int64),
        cols=np.asarray(gene_index, dtype=np.int64)[coo.col],
        data=coo.data.astype(np.float32),
        measured=np.asarray(gene_index, dtype=np.int64),
        donors=frozenset(obs["donor_id"].astype(str).unique()),
        cell_counts=cell_counts(obs),
    )


def cell_counts(obs: pd.DataFrame) -> Counter:
    """(category, label, term id, "total"|"unique") -> cells, for ``summary_cell_counts``."""
    primary = obs["is_primary_data"].to_numpy(dtype=bool)
    counts: Counter = Counter()
    counts[("all", "na", "na", "total")] = len(obs)
    counts[("all", "na", "na", "unique")] = int(primary.sum())
    for category, has_ids in COUNT_CATEGORIES.items():
        labels = obs[category].astype(str).to_numpy(dtype=object)
        if has_ids:
            ids = obs[f"{category}_ontology_term_id"].astype(str).to_numpy(dtype=object)
            keys = pd.Series(labels + "\x1f" + ids)
        else:
            keys = pd.Series(labels + "\x1fna")
        for kind, selected in (("total", keys), ("unique", keys[primary])):
            for key, n in selected.value_counts().items():
                label, _, term_id = key.partition("\x1f")
                counts[(category, label, term_id, kind)] += int(n)
    return counts


def _write_global_order(
    array: soma.SparseNDArray, rows: np.ndarray, cols: np.ndarray, data: np.ndarray
) -> None:
    """Write coordinates sorted in the array's global (tile-major) order: TileDB then skips
    its own sort, which is ten times slower for millions of values."""
    order = np.lexsort((cols, rows, cols // TILE, rows // TILE))
    table = pa.Table.from_pydict(
        {"soma_dim_0": rows[order], "soma_dim_1": cols[order], "soma_data": data[order]}
    )
    array.write(table, platform_config=GLOBAL_ORDER)


def experiment_name(organism_label: str) -> str:
    """``Homo sapiens`` -> ``homo_sapiens`` (the Census rule for experiment names)."""
    return "_".join(organism_label.lower().split())


@dataclass
class _Organism:
    """What is being written for one organism's experiment."""

    label: str
    term_id: str
    experiment: soma.Experiment
    genes: pd.DataFrame
    next_joinid: int = 0
    obs_parts: list[pa.Table] = field(default_factory=list)
    x_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    buffered_nnz: int = 0
    var_nnz: np.ndarray | None = None
    var_measured: np.ndarray | None = None
    presence: list[tuple[int, np.ndarray]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    donors: set = field(default_factory=set)


class CensusWriter:
    """Writes one release's SOMA store at ``uri`` (a local folder).

    Args:
        uri: where the store goes (must not exist).
        organisms: organism term id -> (label, number of cells, gene table of the pool with
            ``feature_id``, ``feature_name``, ``feature_length``).
        n_datasets: rows of ``census_info/datasets`` (the presence matrices' first dimension).
    """

    def __init__(
        self,
        uri: str,
        organisms: dict[str, tuple[str, int, pd.DataFrame]],
        n_datasets: int,
    ) -> None:
        self.uri = uri
        self.root = soma.Collection.create(uri)
        self.info = self.root.add_new_collection("census_info")
        data = self.root.add_new_collection("census_data")
        self.n_datasets = n_datasets
        self.datasets: list[dict] = []
        self.organisms: dict[str, _Organism] = {}
        for term_id, (label, n_cells, genes) in organisms.items():
            exp = data.add_new_collection(experiment_name(label), soma.Experiment)
            rna = exp.add_new_collection("ms").add_new_collection("RNA", soma.Measurement)
            rna.add_new_dataframe("var", schema=VAR_SCHEMA, domain=[(0, max(len(genes), 1) - 1)])
            rna.add_new_collection("X").add_new_sparse_ndarray(
                "raw",
                type=pa.float32(),
                shape=(max(n_cells, 1), max(len(genes), 1)),
                platform_config=TILES,
            )
            rna.add_new_sparse_ndarray(
                "feature_dataset_presence_matrix",
                type=pa.bool_(),
                shape=(max(n_datasets, 1), max(len(genes), 1)),
                platform_config=TILES,
            )
            self.organisms[term_id] = _Organism(
                label=label,
                term_id=term_id,
                experiment=exp,
                genes=genes.reset_index(drop=True),
                var_nnz=np.zeros(len(genes), dtype=np.int64),
                var_measured=np.zeros(len(genes), dtype=np.int64),
            )

    def add_dataset(self, row: dict, organism: str, part: CensusPart) -> None:
        """Add one dataset: its ``census_info/datasets`` row and its cells (``part``).

        Args:
            row: the manifest row (without ``soma_joinid``; it is the dataset's position).
            organism: the organism term id of the dataset.
            part: the dataset's cells as the store holds them (see :func:`census_part`).
        """
        dataset_joinid = len(self.datasets)
        self.datasets.append({"soma_joinid": dataset_joinid, **row})
        org = self.organisms[organism]
        start = org.next_joinid
        org.next_joinid += part.n_cells
        joinids = pa.array(np.arange(start, start + part.n_cells, dtype=np.int64))
        org.obs_parts.append(part.obs.add_column(0, "soma_joinid", joinids))
        org.x_parts.append((part.rows + start, part.cols, part.data))
        org.buffered_nnz += len(part.data)
        org.presence.append((dataset_joinid, np.unique(part.cols)))
        org.var_nnz += np.bincount(part.cols, minlength=len(org.genes))
        org.var_measured[part.measured] += part.n_cells
        org.donors.update(part.donors)
        org.counts.update(part.cell_counts)
        if org.buffered_nnz >= WRITE_BATCH_NNZ:
            self._flush(org)

    def _flush(self, org: _Organism) -> None:
        if org.x_parts:
            rows = np.concatenate([p[0] for p in org.x_parts])
            cols = np.concatenate([p[1] for p in org.x_parts])
            data = np.concatenate([p[2] for p in org.x_parts])
            _write_global_order(org.experiment.ms["RNA"].X["raw"], rows, cols, data)
            org.x_parts.clear()
            org.buffered_nnz = 0

    def _write_obs(self, org: _Organism) -> None:
        """All of an experiment's obs in one write: one fragment, one dictionary per column.

        (With tiledbsoma 2.3 a dataframe made by ``add_new_dataframe`` and written through that
        handle reads back dictionary columns without values; one created on its own, written,
        then added to the experiment reads back right.)
        """
        table = pa.concat_tables(org.obs_parts).unify_dictionaries().combine_chunks()
        uri = f"{org.experiment.uri.rstrip('/')}/obs"
        domain = [(0, max(table.num_rows, 1) - 1)]
        with soma.DataFrame.create(uri, schema=OBS_SCHEMA, domain=domain) as obs:
            if table.num_rows:
                obs.write(table)
        org.experiment.set("obs", soma.DataFrame.open(uri), use_relative_uri=True)
        org.obs_parts.clear()

    def close(self, tag: str, dataset_schema_version: str) -> None:
        """Write what needs every dataset (var, presence, census_info) and close the store."""
        for org in self.organisms.values():
            self._flush(org)
            self._write_obs(org)
            genes = org.genes
            org.experiment.ms["RNA"].var.write(
                pa.Table.from_pydict(
                    {
                        "soma_joinid": np.arange(len(genes), dtype=np.int64),
                        "feature_id": genes["feature_id"].astype(str).to_numpy(dtype=object),
                        "feature_name": genes["feature_name"].astype(str).to_numpy(dtype=object),
                        "feature_length": genes["feature_length"].to_numpy(dtype=np.int64),
                        "nnz": org.var_nnz,
                        "n_measured_obs": org.var_measured,
                    },
                    schema=VAR_SCHEMA,
                )
            )
            if org.presence:
                rows = np.concatenate([np.full(len(p), d, np.int64) for d, p in org.presence])
                cols = np.concatenate([p for _, p in org.presence]).astype(np.int64)
                _write_global_order(
                    org.experiment.ms["RNA"]["feature_dataset_presence_matrix"],
                    rows,
                    cols,
                    np.ones(len(rows), dtype=bool),
                )
        self._write_info(tag, dataset_schema_version)
        self.root.metadata["census_schema_version"] = CENSUS_SCHEMA_VERSION
        self.root.metadata["dataset_schema_version"] = dataset_schema_version
        self.root.metadata["created_on"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.root.metadata["cellregistry_demo_release"] = tag
        self.root.close()

    def _write_info(self, tag: str, dataset_schema_version: str) -> None:
        total = sum(o.counts[("all", "na", "na", "total")] for o in self.organisms.values())
        unique = sum(o.counts[("all", "na", "na", "unique")] for o in self.organisms.values())
        summary = [
            ("census_schema_version", CENSUS_SCHEMA_VERSION),
            ("census_build_date", tag),
            ("dataset_schema_version", dataset_schema_version),
            ("total_cell_count", str(total)),
            ("unique_cell_count", str(unique)),
        ] + [
            (f"number_donors_{experiment_name(o.label)}", str(len(o.donors)))
            for o in self.organisms.values()
        ]
        _write_frame(self.info, "summary", pd.DataFrame(summary, columns=["label", "value"]))
        datasets = pd.DataFrame(self.datasets).drop(columns=["soma_joinid"])
        _write_frame(self.info, "datasets", datasets)
        rows = []
        for org in self.organisms.values():
            keys = sorted({k[:3] for k in org.counts})
            keys.sort(key=lambda k: (k[0] != "all", k[0], k[1]))
            for category, label, term_id in keys:
                rows.append(
                    {
                        "organism": org.label,
                        "category": category,
                        "label": label,
                        "ontology_term_id": term_id,
                        "total_cell_count": org.counts[(category, label, term_id, "total")],
                        "unique_cell_count": org.counts[(category, label, term_id, "unique")],
                    }
                )
        _write_frame(self.info, "summary_cell_counts", pd.DataFrame(rows))
        organisms = pd.DataFrame(
            [
                {
                    "organism_ontology_term_id": o.term_id,
                    "organism_label": o.label,
                    "organism": experiment_name(o.label),
                }
                for o in self.organisms.values()
            ]
        )
        _write_frame(self.info, "organisms", organisms)


def _write_frame(collection: soma.Collection, key: str, frame: pd.DataFrame) -> None:
    """A small pandas table as a SOMA DataFrame (``soma_joinid`` = row number)."""
    frame = frame.reset_index(drop=True)
    fields = [pa.field("soma_joinid", pa.int64())]
    for name, dtype in frame.dtypes.items():
        kind = pa.int64() if pd.api.types.is_integer_dtype(dtype) else pa.large_string()
        fields.append(pa.field(str(name), kind))
    schema = pa.schema(fields)
    table = pa.Table.from_pandas(
        frame.assign(soma_joinid=np.arange(len(frame), dtype=np.int64))[schema.names],
        schema=schema,
        preserve_index=False,
    )
    df = collection.add_new_dataframe(key, schema=schema, domain=[(0, max(len(frame), 1) - 1)])
    df.write(table)
