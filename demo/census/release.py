"""Build a demo Census release into a local folder or an S3 prefix.

``build_release`` plans the release (or evolves the previous one), generates each dataset on a
process pool, writes its ``.h5ad`` as the portal publishes it, streams its cells into the SOMA
store, writes ``demo_plan.json`` (what the next release evolves from), and finally adds the
release to the bucket's release directory (``cell-census/release.json``, as the Census has
it). A local release is built in a hidden folder and renamed into place when complete; an S3
release is built in a temporary folder and uploaded. Unchanged datasets of a ``--previous``
release are copied (same bytes), not rewritten.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curation.tags import check_tag
from demo.census.cells import gene_pool, generate_cells
from demo.census.directory import DirectoryContentionError, update_release_directory
from demo.census.h5ad import published_anndata, write_h5ad
from demo.census.plan import DatasetPlan, ReleasePlan, next_release, plan_release
from demo.census.soma import CensusPart, CensusWriter, census_part
from demo.census.vocabulary import vocabulary
from registry import storage_roots
from registry.census_releases import DIRECTORY_KEY
from registry.errors import RegistryError, UnknownStorageError
from registry.progress import StepProgress
from registry.s3_errors import describe_s3_error

PLAN_FILE = "demo_plan.json"
PORTAL = "https://cellxgene.cziscience.com"
DATASETS_HOST = "https://datasets.cellxgene.cziscience.com"

#: progress callback: (step, done, total)


class DemoReleaseError(RegistryError):
    """A demo release cannot be built (bad destination, missing previous release, ...)."""


@dataclass(frozen=True)
class ReleaseSummary:
    """What a build wrote."""

    root: str
    tag: str
    previous_tag: str | None
    n_datasets: int
    n_collections: int
    n_cells: int
    h5ad_bytes: int
    copied: int
    seconds: float


@dataclass(frozen=True)
class DatasetOutput:
    """A generated dataset: its part of the SOMA store and what was written."""

    part: CensusPart
    h5ad_bytes: int
    schema_version: str


def release_root(dest: str, tag: str) -> str:
    """``DEST/cell-census/<tag>`` (a path or an ``s3://`` URL)."""
    return f"{dest.rstrip('/')}/cell-census/{tag}"


def citation(dataset: DatasetPlan, doi: str) -> str:
    """The citation the portal adds to a published dataset."""
    return (
        f"Publication: https://doi.org/{doi} "
        f"Dataset Version: {DATASETS_HOST}/{dataset.dataset_version_id}.h5ad "
        f"curated and distributed by CZ CELLxGENE Discover in Collection: "
        f"{PORTAL}/collections/{dataset.collection_id}"
    )


def manifest_row(plan: ReleasePlan, dataset: DatasetPlan, n_cells: int) -> dict:
    """The ``census_info/datasets`` row of a dataset (without ``soma_joinid``)."""
    collection = plan.collection(dataset.collection_id)
    return {
        "citation": citation(dataset, collection.doi),
        "collection_id": collection.collection_id,
        "collection_name": collection.name,
        "collection_doi": collection.doi,
        "collection_doi_label": collection.doi_label,
        "dataset_id": dataset.dataset_id,
        "dataset_version_id": dataset.dataset_version_id,
        "dataset_title": dataset.title,
        "dataset_h5ad_path": dataset.h5ad_name,
        "dataset_total_cell_count": n_cells,
    }


def make_dataset(
    dataset: DatasetPlan,
    source: DatasetPlan | None,
    doi: str,
    h5ad_path: str | None,
) -> DatasetOutput:
    """Generate one dataset; write its h5ad to ``h5ad_path`` unless None (copied elsewhere).

    Runs in a worker process: everything it needs comes in its arguments.
    """
    cells = generate_cells(dataset, (lambda _id: source) if source else None)
    vocab = vocabulary(dataset.organism)
    adata = published_anndata(
        cells.obs,
        cells.counts,
        cells.genes,
        organism=vocab.organism,
        title=dataset.title,
        citation=citation(dataset, doi),
    )
    size = write_h5ad(adata, h5ad_path) if h5ad_path else 0
    general = {t.tissue.ontology_id: t.tissue_general for t in vocab.tissues}
    obs = adata.obs.copy()
    tissue_ids = obs["tissue_ontology_term_id"].astype(str)
    obs["tissue_general_ontology_term_id"] = tissue_ids.map(lambda t: general[t].ontology_id)
    obs["tissue_general"] = tissue_ids.map(lambda t: general[t].name)
    if "observation_joinid" not in obs:
        obs["observation_joinid"] = [f"{dataset.dataset_id[:8]}-{i}" for i in range(len(obs))]
    pool = gene_pool(dataset.organism)
    position = pd.Series(np.arange(len(pool)), index=pool["feature_id"])
    gene_index = position.loc[cells.genes["feature_id"]].to_numpy(dtype=np.int64)
    return DatasetOutput(
        part=census_part(dataset.dataset_id, obs, cells.counts, gene_index),
        h5ad_bytes=size,
        schema_version=str(adata.uns.get("schema_version", "")),
    )


class Destination:
    """Where a release goes: a local folder or an S3 prefix (``s3://bucket/prefix``)."""

    def __init__(self, dest: str) -> None:
        try:
            self.dest = storage_roots.normalise_root(dest)
            self.is_s3 = storage_roots.is_s3(self.dest)
            if self.is_s3:
                self.bucket, self.prefix = storage_roots.split_s3(self.dest)
        except UnknownStorageError as exc:
            raise DemoReleaseError(
                f"Unsupported destination {dest!r}: give a local folder or s3://bucket/prefix "
                f"({exc})."
            ) from None
        if self.is_s3:
            import boto3  # the S3 client honours AWS_ENDPOINT_URL and the usual credentials

            self.client = boto3.client("s3")

    def check_writable(self) -> None:
        """Fail before anything is built if no release can be written here: a local folder
        that cannot be created or written to, an S3 bucket that does not exist or refuses
        access (one HEAD request).

        Raises:
            DemoReleaseError: naming the destination, the reason and what to do.
        """
        if self.is_s3:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                self.client.head_bucket(Bucket=self.bucket)
            except (ClientError, BotoCoreError) as exc:
                endpoint = self.client.meta.endpoint_url
                raise DemoReleaseError(
                    f"Cannot write a release to {self.dest}: "
                    f"{describe_s3_error(exc, self.bucket, endpoint)}"
                ) from exc
            return
        folder = Path(self.dest)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise DemoReleaseError(
                f"Cannot write a release to {self.dest}: {exc.strerror or exc}{where}. Choose a "
                "folder that can be created and written to (--dest)."
            ) from exc

    def key(self, tag: str, relative: str = "") -> str:
        """The S3 key of ``relative`` inside release ``tag``."""
        parts = [self.prefix, "cell-census", tag, relative]
        return "/".join(p.strip("/") for p in parts if p)

    def exists(self, tag: str) -> bool:
        """Whether release ``tag`` is already there."""
        if not self.is_s3:
            return Path(release_root(self.dest, tag)).exists()
        listing = self.client.list_objects_v2(
            Bucket=self.bucket, Prefix=self.key(tag) + "/", MaxKeys=1
        )
        return listing.get("KeyCount", 0) > 0

    def read_plan(self, tag: str) -> ReleasePlan:
        """The plan stored with release ``tag``."""
        where = release_root(self.dest, tag) + "/" + PLAN_FILE
        try:
            if self.is_s3:
                body = self.client.get_object(Bucket=self.bucket, Key=self.key(tag, PLAN_FILE))
                text = body["Body"].read().decode()
            else:
                text = Path(where).read_text()
        except Exception as exc:  # noqa: BLE001 - any failure means: no usable previous release
            raise DemoReleaseError(
                f"No demo release {tag!r} at {self.dest} ({where} is unreadable: {exc}). "
                f"Build it first: manage.py build_demo_release --tag {tag} --dest {self.dest}"
            ) from exc
        return ReleasePlan.from_json(text)

    def read_text(self, relative: str) -> str | None:
        """The text of the file ``relative`` (to DEST), or None when there is none."""
        return self.read_versioned(relative)[0]

    def read_versioned(self, relative: str) -> tuple[str | None, str | None]:
        """The text of the file ``relative`` (None when there is none) and, on S3, the ETag of
        the object read (for :meth:`write_if_unchanged`)."""
        if not self.is_s3:
            path = Path(self.dest) / relative
            return (path.read_text() if path.is_file() else None), None
        key = "/".join(p for p in (self.prefix, relative) if p)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None, None
        return body["Body"].read().decode(), body["ETag"]

    def write_if_unchanged(self, relative: str, text: str, etag: str | None) -> bool:
        """On S3, write the file ``relative`` only if it is still the object of ``etag`` (None:
        only if there is none yet), an S3 conditional write; False when another writer changed
        it first. A local file is written as :meth:`write_text` does (callers lock it)."""
        if not self.is_s3:
            self.write_text(relative, text)
            return True
        from botocore.exceptions import ClientError

        key = "/".join(p for p in (self.prefix, relative) if p)
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=text.encode(), **condition)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # 412: changed since it was read; 409: a conditional write of the same key at once
            if status in (409, 412) or error.get("Code") in ("PreconditionFailed", "Conflict"):
                return False
            raise
        return True

    def write_text(self, relative: str, text: str) -> None:
        """Write the file ``relative`` (to DEST); a local file is replaced atomically."""
        if self.is_s3:
            key = "/".join(p for p in (self.prefix, relative) if p)
            self.client.put_object(Bucket=self.bucket, Key=key, Body=text.encode())
            return
        path = Path(self.dest) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(text)
        os.replace(partial, path)

    @property
    def region(self) -> str | None:
        """The S3 region of the destination's client (None for a local folder)."""
        return self.client.meta.region_name if self.is_s3 else None

    def remove(self, tag: str) -> None:
        """Delete release ``tag`` (for ``--overwrite``)."""
        if not self.is_s3:
            shutil.rmtree(release_root(self.dest, tag), ignore_errors=True)
            return
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key(tag) + "/"):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def copy_h5ad(self, previous_tag: str, name: str, staging: Path, tag: str) -> bool:
        """Copy an unchanged dataset's h5ad from the previous release; False if it is gone."""
        if self.is_s3:
            source_key = self.key(previous_tag, f"h5ads/{name}")
            try:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=self.key(tag, f"h5ads/{name}"),
                    CopySource={"Bucket": self.bucket, "Key": source_key},
                )
            except self.client.exceptions.ClientError:
                return False
            return True
        source = Path(release_root(self.dest, previous_tag)) / "h5ads" / name
        if not source.is_file():
            return False
        shutil.copyfile(source, staging / "h5ads" / name)
        return True

    @contextmanager
    def staging(self, tag: str) -> Iterator[Path]:
        """A folder to build release ``tag`` in, moved or uploaded into place on success."""
        if self.is_s3:
            with tempfile.TemporaryDirectory(prefix=f"demo-release-{tag}-") as folder:
                yield Path(folder)
                self.upload(Path(folder), tag)
            return
        final = Path(release_root(self.dest, tag))
        final.parent.mkdir(parents=True, exist_ok=True)
        building = final.parent / f".{tag}.building"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        try:
            yield building
            os.replace(building, final)
        finally:
            shutil.rmtree(building, ignore_errors=True)

    def upload(self, folder: Path, tag: str) -> None:
        """Upload every file under ``folder`` to the release's prefix (8 at a time)."""
        files = [p for p in folder.rglob("*") if p.is_file()]

        def put(path: Path) -> None:
            key = self.key(tag, path.relative_to(folder).as_posix())
            self.client.upload_file(str(path), self.bucket, key)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, files))


