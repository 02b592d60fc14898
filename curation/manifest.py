"""The manifest of a Census release: which datasets it has, read from its SOMA store.

The dataset list is ``census_info/datasets`` of the release's store, never a glob: an ``.h5ad``
in ``h5ads/`` that the manifest does not name is reported, not registered, and a manifest row
without a file is a problem of that dataset. File sizes and hashes come from one listing of
``h5ads/`` (S3 listings carry each object's ETag): nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field

import tiledbsoma

from curation.tags import InvalidTagError, check_tag
from registry import storage_roots
from registry.accessors.backends import backend_for
from registry.accessors.base import Backend, FileEntry, StorageLike
from registry.errors import RegistryError, StorageError, UnknownStorageError

#: a release root: <storage root>/cell-census/<tag>
ROOT_PATTERN = re.compile(r"^(?P<storage>.+?)/cell-census/(?P<tag>[^/]+)/?$")
#: the columns of census_info/datasets that curation reads
MANIFEST_COLUMNS = (
    "soma_joinid",
    "dataset_id",
    "dataset_version_id",
    "dataset_title",
    "collection_id",
    "collection_name",
    "collection_doi",
    "collection_doi_label",
    "citation",
    "dataset_h5ad_path",
    "dataset_total_cell_count",
)


class ManifestError(RegistryError):
    """A release root that cannot be curated (bad path, no SOMA store, unreadable manifest)."""


@dataclass(frozen=True)
class ReleaseRoot:
    """Where a release is: its storage root (the bucket root) and its tag."""

    storage_root: str
    tag: str

    @classmethod
    def parse(cls, source: str | os.PathLike) -> ReleaseRoot:
        """``s3://bucket/cell-census/2025-01-30/`` -> (``s3://bucket``, ``2025-01-30``); a local
        source may be relative (resolved once, against the working directory).

        Raises:
            ManifestError: the path does not end in ``cell-census/<tag>``, the tag is malformed,
                or the scheme is not supported.
        """
        text = os.fspath(source)
        try:
            normalised = storage_roots.normalise_root(text) if text else text
        except UnknownStorageError as exc:
            raise ManifestError(f"{text!r} is not a release root: {exc}") from None
        found = ROOT_PATTERN.match(normalised)
        if found is None:
            raise ManifestError(
                f"{text!r} is not a release root: expected ROOT/cell-census/<tag>/ (a local "
                "folder or s3://bucket[/prefix]/cell-census/<tag>/), as in the Census bucket."
            )
        try:
            check_tag(found["tag"])
        except InvalidTagError as exc:
            raise ManifestError(f"{text!r} is not a release root: {exc}") from None
        return cls(storage_root=found["storage"], tag=found["tag"])

    @property
    def source(self) -> str:
        """The release root as one string: ``<storage root>/cell-census/<tag>``."""
        return f"{self.storage_root}/{self.prefix}"

    @property
    def prefix(self) -> str:
        """Keys of the release start with this (``cell-census/<tag>``)."""
        return f"cell-census/{self.tag}"

    @property
    def soma_key(self) -> str:
        """The key of the release's SOMA store."""
        return f"{self.prefix}/soma"

    def h5ad_key(self, name: str) -> str:
        """The key of a dataset file named in the manifest (``dataset_h5ad_path``)."""
        return f"{self.prefix}/h5ads/{name}"


@dataclass(frozen=True)
class DatasetRow:
    """One row of ``census_info/datasets``."""

    soma_joinid: int
    dataset_id: str
    dataset_version_id: str
    title: str
    collection_id: str
    collection_name: str
    collection_doi: str
    collection_doi_label: str
    citation: str
    h5ad_path: str
    n_cells: int


