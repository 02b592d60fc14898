"""A lab's own data: the default storage that init records, and Artifact(PATH | AnnData |
DataFrame) saved into it (copied locally, uploaded to a moto S3 server), with versions,
deletes and the failures that must leave nothing behind."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import registry as ln
from registry.accessors.hashing import UPLOAD_PART_SIZE
from registry.errors import InvalidArtifactDataError, InvalidKeyError, ObjectNotFoundError
from tests.conftest import on_postgres
from tests.s3 import s3_client

REPO = Path(__file__).resolve().parents[2]


def _adata(n_obs: int = 40, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(
        {"cell_type": rng.choice(["B cell", "T cell"], n_obs)},
        index=[f"cell-{i}" for i in range(n_obs)],
    )
    var = pd.DataFrame(index=[f"ENSG{i:011d}" for i in range(12)])
    return ad.AnnData(rng.poisson(1.0, (n_obs, 12)).astype("float32"), obs=obs, var=var)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _database_url(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    if on_postgres():
        return request.getfixturevalue("pg_database")
    return f"sqlite:///{tmp_path / f'{name}.sqlite3'}"


# --- point 1: the default storage -------------------------------------------------------------
def test_init_records_the_default_storage(fresh: ln.DB) -> None:
    root = fresh.config.storage
    assert list(fresh.Storage.values_list("root", flat=True)) == [root]
    settings = ln.setup.settings
    assert settings.instance.name == "fresh"
    assert settings.instance.storage == root
    assert settings.storage.root == root and settings.storage.pk is not None
    assert f"storage:  {root}" in repr(settings)
    ln.init("fresh", db=fresh.config.db)  # again: the same record, not a second one
    assert fresh.Storage.count() == 1


def test_an_s3_default_storage_is_recorded_as_s3(
    request: pytest.FixtureRequest, tmp_path: Path, isolated_instances: None, s3_bucket: str
) -> None:
    url = _database_url(request, tmp_path, "s3lab")
    db = ln.init("s3lab", db=url, storage=f"s3://{s3_bucket}/lab")
    storage = db.Storage.get(root=f"s3://{s3_bucket}/lab")
    assert storage.type == "s3"
    assert ln.setup.settings.storage == storage


# --- point 2: registering a lab's own data, locally ---------------------------------------------
def test_a_file_is_copied_into_the_default_storage(fresh: ln.DB, tmp_path: Path) -> None:
    source = tmp_path / "outside" / "pbmc.h5ad"
    source.parent.mkdir()
    adata = _adata()
    adata.write_h5ad(source)
    artifact = ln.Artifact(source, key="lab/pbmc.h5ad", description="PBMCs").save()
    assert artifact.pk is not None and artifact.key == "lab/pbmc.h5ad"
    assert artifact.storage.root == fresh.config.storage
    assert artifact.storage_key == f".cellregistry/{artifact.uid}.h5ad"
    assert Path(artifact.path) == Path(fresh.config.storage) / artifact.storage_key
    assert Path(artifact.path).read_bytes() == source.read_bytes()
    assert (artifact.size, artifact.hash, artifact.hash_type) == (
        source.stat().st_size,
        _md5(source),
        "md5",
    )
    assert (artifact.suffix, artifact.otype, artifact.n_observations) == (".h5ad", "AnnData", 40)
    loaded = ln.Artifact.get(key="lab/pbmc.h5ad").load()
    assert loaded.obs_names.tolist() == adata.obs_names.tolist()
    assert source.exists()  # a copy: the lab's file stays where it was


def test_same_content_returns_the_existing_record_and_new_content_is_a_version(
    fresh: ln.DB, capsys: pytest.CaptureFixture
) -> None:
    first = ln.Artifact(_adata(seed=1), key="lab/a.h5ad").save()
    again = ln.Artifact(_adata(seed=1), key="lab/a.h5ad").save()
    assert again.pk == first.pk and again.uid == first.uid
    assert "returning the existing artifact" in capsys.readouterr().out
    assert ln.Artifact.count() == 1
    second = ln.Artifact(_adata(seed=2), key="lab/a.h5ad").save()
    first.refresh_from_db()
    assert second.revises_id == first.pk and second.uid[:16] == first.uid[:16]
    assert (first.is_latest, second.is_latest) == (False, True)
    assert ln.Artifact.get(key="lab/a.h5ad") == second  # the latest of the key
    assert Path(first.path).exists() and Path(second.path).exists()  # no overwrite
    assert [a.pk for a in second.versions] == [first.pk, second.pk]


def test_from_anndata_and_from_df(fresh: ln.DB) -> None:
    artifact = ln.Artifact.from_anndata(_adata(n_obs=7), key="lab/small.h5ad").save()
    assert (artifact.otype, artifact.n_observations) == ("AnnData", 7)
    frame = pd.DataFrame({"donor": ["d1", "d2", "d3"], "age": [30, 40, 50]})
    table = ln.Artifact.from_df(frame, key="lab/donors.parquet", description="donors").save()
    assert (table.suffix, table.otype, table.n_observations) == (".parquet", "DataFrame", 3)
    pd.testing.assert_frame_equal(table.load(), frame)
    no_key = ln.Artifact.from_df(frame.head(2)).save()  # no key: named by its uid
    assert no_key.key == no_key.storage_key == f".cellregistry/{no_key.uid}.parquet"
    staging = Path(os.environ["CELLREGISTRY_HOME"]) / "cache" / ".staging"
    assert not list(staging.iterdir())  # the written files are gone once uploaded


def test_a_file_inside_a_registered_storage_is_registered_in_place(
    fresh: ln.DB, tmp_path: Path
) -> None:
    root = tmp_path / "shared-drive"
    (root / "runs").mkdir(parents=True)
    table = root / "runs" / "counts.csv"
    table.write_text("gene,count\nCD3E,12\n")
    storage = ln.Storage(root=str(root))
    storage.save()
    artifact = ln.Artifact(table).save()
    assert (artifact.storage, artifact.key, artifact.storage_key) == (
        storage,
        "runs/counts.csv",
        "",
    )
    assert Path(artifact.path) == table
    with pytest.raises(InvalidArtifactDataError) as error:
        ln.Artifact(_write(root / "runs" / "b.csv"), key="elsewhere/b.csv").save()
    assert f"inside storage {storage.root!r} at key 'runs/b.csv'" in str(error.value)
    assert "drop key='elsewhere/b.csv' or pass key='runs/b.csv'" in str(error.value)


def _write(path: Path) -> Path:
    path.write_text("a,b\n1,2\n")
    return path


def test_delete_removes_owned_bytes_only(fresh: ln.DB, tmp_path: Path) -> None:
    owned = ln.Artifact(_adata(seed=3), key="lab/owned.h5ad").save()
    owned_path = Path(owned.path)
    owned.delete(storage=True)
    assert not owned_path.exists() and not ln.Artifact.filter(key="lab/owned.h5ad").exists()
    kept = ln.Artifact(_adata(seed=4), key="lab/kept.h5ad").save()
    kept.delete()  # the record only
    assert Path(kept.path).exists()
    root = tmp_path / "referenced"
    root.mkdir()
    ln.Storage(root=str(root)).save()
    referenced = ln.Artifact(_write(root / "r.csv")).save()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        referenced.delete(storage=True)
    assert "registered by reference, not written by this instance" in str(caught[0].message)
    assert (root / "r.csv").exists()
    # bytes another instance wrote into its own storage (as a transferred record has them)
    other = ln.Storage(root=str(tmp_path / "other-instance"))
    other.save()
    theirs = Path(other.root) / ".cellregistry" / "t.csv"
    theirs.parent.mkdir(parents=True)
    _write(theirs)
    transferred = ln.Artifact(key="t.csv", storage=other, storage_key=".cellregistry/t.csv")
    transferred.save()
    with pytest.warns(UserWarning, match="into its default storage; they are left in place"):
        transferred.delete(storage=True)
    assert theirs.exists() and not ln.Artifact.filter(key="t.csv").exists()


def test_bad_inputs_are_refused_before_anything_is_written(fresh: ln.DB, tmp_path: Path) -> None:
    cases = [
        (lambda: ln.Artifact(tmp_path / "missing.h5ad"), "no such file"),
        (lambda: ln.Artifact(tmp_path), "it is a folder"),
        (lambda: ln.Artifact("s3://bucket/x.h5ad"), "an S3 object is registered by reference"),
        (lambda: ln.Artifact(_adata(), key="lab/x.csv"), "does not end with the data's suffix"),
        (lambda: ln.Artifact.from_df(_adata()), "from_df takes a pandas DataFrame"),
        (lambda: ln.Artifact.from_anndata(pd.DataFrame()), "from_anndata takes an AnnData"),
    ]
    for make, message in cases:
        with pytest.raises(InvalidArtifactDataError, match=message):
            make()
    with pytest.raises(InvalidKeyError, match="Invalid artifact key '../x.h5ad'"):
        ln.Artifact(_adata(), key="../x.h5ad").save()
    assert ln.Artifact.count() == 0
    assert not (Path(fresh.config.storage) / ".cellregistry").exists()


# --- point 2 on S3 ---------------------------------------------------------------------------
@pytest.fixture
def s3_lab(
    request: pytest.FixtureRequest, tmp_path: Path, isolated_instances: None, s3_bucket: str
) -> ln.DB:
    """The default instance during the test, its default storage ``s3://<bucket>/lab``."""
    return ln.init(
        "s3lab", db=_database_url(request, tmp_path, "s3lab"), storage=f"s3://{s3_bucket}/lab"
    )


