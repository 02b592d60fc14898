"""Storage backends and the accessors ``cache()``, ``load()``, ``open()`` (local and S3).

S3 is moto's server on loopback (``tests/s3.py``): every request below is real HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tiledbsoma
import tiledbsoma.io
from boto3.s3.transfer import TransferConfig

from registry.accessors import s3 as s3_backend
from registry.accessors.backends import backend_for, tiledb_config
from registry.accessors.cache import cache_path, cache_root
from registry.accessors.h5ad import AnnDataAccessor
from registry.accessors.hashing import (
    HashCheck,
    check_file_hash,
    hash_file,
    normalise_hash,
    part_size_candidates,
)
from registry.accessors.remote_file import RemoteFile, coalesce
from registry.accessors.storages import storage_for_root
from registry.errors import (
    CorruptFileError,
    HashMismatchError,
    ObjectNotFoundError,
    SizeMismatchError,
    StorageAccessDeniedError,
    StorageNotFoundError,
    UnknownStorageError,
    UnsupportedAccessError,
)
from registry.models import Artifact, Storage
from tests.s3 import (
    enforce_auth,
    make_public,
    s3_client,
    start_moto_server,
    upload,
)

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024
CELL_TYPES = ["B cell", "T cell", "dendritic cell", "neutrophil", "monocyte"]
TISSUES = ["kidney", "brain", "lung"]


def make_adata(n_obs: int = 600, n_vars: int = 40, seed: int = 0) -> ad.AnnData:
    """A small CELLxGENE-like AnnData: categorical obs, CSR float32 integer counts."""
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(rng.choice(CELL_TYPES, n_obs)),
            "tissue": pd.Categorical(rng.choice(TISSUES, n_obs)),
            "assay": pd.Categorical(rng.choice(["10x 3' v3", "Smart-seq2"], n_obs)),
            "suspension_type": pd.Categorical(rng.choice(["cell", "nucleus"], n_obs)),
            "n_genes": rng.integers(100, 5000, n_obs),
        },
        index=[f"cell_{i}" for i in range(n_obs)],
    )
    var = pd.DataFrame(
        {"feature_name": [f"GENE{i}" for i in range(n_vars)]},
        index=[f"ENSG{i:011d}" for i in range(n_vars)],
    )
    X = sp.random(n_obs, n_vars, density=0.1, format="csr", dtype=np.float32, random_state=seed)
    X.data[:] = rng.integers(1, 50, X.nnz)
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.obsm["X_umap"] = rng.normal(size=(n_obs, 2)).astype(np.float32)
    adata.layers["counts"] = X.copy()
    adata.uns["title"] = "test dataset"
    return adata


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def register(storage: Storage, key: str, path: Path | None = None, **fields: object) -> Artifact:
    """An artifact record for ``storage/key`` (size from ``path`` when given)."""
    suffix = Path(key).suffix
    otype = {".h5ad": "AnnData", ".parquet": "DataFrame", ".csv": "DataFrame"}.get(suffix, "")
    defaults: dict[str, object] = {"suffix": suffix, "otype": otype}
    if path is not None and path.is_file():
        defaults["size"] = path.stat().st_size
    return Artifact.objects.create(key=key, storage=storage, **{**defaults, **fields})


def assert_same(actual: ad.AnnData, expected: ad.AnnData) -> None:
    """Same cells, annotations and matrices (sparse compared dense)."""
    pd.testing.assert_frame_equal(actual.obs, expected.obs)
    pd.testing.assert_frame_equal(actual.var, expected.var)
    np.testing.assert_array_equal(actual.X.toarray(), expected.X.toarray())
    np.testing.assert_array_equal(actual.obsm["X_umap"], expected.obsm["X_umap"])
    np.testing.assert_array_equal(
        actual.layers["counts"].toarray(), expected.layers["counts"].toarray()
    )
    for key in expected.obsp:
        np.testing.assert_array_equal(actual.obsp[key].toarray(), expected.obsp[key].toarray())


@pytest.fixture
def local_storage(tmp_path: Path) -> Storage:
    root = tmp_path / "local-storage"
    root.mkdir()
    return Storage.objects.create(root=str(root))


@pytest.fixture
def s3_storage(s3_bucket: str) -> Storage:
    """An S3 storage with a prefix (keys are stored under ``data/``)."""
    return Storage.objects.create(root=f"s3://{s3_bucket}/data")


@pytest.fixture(scope="module")
def h5ad_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ad.AnnData]:
    path = tmp_path_factory.mktemp("h5ad") / "dataset.h5ad"
    adata = make_adata()
    adata.obsp["connectivities"] = sp.random(600, 600, density=0.02, format="csr", random_state=0)
    adata.write_h5ad(path)
    return path, adata


def put(storage: Storage, key: str, path: Path, **extra: object) -> Path:
    """Place ``path`` at ``storage/key``: copy into a local root, or upload to S3."""
    if storage.root.startswith("s3://"):
        bucket, _, prefix = storage.root[len("s3://") :].partition("/")
        upload(bucket, path, f"{prefix}/{key}" if prefix else key, **extra)
    else:
        target = Path(storage.root) / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return path


def upload_multipart(storage: Storage, key: str, path: Path, part_size: int = 5 * MIB) -> str:
    """Upload ``path`` to ``storage/key`` in parts of ``part_size``; the object's multipart
    ETag (``<hex>-<N>``)."""
    bucket, _, prefix = storage.root[len("s3://") :].partition("/")
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size)
    s3_client().upload_file(str(path), bucket, f"{prefix}/{key}" if prefix else key, Config=config)
    return backend_for(storage).stat(key).hash


# --- backends -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "fragment"),
    [
        ("gs://bucket/prefix", "gs:// scheme is not supported"),
        ("ftp://example.org/data", "ftp:// scheme is not supported"),
    ],
)
def test_unsupported_scheme_is_refused_at_save(root: str, fragment: str) -> None:
    with pytest.raises(UnknownStorageError) as info:
        Storage.objects.create(root=root)
    assert repr(root) in str(info.value)
    assert fragment in str(info.value)
    assert "s3://bucket[/prefix]" in str(info.value)  # what is supported
    assert not Storage.objects.filter(root=root).exists()


def test_relative_root_is_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    storage = Storage.objects.create(root="./data/")
    assert storage.root == str(tmp_path / "data")
    assert Storage.objects.get(pk=storage.pk).root == str(tmp_path / "data")


@pytest.mark.parametrize(
    ("root", "fragment"),
    [
        ("gs://bucket/prefix", "gs:// scheme is not supported"),
        ("ftp://example.org/data", "ftp:// scheme is not supported"),
        ("relative/folder", "must be an absolute path"),
        ("/nonexistent/cellregistry/storage", "no such folder"),
    ],
)
def test_unknown_storage_root(root: str, fragment: str, tmp_path: Path) -> None:
    """Roots that got into the database some other way (an older version, raw SQL) are refused
    by every accessor, with what is supported."""
    storage = Storage.objects.create(root=str(tmp_path))
    Storage.objects.filter(pk=storage.pk).update(root=root)
    storage.refresh_from_db()
    artifact = register(storage, "x.h5ad")
    for call in (artifact.cache, artifact.load, artifact.open):
        with pytest.raises(UnknownStorageError) as info:
            call()
        assert repr(root) in str(info.value)
        assert fragment in str(info.value)
        assert "s3://bucket[/prefix]" in str(info.value)  # what is supported


def test_storage_for_root(local_storage: Storage) -> None:
    assert storage_for_root(local_storage.root + "/") == local_storage
    with pytest.raises(StorageNotFoundError) as info:
        storage_for_root("s3://no-such-bucket/x")
    message = str(info.value)
    assert "'s3://no-such-bucket/x'" in message
    assert repr(local_storage.root) in message or "(first 20)" in message
    assert "Storage.objects.create" in message


def test_stat_local_and_s3(local_storage: Storage, s3_storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(1000))
    put(local_storage, "blob.bin", path)
    put(s3_storage, "blob.bin", path)
    local = backend_for(local_storage).stat("blob.bin")
    assert (local.size, local.hash, local.is_dir) == (1000, "", False)  # md5 only when asked
    hashed = backend_for(local_storage).stat("blob.bin", with_hash=True)
    assert (hashed.hash, hashed.hash_type) == (md5(path), "md5")
    remote = backend_for(s3_storage).stat("blob.bin")
    assert (remote.size, remote.hash, remote.hash_type) == (1000, md5(path), "md5")
    assert backend_for(s3_storage).read_range("blob.bin", 10, 20) == path.read_bytes()[10:30]


def test_stat_multipart_etag(s3_bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "multi.bin"
    path.write_bytes(os.urandom(12 * MIB))
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3_client().upload_file(str(path), s3_bucket, "multi.bin", Config=config)
    storage = Storage.objects.create(root=f"s3://{s3_bucket}")
    info = backend_for(storage).stat("multi.bin")
    assert info.hash_type == "md5-n" and info.hash.endswith("-3")
    assert backend_for(storage).multipart_part_size("multi.bin") == 5 * MIB
    # without the storage's hint, the usual part sizes that give 3 parts are tried
    assert part_size_candidates(12 * MIB, 3) == [5 * MIB]
    assert check_file_hash(path, info.hash, "md5-n", size=12 * MIB).ok is True
    assert hash_file(path, md5=False, part_sizes=[5 * MIB])[1][5 * MIB] == info.hash


def test_hash_forms(tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(b"cellregistry")
    digest = md5(path)
    lamin_style = base64.urlsafe_b64encode(bytes.fromhex(digest)).decode().rstrip("=")
    assert normalise_hash(f'"{digest.upper()}"') == digest
    assert normalise_hash(lamin_style) == digest
    assert check_file_hash(path, lamin_style, "md5", size=12).ok is True
    assert check_file_hash(path, "0" * 32, "md5", size=12) == HashCheck(False, digest)
    assert check_file_hash(path, digest, "sha1-fl", size=12).ok is None  # not checkable
    assert check_file_hash(path, "0" * 32 + "-7", "md5-n", size=12).ok is None  # no part size


def test_tiledb_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    signed = Storage(root="s3://bucket/p", endpoint_url="http://127.0.0.1:9000", region="eu-west-1")
    assert tiledb_config(signed) == {
        "vfs.s3.region": "eu-west-1",
        "vfs.s3.no_sign_request": "false",
        "vfs.s3.endpoint_override": "127.0.0.1:9000",
        "vfs.s3.scheme": "http",
        "vfs.s3.use_virtual_addressing": "false",
        "vfs.s3.aws_access_key_id": "key-id",
        "vfs.s3.aws_secret_access_key": "secret",
    }
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    public = Storage(root="s3://cellxgene-data-public", anonymous=True)
    assert tiledb_config(public) == {"vfs.s3.region": "us-east-1", "vfs.s3.no_sign_request": "true"}


def test_remote_file_blocks_and_ranges() -> None:
    data = os.urandom(1_000_000)
    remote = RemoteFile(lambda start, n: data[start : start + n], len(data), "mem", block_size=1000)
    remote.seek(1500)
    assert remote.read(10) == data[1500:1510]
    assert remote.bytes_transferred == 1000  # one block
    assert remote.read(10) == data[1510:1520]
    assert remote.bytes_transferred == 1000  # cached
    remote.seek(-5, os.SEEK_END)
    assert remote.read() == data[-5:]
    assert remote.read(3) == b""
    before = remote.bytes_transferred
    ranges = [(100_000, 10), (100_020, 10), (500_000, 5), (0, 3)]
    assert remote.read_ranges(ranges) == [data[o : o + n] for o, n in ranges]
    assert remote.bytes_transferred - before == 30 + 5 + 3  # holes < 8 KiB merged
    assert coalesce([(0, 10), (20_000, 10), (15, 5)]) == [(0, 20), (20_000, 10)]
    remote.close()


# --- cache --------------------------------------------------------------------------------


def test_cache_local_returns_the_file_itself(
    local_storage: Storage, h5ad_file: tuple[Path, ad.AnnData]
) -> None:
    put(local_storage, "a/dataset.h5ad", h5ad_file[0])
    artifact = register(local_storage, "a/dataset.h5ad", h5ad_file[0])
    assert artifact.cache() == Path(local_storage.root) / "a/dataset.h5ad"
    assert not cache_root().exists()  # nothing copied
    missing = register(local_storage, "a/missing.h5ad")
    with pytest.raises(ObjectNotFoundError) as info:
        missing.cache()
    assert "'a/missing.h5ad'" in str(info.value) and repr(local_storage.root) in str(info.value)


def test_cache_s3_downloads_once(s3_storage: Storage, h5ad_file: tuple[Path, ad.AnnData]) -> None:
    path = put(s3_storage, "a/dataset.h5ad", h5ad_file[0])
    info = backend_for(s3_storage).stat("a/dataset.h5ad")
    artifact = register(
        s3_storage, "a/dataset.h5ad", path, hash=info.hash, hash_type=info.hash_type
    )
    cached = artifact.cache()
    bucket = s3_storage.root.split("/")[2]
    assert cached == cache_root() / bucket / "data/a/dataset.h5ad"
    assert md5(cached) == md5(path)
    assert not list((cache_root() / ".partial").iterdir())
    mtime = cached.stat().st_mtime_ns
    requests = s3_backend.request_count()
    assert artifact.cache() == cached
    assert s3_backend.request_count() == requests  # no request: one local stat
    assert cached.stat().st_mtime_ns == mtime


def test_cache_verifies_multipart_etag(s3_storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "multi.bin"
    path.write_bytes(os.urandom(11 * MIB))
    etag = upload_multipart(s3_storage, "multi.bin", path)
    good = register(s3_storage, "multi.bin", path, hash=etag, hash_type="md5-n")
    assert md5(good.cache()) == md5(path)
    good.delete()
    bad_hash = "0" * 32 + "-3"
    bad = register(s3_storage, "multi.bin", path, hash=bad_hash, hash_type="md5-n")
    cache_path(backend_for(s3_storage), "multi.bin").unlink()
    with pytest.raises(HashMismatchError) as error:
        bad.cache()
    message = str(error.value)
    assert "'multi.bin'" in message and repr(s3_storage.root) in message
    assert f"expected md5-n {bad_hash}, got {etag}" in message


def test_cache_hash_mismatch_deletes_the_download(
    s3_storage: Storage, h5ad_file: tuple[Path, ad.AnnData]
) -> None:
    path = put(s3_storage, "dataset.h5ad", h5ad_file[0])
    artifact = register(s3_storage, "dataset.h5ad", path, hash="f" * 32, hash_type="md5")
    with pytest.raises(HashMismatchError) as info:
        artifact.cache()
    message = str(info.value)
    assert "'dataset.h5ad'" in message and repr(s3_storage.root) in message
    assert f"expected md5 {'f' * 32}, got {md5(path)}" in message
    assert "was deleted" in message
    assert not cache_path(backend_for(s3_storage), "dataset.h5ad").exists()
    assert not list((cache_root() / ".partial").iterdir())


def test_cache_size_mismatch(s3_storage: Storage, h5ad_file: tuple[Path, ad.AnnData]) -> None:
    path = put(s3_storage, "dataset.h5ad", h5ad_file[0])
    size = path.stat().st_size
    artifact = register(s3_storage, "dataset.h5ad", size=size + 1)
    with pytest.raises(SizeMismatchError) as info:
        artifact.cache()
    message = str(info.value)
    assert "'dataset.h5ad'" in message and repr(s3_storage.root) in message
    assert f"expected {size + 1} bytes (the artifact's size), got {size} bytes" in message
    assert not cache_path(backend_for(s3_storage), "dataset.h5ad").exists()


def test_cache_soma_prefix(s3_storage: Storage, soma_store: tuple[Path, ad.AnnData]) -> None:
    put(s3_storage, "census/soma", soma_store[0])
    artifact = register(s3_storage, "census/soma", otype="tiledbsoma")
    cached = artifact.cache()
    assert cached.is_dir()
    local_files = sorted(
        p.relative_to(soma_store[0]) for p in soma_store[0].rglob("*") if p.is_file()
    )
    assert sorted(p.relative_to(cached) for p in cached.rglob("*") if p.is_file()) == local_files
    with tiledbsoma.open(str(cached)) as store:
        obs = store["census_data"]["homo_sapiens"].obs.read().concat().to_pandas()
    assert len(obs) == soma_store[1].n_obs


CACHE_SCRIPT = r"""
import json, os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
import django
django.setup()
from registry.accessors import s3
from registry.accessors.backends import backend_for
from registry.accessors.cache import cache_path
from registry.models import Artifact, Storage
root, key, size, barrier = sys.argv[1:5]
artifact = Artifact(key=key, storage=Storage(root=root), size=int(size))
existed = cache_path(backend_for(artifact.storage), key).exists()
if barrier:
    open(f"{barrier}.ready.{os.getpid()}", "w").close()
