"""``ln.census``: the release directory ``build_demo_release`` writes, versions resolved through
the registry or a bucket's ``release.json`` (local and S3), the Census queries, and their errors.

Parity with ``cellxgene_census`` (a test extra) on the same bucket: its own directory reader and
``open_soma`` read our ``release.json`` (served over loopback HTTP, where it fetches it from; its
``open_soma`` by version on S3, where a mirror's relative URIs join onto the bucket root), and its
queries on the store opened with ``uri=`` give the same frames as ours.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import cellxgene_census
import numpy as np
import pandas as pd
import pytest
from cellxgene_census import _release_directory
from django.core.management import call_command

import registry as ln
from demo.census.directory import merged_directory, release_entry
from registry.accessors.backends import backend_for
from registry.census_releases import DIRECTORY_KEY, alias_targets, release_key
from registry.errors import (
    CensusDirectoryNotFoundError,
    CensusError,
    CensusQueryError,
    CensusVersionError,
    CensusVersionRetractedError,
    ObjectNotFoundError,
)
from registry.models import Storage
from tests.registry.census_releases import (
    LATEST_TAG,
    STABLE_TAG,
    register_release,
    soma_path,
)
from tests.s3 import upload

#: tests without a database (they build releases): the PostgreSQL pass would repeat them exactly
sqlite_pass_only = pytest.mark.skipif(
    "postgresql" in os.environ.get("DATABASE_URL", ""),
    reason="no database: covered by the SQLite pass",
)
LUNG = "tissue_general == 'lung' and is_primary_data == True"


def read_directory(bucket: Path) -> dict:
    return json.loads((bucket / DIRECTORY_KEY).read_text())


# --- the release directory (no database) -------------------------------------------------------


def test_build_writes_the_census_release_directory(census_bucket: Path) -> None:
    directory = read_directory(census_bucket)
    assert list(directory) == ["stable", "latest", LATEST_TAG, STABLE_TAG]
    assert directory["stable"] == STABLE_TAG and directory["latest"] == LATEST_TAG
    entry = directory[STABLE_TAG]
    assert entry == {
        "release_date": None,
        "release_build": STABLE_TAG,
        "soma": {
            "uri": f"{census_bucket}/cell-census/{STABLE_TAG}/soma/",
            "relative_uri": f"/cell-census/{STABLE_TAG}/soma/",
            "s3_region": None,
        },
        "h5ads": {
            "uri": f"{census_bucket}/cell-census/{STABLE_TAG}/h5ads/",
            "relative_uri": f"/cell-census/{STABLE_TAG}/h5ads/",
            "s3_region": None,
        },
        "flags": {"lts": True, "retracted": False},
    }
    assert directory[LATEST_TAG]["flags"] == {"lts": False, "retracted": False}


@sqlite_pass_only
def test_a_build_merges_into_the_directory_and_moves_the_aliases(
    census_bucket: Path,
    tmp_path: Path,
) -> None:
    (tmp_path / "cell-census").mkdir()
    shutil.copy(census_bucket / DIRECTORY_KEY, tmp_path / DIRECTORY_KEY)
    call_command(
        "build_demo_release", "--tag", "2024-01-01", "--dest", str(tmp_path), "--datasets", "1",
        "--cells-per-dataset", "5", "--workers", "1", "--no-lts", "--quiet",
    )  # fmt: skip
    directory = read_directory(tmp_path)
    assert [k for k in directory if k not in ("stable", "latest")] == [
        "2024-01-01",
        LATEST_TAG,
        STABLE_TAG,
    ]
    assert (directory["latest"], directory["stable"]) == ("2024-01-01", STABLE_TAG)
    call_command(
        "build_demo_release",
        "--tag",
        "2024-01-01",
        "--dest",
        str(tmp_path),
        "--datasets",
        "1",
        "--cells-per-dataset",
        "5",
        "--workers",
        "1",
        "--overwrite",
        "--quiet",
    )  # fmt: skip  (the default: LTS)
    directory = read_directory(tmp_path)
    assert directory["stable"] == "2024-01-01"
    assert directory["2024-01-01"]["flags"]["lts"] is True
    assert directory[STABLE_TAG] == read_directory(census_bucket)[STABLE_TAG]


@sqlite_pass_only
def test_aliases_skip_retracted_releases() -> None:
    entry = functools.partial(release_entry, "/b", region=None)
    releases = {
        "2023-01-01": entry("2023-01-01", lts=True),
        "2023-06-01": entry("2023-06-01", lts=True),
    }
    releases["2023-06-01"]["flags"]["retracted"] = True
    assert alias_targets(releases) == {"latest": "2023-01-01", "stable": "2023-01-01"}
    merged = merged_directory(releases, "2023-09-01", entry("2023-09-01", lts=False))
    assert (merged["latest"], merged["stable"]) == ("2023-09-01", "2023-01-01")
    assert alias_targets({"2023-01-01": entry("2023-01-01", lts=False)}) == {"latest": "2023-01-01"}


@sqlite_pass_only
def test_a_broken_directory_is_refused_by_the_build(tmp_path: Path) -> None:
    (tmp_path / "cell-census").mkdir()
    (tmp_path / DIRECTORY_KEY).write_text("{not json")
    with pytest.raises(Exception, match=r"release directory .*release.json is not valid JSON"):
        call_command(
            "build_demo_release", "--tag", "2024-01-01", "--dest", str(tmp_path), "--datasets",
            "1", "--cells-per-dataset", "5", "--workers", "1", "--quiet",
        )  # fmt: skip


@pytest.fixture
def census_site(
    census_bucket: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator:
    """Points ``cellxgene_census`` at our bucket: its ``release.json`` and a ``mirrors.json``
    whose default mirror is ``base_uri`` are served over HTTP on loopback, where the package
    fetches its directories from. Call it with the mirror's base URI and region."""
    servers = []

    def serve(base_uri: str, region: str | None = None) -> None:
        folder = tmp_path / f"site-{len(servers)}"
        folder.mkdir()
        shutil.copy(census_bucket / DIRECTORY_KEY, folder / "release.json")
        provider = "S3" if base_uri.startswith("s3://") else "file"
        mirror = {"provider": provider, "base_uri": base_uri, "region": region}
        (folder / "mirrors.json").write_text(json.dumps({"default": "demo", "demo": mirror}))
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        for name, file in (("RELEASE", "release.json"), ("MIRRORS", "mirrors.json")):
            attribute = f"CELL_CENSUS_{name}_DIRECTORY_URL"
            monkeypatch.setattr(_release_directory, attribute, f"{url}/{file}")

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.mark.django_db
def test_cellxgene_census_reads_the_directory_as_we_do(
    census_bucket: Path,
    census_site: Callable,
) -> None:
    census_site(f"{census_bucket}/")
    for flags in ({}, {"lts": True}, {"lts": False}, {"retracted": None}):
        theirs = cellxgene_census.get_census_version_directory(**flags)
        ours = ln.census.get_census_version_directory(mirror=census_bucket, **flags)
        assert list(ours) == list(theirs) and ours == dict(theirs), flags
    for version in ("stable", "latest", STABLE_TAG):
        assert ln.census.get_census_version_description(
            version, mirror=census_bucket
        ) == cellxgene_census.get_census_version_description(version)