def _executor(workers: int) -> Executor:
    if workers <= 1:
        return ThreadPoolExecutor(max_workers=1)
    # spawn: workers start clean (no TileDB or database handles inherited from the parent)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def build_release(
    dest: str,
    tag: str,
    *,
    previous: str | None = None,
    n_datasets: int = 100,
    cells_per_dataset: int = 2000,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    lts: bool = True,
    progress: StepProgress | None = None,
) -> ReleaseSummary:
    """Build release ``tag`` at ``dest`` (local folder or ``s3://bucket/prefix``).

    Args:
        previous: evolve the release ``previous`` found at ``dest`` instead of planning anew
            (``n_datasets`` and ``cells_per_dataset`` then come from it).
        workers: processes generating datasets (default: CPU count).
        overwrite: replace an existing release ``tag``.
        lts: flag the release long-term stable in the release directory
            (``DEST/cell-census/release.json``, which every build updates).

    Raises:
        InvalidTagError: ``tag`` or ``previous`` is not a valid release tag.
        DemoReleaseError: the release exists (without ``overwrite``), the previous release is
            missing, the destination cannot be written (checked before anything is built), or
            its release directory is not valid JSON.
    """
    started = time.perf_counter()
    report = progress or (lambda step, done, total: None)
    check_tag(tag)
    if previous is not None:
        check_tag(previous, "previous release tag")
    target = Destination(dest)
    target.check_writable()
    if target.exists(tag):
        if not overwrite:
            raise DemoReleaseError(
                f"Release {tag!r} already exists at {release_root(dest, tag)}: "
                f"choose another tag or pass --overwrite."
            )
        target.remove(tag)
    if previous is not None:
        if previous == tag:
            raise DemoReleaseError(f"--previous must name another release than {tag!r}.")
        plan = next_release(target.read_plan(previous), tag, seed)
    else:
        if n_datasets < 1 or cells_per_dataset < 1:
            raise DemoReleaseError("--datasets and --cells-per-dataset must be at least 1.")
        plan = plan_release(tag, n_datasets, cells_per_dataset, seed)
    previous_versions: dict[str, str] = {}
    if previous is not None:
        previous_versions = {
            d.dataset_id: d.dataset_version_id for d in target.read_plan(previous).datasets
        }
    with target.staging(tag) as staging:
        written, copied = _write(plan, target, staging, previous_versions, workers, report)
        (staging / PLAN_FILE).write_text(plan.to_json())
    try:
        update_release_directory(target, tag, lts=lts)
    except DirectoryContentionError as exc:
        raise DemoReleaseError(f"Release {tag!r} was built, but {exc}") from exc
    except ValueError as exc:
        raise DemoReleaseError(
            f"Release {tag!r} was built, but the release directory {dest}/{DIRECTORY_KEY} is not "
            f"valid JSON ({exc}): fix or delete it and build again with --overwrite."
        ) from exc
    return ReleaseSummary(
        root=release_root(dest, tag),
        tag=tag,
        previous_tag=previous,
        n_datasets=len(plan.datasets),
        n_collections=len({d.collection_id for d in plan.datasets}),
        n_cells=sum(d.n_cells for d in plan.datasets),
        h5ad_bytes=written,
        copied=copied,
        seconds=time.perf_counter() - started,
    )