while barrier and not os.path.exists(barrier):
    time.sleep(0.002)
path = artifact.cache()
print(json.dumps({"path": str(path), "requests": s3.request_count(), "existed": existed}))
"""


def _cache_process(storage: Storage, key: str, size: int, barrier: Path | str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CACHE_SCRIPT, storage.root, key, str(size), str(barrier)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )


def test_two_processes_download_once(s3_storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(24 * MIB))
    put(s3_storage, "big.bin", path)
    barrier = tmp_path / "go"
    processes = [_cache_process(s3_storage, "big.bin", 24 * MIB, barrier) for _ in range(2)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.ready.*"))) < 2:  # both wait at the barrier
        assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    barrier.touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0]["path"] == results[1]["path"]
    assert not any(r["existed"] for r in results)
    downloads = [r for r in results if r["requests"] > 0]
    assert len(downloads) == 1, results  # the other waited on the lock, then found the copy
    assert md5(Path(results[0]["path"])) == md5(path)


def test_killed_download_leaves_nothing(s3_storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "huge.bin"
    path.write_bytes(os.urandom(64 * MIB))
    put(s3_storage, "huge.bin", path)
    target = cache_path(backend_for(s3_storage), "huge.bin")
    partial = cache_root() / ".partial"
    process = _cache_process(s3_storage, "huge.bin", 64 * MIB, "")
    deadline = time.monotonic() + 60
    while not (partial.exists() and any(p.stat().st_size > 0 for p in partial.iterdir())):
        assert process.poll() is None, "the download ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not target.exists()
    assert list(partial.iterdir())  # the dead process's partial file
    artifact = register(s3_storage, "huge.bin", path)
    assert artifact.cache() == target
    assert md5(target) == md5(path)
    assert not list(partial.iterdir())  # cleaned by the next cache of the object


# --- errors from the storage --------------------------------------------------------------


def test_missing_object_404(s3_storage: Storage) -> None:
    artifact = register(s3_storage, "nope/missing.h5ad")
    for call in (artifact.cache, artifact.open, artifact.load):
        with pytest.raises(ObjectNotFoundError) as info:
            call()
        message = str(info.value)
        assert "'nope/missing.h5ad'" in message and repr(s3_storage.root) in message
        assert "HTTP 404" in message and "delete the artifact record" in message


def test_anonymous_access_to_private_object_403(
    s3_bucket: str, h5ad_file: tuple[Path, ad.AnnData]
) -> None:
    upload(s3_bucket, h5ad_file[0], "private.h5ad", ACL="private")
    storage = Storage.objects.create(root=f"s3://{s3_bucket}", anonymous=True)
    artifact = register(storage, "private.h5ad")
    for call in (artifact.cache, artifact.open):
        with pytest.raises(StorageAccessDeniedError) as info:
            call()
        message = str(info.value)
        assert "'private.h5ad'" in message and repr(storage.root) in message
        assert "HTTP 403" in message and "set anonymous=False" in message


@pytest.fixture(scope="module")
def auth_server(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second moto server that checks signatures: the test keys are unknown to its IAM."""
    server = start_moto_server()
    try:
        client = s3_client(server.url)
        client.create_bucket(Bucket="locked")
        client.put_object(Bucket="locked", Key="dataset.h5ad", Body=b"x" * 100)
        enforce_auth(server.url)
        yield server.url
    finally:
        server.stop()


