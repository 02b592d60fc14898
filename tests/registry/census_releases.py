"""The one small demo Census bucket the ``ln.census`` tests share (built once per session), and
a helper that registers its releases as curation does.

Two releases, tagged as the Census LTS release the Census guide names (``2023-07-25``) and a
later weekly (not LTS) one, so ``stable`` and ``latest`` differ: 14 datasets of ~40 cells (the
guide's kidney dataset keeps its 500), built in about 5 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.census.release import build_release
from registry.census_releases import SOMA_REFERENCE, release_key
from registry.models import Artifact, Storage
from registry.models.base import save_version

STABLE_TAG, LATEST_TAG = "2023-07-25", "2023-12-15"


@pytest.fixture(scope="session")
def census_bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bucket root with the two releases and their ``cell-census/release.json``."""
    root = tmp_path_factory.mktemp("census-bucket")
    build_release(str(root), STABLE_TAG, n_datasets=14, cells_per_dataset=40, seed=11, workers=1)
    build_release(str(root), LATEST_TAG, previous=STABLE_TAG, workers=1, lts=False)
    return root


def soma_path(bucket: Path, tag: str) -> str:
    """The local path of a release's SOMA store."""
    return str(bucket / release_key(tag, "soma"))


def register_release(root: str, tag: str, **storage_fields: object) -> Artifact:
    """The SOMA store artifact of release ``tag`` at ``root``, as ``curate_release`` registers
    it (reference, otype, key, version = tag, a version of the storage's other stores)."""
    storage, _ = Storage.objects.get_or_create(root=root, defaults=storage_fields)
    soma = Artifact(
        key=release_key(tag, "soma"),
        storage=storage,
        suffix="",
        otype="tiledbsoma",
        description=f"CELLxGENE Census {tag}: all cells (TileDB-SOMA)",
        reference=SOMA_REFERENCE,
        reference_type="census_soma",
        version=tag,
    )
    family = Artifact.objects.filter(storage=storage, reference=SOMA_REFERENCE)
    save_version(soma, family, "default")
    return soma