def _big_file(path: Path, mib: int) -> Path:
    rng = np.random.default_rng(mib)
    with path.open("wb") as out:
        for _ in range(mib):
            out.write(rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    return path


def _objects(bucket: str, prefix: str) -> list[str]:
    listing = s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for obj in listing.get("Contents", [])]


def test_a_large_file_is_uploaded_in_parts_and_its_hash_is_the_etag(
    s3_lab: ln.DB, s3_bucket: str, tmp_path: Path
) -> None:
    source = _big_file(tmp_path / "big.bin", mib=20)
    artifact = ln.Artifact(source, key="raw/big.bin").save()
    object_key = f"lab/.cellregistry/{artifact.uid}.bin"
    assert _objects(s3_bucket, "lab/") == [object_key]
    head = s3_client().head_object(Bucket=s3_bucket, Key=object_key)
    assert head["ETag"].strip('"') == artifact.hash
    assert (artifact.hash_type, artifact.hash.endswith("-3")) == ("md5-n", True)
    assert artifact.size == 20 * (1 << 20) > UPLOAD_PART_SIZE
    cached = artifact.cache(verify=True)  # the recorded hash verifies the download
    assert _md5(cached) == _md5(source)
    artifact.delete(storage=True)
    assert _objects(s3_bucket, "lab/") == []


