"""The manifest of a Census release: which datasets it has, read from its SOMA store.

The dataset list is ``census_info/datasets`` of the release's store, never a glob: an ``.h5ad``
in ``h5ads/`` that the manifest does not name is reported, not registered, and a manifest row
without a file is a problem of that dataset. File sizes and hashes come from one listing of
``h5ads/`` (S3 listings carry each object's ETag): nothing is downloaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import tiledbsoma

from registry.accessors.backends import backend_for
from registry.accessors.base import Backend, FileEntry, StorageLike
from registry.errors import RegistryError

#: a release root: <storage root>/cell-census/<tag>
ROOT_PATTERN = re.compile(r"^(?P<storage>.+?)/cell-census/(?P<tag>[^/]+)/?$")


class ManifestError(RegistryError):
    """A release root that cannot be curated (bad path, no SOMA store, unreadable manifest)."""


@dataclass(frozen=True)
class ReleaseRoot:
    """Where a release is: its storage root (the bucket root) and its tag."""

    storage_root: str
    tag: str

    @classmethod
    def parse(cls, source: str) -> ReleaseRoot:
        """``s3://bucket/cell-census/2025-01-30/`` -> (``s3://bucket``, ``2025-01-30``).

        Raises:
            ManifestError: the path does not end in ``cell-census/<tag>``.
        """
        found = ROOT_PATTERN.match(source.rstrip("/"))
        if found is None:
            raise ManifestError(
                f"{source!r} is not a release root: expected ROOT/cell-census/<tag>/ (a local "
                "folder or s3://bucket[/prefix]/cell-census/<tag>/), as in the Census bucket."
            )
        return cls(storage_root=found["storage"], tag=found["tag"])

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


def read_manifest(root: ReleaseRoot, storage: StorageLike) -> Manifest:
    """Read the manifest of the release at ``root`` on ``storage``.

    Raises:
        ManifestError: no readable SOMA store or ``census_info/datasets``.
    """
    backend = backend_for(storage)
    uri = backend.uri(root.soma_key)
    context = tiledbsoma.SOMATileDBContext(tiledb_config=backend.tiledb_config())
    try:
        with tiledbsoma.open(uri, context=context) as census:
            datasets = census["census_info"]["datasets"].read().concat().to_pandas()
            organisms = census["census_info"]["organisms"].read().concat().to_pandas()
    except Exception as exc:  # noqa: BLE001 - TileDB raises many kinds; all mean "unreadable"
        raise ManifestError(
            f"Cannot read the manifest census_info/datasets of the SOMA store {uri}: {exc}. "
            "Is this a Census release root (with soma/ and h5ads/)?"
        ) from exc
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
    entries = backend.list_files(f"{root.prefix}/h5ads")
    return {e.relpath: e for e in entries if "/" not in e.relpath and e.relpath.endswith(".h5ad")}
