"""Records of another instance saved into the default one (issue 11, point 4): matched by uid
or natural key, terms imported with their parents, labels with features and counts, version
chains, a Run naming the source; a rerun writes nothing and the source is never written."""

from __future__ import annotations

import concurrent.futures
import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from django.db import connections

import registry as ln
from registry.models import CollectionArtifact
from registry.query.links import COUNTS_TABLE
from tests.conftest import PG_SERVER, _pg_admin, on_postgres


@pytest.fixture
def database_urls(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Fresh databases of the suite's kind, one per name (PostgreSQL: dropped afterwards)."""
    made: list[str] = []

    def url(name: str) -> str:
        if not on_postgres():
            return f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
        made.append(f"cellregistry_t_{uuid.uuid4().hex[:10]}")
        return f"{PG_SERVER}/{made[-1]}"

    yield url
    connections.close_all()
    with _pg_admin() if made else contextlib.nullcontext() as admin:
        for database in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _table_rows(alias: str) -> dict[str, int]:
    """Rows per table of an instance's database (the kept label counts aside)."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        tables = [t for t in connection.introspection.table_names(cursor) if t != COUNTS_TABLE]
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


@pytest.fixture
def public(database_urls: Callable[[str], str], tmp_path: Path, isolated_instances: None) -> ln.DB:
    """A source instance, read-only once filled: two versions of a kidney dataset (a real h5ad in
    its storage) linked to CD8 T cell (a term with parents) and kidney with cell counts, and a
    collection of both."""
    url = database_urls("public")
    writer = ln.init("public-writer", db=url, storage=tmp_path / "public-data", make_default=False)
    storage = writer.Storage.get(root=str(tmp_path / "public-data"))
    cell_type = writer.Feature.create(name="cell_type", dtype="cat[CellType]")
    tissue = writer.Feature.create(name="tissue", dtype="cat[Tissue]")
    cell = writer.ontologies.CellType.create(name="cell", ontology_id="CL:0000000")
    t_cell = writer.ontologies.CellType.create(name="T cell", ontology_id="CL:0000084")
    cd8 = writer.ontologies.CellType.create(
        name="CD8-positive, alpha-beta T cell", ontology_id="CL:0000625"
    )
    t_cell.parents.add(cell)
    cd8.parents.add(t_cell)
    kidney = writer.ontologies.Tissue.create(name="kidney", ontology_id="UBERON:0002113")
    (Path(storage.root) / "h5ads").mkdir()
    versions = []
    for version, n_obs in (("2024-07-01", 30), ("2025-01-30", 40)):
        key = f"h5ads/kidney-{version}.h5ad"
        data = ad.AnnData(
            np.ones((n_obs, 3), dtype="float32"),
            obs=pd.DataFrame(index=[f"c{i}" for i in range(n_obs)]),
        )
        data.write_h5ad(Path(storage.root) / key)
        artifact = writer.Artifact.model(
            key=key,
            storage=storage,
            suffix=".h5ad",
            otype="AnnData",
            description="Mature kidney dataset: immune",
            version=version,
            n_observations=n_obs,
            revises=versions[-1] if versions else None,
        )
        artifact.save(using=writer.alias)
        counts = {"n_cells": {cd8.pk: n_obs}, "n_primary_cells": {cd8.pk: n_obs - 5}}
        artifact.labels.add(cd8, feature=cell_type, **counts)
        artifact.labels.add(kidney, feature=tissue, n_cells={kidney.pk: n_obs})
        versions.append(artifact)
    collection = writer.Collection.create(key="kidney atlas", version="1")
    for order, artifact in enumerate(reversed(versions)):  # the newest first
        CollectionArtifact.objects.db_manager(writer.alias).create(
            collection=collection, artifact=artifact, order=order
        )
    return ln.init("public", db=url, read_only=True, make_default=False)


@pytest.fixture
def lab(database_urls: Callable[[str], str], tmp_path: Path, public: ln.DB) -> ln.DB:
    """The lab's own instance, the default one, with a term of its own (T cell)."""
    db = ln.init("lab", db=database_urls("lab"), storage=tmp_path / "lab-data")
    ln.ontologies.CellType(name="T cell", ontology_id="CL:0000084").save()
    return db


def test_an_artifact_is_transferred_with_its_labels_terms_and_versions(
    public: ln.DB, lab: ln.DB
) -> None:
    before = _table_rows(public.alias)
    artifact = public.Artifact.get(description="Mature kidney dataset: immune")  # the latest
    source_uid = artifact.uid
    assert artifact.save() is artifact
    assert artifact._state.db == "default" and artifact.uid == source_uid
    mine = ln.Artifact.get(description="Mature kidney dataset: immune")
    assert mine == artifact and mine.version == "2025-01-30" and mine.is_latest
    older = mine.revises
    assert (older.version, older.is_latest, older.uid[:16]) == ("2024-07-01", False, mine.uid[:16])
    assert mine.storage.root == public.Storage.one().root  # the bytes stay where they are
    assert mine.load().n_obs == 40
    # labels with their features and counts, terms matched by ontology id or imported
    link = mine.links_cell_type.get()
    assert (link.cell_type.ontology_id, link.feature.name) == ("CL:0000625", "cell_type")
    assert (link.n_cells, link.n_primary_cells) == (40, 35)
    assert ln.ontologies.CellType.filter(ontology_id="CL:0000084").count() == 1  # not copied
    cd8 = ln.ontologies.CellType.get(ontology_id="CL:0000625")
    assert [t.name for t in cd8.parents.all()] == ["T cell"]
    # a term present (T cell) is the lab's own, with its own parents (none here): "cell", the
    # public T cell's parent, does not come along
    assert {t.name for t in cd8.ancestors()} == {"T cell"}
    assert not ln.ontologies.CellType.filter(ontology_id="CL:0000000").exists()
    t_cells = ln.ontologies.CellType.get(name="T cell").descendants()
    assert ln.Artifact.filter(cell_types__in=t_cells).count() == 2
    # the run naming the source
    run = ln.Run.get(transform__key="transfer")
    assert run.params == {"source_instance": "public"} and run.status == "completed"
    assert mine.run == run
    # the source was never written
    assert _table_rows(public.alias) == before


def test_a_collection_comes_with_its_members_and_a_rerun_writes_nothing(
    public: ln.DB, lab: ln.DB
) -> None:
    public.Collection.get(key="kidney atlas").save()
    collection = ln.Collection.get(key="kidney atlas")
    members = CollectionArtifact.objects.filter(collection=collection).order_by("order")
    assert [m.artifact.version for m in members] == ["2025-01-30", "2024-07-01"]
    after_first = _table_rows("default")
    public.Collection.get(key="kidney atlas").save()
    public.Artifact.get(description="Mature kidney dataset: immune").save()
    assert _table_rows("default") == after_first  # nothing duplicated, no second run


@pytest.mark.skipif(not on_postgres(), reason="concurrent writers need PostgreSQL")
def test_four_transfers_at_once(public: ln.DB, lab: ln.DB) -> None:
    def transfer() -> None:
        try:
            ln.DB("public").Collection.get(key="kidney atlas").save()
        finally:
            connections.close_all()

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = [pool.submit(transfer) for _ in range(4)]
        errors = [f.exception() for f in results if f.exception() is not None]
    assert errors == []
    assert ln.Artifact.count() == 2 and ln.Collection.count() == 1
    assert ln.ontologies.CellType.filter(ontology_id="CL:0000625").count() == 1
    assert ln.Artifact.get(version="2025-01-30").links_cell_type.count() == 1
