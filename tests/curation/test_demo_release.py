"""The demo release builder: Census layout, realistic content, consecutive releases, and a SOMA
store that ``cellxgene_census`` opens and queries like the real one (locally and over S3)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import anndata
import cellxgene_census
import numpy as np
import pandas as pd
import pytest
import tiledbsoma
from django.core.management import CommandError, call_command

from demo.census.plan import KIDNEY_TITLE, ReleasePlan
from demo.census.release import PLAN_FILE, build_release

OLD, NEW = "2024-07-01", "2025-01-30"
N_DATASETS, CELLS = 40, 150
DATASET_COLUMNS = [
    "soma_joinid",
    "citation",
    "collection_id",
    "collection_name",
    "collection_doi",
    "collection_doi_label",
    "dataset_id",
    "dataset_version_id",
    "dataset_title",
    "dataset_h5ad_path",
    "dataset_total_cell_count",
]
CENSUS_OBS = {
    "soma_joinid", "dataset_id", "assay", "assay_ontology_term_id", "cell_type",
    "cell_type_ontology_term_id", "development_stage", "development_stage_ontology_term_id",
    "disease", "disease_ontology_term_id", "donor_id", "is_primary_data", "observation_joinid",
    "self_reported_ethnicity", "self_reported_ethnicity_ontology_term_id", "sex",
    "sex_ontology_term_id", "suspension_type", "tissue", "tissue_ontology_term_id", "tissue_type",
    "tissue_general", "tissue_general_ontology_term_id", "raw_sum", "nnz", "raw_mean_nnz",
    "raw_variance_nnz", "n_measured_vars",
}  # fmt: skip


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two consecutive demo releases in one local bucket folder."""
    dest = tmp_path_factory.mktemp("bucket")
    build_release(str(dest), OLD, n_datasets=N_DATASETS, cells_per_dataset=CELLS, workers=2)
    build_release(str(dest), NEW, previous=OLD, workers=2)
    return dest


def soma_table(release: Path, name: str) -> pd.DataFrame:
    with tiledbsoma.open(str(release / "soma")) as census:
        return census["census_info"][name].read().concat().to_pandas()


def h5ad_obs(release: Path) -> pd.DataFrame:
    """obs of every h5ad of a release, with the dataset id (read with pandas, not the store)."""
    frames = []
    for path in sorted((release / "h5ads").glob("*.h5ad")):
        obs = anndata.read_h5ad(path, backed="r").obs.copy()
        obs["dataset_id"] = path.stem
        frames.append(obs)
    return pd.concat(frames)


def test_layout_follows_the_census_bucket(releases: Path) -> None:
    release = releases / "cell-census" / OLD
    datasets = soma_table(release, "datasets")
    assert list(datasets.columns) == DATASET_COLUMNS
    assert len(datasets) == N_DATASETS
    files = {p.name for p in (release / "h5ads").iterdir()}
    assert files == set(datasets.dataset_h5ad_path)
    assert (release / PLAN_FILE).is_file()
    summary = dict(soma_table(release, "summary")[["label", "value"]].values)
    assert {"census_schema_version", "census_build_date", "dataset_schema_version"} <= set(summary)
    assert int(summary["total_cell_count"]) == datasets.dataset_total_cell_count.sum()
    organisms = soma_table(release, "organisms")
    assert set(organisms.organism) == {"homo_sapiens", "mus_musculus"}
    assert set(organisms.organism_label) == {"Homo sapiens", "Mus musculus"}
    with tiledbsoma.open(str(release / "soma")) as census:
        for name in ("homo_sapiens", "mus_musculus"):
            experiment = census["census_data"][name]
            rna = experiment.ms["RNA"]
            assert set(experiment.obs.schema.names) == CENSUS_OBS
            assert {"feature_id", "feature_name", "feature_length"} <= set(rna.var.schema.names)
            assert "raw" in rna.X
            assert "feature_dataset_presence_matrix" in rna


