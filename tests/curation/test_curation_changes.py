"""A rerun notices change (issue 9, point 12): a curated release that changed since (datasets
added, revised, removed) is curated again for the difference, and lands where a fresh curation of
the changed release lands; and ``curate_release`` from S3 reads the manifest, the listing, the obs
scan and the h5ad headers — never an h5ad body or the store's X."""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
import tiledbsoma
from django.core.management import call_command

import registry as ln
from curation.steps import curate_release
from demo.census.release import build_release
from registry.models import Run
from tests.curation.harness import assert_same, assert_version_chains, registry_snapshot
from tests.s3 import upload
from tests.s3_proxy import start_counting_proxy

OLD, NEW = "2024-07-01", "2025-01-30"


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("changes")
    build_release(str(dest), OLD, n_datasets=20, cells_per_dataset=100, workers=1)
    build_release(str(dest), NEW, previous=OLD, workers=1)
    return dest


def manifest(root: Path) -> dict[str, str]:
    """dataset_id -> dataset_version_id of a release folder."""
    with tiledbsoma.open(str(root / "soma")) as census:
        frame = census["census_info"]["datasets"].read().concat().to_pandas()
    return dict(zip(frame.dataset_id, frame.dataset_version_id, strict=True))


def curate(source: Path) -> dict:
    out = StringIO()
    call_command(
        "curate_release", source=f"{source}/", workers=1, quiet=True, json=True, stdout=out
    )
    return json.loads(out.getvalue())


def test_a_changed_release_is_curated_again_for_the_difference(
    releases: Path, curation_db: ln.DB, copies: Callable[[str], ln.DB], tmp_path: Path
) -> None:
    root = tmp_path / "bucket" / "cell-census" / OLD
    shutil.copytree(releases / "cell-census" / OLD, root)
    first = curate(root)
    assert first["artifacts"]["added"] == 20
    assert curate(root)["already_curated"]
    before, after = manifest(root), manifest(releases / "cell-census" / NEW)
    # the release changes under the same tag: the next release's content, published in place
    shutil.rmtree(root)
    shutil.copytree(releases / "cell-census" / NEW, root)
    second = curate(root)
    assert not second["already_curated"]
    assert second["changed_since"] == first["run"]
    kept = before.keys() & after.keys()
    revised = {d for d in kept if before[d] != after[d]}
    assert second["artifacts"] == {
        "added": len(after.keys() - before.keys()),
        "unchanged": len(kept - revised),
        "revised": len(revised),
        "removed": len(before.keys() - after.keys()),
    }
    assert all(second["artifacts"][k] for k in ("added", "revised", "removed"))
    runs = Run.filter(transform__key="curate_release").order_by("started_at")
    assert [r.status for r in runs] == ["completed", "completed"]
    assert runs[0].params["digest"] != runs[1].params["digest"]
    assert curate(root)["already_curated"]
    # the same registry as a fresh curation of the changed release; aside: the runs (two here)
    # and the vocabulary (the donor labels of removed datasets stay, unlinked, as labels do)
    fresh = copies("fresh")
    curate_release(f"{root}/", using=fresh.alias, workers=1)
    expected = registry_snapshot(fresh.alias)
    actual = registry_snapshot(curation_db.alias)
    for snapshot in (expected, actual):
        del snapshot["runs"], snapshot["ulabels"]
    assert_same(actual, expected)
    assert_version_chains(curation_db.alias)


def test_curation_from_s3_reads_no_h5ad_body(
    s3_bucket: str, curation_db: ln.DB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end from a moto bucket, every request counted by a proxy: per h5ad only a few
    ranged reads of its header; from the store only census_info and the obs."""
    build_release(str(tmp_path), OLD, n_datasets=6, cells_per_dataset=1500, workers=1)
    upload(s3_bucket, tmp_path / "cell-census", "cell-census")
    sizes = {
        f"cell-census/{OLD}/h5ads/{path.name}": path.stat().st_size
        for path in (tmp_path / "cell-census" / OLD / "h5ads").glob("*.h5ad")
    }
    proxy = start_counting_proxy(os.environ["AWS_ENDPOINT_URL"], tmp_path / "requests.jsonl")
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        summary = curate_release(f"s3://{s3_bucket}/cell-census/{OLD}/", workers=1)
    finally:
        proxy.stop()
    assert summary.added == 6 and not summary.problems
    exchanges = proxy.exchanges
    read: dict[str, int] = defaultdict(int)
    for exchange in exchanges:
        if exchange.method == "GET" and exchange.key:
            read[exchange.key] += exchange.response_bytes
    h5ads = proxy.reads_of(f"cell-census/{OLD}/h5ads/")
    assert {e.key for e in h5ads} == set(sizes)  # every header was checked ...
    assert all(e.range for e in h5ads), "an h5ad was read without a Range header"
    for key, size in sizes.items():  # ... by a few small reads, never the body
        assert read[key] <= min(64 * 1024, size // 10), (key, read[key], size)
    store = f"cell-census/{OLD}/soma/"
    store_reads = {key for key in read if key.startswith(store)}
    assert any("/census_info/datasets/" in key for key in store_reads)
    assert any("/obs/" in key for key in store_reads)
    assert not [key for key in store_reads if "/ms/" in key], "the store's X was read"
    assert set(read) <= set(sizes) | store_reads
    listings = [e for e in exchanges if e.method == "GET" and not e.key]
    assert listings and all("list-type=2" in e.query or "location" in e.query for e in listings)