# --- resolution through the registry and through a bucket ---------------------------------------


@pytest.mark.django_db
def test_versions_resolve_through_the_registry(census_bucket: Path) -> None:
    root = str(census_bucket)
    with pytest.raises(CensusVersionError, match="No Census release is curated in instance"):
        ln.census.open_soma()
    register_release(root, STABLE_TAG)
    with ln.census.open_soma() as census:  # stable: the newest curated LTS release
        assert census.uri == soma_path(census_bucket, STABLE_TAG)
    with pytest.raises(CensusVersionError) as error:
        ln.census.open_soma(census_version=LATEST_TAG)
    message = str(error.value)
    assert f"Unknown Census version '{LATEST_TAG}' in instance" in message
    assert f"known versions are stable, latest, {STABLE_TAG}." in message
    assert f"is in the release directory of {root!r} but not curated here" in message
    assert f"open_soma(census_version='{LATEST_TAG}', mirror='{root}')" in message
    register_release(root, LATEST_TAG)
    for version, tag in [("stable", STABLE_TAG), ("latest", LATEST_TAG), (LATEST_TAG, LATEST_TAG)]:
        with ln.census.open_soma(census_version=version) as census:
            assert census.uri == soma_path(census_bucket, tag)
    directory = ln.census.get_census_version_directory()
    assert list(directory) == ["stable", "latest", LATEST_TAG, STABLE_TAG]
    assert directory["latest"]["soma"]["relative_uri"] == f"/{release_key(LATEST_TAG, 'soma')}/"
    assert list(ln.census.get_census_version_directory(lts=True)) == ["stable", STABLE_TAG]
    with pytest.raises(CensusVersionError, match=r"Unknown Census version 'V2'.*known versions"):
        ln.census.get_census_version_description("V2")