def test_bad_credentials_403(auth_server: str) -> None:
    storage = Storage.objects.create(root="s3://locked", endpoint_url=auth_server)
    artifact = register(storage, "dataset.h5ad")
    with pytest.raises(StorageAccessDeniedError) as info:
        artifact.cache()
    message = str(info.value)
    assert "'dataset.h5ad'" in message and "'s3://locked'" in message
    assert "HTTP 403 InvalidAccessKeyId" in message or "HTTP 403 403" in message
    assert "Check the AWS credentials" in message


# --- load ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "s3"])
def test_load_h5ad(
    where: str, request: pytest.FixtureRequest, h5ad_file: tuple[Path, ad.AnnData]
) -> None:
    storage = request.getfixturevalue(f"{where}_storage")
    path = put(storage, "dataset.h5ad", h5ad_file[0])
    adata = register(storage, "dataset.h5ad", path).load()
    assert isinstance(adata, ad.AnnData)
    assert_same(adata, h5ad_file[1])


def test_load_tables(s3_storage: Storage, tmp_path: Path) -> None:
    frame = pd.DataFrame({"gene": ["A", "B", "C"], "count": [1, 2, 3]})
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    for name in ("t.parquet", "t.csv"):
        put(s3_storage, name, tmp_path / name)
        loaded = register(s3_storage, name, tmp_path / name).load()
        pd.testing.assert_frame_equal(loaded, frame)


