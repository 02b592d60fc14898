"""Integrity of what is registered (the h5ad header probe, artifact keys) and of the cache
(verification records, repair of changed copies).

S3 is moto's server on loopback (``tests/s3.py``); the demo h5ads are built by the demo Census
release builder.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import tiledbsoma

from demo.census.release import build_release
from registry.accessors import s3 as s3_backend
from registry.accessors.backends import backend_for
from registry.accessors.cache import cache_path, record_path
from registry.accessors.cache_records import MTIME_MARGIN_NS, read_record
from registry.accessors.h5ad_header import HDF5_SIGNATURE, probe_h5ad
from registry.errors import (
    CorruptFileError,
    HashMismatchError,
    InvalidKeyError,
    NotHDF5Error,
    ObjectNotFoundError,
    ObsCountMismatchError,
    RegistryError,
)
from registry.models import Artifact, Storage
from tests.registry import test_accessors
from tests.registry.test_accessors import (
    assert_same,
    make_adata,
    md5,
    put,
    register,
    upload_multipart,
)
from tests.s3 import s3_client

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024
REPAIRED = "replaced by a fresh verified download"


# the fixtures of the accessor tests: storages (local; S3 with a prefix), an h5ad written by
# anndata, a Census-like SOMA store
local_storage = test_accessors.local_storage
s3_storage = test_accessors.s3_storage
h5ad_file = test_accessors.h5ad_file
soma_store = test_accessors.soma_store


@pytest.fixture(scope="module")
def demo_h5ads(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The h5ad files of a small demo Census release (as the portal publishes them)."""
    dest = tmp_path_factory.mktemp("census-bucket")
    summary = build_release(str(dest), "2025-01-01", n_datasets=2, cells_per_dataset=300, workers=1)
    files = sorted(Path(summary.root, "h5ads").glob("*.h5ad"))
    assert len(files) == 2
    return files


def storage_for(where: str, request: pytest.FixtureRequest) -> Storage:
    return request.getfixturevalue(f"{where}_storage")


def flip_bytes(path: Path, offset: int, length: int = 16) -> None:
    """Damage ``path`` in place, keeping its size (each byte inverted)."""
    with path.open("r+b") as fh:
        fh.seek(offset)
        data = fh.read(length)
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in data))
    assert len(data) == length


# --- the h5ad header probe ----------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "s3"])
def test_probe_counts_cells_reading_little(
    where: str,
    request: pytest.FixtureRequest,
    demo_h5ads: list[Path],
    h5ad_file: tuple[Path, ad.AnnData],
) -> None:
    storage = storage_for(where, request)
    for path in [*demo_h5ads, h5ad_file[0]]:
        key = f"h5ads/{path.name}"
        put(storage, key, path)
        size = path.stat().st_size
        requests = s3_backend.request_count()
        header = probe_h5ad(storage, key, size=size)
        assert header.n_obs == ad.read_h5ad(path).n_obs
        assert header.size == size
        assert 0 < header.bytes_read <= 64 * 1024  # a few 8 KiB blocks of metadata
        assert header.bytes_read < size / 4
        assert 1 <= header.requests <= 10
        if where == "s3":  # every request the probe counted went over HTTP, and nothing else
            assert s3_backend.request_count() - requests == header.requests
    unsized = probe_h5ad(storage, f"h5ads/{demo_h5ads[0].name}")  # the size from a stat/HEAD
    assert unsized.size == demo_h5ads[0].stat().st_size
    assert 0 < unsized.fraction_read < 1


def test_probe_reads_only_metadata_of_a_large_file(s3_storage: Storage, tmp_path: Path) -> None:
    """The bytes read do not grow with the file: a 20 MB file costs what a small one does."""
    path = tmp_path / "large.h5ad"
    make_adata(n_obs=40_000, n_vars=600).write_h5ad(path)
    size = path.stat().st_size
    assert size > 15 * MIB
    put(s3_storage, "large.h5ad", path)
    header = probe_h5ad(s3_storage, "large.h5ad", size=size)
    assert (header.n_obs, header.size) == (40_000, size)
    assert header.fraction_read == header.bytes_read / size < 0.01
    assert header.bytes_read <= 64 * 1024