@pytest.mark.django_db
def test_a_curated_release_without_a_directory_counts_as_lts(
    census_bucket: Path,
    tmp_path: Path,
) -> None:
    bucket = tmp_path / "bucket"
    shutil.copytree(census_bucket / "cell-census" / STABLE_TAG, bucket / "cell-census" / STABLE_TAG)
    register_release(str(bucket), STABLE_TAG)
    description = ln.census.get_census_version_description("stable")
    assert description["release_build"] == STABLE_TAG and description["flags"]["lts"]
    with ln.census.open_soma(census_version="latest") as census:
        assert census.uri == soma_path(bucket, STABLE_TAG)


@pytest.mark.django_db
def test_version_errors(census_bucket: Path, tmp_path: Path) -> None:
    with pytest.raises(CensusDirectoryNotFoundError) as error:
        ln.census.open_soma(mirror=tmp_path)
    assert f"No Census release directory at {tmp_path}/cell-census/release.json" in str(error.value)
    directory = read_directory(census_bucket)
    directory[STABLE_TAG]["flags"]["retracted"] = True
    directory[STABLE_TAG]["retraction"] = {
        "date": "2024-01-02",
        "reason": "mistakes happen",
        "info_url": None,
        "replaced_by": LATEST_TAG,
    }
    (tmp_path / "cell-census").mkdir()
    (tmp_path / DIRECTORY_KEY).write_text(json.dumps(directory))
    with pytest.raises(CensusVersionRetractedError) as error:
        ln.census.open_soma(census_version=STABLE_TAG, mirror=tmp_path)
    assert str(error.value) == (
        f"Census version '{STABLE_TAG}' (release {STABLE_TAG}) of the release directory of "
        f"'{tmp_path}' is retracted (date: 2024-01-02, reason: mistakes happen, replaced_by: "
        f"{LATEST_TAG}): use '{LATEST_TAG}'."
    )
    with pytest.raises(CensusVersionRetractedError, match=r"version 'stable' \(release 2023-07"):
        ln.census.open_soma(mirror=tmp_path)  # the file's stable alias names it
    assert list(ln.census.get_census_version_directory(mirror=tmp_path)) == ["latest", LATEST_TAG]
    with pytest.raises(ObjectNotFoundError) as error:
        ln.census.open_soma(census_version=LATEST_TAG, mirror=tmp_path)  # no store there
    assert f"The SOMA store of Census version '{LATEST_TAG}' (release {LATEST_TAG}" in str(
        error.value
    )
    assert "is missing" in str(error.value)
    with pytest.raises(CensusError, match="either tiledb_config or context"):
        ln.census.open_soma(tiledb_config={}, context=object())
    with pytest.raises(CensusVersionError, match="needs a census_version"):
        ln.census.open_soma(census_version=None)


@pytest.mark.django_db
def test_the_registry_takes_flags_from_the_bucket_directory(
    census_bucket: Path, tmp_path: Path
) -> None:
    """A curated release that its bucket's directory retracts is no alias's target, and
    opening it names the retraction."""
    directory = read_directory(census_bucket)
    directory[STABLE_TAG]["flags"]["retracted"] = True
    (tmp_path / "cell-census").mkdir()
    (tmp_path / DIRECTORY_KEY).write_text(json.dumps(directory))
    register_release(str(tmp_path), STABLE_TAG)
    with pytest.raises(CensusVersionRetractedError, match=f"version '{STABLE_TAG}'.*retracted"):
        ln.census.open_soma(census_version=STABLE_TAG)
    with pytest.raises(CensusVersionError) as error:
        ln.census.open_soma()
    assert f"known versions are {STABLE_TAG}. No release of instance" in str(error.value)
    assert "is LTS." in str(error.value)
    assert ln.census.get_census_version_directory() == {}
    assert list(ln.census.get_census_version_directory(retracted=True)) == [STABLE_TAG]