@dataclass
class Manifest:
    """A release's datasets, its h5ad files and what does not match."""

    root: ReleaseRoot
    datasets: list[DatasetRow]
    files: dict[str, FileEntry]  # file name in h5ads/ -> entry
    organisms: dict[str, str]  # experiment name -> organism term id
    soma_size: int
    unlisted: list[str] = field(default_factory=list)  # files no row names
    missing: list[str] = field(default_factory=list)  # dataset ids whose file is absent

    @property
    def total_cells(self) -> int:
        """Cells of the release (the SOMA artifact's n_observations)."""
        return sum(row.n_cells for row in self.datasets)

    @property
    def digest(self) -> str:
        """A digest of what the release holds: every manifest row and every h5ad file's name,
        size and hash. Equal digests: the same release; a dataset added, revised or removed (or
        a file replaced) changes it."""
        content = {
            "datasets": [dataclasses.astuple(row) for row in self.datasets],
            "files": sorted(dataclasses.astuple(entry) for entry in self.files.values()),
        }
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(root: ReleaseRoot, storage: StorageLike) -> Manifest:
    """Read the manifest of the release at ``root`` on ``storage``.

    Raises:
        ManifestError: no readable SOMA store or ``census_info/datasets``.
    """
    try:
        backend = backend_for(storage)
    except UnknownStorageError as exc:
        raise ManifestError(f"Cannot read the release at {root.source}: {exc}") from None
    uri = backend.uri(root.soma_key)
    try:
        store = backend.stat(root.soma_key)
    except StorageError as exc:
        raise ManifestError(
            f"Cannot read the release at {root.source}: no SOMA store at {uri} ({exc})"
        ) from None
    if not store.is_dir:
        raise ManifestError(
            f"Cannot read the release at {root.source}: {uri} is a file, not a SOMA store (a "
            "release root holds soma/ and h5ads/, as in the Census bucket)."
        )
    context = tiledbsoma.SOMATileDBContext(tiledb_config=backend.tiledb_config())
    try:
        with tiledbsoma.open(uri, context=context) as census:
            datasets = census["census_info"]["datasets"].read().concat().to_pandas()
            organisms = census["census_info"]["organisms"].read().concat().to_pandas()
    except Exception as exc:  # noqa: BLE001 - TileDB raises many kinds; all mean "unreadable"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ManifestError(
            f"Cannot read the manifest census_info/datasets of the SOMA store {uri}: "
            f"{first_line}. Is this a Census release root (with soma/ and h5ads/)?"
        ) from exc
    missing = [c for c in MANIFEST_COLUMNS if c not in datasets.columns]
    if missing:
        raise ManifestError(
            f"The manifest census_info/datasets of {uri} lacks the column(s) "
            f"{', '.join(missing)}: it is not a Census manifest."
        )
    rows = [
        DatasetRow(
            soma_joinid=int(r.soma_joinid),
            dataset_id=str(r.dataset_id),
            dataset_version_id=str(r.dataset_version_id),
            title=str(r.dataset_title),
            collection_id=str(r.collection_id),
            collection_name=str(r.collection_name),
            collection_doi=str(r.collection_doi),
            collection_doi_label=str(r.collection_doi_label),
            citation=str(r.citation),
            h5ad_path=str(r.dataset_h5ad_path),
            n_cells=int(r.dataset_total_cell_count),
        )
        for r in datasets.sort_values("soma_joinid").itertuples()
    ]
    files = _h5ad_files(backend, root)
    if rows and not files:
        raise ManifestError(
            f"The release at {root.source} has no .h5ad files in "
            f"{backend.uri(root.prefix)}/h5ads/ but its manifest names {len(rows)} datasets: "
            "is the release complete?"
        )
    named = {row.h5ad_path for row in rows}
    soma_files = backend.list_files(root.soma_key)
    return Manifest(
        root=root,
        datasets=rows,
        files=files,
        organisms=dict(zip(organisms.organism, organisms.organism_ontology_term_id, strict=True)),
        soma_size=sum(f.size for f in soma_files),
        unlisted=sorted(name for name in files if name not in named),
        missing=[row.dataset_id for row in rows if row.h5ad_path not in files],
    )


def _h5ad_files(backend: Backend, root: ReleaseRoot) -> dict[str, FileEntry]:
    """The ``.h5ad`` files directly in ``h5ads/`` (one listing; sizes and S3 ETags)."""
    try:
        entries = backend.list_files(f"{root.prefix}/h5ads")
    except StorageError as exc:
        raise ManifestError(
            f"Cannot list the h5ads of the release at {root.source}: {exc}"
        ) from None
    return {e.relpath: e for e in entries if "/" not in e.relpath and e.relpath.endswith(".h5ad")}