def test_h5ads_are_realistic(releases: Path) -> None:
    release = releases / "cell-census" / OLD
    datasets = soma_table(release, "datasets")
    assert KIDNEY_TITLE in set(datasets.dataset_title)
    assert datasets.collection_doi.str.match(r"^10\.\d{4,}/\S+$").all()
    assert datasets.groupby("collection_id").size().max() > 1  # datasets grouped in collections
    sizes = datasets.dataset_total_cell_count
    assert sizes.max() > 3 * sizes.median()  # a few large, many small
    obs = h5ad_obs(release)
    assert not obs.is_primary_data.all() and obs.is_primary_data.any()
    assert obs.self_reported_ethnicity_ontology_term_id.astype(str).str.contains(" || ").any()
    assert {"cell", "nucleus"} & set(obs.suspension_type.astype(str))
    assert set(obs.tissue_type.astype(str)) <= {"tissue", "organoid"}
    for label in ("cell_type", "tissue", "assay", "disease", "sex", "development_stage"):
        assert obs[label].notna().all()
    kidney_id = datasets.loc[datasets.dataset_title == KIDNEY_TITLE, "dataset_id"].item()
    kidney = anndata.read_h5ad(release / "h5ads" / f"{kidney_id}.h5ad")
    assert set(kidney.obs.tissue) == {"kidney"}
    assert {"dendritic cell", "neutrophil"} <= set(kidney.obs.cell_type)
    assert set(kidney.obs.assay) == {"10x 3' v2"} and set(kidney.obs.suspension_type) == {"cell"}
    assert kidney.var.index.str.startswith("ENSG").all()
    assert "feature_name" in kidney.var and "schema_version" in kidney.uns
    counts = kidney.raw.X if kidney.raw is not None else kidney.X
    values = counts.data
    assert np.array_equal(values, np.round(values)) and values.min() >= 1
    assert counts.nnz < 0.5 * counts.shape[0] * counts.shape[1]  # sparse
    assert np.mean(values == 1) > 0.3 and values.max() >= 10  # skewed: mostly small counts


def test_consecutive_release_keeps_revises_drops_and_adds(releases: Path) -> None:
    old = soma_table(releases / "cell-census" / OLD, "datasets").set_index("dataset_id")
    new = soma_table(releases / "cell-census" / NEW, "datasets").set_index("dataset_id")
    kept = old.index.intersection(new.index)
    dropped, added = old.index.difference(new.index), new.index.difference(old.index)
    assert len(kept) >= 0.85 * len(old) and len(dropped) >= 1 and len(added) >= 1
    same = kept[old.loc[kept, "dataset_version_id"] == new.loc[kept, "dataset_version_id"]]
    revised = kept.difference(same)
    assert len(revised) >= 1 and len(same) > len(revised)
    for dataset_id in same[:3]:
        before = (releases / "cell-census" / OLD / "h5ads" / f"{dataset_id}.h5ad").read_bytes()
        after = (releases / "cell-census" / NEW / "h5ads" / f"{dataset_id}.h5ad").read_bytes()
        assert before == after
    changed = revised[0]
    before = anndata.read_h5ad(releases / "cell-census" / OLD / "h5ads" / f"{changed}.h5ad")
    after = anndata.read_h5ad(releases / "cell-census" / NEW / "h5ads" / f"{changed}.h5ad")
    assert before.n_obs != after.n_obs or not before.obs.equals(after.obs)
    # one new dataset joins a collection that existed before
    assert set(new.loc[added, "collection_id"]) & set(old.collection_id)
    plan = ReleasePlan.from_json((releases / "cell-census" / NEW / PLAN_FILE).read_text())
    assert plan.previous_tag == OLD and {d.dataset_id for d in plan.datasets} == set(new.index)


def test_summary_cell_counts_equal_the_h5ads(releases: Path) -> None:
    release = releases / "cell-census" / NEW
    summary = soma_table(release, "summary_cell_counts")
    obs = h5ad_obs(release)
    datasets = soma_table(release, "datasets")
    assert datasets.dataset_total_cell_count.sum() == len(obs)
    human = summary[summary.organism == "Homo sapiens"]
    with tiledbsoma.open(str(release / "soma")) as census:
        human_ids = set(
            census["census_data"]["homo_sapiens"]
            .obs.read(column_names=["dataset_id"])
            .concat()
            .to_pandas()
            .dataset_id
        )
    human_obs = obs[obs.dataset_id.isin(human_ids)]
    for category in ("cell_type", "tissue", "assay", "disease", "sex", "suspension_type"):
        rows = human[human.category == category]
        expected = Counter(human_obs[category].astype(str))
        assert dict(zip(rows.label, rows.total_cell_count, strict=True)) == dict(expected)
        primary = Counter(human_obs.loc[human_obs.is_primary_data, category].astype(str))
        got = {k: v for k, v in zip(rows.label, rows.unique_cell_count, strict=True) if v}
        assert got == dict(primary)
    everything = human[human.category == "all"].iloc[0]
    assert everything.total_cell_count == len(human_obs)


