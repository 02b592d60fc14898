"""Cell counts per dataset and term (curation.annotate) and the executors that compute them.

The scan's counts are checked against two independent sources: ``census_info/summary_cell_counts``
(per organism; it counts a multi-valued value ``A || B`` as one row, so its rows are split the
same way before comparing: the cells of ``A || B`` count for ``A`` and for ``B``) and a direct
pandas count over the obs of the release's h5ads. No database is needed.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import anndata
import pandas as pd
import pytest
import tiledbsoma

from curation.annotate import (
    DEFAULT_CHUNK_ROWS,
    FEATURES,
    AnnotationError,
    DatasetCounts,
    TermCount,
    count_obs,
    scan_store,
    split_terms,
)
from curation.demo.release import build_release
from curation.executors import (
    ExecutorError,
    RayNotInstalledError,
    TaskExecutor,
    make_executor,
)
from registry.accessors.backends import tiledb_config
from registry.models import Storage
from tests.s3 import upload

TAG = "2025-01-30"
N_DATASETS, CELLS = 16, 120
#: summary_cell_counts categories -> our features (suspension_type has no term ids there)
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


def h5ads(release: Path) -> list[tuple[str, anndata.AnnData]]:
    """(dataset id, backed AnnData) of every h5ad of the release."""
    return [
        (path.stem, anndata.read_h5ad(path, backed="r"))
        for path in sorted((release / "h5ads").glob("*.h5ad"))
    ]


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


# --- helpers ----------------------------------------------------------------------------------


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
    release: Path, scanned: dict[str, DatasetCounts]
) -> None:
    datasets = info_table(release, "datasets")
    assert set(scanned) == set(datasets.dataset_id)
    files = h5ads(release)
    assert {dataset_id for dataset_id, _ in files} == set(scanned)
    for dataset_id, adata in files:
        expected = pandas_counts(adata.obs, adata.uns["organism_ontology_term_id"])
        assert without(scanned[dataset_id], "tissue_general") == expected, dataset_id


def test_count_obs_of_an_h5ad_equals_the_scan(
    release: Path, scanned: dict[str, DatasetCounts]
) -> None:
    for dataset_id, adata in h5ads(release):
        counts = count_obs(adata.obs, adata.uns["organism_ontology_term_id"])
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


def test_count_obs_names_missing_columns(release: Path) -> None:
    _, adata = h5ads(release)[0]
    obs = adata.obs.drop(columns=["donor_id", "tissue_ontology_term_id"])
    with pytest.raises(AnnotationError, match="tissue_ontology_term_id, donor_id"):
        count_obs(obs, "NCBITaxon:9606")
    obs = adata.obs.copy()
    obs["sex_ontology_term_id"] = obs["sex_ontology_term_id"].astype(object)
    obs.iloc[0, obs.columns.get_loc("sex_ontology_term_id")] = None
    with pytest.raises(AnnotationError, match="'sex_ontology_term_id' has 1 empty value"):
        count_obs(obs, "NCBITaxon:9606")
    assert count_obs(adata.obs.iloc[:0], "NCBITaxon:9606") == {}


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
    with make_executor("local", workers=1) as executor:
        assert scan_store(str(release / "soma"), {}, executor, chunk_rows=chunk_rows) == scanned


def test_process_pool_gives_the_same_counts(
    release: Path, scanned: dict[str, DatasetCounts]
) -> None:
    with make_executor("local", workers=2) as executor:
        assert type(executor).__name__ == "LocalProcessExecutor"
        assert list(executor.map(abs, range(-20, 0))) == list(range(20, 0, -1))  # in order
        assert scan_store(str(release / "soma"), {}, executor, chunk_rows=500) == scanned


def test_map_is_lazy_and_bounded() -> None:
    """Items are pulled as results are consumed, not all at once."""
    pulled: list[int] = []

    def items():  # noqa: ANN202
        for i in range(100):
            pulled.append(i)
            yield i

    with make_executor("local", workers=1) as executor:
        results = executor.map(abs, items())
        assert next(results) == 0
        assert len(pulled) <= 2 * executor.workers + 1


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


def test_executor_protocol() -> None:
    with make_executor("local", workers=1) as executor:
        assert isinstance(executor, TaskExecutor)
        assert list(executor.map(str, [3, 1, 2])) == ["3", "1", "2"]


# --- over S3 ----------------------------------------------------------------------------------


def test_scan_over_s3_equals_the_local_scan(
    release: Path, scanned: dict[str, DatasetCounts], s3_server: str, s3_bucket: str
) -> None:
    upload(s3_bucket, release / "soma", f"cell-census/{TAG}/soma")
    storage = Storage(root=f"s3://{s3_bucket}", endpoint_url=s3_server)
    uri = f"s3://{s3_bucket}/cell-census/{TAG}/soma"
    with make_executor("local", workers=1) as executor:
        assert scan_store(uri, tiledb_config(storage), executor) == scanned
