"""Counting artifacts by one label: the counts SQLite keeps by triggers equal the links counted,
whatever was written, deleted or moved; PostgreSQL counts the links (same answers)."""

from __future__ import annotations

import contextlib
import random
import sqlite3
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

import registry as ln
from ontologies.models import ArtifactCellType, CellType
from registry.models import Artifact, Feature, Storage
from registry.query import links
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db

NAMES = ["B cell", "T cell", "neutrophil", "monocyte", "natural killer cell"]


def _linked_artifacts(label: CellType) -> int:
    """The answer, from the link rows themselves."""
    rows = ArtifactCellType.objects.filter(label=label).values_list("artifact_id", flat=True)
    return len(set(rows))


def _assert_counts_match() -> None:
    for label in CellType.objects.filter(name__in=NAMES):
        assert Artifact.filter(cell_types=label).count() == _linked_artifacts(label), label.name
        by_name = Artifact.filter(cell_types__name=label.name).count()
        assert by_name == _linked_artifacts(label), label.name


def _random_writes(seed: int, steps: int) -> None:
    """Link rows added (one by one and in bulk, with and without features, so that one
    artifact carries a label under several features), removed, moved to another artifact or
    label, and artifacts deleted with their links."""
    rng = random.Random(seed)
    storage = Storage.objects.first()
    artifacts = [
        Artifact.objects.create(key=f"counts/{seed}/{i}.h5ad", storage=storage) for i in range(12)
    ]
    labels = list(CellType.objects.filter(name__in=NAMES))
    features = [None, Feature.objects.get(name="cell_type")]
    features.append(Feature.objects.create(name=f"cell_type_author_{seed}", dtype="cat[CellType]"))
    for _ in range(steps):
        action = rng.choice(["add", "add", "bulk", "remove", "move", "drop_artifact"])
        mine = ArtifactCellType.objects.filter(artifact__in=artifacts)
        if action == "add":
            # an existing (artifact, label, feature) is refused: its savepoint is rolled back
            with contextlib.suppress(IntegrityError), transaction.atomic():
                ArtifactCellType.objects.create(
                    artifact=rng.choice(artifacts),
                    label=rng.choice(labels),
                    feature=rng.choice(features),
                )
        elif action == "bulk":
            rows = [
                (rng.choice(artifacts).id, rng.choice(labels).id, feature and feature.id, 5, 4)
                for feature in rng.choices(features, k=8)
            ]
            links.insert_links(ArtifactCellType, rows, using="default")
        elif action == "remove" and mine.exists():
            rng.choice(list(mine)).delete()
        elif action == "move" and mine.exists():
            link = rng.choice(list(mine))
            change = (
                {"label": rng.choice(labels)}
                if rng.random() < 0.5
                else {"artifact": rng.choice(artifacts)}
            )
            with contextlib.suppress(IntegrityError), transaction.atomic():
                ArtifactCellType.objects.filter(pk=link.pk).update(**change)
        elif action == "drop_artifact" and len(artifacts) > 4:
            artifacts.pop(rng.randrange(len(artifacts))).delete()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_equal_the_links_after_random_writes(seed: int) -> None:
    _random_writes(seed, steps=250)
    _assert_counts_match()


def test_one_label_is_read_from_the_kept_counts_on_sqlite() -> None:
    query = Artifact.filter(cell_types__name="B cell")
    with CaptureQueriesContext(connection) as queries:
        count = query.count()
    assert count == _linked_artifacts(CellType.objects.get(name="B cell")) > 0
    (sql,) = [q["sql"] for q in queries.captured_queries]
    if on_postgres():  # no triggers there: the links are counted
        assert "COUNT(DISTINCT" in sql
        assert links.kept_counts(connection) == frozenset()
    else:
        assert links.COUNTS_TABLE in sql and "COUNT(DISTINCT" not in sql
        kept = links.kept_counts(connection)
        assert {model._meta.db_table for model in links.label_link_tables()} == kept
        assert "ontologies_artifactcelltype" in kept


def test_labels_that_share_artifacts_are_counted_from_the_links() -> None:
    """B and T cells: an artifact with both counts once, so the two counts do not add up."""
    query = Artifact.filter(cell_types__name__in=["B cell", "T cell"])
    b_cell, t_cell = (CellType.objects.get(name=name) for name in ("B cell", "T cell"))
    with_either = set(
        ArtifactCellType.objects.filter(label__in=[b_cell, t_cell]).values_list(
            "artifact_id", flat=True
        )
    )
    assert len(with_either) < _linked_artifacts(b_cell) + _linked_artifacts(t_cell)
    with CaptureQueriesContext(connection) as queries:
        assert query.count() == len(with_either)
    assert "COUNT(DISTINCT" in queries.captured_queries[-1]["sql"]


@pytest.mark.skipif("on_postgres()", reason="the counts are kept on SQLite only")
def test_missing_triggers_are_restored_with_fresh_counts() -> None:
    """A table whose triggers are gone (as after SQLite rebuilt it in a migration) is counted
    from its links until keep_label_counts (run after every migrate) counts it afresh."""
    b_cell = CellType.objects.get(name="B cell")
    with connection.cursor() as cursor:
        for name in links._trigger_names("ontologies_artifactcelltype"):
            cursor.execute(f'DROP TRIGGER "{name}"')
    links._kept_tables.clear()
    storage = Storage.objects.first()
    for i in range(3):  # written while nothing keeps the counts
        artifact = Artifact.objects.create(key=f"untracked/{i}.h5ad", storage=storage)
        ArtifactCellType.objects.create(artifact=artifact, label=b_cell)
    assert "ontologies_artifactcelltype" not in links.kept_counts(connection)
    _assert_counts_match()
    assert links.keep_label_counts("default") == ["ontologies_artifactcelltype"]
    assert links.keep_label_counts("default") == []
    assert "ontologies_artifactcelltype" in links.kept_counts(connection)
    _random_writes(seed=4, steps=100)
    _assert_counts_match()


def _triggers(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    return {name for (name,) in rows}


@pytest.mark.skipif("on_postgres()", reason="the counts are kept on SQLite only")
def test_init_keeps_counts_on_a_writable_instance_only(
    tmp_path: Path, isolated_instances: None
) -> None:
    """A database of an earlier version (no triggers): ``init`` as a read-only mirror leaves it
    as it is; ``init`` as a writable instance counts its links and adds the triggers."""
    path = tmp_path / "lab.sqlite3"
    ln.init("lab", db=f"sqlite:///{path}", storage=tmp_path / "data", make_default=False)
    expected = {
        name
        for link in links.label_link_tables()
        for name in links._trigger_names(link._meta.db_table)
    }
    assert _triggers(path) == expected
    with sqlite3.connect(path) as db:
        for name in expected:
            db.execute(f'DROP TRIGGER "{name}"')
    ln.init("mirror", db=f"sqlite:///{path}", read_only=True, make_default=False)
    assert _triggers(path) == set()
    ln.init("lab", db=f"sqlite:///{path}", storage=tmp_path / "data", make_default=False)
    assert _triggers(path) == expected
