"""Cell counts per dataset and term (curation.annotate) and the executors that compute them.

The scan's counts are checked against two independent sources: ``census_info/summary_cell_counts``
(per organism; it counts a multi-valued value ``A || B`` as one row, so its rows are split the
same way before comparing: the cells of ``A || B`` count for ``A`` and for ``B``) and a direct
pandas count over the obs of the release's h5ads. No database is needed.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anndata
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import tiledbsoma

import curation.annotate
from curation.annotate import (
    DEFAULT_CHUNK_ROWS,
    AnnotationError,
    ChunkTask,
    DatasetCounts,
    TermCount,
    count_obs,
    scan_chunk,
    scan_store,
)
from curation.executors import (
    ExecutorError,
    RayNotInstalledError,
    TaskExecutor,
    make_executor,
)
from curation.features import NAMES as FEATURES
from curation.features import OBS_FEATURES, split_terms
from demo.census.release import build_release
from registry.accessors.backends import tiledb_config
from registry.models import Storage
from tests.s3 import s3_client

TAG = "2025-01-30"
N_DATASETS, CELLS = 12, 100
#: summary_cell_counts categories (all features; suspension_type has no term ids there)
SUMMARY_CATEGORIES = (
    "cell_type",
    "assay",
    "tissue",
    "tissue_general",
    "disease",
    "self_reported_ethnicity",
    "sex",
    "suspension_type",
)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo release (both organisms, multi-valued ethnicities, non-primary cells)."""
    dest = tmp_path_factory.mktemp("bucket")
    build_release(str(dest), TAG, n_datasets=N_DATASETS, cells_per_dataset=CELLS, workers=1)
    return dest / "cell-census" / TAG


@pytest.fixture(scope="module")
def scanned(release: Path) -> dict[str, DatasetCounts]:
    """The scan of the release's store, in the calling thread."""
    with make_executor("local", workers=1) as executor:
        return scan_store(str(release / "soma"), {}, executor)


def info_table(release: Path, name: str) -> pd.DataFrame:
    with tiledbsoma.open(str(release / "soma")) as census:
        return census["census_info"][name].read().concat().to_pandas()


@pytest.fixture(scope="module")
def h5ads(release: Path) -> list[tuple[str, pd.DataFrame, str]]:
    """(dataset id, obs, organism term id) of every h5ad of the release (read backed: obs
    only, the matrix stays on disk)."""
    files = []
    for path in sorted((release / "h5ads").glob("*.h5ad")):
        adata = anndata.read_h5ad(path, backed="r")
        files.append((path.stem, adata.obs.copy(), str(adata.uns["organism_ontology_term_id"])))
        adata.file.close()
    return files


def pandas_counts(obs: pd.DataFrame, organism_id: str) -> DatasetCounts:
    """A direct pandas count of one dataset's obs (independent of curation.annotate)."""
    counts: DatasetCounts = {}
    for feature in FEATURES:
        if feature == "organism":
            primary = int(obs["is_primary_data"].sum())
            counts[feature] = {organism_id: TermCount(len(obs), primary)}
            continue
        column = (
            feature
            if feature in ("suspension_type", "tissue_type", "donor_id")
            else f"{feature}_ontology_term_id"
        )
        if column not in obs:
            continue
        grouped = obs.groupby(obs[column].astype(str), observed=True)["is_primary_data"]
        sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for value, group in grouped:
            terms = value.split(" || ") if column.endswith("_ontology_term_id") else [value]
            for term in terms:
                sums[term][0] += len(group)
                sums[term][1] += int(group.sum())
        counts[feature] = {v: TermCount(n, p) for v, (n, p) in sorted(sums.items())}
    return counts


def without(counts: DatasetCounts, *features: str) -> DatasetCounts:
    return {f: values for f, values in counts.items() if f not in features}


# --- split_terms ------------------------------------------------------------------------------


def test_split_terms() -> None:
    assert split_terms("HANCESTRO:0008 || HANCESTRO:0016") == ["HANCESTRO:0008", "HANCESTRO:0016"]
    assert split_terms("CL:0000236") == ["CL:0000236"]
    assert split_terms("unknown") == ["unknown"]
    assert split_terms("A || A || B") == ["A", "B"]
    assert split_terms("A||B") == ["A", "B"]


# --- counts against the summary and the h5ads -------------------------------------------------