def test_cellxgene_census_opens_and_queries_the_store(releases: Path) -> None:
    release = releases / "cell-census" / NEW
    obs = h5ad_obs(release)
    with cellxgene_census.open_soma(uri=str(release / "soma")) as census:
        adata = cellxgene_census.get_anndata(
            census,
            organism="Homo sapiens",
            obs_value_filter="tissue == 'kidney' and cell_type in ['dendritic cell', 'neutrophil']",
            var_value_filter="feature_name in ['PTPRC', 'CD3E', 'MS4A1', 'ACTB']",
        )
        wanted = obs[
            (obs.tissue == "kidney") & obs.cell_type.isin(["dendritic cell", "neutrophil"])
        ]
        assert adata.n_obs == len(wanted) > 0
        assert set(adata.obs.dataset_id) == set(wanted.dataset_id)
        assert set(adata.var.feature_name) <= {"PTPRC", "CD3E", "MS4A1", "ACTB"}
        # the counts of one cell equal its h5ad row
        first = adata.obs.iloc[0]
        source = anndata.read_h5ad(release / "h5ads" / f"{first.dataset_id}.h5ad")
        counts = source.raw.to_adata() if source.raw is not None else source
        row = counts[first.observation_joinid == source.obs.observation_joinid.astype(str)]
        for j, feature in enumerate(adata.var.feature_id):
            expected = row[:, feature].X.toarray().item() if feature in row.var_names else 0
            assert adata.X[0, j] == expected
        primary = cellxgene_census.get_obs(
            census, "homo_sapiens", value_filter="is_primary_data == False"
        )
        assert len(primary) == int(
            (~obs[obs.dataset_id.isin(primary.dataset_id)].is_primary_data).sum()
        )
        presence = cellxgene_census.get_presence_matrix(census, "Homo sapiens")
        datasets = census["census_info"]["datasets"].read().concat().to_pandas()
        assert presence.shape[0] == len(datasets)
        joinid = datasets.set_index("dataset_id").loc[first.dataset_id, "soma_joinid"]
        var = census["census_data"]["homo_sapiens"].ms["RNA"].var.read().concat().to_pandas()
        measured = set(var.feature_id.to_numpy()[presence[[joinid]].nonzero()[1]])
        expressed = set(counts.var_names[np.asarray((counts.X > 0).sum(axis=0)).ravel() > 0])
        assert measured == expressed


def test_bad_arguments_are_clear_errors(releases: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=f"Release '{OLD}' already exists.*--overwrite"):
        call_command("build_demo_release", tag=OLD, dest=str(releases), quiet=True)
    with pytest.raises(CommandError, match="No demo release '2020-01-01'.*Build it first"):
        call_command(
            "build_demo_release", tag="2026-01-01", dest=str(releases), previous="2020-01-01"
        )
    with pytest.raises(CommandError, match="Unsupported destination 'gs://x'"):
        call_command("build_demo_release", tag="t", dest="gs://x")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("build_demo_release", tag="t", dest=str(tmp_path), datasets=0)
    assert not (tmp_path / "cell-census" / "t").exists()


def test_command_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command(
        "build_demo_release",
        tag="2023-07-25",
        dest=str(tmp_path),
        datasets=3,
        cells_per_dataset=60,
        workers=1,
    )
    out = capsys.readouterr().out
    assert "Release 2023-07-25 at" in out and "3 datasets" in out
    assert len(list((tmp_path / "cell-census" / "2023-07-25" / "h5ads").glob("*.h5ad"))) == 3