@pytest.mark.django_db
def test_a_tag_curated_from_two_storages_is_ambiguous(
    census_bucket: Path,
    tmp_path: Path,
) -> None:
    register_release(str(census_bucket), STABLE_TAG)
    register_release(str(tmp_path), STABLE_TAG)
    with pytest.raises(CensusError, match=f"Census release '{STABLE_TAG}' is curated twice"):
        ln.census.open_soma()


@pytest.mark.django_db
def test_a_missing_curated_store_is_named(tmp_path: Path) -> None:
    register_release(str(tmp_path), STABLE_TAG)
    with pytest.raises(ObjectNotFoundError) as error:
        ln.census.open_soma(census_version=STABLE_TAG)
    assert f"The SOMA store of Census version '{STABLE_TAG}' (release {STABLE_TAG}, instance" in (
        str(error.value)
    )


@pytest.mark.django_db
def test_s3_through_the_directory_and_the_registry(
    census_bucket: Path,
    s3_bucket: str,
    census_site: Callable,
) -> None:
    """A moto bucket with the release directory and the latest release's store: opened by
    version through the directory and through the registry, and by URI, with the Storage
    record's settings (the endpoint of the environment's moto server)."""
    upload(s3_bucket, Path(soma_path(census_bucket, LATEST_TAG)), release_key(LATEST_TAG, "soma"))
    upload(s3_bucket, census_bucket / DIRECTORY_KEY, DIRECTORY_KEY)
    root = f"s3://{s3_bucket}"
    expected = ln.census.get_obs(
        ln.census.open_soma(uri=soma_path(census_bucket, LATEST_TAG)),
        "homo_sapiens",
        value_filter=LUNG,
    )
    with ln.census.open_soma(census_version="latest", mirror=root) as census:
        assert census.uri == f"{root}/cell-census/{LATEST_TAG}/soma"
        pd.testing.assert_frame_equal(
            ln.census.get_obs(census, "Homo sapiens", value_filter=LUNG), expected
        )
    register_release(root, LATEST_TAG)
    with ln.census.open_soma(census_version="latest") as census:
        assert census.uri == f"{root}/cell-census/{LATEST_TAG}/soma"
        assert len(ln.census.get_obs(census, "homo_sapiens", value_filter=LUNG)) == len(expected)
    with ln.census.open_soma(uri=f"{root}/cell-census/{LATEST_TAG}/soma") as census:
        assert census["census_info"]["summary"].count == 7
    assert ln.census.get_census_version_description("latest")["flags"]["lts"] is False
    # cellxgene_census itself opens the same store by version from the same directory, with a
    # mirror on this bucket (its relative URIs join onto the bucket root, as on the Census's)
    census_site(f"{root}/", "us-east-1")
    settings = backend_for(Storage.objects.get(root=root)).tiledb_config()
    with cellxgene_census.open_soma(census_version="latest", tiledb_config=settings) as census:
        assert census.uri.rstrip("/") == f"{root}/cell-census/{LATEST_TAG}/soma"
        assert len(cellxgene_census.get_obs(census, "homo_sapiens", value_filter=LUNG)) == len(
            expected
        )


# --- queries: the same as cellxgene_census's, and their errors ----------------------------------


@pytest.fixture
def stores(census_bucket: Path) -> Iterator[tuple]:
    """(ours, theirs): the stable release opened by ln.census and by cellxgene_census (uri=)."""
    uri = soma_path(census_bucket, STABLE_TAG)
    with (
        ln.census.open_soma(mirror=census_bucket) as ours,
        cellxgene_census.open_soma(uri=uri) as theirs,
    ):
        yield ours, theirs


