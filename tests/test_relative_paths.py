"""Relative paths work wherever a path is accepted: each is resolved once, against the working
directory, and recorded or used as an absolute path, so that later processes may run elsewhere.

Audited (issue 9, point 11): ``ln.init(db="sqlite:///...", storage=...)``, ``ln.Storage(root=...)``,
the release root of ``curate_release --source`` (``ReleaseRoot.parse``; the command itself runs
with ``--source ./census-bucket/...`` in ``tests/test_readme.py``, which checks the Storage it
records), ``build_demo_release --dest``, ``load_ontologies --file`` and ``--genes-from``, and
``$CELLREGISTRY_HOME`` (what ``manage.py demo`` and every embedded instance live under). Each test
changes into a temporary folder first, then (where it matters) into another one, to show that the
recorded path does not depend on where later code runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

import registry as ln
from curation.manifest import ReleaseRoot
from registry import instances
from tests.demo_runs import run
from tests.ontologies.conftest import FIXTURES

pytestmark = pytest.mark.usefixtures("isolated_instances")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of the test's own (resolved: /tmp may be a link)."""
    folder = (tmp_path / "work").resolve()
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Change into another folder: recorded relative paths would now point elsewhere."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)


def test_init_records_a_relative_sqlite_url_and_storage_absolute(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ln.init("rel", db="sqlite:///rel/registry.sqlite3", storage="./rel-data", make_default=False)
    config = instances.get_instance("rel")
    assert config.db == f"sqlite:///{workdir / 'rel' / 'registry.sqlite3'}"
    assert config.storage == str(workdir / "rel-data")
    assert (workdir / "rel-data").is_dir() and (workdir / "rel" / "registry.sqlite3").is_file()
    elsewhere(tmp_path, monkeypatch)
    assert ln.DB("rel").Artifact.count() == 0  # the same database, from another folder


def test_storage_root_is_recorded_absolute(
    fresh: ln.DB,  # noqa: F811 - the fixture
    workdir: Path,
) -> None:
    storage = fresh.Storage.create(root="data/lab")
    assert storage.root == str(workdir / "data" / "lab")
    assert fresh.Storage.get(root=str(workdir / "data" / "lab")) == storage


def test_release_source_is_resolved_once() -> None:
    root = ReleaseRoot.parse("./census-bucket/cell-census/2024-07-01/")
    assert root.storage_root == str(Path.cwd().resolve() / "census-bucket")
    assert root.tag == "2024-07-01"


def test_build_demo_release_writes_a_relative_destination_under_the_working_directory(
    workdir: Path,
) -> None:
    options = {"dest": "census-bucket", "datasets": 2, "cells_per_dataset": 40, "workers": 1}
    call_command("build_demo_release", tag="2024-07-01", quiet=True, **options)
    call_command("build_demo_release", tag="2025-01-30", previous="2024-07-01", **options)
    for tag in ("2024-07-01", "2025-01-30"):
        release = workdir / "census-bucket" / "cell-census" / tag
        assert len(list((release / "h5ads").glob("*.h5ad"))) >= 2
        assert (release / "soma").is_dir()


def test_load_ontologies_records_a_relative_file_absolute(
    fresh: ln.DB,  # noqa: F811 - the fixture
    workdir: Path,
) -> None:
    shutil.copy(FIXTURES / "mmusdv.obo", workdir / "mmusdv.obo")
    call_command(
        "load_ontologies",
        file="mmusdv.obo",
        registry="DevelopmentalStage",
        source_name="mmusdv",
        source_version="2013-05-03",
        quiet=True,
    )
    source = fresh.ontologies.Source.get(name="mmusdv")
    assert source.url == str(workdir / "mmusdv.obo")


def test_load_ontologies_reads_genes_from_a_relative_folder(
    fresh: ln.DB,  # noqa: F811 - the fixture
    workdir: Path,
) -> None:
    shutil.copytree(FIXTURES / "gencode", workdir / "gencode")
    call_command("load_ontologies", only="NCBITaxon", quiet=True)
    call_command("load_ontologies", genes=True, gene_organisms="mouse", genes_from="gencode")
    assert fresh.ontologies.Gene.filter(organism__name="mouse").count() == 104


def test_demo_under_a_relative_home_records_absolute_paths(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    done = run(
        Path("home"),
        "demo",
        "--synthetic",
        "--artifacts",
        "3",
        "--quiet",
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr
    config = (folder / "home" / "instances.toml").read_text()
    home = (folder / "home").resolve()
    assert f'db = "sqlite:///{home / "synthetic-benchmark" / "registry.sqlite3"}"' in config
    assert f'storage = "{home / "synthetic-benchmark" / "storage"}"' in config


def test_a_relative_home_is_used_as_an_absolute_path(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLREGISTRY_HOME", "home")
    assert instances.home() == workdir / "home"
    assert instances.embedded_config().storage == str(workdir / "home" / "default" / "storage")