def test_release_on_s3_opens_with_cellxgene_census(s3_server: str, s3_bucket: str) -> None:
    """Build two releases into a bucket on the loopback S3 endpoint and query the store there."""
    from registry.accessors.backends import tiledb_config
    from registry.models import Storage
    from tests.s3 import s3_client

    dest = f"s3://{s3_bucket}/mirror"
    first = build_release(dest, OLD, n_datasets=6, cells_per_dataset=80, workers=1)
    second = build_release(dest, NEW, previous=OLD, workers=1)
    assert second.copied >= 1  # unchanged h5ads are copied inside the bucket
    client = s3_client()
    keys = {
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=s3_bucket, Prefix=f"mirror/cell-census/{NEW}/"
        )
        for o in page.get("Contents", [])
    }
    h5ads = {k for k in keys if k.startswith(f"mirror/cell-census/{NEW}/h5ads/")}
    assert len(h5ads) == second.n_datasets
    assert f"mirror/cell-census/{NEW}/{PLAN_FILE}" in keys
    # the release directory, merged over both builds, with the bucket's region
    body = client.get_object(Bucket=s3_bucket, Key="mirror/cell-census/release.json")["Body"]
    directory = json.loads(body.read())
    assert list(directory) == ["stable", "latest", NEW, OLD]
    assert directory["stable"] == directory["latest"] == NEW
    assert directory[OLD]["soma"] == {
        "uri": f"{dest}/cell-census/{OLD}/soma/",
        "relative_uri": f"/cell-census/{OLD}/soma/",
        "s3_region": "us-east-1",
    }
    storage = Storage(root=f"s3://{s3_bucket}/mirror", endpoint_url=s3_server)
    uri = f"{first.root}/soma/"
    with cellxgene_census.open_soma(uri=uri, tiledb_config=tiledb_config(storage)) as census:
        datasets = census["census_info"]["datasets"].read().concat().to_pandas()
        assert len(datasets) == first.n_datasets
        obs = cellxgene_census.get_obs(
            census, "Homo sapiens", value_filter="tissue == 'kidney'", column_names=["cell_type"]
        )
        assert len(obs) > 0
        adata = cellxgene_census.get_anndata(
            census, "Homo sapiens", obs_value_filter="tissue == 'kidney'", obs_coords=slice(0, 50)
        )
        assert adata.n_obs > 0 and adata.X.nnz > 0
    with pytest.raises(CommandError, match=f"Release '{OLD}' already exists"):
        call_command("build_demo_release", tag=OLD, dest=dest, quiet=True)


def test_builds_finishing_together_each_add_their_release_on_s3(
    s3_server: str, s3_bucket: str
) -> None:
    """The release directory on S3 is written conditionally (the version read, or none yet):
    builds that finish at once each add their release, none overwrites another's."""
    import threading

    from demo.census.directory import update_release_directory
    from demo.census.release import Destination

    dest = f"s3://{s3_bucket}/together"
    tags = [f"2030-01-{day:02d}" for day in range(1, 13)]
    targets = [Destination(dest) for _ in tags]  # one client each, made before the threads
    start, failures = threading.Barrier(len(tags)), []

    def add(target: Destination, tag: str) -> None:
        start.wait()
        try:
            update_release_directory(target, tag, lts=True)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=add, args=pair) for pair in zip(targets, tags, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    text, _ = Destination(dest).read_versioned("cell-census/release.json")
    directory = json.loads(text)
    assert list(directory) == ["stable", "latest", *sorted(tags, reverse=True)]
    assert directory["latest"] == tags[-1]


def test_a_release_directory_changed_under_every_attempt_is_an_error(
    s3_server: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build whose conditional writes all find the directory changed says so and what to do
    (a reader of an out-of-date version: every write is refused by S3 with 412)."""
    from demo.census import directory
    from demo.census.release import Destination

    class OutOfDate(Destination):
        def read_versioned(self, relative: str) -> tuple[str | None, str | None]:
            text, _ = super().read_versioned(relative)
            return text, '"0123456789abcdef0123456789abcdef"'

    dest = f"s3://{s3_bucket}/stale"
    directory.update_release_directory(Destination(dest), "2030-01-01", lts=True)
    monkeypatch.setattr(directory, "DIRECTORY_ATTEMPTS", 3)
    with pytest.raises(directory.DirectoryContentionError) as error:
        directory.update_release_directory(OutOfDate(dest), "2030-02-01", lts=True)
    assert str(error.value) == (
        f"{dest}/cell-census/release.json changed under each of 3 attempts to add release "
        "'2030-02-01': too many builds at once. Build '2030-02-01' again with --overwrite."
    )