def _write(
    plan: ReleasePlan,
    target: Destination,
    staging: Path,
    previous_versions: dict[str, str],
    workers: int | None,
    report: StepProgress,
) -> tuple[int, int]:
    """Generate every dataset, write h5ads and the SOMA store; (h5ad bytes, copied files)."""
    (staging / "h5ads").mkdir()
    by_id = {d.dataset_id: d for d in plan.datasets}
    organisms: dict[str, tuple[str, int, pd.DataFrame]] = {}
    for dataset in plan.datasets:
        label = vocabulary(dataset.organism).organism.name
        _, cells, pool = organisms.get(dataset.organism, (label, 0, gene_pool(dataset.organism)))
        organisms[dataset.organism] = (label, cells + dataset.n_cells, pool)
    writer = CensusWriter(str(staging / "soma"), organisms, len(plan.datasets))
    written = copied = 0
    schema_version = ""
    total = len(plan.datasets)
    report("datasets", 0, total)
    workers = workers or os.cpu_count() or 1
    in_flight: deque[tuple[DatasetPlan, Future]] = deque()

    def consume() -> None:
        nonlocal written, schema_version
        dataset, future = in_flight.popleft()
        output = future.result()
        row = manifest_row(plan, dataset, output.part.n_cells)
        writer.add_dataset(row, dataset.organism, output.part)
        written += output.h5ad_bytes
        schema_version = schema_version or output.schema_version
        report("datasets", total - len(in_flight) - remaining, total)

    remaining = total
    with _executor(workers) as pool:
        for dataset in plan.datasets:
            unchanged = previous_versions.get(dataset.dataset_id) == dataset.dataset_version_id
            reused = unchanged and target.copy_h5ad(
                plan.previous_tag or "", dataset.h5ad_name, staging, plan.tag
            )
            copied += int(reused)
            path = None if reused else str(staging / "h5ads" / dataset.h5ad_name)
            source = by_id.get(dataset.duplicate_of) if dataset.duplicate_of else None
            doi = plan.collection(dataset.collection_id).doi
            in_flight.append((dataset, pool.submit(make_dataset, dataset, source, doi, path)))
            remaining -= 1
            # a bounded window: memory holds a few datasets, not the release
            while len(in_flight) > 4 * workers:
                consume()
        while in_flight:
            consume()
    report("SOMA store", 0, 1)
    writer.close(plan.tag, schema_version)
    report("SOMA store", 1, 1)
    return written, copied