@pytest.mark.django_db
def test_queries_equal_cellxgene_census(stores: tuple) -> None:
    ours, theirs = stores
    for filters in (
        {
            "obs_value_filter": "cell_type == 'T cell' and is_primary_data == True",
            "obs_column_names": ["cell_type", "tissue_general", "donor_id"],
        },
        {
            "obs_value_filter": "tissue_general in ['kidney', 'brain']",
            "var_value_filter": "feature_name in ['CD4', 'ACTB', 'NRXN1']",
        },
        {"obs_coords": slice(0, 99), "var_coords": [0, 5, 7], "X_layers": ["raw"]},
    ):
        mine = ln.census.get_anndata(ours, "Homo sapiens", **filters)
        real = cellxgene_census.get_anndata(theirs, "Homo sapiens", **filters)
        assert mine.n_obs == real.n_obs > 0 and mine.n_vars == real.n_vars
        pd.testing.assert_frame_equal(mine.obs, real.obs)
        pd.testing.assert_frame_equal(mine.var, real.var)
        assert (mine.X != real.X).nnz == 0
    columns = ["cell_type", "tissue_general"]
    for organism in ("homo_sapiens", "Mus musculus"):
        mine = ln.census.get_obs(ours, organism, value_filter=LUNG, column_names=columns)
        real = cellxgene_census.get_obs(theirs, organism, value_filter=LUNG, column_names=columns)
        pd.testing.assert_frame_equal(mine, real)
    genes = "feature_name in ['CD4', 'ACTB']"
    pd.testing.assert_frame_equal(
        ln.census.get_var(ours, "homo_sapiens", value_filter=genes),
        cellxgene_census.get_var(theirs, "homo_sapiens", value_filter=genes),
    )
    mine, real = (
        module.get_presence_matrix(store, "Homo sapiens")
        for module, store in ((ln.census, ours), (cellxgene_census, theirs))
    )
    assert mine.shape == real.shape and (mine != real).nnz == 0 and mine.nnz > 0
    assert np.array_equal(mine.indptr, real.indptr)


@pytest.mark.django_db
def test_query_errors_name_what_is_wrong(stores: tuple) -> None:
    census, _ = stores
    human = "homo_sapiens"
    cases = [
        (lambda: ln.census.get_obs(census, "Danio rerio"), "Unknown organism 'Danio rerio': "),
        (lambda: ln.census.get_obs(census, human, modality="spatial"), "has no 'spatial' collec"),
        (
            lambda: ln.census.get_anndata(census, human, measurement_name="ATAC"),
            "Unknown measurement 'ATAC': the experiment has 'RNA'",
        ),
        (
            lambda: ln.census.get_anndata(census, human, X_name="normalized"),
            "Unknown X layer 'normalized' of measurement 'RNA': it has 'raw'",
        ),
        (
            lambda: ln.census.get_obs(census, human, column_names=["celltype"]),
            "Unknown obs column(s) 'celltype': obs has 'assay', ",
        ),
        (
            lambda: ln.census.get_anndata(census, human, var_column_names=["gene"]),
            "Unknown var column(s) 'gene': var has 'feature_id', ",
        ),
        (
            lambda: ln.census.get_obs(census, human, value_filter="celltype == 'B cell'"),
            "Cannot read obs with value_filter \"celltype == 'B cell'\"",
        ),
        (
            lambda: ln.census.get_anndata(census, human, obs_value_filter="tissue = 'lung'"),
            "Cannot query 'homo_sapiens' with obs_value_filter \"tissue = 'lung'\"",
        ),
        (
            lambda: ln.census.get_anndata(census, human, obs_embeddings=["scvi"]),
            "Embeddings ('scvi') are not available offline",
        ),
        (
            lambda: ln.census.get_anndata(
                census, human, column_names={"obs": ["sex"]}, obs_column_names=["sex"]
            ),
            "Give column_names (deprecated) or obs_column_names/var_column_names, not both.",
        ),
    ]
    for call, message in cases:
        with pytest.raises(CensusQueryError) as error:
            call()
        assert message in str(error.value)
    with pytest.raises(CensusQueryError, match="has the experiments 'homo_sapiens', 'mus_mus"):
        ln.census.get_var(census, "Danio rerio")
    adata = ln.census.get_anndata(
        census, "homo_sapiens", column_names={"obs": ["sex"]}, obs_coords=[0, 1]
    )
    assert list(adata.obs.columns) == ["sex"] and adata.n_obs == 2