def test_release_exercises_the_hard_cases(scanned: dict[str, DatasetCounts]) -> None:
    """Both organisms, multi-valued terms, non-primary cells, "na"/"unknown" kept as values."""
    organisms = {o for counts in scanned.values() for o in counts["organism"]}
    assert organisms == {"NCBITaxon:9606", "NCBITaxon:10090"}
    ethnicities = {e for c in scanned.values() for e in c["self_reported_ethnicity"]}
    assert "na" in ethnicities  # mouse cells
    assert not any("||" in e for e in ethnicities)  # split
    assert any(
        t.n_primary_cells < t.n_cells for c in scanned.values() for t in c["organism"].values()
    )
    for counts in scanned.values():
        assert set(counts) == set(FEATURES)


def test_counts_equal_summary_cell_counts(release: Path, scanned: dict[str, DatasetCounts]) -> None:
    summary = info_table(release, "summary_cell_counts")
    assert summary.ontology_term_id.str.contains(" || ", regex=False).any()  # combined rows
    organisms = info_table(release, "organisms")
    label_of = dict(zip(organisms.organism_ontology_term_id, organisms.organism_label, strict=True))
    expected: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for row in summary.itertuples():
        if row.category == "all":
            key = (row.organism, "organism", "all")
            expected[key][0] += row.total_cell_count
            expected[key][1] += row.unique_cell_count
            continue
        value = row.label if row.category == "suspension_type" else row.ontology_term_id
        for term in split_terms(value):
            expected[(row.organism, row.category, term)][0] += row.total_cell_count
            expected[(row.organism, row.category, term)][1] += row.unique_cell_count
    actual: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for counts in scanned.values():
        (organism_id,) = counts["organism"]
        organism = label_of[organism_id]
        for category in [*SUMMARY_CATEGORIES, "organism"]:
            for value, count in counts[category].items():
                key = (organism, category, "all" if category == "organism" else value)
                actual[key][0] += count.n_cells
                actual[key][1] += count.n_primary_cells
    assert dict(actual) == dict(expected)


def test_counts_equal_a_pandas_count_over_the_h5ads(
    release: Path, scanned: dict[str, DatasetCounts], h5ads: list
) -> None:
    """Every dataset of the manifest is counted, as pandas counts its h5ad's obs (which has no
    tissue_general: the Census adds it)."""
    datasets = info_table(release, "datasets")
    assert set(scanned) == set(datasets.dataset_id)
    assert {dataset_id for dataset_id, _, _ in h5ads} == set(scanned)
    for dataset_id, obs, organism_id in h5ads:
        expected = pandas_counts(obs, organism_id)
        assert without(scanned[dataset_id], "tissue_general") == expected, dataset_id


def test_count_obs_of_an_h5ad_equals_the_scan(
    scanned: dict[str, DatasetCounts], h5ads: list
) -> None:
    for dataset_id, obs, organism_id in h5ads:
        counts = count_obs(obs, organism_id)
        assert "tissue_general" not in counts  # h5ads do not have it: optional
        assert counts == without(scanned[dataset_id], "tissue_general"), dataset_id


def test_count_obs_reads_plain_columns_and_tissue_general(
    release: Path, scanned: dict[str, DatasetCounts]
) -> None:
    """Non-categorical columns work too, and tissue_general is counted when present."""
    with tiledbsoma.open(str(release / "soma")) as census:
        obs = census["census_data"]["homo_sapiens"].obs.read().concat().to_pandas()
    dataset_id = obs.dataset_id.iloc[0]
    cells = obs[obs.dataset_id == dataset_id].drop(columns=["dataset_id"])
    assert count_obs(cells, "NCBITaxon:9606") == scanned[dataset_id]


def test_count_obs_names_missing_columns(h5ads: list) -> None:
    _, h5ad_obs, _ = h5ads[0]
    obs = h5ad_obs.drop(columns=["donor_id", "tissue_ontology_term_id"])
    with pytest.raises(AnnotationError, match="tissue_ontology_term_id, donor_id"):
        count_obs(obs, "NCBITaxon:9606")
    obs = h5ad_obs.copy()
    obs["sex_ontology_term_id"] = obs["sex_ontology_term_id"].astype(object)
    obs.iloc[0, obs.columns.get_loc("sex_ontology_term_id")] = None
    with pytest.raises(AnnotationError, match="'sex_ontology_term_id' has 1 empty value"):
        count_obs(obs, "NCBITaxon:9606")
    assert count_obs(h5ad_obs.iloc[:0], "NCBITaxon:9606") == {}