def test_load_soma_says_use_open(local_storage: Storage) -> None:
    artifact = register(local_storage, "census/soma", otype="tiledbsoma")
    with pytest.raises(UnsupportedAccessError) as info:
        artifact.load()
    message = str(info.value)
    assert "'census/soma'" in message and repr(local_storage.root) in message
    assert "use artifact.open()" in message.lower()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_corrupt_h5ad(
    where: str,
    request: pytest.FixtureRequest,
    h5ad_file: tuple[Path, ad.AnnData],
    tmp_path: Path,
) -> None:
    storage = request.getfixturevalue(f"{where}_storage")
    truncated = tmp_path / "truncated.h5ad"
    truncated.write_bytes(h5ad_file[0].read_bytes()[: h5ad_file[0].stat().st_size // 2])
    put(storage, "bad.h5ad", truncated)
    artifact = register(storage, "bad.h5ad", truncated)
    with pytest.raises(CorruptFileError) as info:
        artifact.load()
    message = str(info.value)
    assert "'bad.h5ad'" in message and repr(storage.root) in message
    assert str(artifact.cache()) in message  # the cached path
    if where == "s3":
        assert "artifact.cache(verify=True)" in message
    with pytest.raises(CorruptFileError) as info:
        artifact.open()
    assert "'bad.h5ad'" in str(info.value) and "truncated or damaged" in str(info.value)


# --- open: h5ad ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "s3"])
def test_open_h5ad_slices(
    where: str, request: pytest.FixtureRequest, h5ad_file: tuple[Path, ad.AnnData]
) -> None:
    storage = request.getfixturevalue(f"{where}_storage")
    path, adata = h5ad_file
    put(storage, "dataset.h5ad", path)
    artifact = register(storage, "dataset.h5ad", path)

    adata_backed = artifact.open()
    assert isinstance(adata_backed, AnnDataAccessor)
    assert repr(adata_backed).startswith("AnnDataAccessor object with n_obs × n_vars = 600 × 40")
    assert adata_backed.shape == (600, 40) and adata_backed.n_obs == len(adata_backed) == 600
    assert isinstance(adata_backed.obs.cell_type.dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(adata_backed.obs, adata.obs)
    pd.testing.assert_frame_equal(adata_backed.var, adata.var)
    assert list(adata_backed.obs_names) == list(adata.obs_names)
    assert list(adata_backed.var_names) == list(adata.var_names)
    s = adata_backed[
        adata_backed.obs.cell_type.isin(["dendritic cell", "neutrophil"])
        & (adata_backed.obs.tissue == "kidney")
    ]
    mask = adata.obs.cell_type.isin(["dendritic cell", "neutrophil"]) & (
        adata.obs.tissue == "kidney"
    )
    pd.testing.assert_frame_equal(s.obs, adata.obs[mask])
    assert_same(s.to_memory(), adata[mask].copy())
    adata_backed.close()
    assert "closed" in repr(adata_backed)

    with artifact.open() as adata_backed:
        adata_slice = adata_backed[adata_backed.obs.cell_type == "B cell"].to_memory()
    assert_same(adata_slice, adata[adata.obs.cell_type == "B cell"].copy())
    assert adata_slice.uns["title"] == "test dataset"


def test_open_h5ad_index_kinds(s3_storage: Storage, h5ad_file: tuple[Path, ad.AnnData]) -> None:
    path, adata = h5ad_file
    put(s3_storage, "dataset.h5ad", path)
    with register(s3_storage, "dataset.h5ad", path).open() as backed:
        rows = np.array([598, 3, 17, 16, 15, 200])
        assert_same(backed[rows].to_memory(), adata[rows].copy())
        assert_same(backed[10:50:3].to_memory(), adata[10:50:3].copy())
        mask = np.zeros(600, dtype=bool)
        mask[[0, 1, 2, 599]] = True
        assert_same(backed[mask].to_memory(), adata[mask].copy())
        assert_same(backed[["cell_5", "cell_1"]].to_memory(), adata[["cell_5", "cell_1"]].copy())
        both = backed[100:200, [0, 5, 7]]
        assert both.shape == (100, 3)
        expected = adata[100:200, [0, 5, 7]].copy()
        subset = both.to_memory()
        np.testing.assert_array_equal(subset.X.toarray(), expected.X.toarray())
        pd.testing.assert_frame_equal(subset.var, expected.var)
        nested = backed[100:300][backed.obs.tissue.iloc[100:300] == "lung"]
        np.testing.assert_array_equal(
            nested.obs_names, adata.obs_names[100:300][adata.obs.tissue.iloc[100:300] == "lung"]
        )
        whole = backed.to_memory()
        assert_same(whole, adata)
        with pytest.raises(IndexError):
            backed[np.ones(5, dtype=bool)]


@pytest.mark.parametrize("layout", ["dense", "gzip", "csc"])
def test_open_h5ad_other_layouts(layout: str, s3_storage: Storage, tmp_path: Path) -> None:
    """Dense X, compressed chunks (read through h5py) and CSC X (read whole, then subset)."""
    adata = make_adata(n_obs=300, n_vars=20, seed=3)
    if layout == "dense":
        adata.X = adata.X.toarray()
    elif layout == "csc":
        adata.X = adata.X.tocsc()
    path = tmp_path / f"{layout}.h5ad"
    adata.write_h5ad(path, compression="gzip" if layout == "gzip" else None)
    put(s3_storage, path.name, path)
    rows = np.array([5, 6, 7, 100, 299, 0])
    with register(s3_storage, path.name, path).open() as backed:
        subset = backed[rows].to_memory()
    expected = adata[rows].copy()
    actual_x = subset.X if layout == "dense" else subset.X.toarray()
    expected_x = expected.X if layout == "dense" else expected.X.toarray()
    np.testing.assert_array_equal(actual_x, expected_x)
    pd.testing.assert_frame_equal(subset.obs, expected.obs)
    np.testing.assert_array_equal(
        subset.layers["counts"].toarray(), expected.layers["counts"].toarray()
    )


def test_open_s3_reads_a_fraction(s3_storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "medium.h5ad"
    adata = make_adata(n_obs=10_000, n_vars=1000, seed=1)  # X ~8 MB, obs ~0.7 MB
    del adata.layers["counts"]
    adata.write_h5ad(path)
    size = path.stat().st_size
    put(s3_storage, "medium.h5ad", path)
    with register(s3_storage, "medium.h5ad", path).open() as backed:
        obs = backed.obs
        obs_bytes = backed.bytes_transferred
        assert len(obs) == 10_000
        assert obs_bytes < 0.15 * size, (obs_bytes, size)
        rows = np.sort(np.random.default_rng(0).choice(10_000, 100, replace=False))
        subset = backed[rows].to_memory()
        subset_bytes = backed.bytes_transferred - obs_bytes
    np.testing.assert_array_equal(subset.X.toarray(), adata[rows].X.toarray())
    assert subset_bytes < 0.2 * size, (subset_bytes, size)


def test_open_other_formats_is_refused(local_storage: Storage, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a\n1\n")
    put(local_storage, "t.csv", tmp_path / "t.csv")
    with pytest.raises(UnsupportedAccessError) as info:
        register(local_storage, "t.csv").open()
    assert "'t.csv'" in str(info.value) and "load()" in str(info.value)


# --- open: tiledbsoma ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def soma_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ad.AnnData]:
    """A Census-like store: a Collection with census_data/homo_sapiens (RNA, X layer raw)."""
    root = tmp_path_factory.mktemp("soma") / "soma"
    adata = make_adata(n_obs=300, n_vars=30, seed=2)
    del adata.layers["counts"], adata.obsm["X_umap"]
    with tiledbsoma.Collection.create(str(root)) as store:
        census_data = store.add_new_collection("census_data")
        uri = tiledbsoma.io.from_anndata(
            f"{root}/census_data/homo_sapiens", adata, measurement_name="RNA", X_layer_name="raw"
        )
        with tiledbsoma.Experiment.open(uri) as experiment:
            census_data.set("homo_sapiens", experiment, use_relative_uri=True)
        census_data.close()
    return root, adata


VALUE_FILTER = 'tissue == "kidney" and cell_type in ["B cell", "neutrophil"]'


def _check_soma(artifact: Artifact, adata: ad.AnnData) -> None:
    expected = adata.obs.query(VALUE_FILTER)
    with artifact.open() as store:
        cell_metadata = (
            store["census_data"]["homo_sapiens"]
            .obs.read(value_filter=VALUE_FILTER)
            .concat()
            .to_pandas()
        )
    assert len(cell_metadata) == len(expected) > 0
    assert set(cell_metadata.cell_type) == set(expected.cell_type)
    with artifact.open() as store:
        experiment = store["census_data"]["homo_sapiens"]
        sliced = experiment.axis_query(
            "RNA", obs_query=tiledbsoma.AxisQuery(value_filter=VALUE_FILTER)
        ).to_anndata(X_name="raw", column_names={"obs": ["cell_type", "tissue"]})
    assert sliced.n_obs == len(expected) and sliced.n_vars == adata.n_vars
    assert list(sliced.obs.columns) == ["cell_type", "tissue"]
    assert sliced.X.sum() == adata[expected.index].X.sum()


def test_open_soma_local(local_storage: Storage, soma_store: tuple[Path, ad.AnnData]) -> None:
    root = Path(local_storage.root) / "census/soma"
    root.parent.mkdir(parents=True)
    subprocess.run(["cp", "-r", str(soma_store[0]), str(root)], check=True)
    _check_soma(register(local_storage, "census/soma", otype="tiledbsoma"), soma_store[1])


def test_open_soma_s3(s3_storage: Storage, soma_store: tuple[Path, ad.AnnData]) -> None:
    put(s3_storage, "census/soma", soma_store[0])
    _check_soma(register(s3_storage, "census/soma", otype="tiledbsoma"), soma_store[1])
    missing = register(s3_storage, "census/none", otype="tiledbsoma")
    with pytest.raises(ObjectNotFoundError) as info:
        missing.open()
    assert "'census/none'" in str(info.value) and repr(s3_storage.root) in str(info.value)


def test_open_soma_s3_anonymous(s3_bucket: str, soma_store: tuple[Path, ad.AnnData]) -> None:
    # Public objects: moto authorizes an anonymous HEAD as "s3:HeadObject" (no such IAM action,
    # AWS checks s3:GetObject), so a bucket policy alone does not open HEAD; the ACL does.
    upload(s3_bucket, soma_store[0], "soma", ACL="public-read")
    make_public(s3_bucket)
    storage = Storage.objects.create(root=f"s3://{s3_bucket}", anonymous=True)
    _check_soma(register(storage, "soma", otype="tiledbsoma"), soma_store[1])


# --- the package stays out of ``import registry`` -----------------------------------------


def test_models_do_not_import_heavy_libraries() -> None:
    code = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'registry.settings')\n"
        "import django; django.setup()\n"
        "import registry, registry.models\n"
        "heavy = {'boto3', 'h5py', 'anndata', 'tiledbsoma', 'registry.accessors'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