def test_probe_old_anndata_obs_as_a_record_array(local_storage: Storage) -> None:
    path = Path(local_storage.root) / "old.h5ad"
    with h5py.File(path, "w") as file:
        records = np.zeros(42, dtype=[("index", "S8"), ("n_genes", "i4")])
        file.create_dataset("obs", data=records)
    assert probe_h5ad(local_storage, "old.h5ad").n_obs == 42


@pytest.mark.parametrize("where", ["local", "s3"])
def test_probe_not_hdf5(where: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    storage = storage_for(where, request)
    path = tmp_path / "zipped.h5ad"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 2000)
    put(storage, "bad/zipped.h5ad", path)
    with pytest.raises(NotHDF5Error) as info:
        probe_h5ad(storage, "bad/zipped.h5ad")
    message = str(info.value)
    assert "'bad/zipped.h5ad'" in message and repr(storage.root) in message
    assert "is not an HDF5 file: it starts with b'PK\\x03\\x04\\x00" in message
    assert "(hex 50 4b 03 04 00 00 00 00)" in message
    assert repr(HDF5_SIGNATURE) in message
    assert "leave the dataset out" in message
    assert isinstance(info.value, CorruptFileError) and "\n" not in message


def test_probe_empty_file(local_storage: Storage) -> None:
    (Path(local_storage.root) / "empty.h5ad").write_bytes(b"")
    with pytest.raises(NotHDF5Error) as info:
        probe_h5ad(local_storage, "empty.h5ad")
    assert "'empty.h5ad'" in str(info.value) and "it is empty (0 bytes)" in str(info.value)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_probe_truncated_file(
    where: str,
    request: pytest.FixtureRequest,
    demo_h5ads: list[Path],
    tmp_path: Path,
) -> None:
    storage = storage_for(where, request)
    whole = demo_h5ads[0].read_bytes()
    for cut in (len(whole) // 2, 100):
        path = tmp_path / f"cut-{cut}.h5ad"
        path.write_bytes(whole[:cut])
        put(storage, f"cut-{cut}.h5ad", path)
        with pytest.raises(CorruptFileError) as info:
            probe_h5ad(storage, f"cut-{cut}.h5ad")
        message = str(info.value)
        assert f"'cut-{cut}.h5ad'" in message and repr(storage.root) in message
        assert "cannot be read as an .h5ad: the file is truncated or damaged" in message
        assert f"truncated file: eof = {cut}" in message  # HDF5's own finding
        assert "Restore the file" in message and "\n" not in message


def test_probe_hdf5_that_is_not_anndata(local_storage: Storage) -> None:
    with h5py.File(Path(local_storage.root) / "plain.h5", "w") as file:
        file.create_dataset("matrix", data=np.arange(10))
    with pytest.raises(CorruptFileError) as info:
        probe_h5ad(local_storage, "plain.h5")
    message = str(info.value)
    assert "'plain.h5'" in message
    assert "is an HDF5 file but not an AnnData file" in message
    assert "no 'obs' group with an '_index' attribute" in message


def test_probe_cell_count_mismatch(s3_storage: Storage, demo_h5ads: list[Path]) -> None:
    put(s3_storage, "d.h5ad", demo_h5ads[0])
    n_obs = ad.read_h5ad(demo_h5ads[0]).n_obs
    assert probe_h5ad(s3_storage, "d.h5ad", expected_n_obs=n_obs).n_obs == n_obs
    with pytest.raises(ObsCountMismatchError) as info:
        probe_h5ad(s3_storage, "d.h5ad", expected_n_obs=n_obs + 5)
    message = str(info.value)
    assert "'d.h5ad'" in message and repr(s3_storage.root) in message
    assert f"has {n_obs} cells in its obs index but the release manifest says {n_obs + 5}" in (
        message
    )
    with pytest.raises(ObsCountMismatchError, match="but the artifact's n_observations says 1:"):
        probe_h5ad(
            s3_storage, "d.h5ad", expected_n_obs=1, expected_from="the artifact's n_observations"
        )


def test_probe_missing_object_and_folder(s3_storage: Storage, local_storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError) as info:
        probe_h5ad(s3_storage, "nope.h5ad")
    assert "'nope.h5ad'" in str(info.value) and "HTTP 404" in str(info.value)
    (Path(local_storage.root) / "store").mkdir()
    with pytest.raises(CorruptFileError) as folder:
        probe_h5ad(local_storage, "store")
    assert "'store'" in str(folder.value) and "is a folder, not an .h5ad file" in str(folder.value)


# --- keys ---------------------------------------------------------------------------------


BAD_KEYS = [
    ("", "it is empty"),
    ("../outside.h5ad", "it has a '..' segment"),
    ("a/../../outside.h5ad", "it has a '..' segment"),
    ("/etc/passwd", "it is absolute (starts with '/')"),
    ("folder\\file.h5ad", "it contains a backslash"),
    ("file\x00.h5ad", "it contains a NUL byte"),
    ("a//b.h5ad", "it has an empty segment"),
    ("store/", "it has an empty segment"),
    ("a/./b.h5ad", "it has a '.' segment"),
]


@pytest.mark.parametrize(("key", "problem"), BAD_KEYS)
def test_bad_keys_are_refused_at_save(key: str, problem: str, local_storage: Storage) -> None:
    before = Artifact.objects.count()
    with pytest.raises(InvalidKeyError) as info:
        Artifact.objects.create(key=key, storage=local_storage, suffix=".h5ad")
    assert isinstance(info.value, RegistryError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith(f"Invalid artifact key {key!r} in storage {local_storage.root!r}")
    assert problem in message
    assert "a key is a relative path inside the storage" in message
    assert "\n" not in message
    assert Artifact.objects.count() == before  # nothing written


def test_bad_key_on_an_existing_record_is_not_saved(local_storage: Storage) -> None:
    artifact = Artifact.objects.create(key="good/file.h5ad", storage=local_storage)
    artifact.key = "../escape.h5ad"
    with pytest.raises(InvalidKeyError, match="'../escape.h5ad'"):
        artifact.save()
    assert Artifact.objects.get(pk=artifact.pk).key == "good/file.h5ad"
    by_id = Artifact(key="/abs.h5ad", storage_id=local_storage.pk)  # storage not loaded
    with pytest.raises(InvalidKeyError) as info:
        by_id.save()
    assert str(info.value).startswith("Invalid artifact key '/abs.h5ad': it is absolute")


@pytest.mark.parametrize("key", ["a.h5ad", "cell-census/2025-01-30/soma", "x..y/v1.2..h5ad", ".a"])
def test_good_keys_are_saved(key: str, local_storage: Storage) -> None:
    artifact = Artifact.objects.create(key=key, storage=local_storage)
    assert Artifact.objects.get(pk=artifact.pk).key == key


def test_bad_key_is_refused_by_the_accessors(s3_storage: Storage) -> None:
    """A bad key that reached the database some other way (an update, an older version)."""
    artifact = register(s3_storage, "fine.h5ad")
    Artifact.objects.filter(pk=artifact.pk).update(key="../../etc/passwd")
    artifact.refresh_from_db()
    for call in (artifact.cache, artifact.open, lambda: probe_h5ad(s3_storage, artifact.key)):
        with pytest.raises(InvalidKeyError, match=r"'\.\./\.\./etc/passwd' in storage 's3://"):
            call()


# --- cache: records, re-verification, repair ----------------------------------------------


@pytest.fixture
def cached_s3_h5ad(
    s3_storage: Storage, h5ad_file: tuple[Path, ad.AnnData]
) -> tuple[Artifact, Path]:
    """An h5ad on S3, registered with its ETag, and its cached copy."""
    path = put(s3_storage, "h5ads/dataset.h5ad", h5ad_file[0])
    info = backend_for(s3_storage).stat("h5ads/dataset.h5ad")
    artifact = register(
        s3_storage, "h5ads/dataset.h5ad", path, hash=info.hash, hash_type=info.hash_type
    )
    return artifact, artifact.cache()


def test_cached_copy_has_a_record(cached_s3_h5ad: tuple[Artifact, Path]) -> None:
    artifact, copy = cached_s3_h5ad
    data = json.loads(record_path(copy).read_text())
    assert data["uri"] == f"{artifact.storage.root}/h5ads/dataset.h5ad"
    assert data["is_dir"] is False
    [entry] = data["files"]
    info = copy.stat()
    assert entry["path"] == ""
    assert entry["size"] == info.st_size == artifact.size
    assert entry["mtime_ns"] == info.st_mtime_ns
    assert entry["hash"] == artifact.hash and entry["hash_type"] == "md5"
    assert hashlib.md5(copy.read_bytes()).hexdigest() == artifact.hash
    assert not list(record_path(copy).parent.glob("*.tmp"))  # written atomically


def test_unchanged_copy_is_returned_without_reading_it(
    cached_s3_h5ad: tuple[Artifact, Path],
) -> None:
    artifact, copy = cached_s3_h5ad
    record_stamp = record_path(copy).stat().st_mtime_ns
    requests = s3_backend.request_count()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert artifact.cache() == copy
    assert s3_backend.request_count() == requests
    assert record_path(copy).stat().st_mtime_ns == record_stamp  # not verified again


def test_same_size_corruption_is_repaired_before_load_returns(
    cached_s3_h5ad: tuple[Artifact, Path], h5ad_file: tuple[Path, ad.AnnData]
) -> None:
    artifact, copy = cached_s3_h5ad
    size = copy.stat().st_size
    flip_bytes(copy, size // 2, 64)  # in place: the size stays, the mtime moves
    assert copy.stat().st_size == size
    assert md5(copy) != artifact.hash
    with pytest.warns(UserWarning, match=REPAIRED) as caught:
        loaded = artifact.load()
    message = str(caught[0].message)
    assert "'h5ads/dataset.h5ad'" in message and str(copy) in message
    assert "does not match its hash" in message
    assert_same(loaded, h5ad_file[1])
    assert md5(copy) == artifact.hash
    assert read_record(record_path(copy)).files[0].mtime_ns == copy.stat().st_mtime_ns


def test_copy_with_a_new_mtime_is_rehashed_not_downloaded(
    cached_s3_h5ad: tuple[Artifact, Path],
) -> None:
    artifact, copy = cached_s3_h5ad
    os.utime(copy)  # touched: same bytes, new mtime
    requests = s3_backend.request_count()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert artifact.cache() == copy
    assert s3_backend.request_count() == requests  # the recorded hash sufficed
    record = read_record(record_path(copy))
    assert record.files[0].mtime_ns == copy.stat().st_mtime_ns
    # the verified copy's mtime is set to before its verification: a later write moves it
    assert copy.stat().st_mtime_ns <= time.time_ns() - MTIME_MARGIN_NS


def test_verify_catches_a_corruption_whose_mtime_was_restored(
    cached_s3_h5ad: tuple[Artifact, Path], h5ad_file: tuple[Path, ad.AnnData]
) -> None:
    artifact, copy = cached_s3_h5ad
    before = copy.stat()
    flip_bytes(copy, 1000, 64)
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert copy.stat().st_mtime_ns == before.st_mtime_ns
    assert artifact.cache() == copy  # size and mtime as recorded: not read
    assert md5(copy) != artifact.hash
    with pytest.warns(UserWarning, match=REPAIRED):
        assert artifact.cache(verify=True) == copy
    assert md5(copy) == artifact.hash
    assert_same(artifact.load(), h5ad_file[1])


def test_verify_of_a_sound_copy_only_hashes(cached_s3_h5ad: tuple[Artifact, Path]) -> None:
    artifact, copy = cached_s3_h5ad
    inode = copy.stat().st_ino
    requests = s3_backend.request_count()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert artifact.cache(verify=True) == copy
    assert s3_backend.request_count() == requests
    assert copy.stat().st_ino == inode  # not replaced


def test_copy_without_a_record_is_verified_once(cached_s3_h5ad: tuple[Artifact, Path]) -> None:
    """Copies made before records existed: the first cache() hashes them (here: a damaged one,
    whose mtime looks untouched), the next ones only stat."""
    artifact, copy = cached_s3_h5ad
    before = copy.stat()
    flip_bytes(copy, 2000, 64)
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    record_path(copy).unlink()
    with pytest.warns(UserWarning, match=REPAIRED):
        artifact.cache()
    assert md5(copy) == artifact.hash
    record_path(copy).unlink()  # a sound copy without a record: hashed, no download
    requests = s3_backend.request_count()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        artifact.cache()
    assert s3_backend.request_count() == requests
    assert read_record(record_path(copy)).files[0].hash == artifact.hash
    stamp = record_path(copy).stat().st_mtime_ns
    artifact.cache()
    assert record_path(copy).stat().st_mtime_ns == stamp  # verified once


def test_copy_without_record_or_artifact_hash_uses_the_etag(
    s3_storage: Storage, h5ad_file: tuple[Path, ad.AnnData]
) -> None:
    path = put(s3_storage, "x.h5ad", h5ad_file[0])
    artifact = register(s3_storage, "x.h5ad", path)  # size only, no hash
    copy = artifact.cache()
    etag = backend_for(s3_storage).stat("x.h5ad").hash
    assert read_record(record_path(copy)).files[0].hash == etag
    record_path(copy).unlink()
    flip_bytes(copy, 500)
    with pytest.warns(UserWarning, match=REPAIRED):
        artifact.cache()
    assert md5(copy) == md5(path) == etag


def test_failed_repair_leaves_no_damaged_copy(
    cached_s3_h5ad: tuple[Artifact, Path], tmp_path: Path
) -> None:
    """The object itself changed too: the repair's download fails its hash check, and neither
    the damaged copy nor its record remains."""
    artifact, copy = cached_s3_h5ad
    flip_bytes(copy, 3000)
    other = tmp_path / "other.h5ad"
    other.write_bytes(os.urandom(copy.stat().st_size))  # same size, other bytes
    put(artifact.storage, artifact.key, other)
    with pytest.warns(UserWarning, match=REPAIRED), pytest.raises(HashMismatchError) as info:
        artifact.cache()
    assert "does not match the artifact's hash" in str(info.value)
    assert not copy.exists()
    assert not record_path(copy).exists()


def test_unverifiable_hash_records_the_copy_md5(
    s3_storage: Storage, h5ad_file: tuple[Path, ad.AnnData]
) -> None:
    """A hash this version cannot check: the download is accepted on its size (with a warning)
    and the md5 of the accepted bytes is recorded, so a later change is still caught."""
    path = put(s3_storage, "y.h5ad", h5ad_file[0])
    artifact = register(s3_storage, "y.h5ad", path, hash="c0ffee", hash_type="sha256")
    with pytest.warns(UserWarning, match="only the size of the download was verified"):
        copy = artifact.cache()
    assert read_record(record_path(copy)).files[0].md5 == md5(path)
    flip_bytes(copy, 4000)
    with pytest.warns(UserWarning) as caught:
        artifact.cache()
    messages = [str(w.message) for w in caught]
    assert REPAIRED in messages[0] and "does not match its hash" in messages[0]
    assert "only the size of the download was verified" in messages[1]
    assert md5(copy) == md5(path)


def test_multipart_copy_is_verified_again_without_requests(
    s3_storage: Storage, tmp_path: Path
) -> None:
    path = tmp_path / "multi.bin"
    path.write_bytes(os.urandom(11 * MIB))
    etag = upload_multipart(s3_storage, "multi.bin", path)
    artifact = register(s3_storage, "multi.bin", path, hash=etag, hash_type="md5-n")
    copy = artifact.cache()
    assert read_record(record_path(copy)).files[0].part_size == 5 * MIB
    flip_bytes(copy, 6 * MIB)
    before = copy.stat()
    os.utime(copy, ns=(before.st_atime_ns, read_record(record_path(copy)).files[0].mtime_ns))
    requests = s3_backend.request_count()
    with pytest.warns(UserWarning, match=REPAIRED):
        artifact.cache(verify=True)
    assert md5(copy) == md5(path)
    assert s3_backend.request_count() - requests >= 1  # the repair downloaded
    requests = s3_backend.request_count()
    artifact.cache(verify=True)
    assert s3_backend.request_count() == requests  # hashing with the recorded part size


def test_local_storage_verify_hashes_the_file(
    local_storage: Storage, h5ad_file: tuple[Path, ad.AnnData]
) -> None:
    path = put(local_storage, "own.h5ad", h5ad_file[0])
    own = Path(local_storage.root) / "own.h5ad"
    artifact = register(local_storage, "own.h5ad", path, hash=md5(path), hash_type="md5")
    assert artifact.cache(verify=True) == own
    flip_bytes(own, 100)
    assert artifact.cache() == own  # without verify: the size is all that is checked
    with pytest.raises(HashMismatchError) as info:
        artifact.cache(verify=True)
    message = str(info.value)
    assert "'own.h5ad'" in message and repr(local_storage.root) in message
    assert f"expected md5 {md5(path)}, got {md5(own)}" in message
    assert "Restore it, or re-register the artifact" in message


# --- cache: SOMA stores -------------------------------------------------------------------


@pytest.fixture
def cached_store(s3_storage: Storage, soma_store: tuple[Path, ad.AnnData]) -> tuple[Artifact, Path]:
    put(s3_storage, "census/soma", soma_store[0])
    files = backend_for(s3_storage).list_files("census/soma")
    artifact = register(
        s3_storage, "census/soma", otype="tiledbsoma", size=sum(f.size for f in files)
    )
    return artifact, artifact.cache()


def _largest_file(folder: Path) -> Path:
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def test_store_copy_records_every_file(cached_store: tuple[Artifact, Path]) -> None:
    artifact, copy = cached_store
    record = read_record(record_path(copy))
    assert record.is_dir
    listing = {f.relpath: f for f in backend_for(artifact.storage).list_files(artifact.key)}
    assert {f.path for f in record.files} == set(listing)
    for entry in record.files:
        assert entry.size == listing[entry.path].size
        assert entry.hash == listing[entry.path].hash  # each file's own ETag, verified
        assert entry.mtime_ns == (copy / entry.path).stat().st_mtime_ns
    requests = s3_backend.request_count()
    assert artifact.cache() == copy
    assert s3_backend.request_count() == requests


def test_store_copy_with_a_damaged_file_is_repaired(
    cached_store: tuple[Artifact, Path], soma_store: tuple[Path, ad.AnnData]
) -> None:
    artifact, copy = cached_store
    damaged = _largest_file(copy)
    flip_bytes(damaged, damaged.stat().st_size // 2)
    with pytest.warns(UserWarning, match=REPAIRED) as caught:
        artifact.cache()
    relpath = damaged.relative_to(copy).as_posix()
    assert f"file {relpath!r} does not match its hash" in str(caught[0].message)
    assert md5(damaged) == md5(soma_store[0] / relpath)
    with tiledbsoma.open(str(copy)) as store:
        obs = store["census_data"]["homo_sapiens"].obs.read().concat()
    assert len(obs) == soma_store[1].n_obs


def test_store_copy_with_an_extra_or_missing_file_is_repaired(
    cached_store: tuple[Artifact, Path],
) -> None:
    artifact, copy = cached_store
    (copy / "stray.bin").write_bytes(b"x")
    with pytest.warns(UserWarning, match="does not hold the files the store has"):
        artifact.cache()
    assert not (copy / "stray.bin").exists()
    victim = _largest_file(copy)
    victim.unlink()
    with pytest.warns(UserWarning, match=REPAIRED):
        artifact.cache()
    assert victim.exists()


def test_store_verify_catches_a_restored_mtime(
    cached_store: tuple[Artifact, Path], soma_store: tuple[Path, ad.AnnData]
) -> None:
    artifact, copy = cached_store
    damaged = _largest_file(copy)
    original = md5(soma_store[0] / damaged.relative_to(copy))
    before = damaged.stat()
    flip_bytes(damaged, 10)
    os.utime(damaged, ns=(before.st_atime_ns, before.st_mtime_ns))
    artifact.cache()
    assert md5(damaged) != original  # size and mtime as recorded: not read without verify
    with pytest.warns(UserWarning, match=REPAIRED):
        artifact.cache(verify=True)
    assert md5(damaged) == original


def test_store_with_an_unsafe_file_name_is_not_cached(s3_storage: Storage) -> None:
    bucket = s3_storage.root.split("/")[2]
    client = s3_client()
    client.put_object(Bucket=bucket, Key="data/store/ok.bin", Body=b"fine")
    client.put_object(Bucket=bucket, Key="data/store/a//b.bin", Body=b"odd")
    artifact = register(s3_storage, "store", otype="tiledbsoma")
    with pytest.raises(InvalidKeyError) as info:
        artifact.cache()
    message = str(info.value)
    assert "'store'" in message and "the store holds a file named 'a//b.bin'" in message
    assert "it has an empty segment" in message and "nothing was cached" in message
    assert not cache_path(backend_for(s3_storage), "store").exists()