def test_an_anndata_is_uploaded_and_loads_back(s3_lab: ln.DB, s3_bucket: str) -> None:
    adata = _adata(n_obs=25, seed=5)
    artifact = ln.Artifact(adata, key="lab/pbmc.h5ad").save()
    assert artifact.storage.root == f"s3://{s3_bucket}/lab"
    assert artifact.path == f"s3://{s3_bucket}/lab/.cellregistry/{artifact.uid}.h5ad"
    loaded = ln.Artifact.get(key="lab/pbmc.h5ad").load()
    np.testing.assert_array_equal(loaded.X, adata.X)
    with artifact.open() as backed:
        assert backed.n_obs == 25


def test_a_failed_upload_saves_no_record(
    request: pytest.FixtureRequest, tmp_path: Path, isolated_instances: None, s3_server: str
) -> None:
    url = _database_url(request, tmp_path, "nobucket")
    ln.init("nobucket", db=url, storage="s3://cr-no-such-bucket/lab")
    with pytest.raises(ObjectNotFoundError) as error:
        ln.Artifact(_adata(), key="lab/x.h5ad").save()
    assert "Cannot write" in str(error.value)
    assert "bucket 'cr-no-such-bucket' does not exist" in str(error.value)
    assert ln.Artifact.count() == 0


def test_a_killed_upload_leaves_no_record_and_no_object(
    s3_lab: ln.DB, s3_bucket: str, tmp_path: Path
) -> None:
    """SIGKILL while the parts go up: the key shows no object (S3 makes a multipart object
    visible only when completed) and no record was saved; a second save completes."""
    source = _big_file(tmp_path / "huge.bin", mib=96)
    script = textwrap.dedent(
        f"""
        import registry as ln
        ln.connect("s3lab")
        ln.Artifact({str(source)!r}, key="raw/huge.bin").save()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env)
    client = s3_client()
    try:
        deadline = time.monotonic() + 120
        while not client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads"):
            assert process.poll() is None, "the upload ended before it could be killed"
            assert time.monotonic() < deadline, "no multipart upload started"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]  # parts, no object
    assert _objects(s3_bucket, "lab/") == []
    assert not ln.Artifact.filter(key="raw/huge.bin").exists()
    artifact = ln.Artifact(source, key="raw/huge.bin").save()
    assert _objects(s3_bucket, "lab/") == [f"lab/.cellregistry/{artifact.uid}.bin"]
    assert artifact.hash.endswith("-12")