def test_scan_of_something_else_is_a_clear_error(tmp_path: Path) -> None:
    tiledbsoma.Collection.create(str(tmp_path / "soma")).close()
    with (
        make_executor(workers=1) as executor,
        pytest.raises(AnnotationError, match="not a Census-like SOMA store"),
    ):
        scan_store(str(tmp_path / "soma"), {}, executor)
    with (
        make_executor(workers=1) as executor,
        pytest.raises(AnnotationError, match="Cannot open the SOMA store"),
    ):
        scan_store(str(tmp_path / "missing"), {}, executor)


# --- chunking and executors -------------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [7, 1000, DEFAULT_CHUNK_ROWS])
def test_chunking_gives_identical_counts(
    release: Path, scanned: dict[str, DatasetCounts], chunk_rows: int
) -> None:
    calls: list[tuple[int, int]] = []
    with make_executor("local", workers=1) as executor:
        counts = scan_store(
            str(release / "soma"),
            {},
            executor,
            chunk_rows=chunk_rows,
            progress=lambda *a: calls.append(a),
        )
    assert counts == scanned
    n_cells = sum(t.n_cells for c in scanned.values() for t in c["organism"].values())
    assert calls[0] == (0, n_cells) and calls[-1] == (n_cells, n_cells)
    assert len(calls) == 1 + sum(-(-n // chunk_rows) for n in experiment_sizes(release))


def experiment_sizes(release: Path) -> list[int]:
    with tiledbsoma.open(str(release / "soma")) as census:
        return [census["census_data"][name].obs.count for name in census["census_data"]]


def test_sparse_counting_gives_the_same_counts(
    release: Path, scanned: dict[str, DatasetCounts], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks with too many (dataset, value) pairs for one bincount are counted by sorting."""
    monkeypatch.setattr(curation.annotate, "_DENSE_LIMIT", 0)
    with make_executor("local", workers=1) as executor:
        assert scan_store(str(release / "soma"), {}, executor, chunk_rows=1000) == scanned


def census_format_copy(source: Path, dest: Path) -> None:
    """census_info/organisms and the counted obs columns of a store, strings stored as
    dictionaries (TileDB enumerations), as Census builds since 2024-04-01 store them."""
    columns = [
        "soma_joinid",
        "dataset_id",
        "is_primary_data",
        *(f.obs_column for f in OBS_FEATURES),
    ]

    def write(collection: tiledbsoma.Collection, uri: Path, key: str, table: pa.Table) -> None:
        # created at its URI, then added: written through add_new_dataframe's handle, the
        # enumeration values read back empty (tiledbsoma 2.3)
        domain = [(0, max(table.num_rows, 1) - 1)]
        tiledbsoma.DataFrame.create(str(uri / key), schema=table.schema, domain=domain).close()
        with tiledbsoma.DataFrame.open(str(uri / key), "w") as frame:
            frame.write(table)
        collection.set(key, tiledbsoma.DataFrame.open(str(uri / key)), use_relative_uri=True)

    def encode(column: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        if not pa.types.is_large_string(column.type):
            return column
        codes = pc.dictionary_encode(column.combine_chunks())
        return pa.DictionaryArray.from_arrays(codes.indices.cast(pa.int32()), codes.dictionary)

    with tiledbsoma.open(str(source)) as census, tiledbsoma.Collection.create(str(dest)) as root:
        info = root.add_new_collection("census_info")
        write(
            info,
            dest / "census_info",
            "organisms",
            census["census_info"]["organisms"].read().concat(),
        )
        data = root.add_new_collection("census_data")
        for name in census["census_data"]:
            obs = census["census_data"][name].obs.read(column_names=columns).concat()
            experiment = data.add_new_collection(name, tiledbsoma.Experiment)
            table = pa.table({c: encode(obs.column(c)) for c in columns})
            write(experiment, dest / "census_data" / name, "obs", table)


def test_dictionary_columns_give_the_same_counts(
    release: Path,
    scanned: dict[str, DatasetCounts],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store whose obs strings are enumerations (as the Census's) counts the same; codes of
    whole enumerations are renumbered over the values a chunk uses."""
    census_format_copy(release / "soma", tmp_path / "soma")
    with tiledbsoma.open(str(tmp_path / "soma")) as census:
        schema = census["census_data"]["homo_sapiens"].obs.schema
        assert pa.types.is_dictionary(schema.field("cell_type_ontology_term_id").type)
    monkeypatch.setattr(curation.annotate, "_COMPACT_ABOVE", 0)
    with make_executor("local", workers=1) as executor:
        for chunk_rows in (50, DEFAULT_CHUNK_ROWS):
            assert scan_store(str(tmp_path / "soma"), {}, executor, chunk_rows) == scanned


def test_process_pool_gives_the_same_counts(
    release: Path, scanned: dict[str, DatasetCounts], tmp_path: Path
) -> None:
    pulled: list[int] = []

    def items():  # noqa: ANN202
        for i in range(-20, 0):
            pulled.append(i)
            yield i

    with make_executor("local", workers=2) as executor:
        assert type(executor).__name__ == "LocalProcessExecutor"
        results = executor.map(abs, items())
        assert next(results) == 20
        assert len(pulled) <= 2 * executor.workers  # lazy, bounded in flight
        assert list(results) == list(range(19, 0, -1))  # in input order
        assert scan_store(str(release / "soma"), {}, executor, chunk_rows=500) == scanned
        bad = ChunkTask(str(tmp_path / "gone" / "obs"), {}, 0, 9, ("cell_type",), "NCBITaxon:9606")
        with pytest.raises(AnnotationError, match=r"Cannot read rows 0\.\.9 of .*gone/obs"):
            list(executor.map(scan_chunk, [bad]))


def test_in_thread_executor_is_lazy() -> None:
    pulled: list[int] = []

    def items():  # noqa: ANN202
        for i in range(100):
            pulled.append(i)
            yield i

    with make_executor("local", workers=1) as executor:
        assert isinstance(executor, TaskExecutor)
        results = executor.map(str, items())
        assert next(results) == "0"
        assert pulled == [0]
        assert list(results)[-1] == "99"


def test_ray_executor_gives_the_same_counts(
    release: Path, scanned: dict[str, DatasetCounts]
) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("ray is not installed (pip install 'cellregistry[distributed]')")
    with make_executor("ray", workers=2) as executor:
        assert list(executor.map(abs, range(-5, 0))) == [5, 4, 3, 2, 1]
        assert scan_store(str(release / "soma"), {}, executor, chunk_rows=500) == scanned


def test_unknown_executor_kind_is_a_clear_error() -> None:
    with pytest.raises(ExecutorError, match=r"Unknown executor 'dask': choose one of local, ray"):
        make_executor("dask")
    with pytest.raises(ExecutorError, match="workers must be at least 1"):
        make_executor("local", workers=0)
    with pytest.raises(ExecutorError, match="needs the ray executor"):
        make_executor("local", ray_address="ray://head:10001")


def test_missing_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RayNotInstalledError, match=r"pip install 'cellregistry\[distributed\]'"):
        make_executor("ray", workers=1)


# --- over S3 ----------------------------------------------------------------------------------


def upload_folder(bucket: str, folder: Path, prefix: str) -> None:
    """Upload a folder's files under ``prefix`` (8 at a time: a store has many small files)."""
    client = s3_client()
    files = [p for p in folder.rglob("*") if p.is_file()]

    def put(path: Path) -> None:
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, files))


def test_scan_over_s3_equals_the_local_scan(tmp_path: Path, s3_server: str, s3_bucket: str) -> None:
    """A store on S3 (a small release of its own: moto serves each of its files slowly)."""
    build_release(str(tmp_path), TAG, n_datasets=3, cells_per_dataset=60, workers=1)
    local = tmp_path / "cell-census" / TAG / "soma"
    upload_folder(s3_bucket, local, f"cell-census/{TAG}/soma")
    storage = Storage(root=f"s3://{s3_bucket}", endpoint_url=s3_server)
    uri = f"s3://{s3_bucket}/cell-census/{TAG}/soma"
    with make_executor("local", workers=1) as executor:
        expected = scan_store(str(local), {}, executor)
        assert len(expected) == 3
        assert scan_store(uri, tiledb_config(storage), executor, chunk_rows=100) == expected
        with pytest.raises(AnnotationError, match="Cannot open the SOMA store s3://"):
            scan_store(f"s3://{s3_bucket}/nothing/soma", tiledb_config(storage), executor)
