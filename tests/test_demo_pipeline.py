"""The steps of the demo pipeline that decide and mark (fast, on a fresh instance of the suite's
database kind): which instances the demo may write into, which ontologies are missing, and the
uid of the guide's study collection. The whole pipeline runs in ``tests/test_demo_command.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

import registry as ln
from demo import pipeline
from demo.census.plan import KIDNEY_TITLE
from demo.synthetic import STUDY_UID
from ontologies.importers.guide import UNITS

pytestmark = pytest.mark.usefixtures("isolated_instances")


def test_a_fresh_instance_is_unused_and_not_the_demos(fresh: ln.DB) -> None:  # noqa: F811
    assert pipeline.used_registries(fresh.alias) == []
    assert pipeline.demo_bucket(fresh.alias) is None
    assert pipeline.missing_ontologies(fresh.alias) == [unit.label for unit in UNITS]
    fresh.ULabel.create(name="mine")
    assert pipeline.used_registries(fresh.alias) == ["ULabel"]


def test_claim_marks_the_instance_with_its_bucket(fresh: ln.DB, tmp_path: Path) -> None:  # noqa: F811
    bucket = (tmp_path / "census-bucket").resolve()
    pipeline.claim(fresh.alias, bucket)
    pipeline.claim(fresh.alias, bucket)  # once only
    assert pipeline.demo_bucket(fresh.alias) == bucket
    assert fresh.Storage.filter(root=str(bucket)).count() == 1


def test_the_study_collection_gets_the_guides_uid(fresh: ln.DB, tmp_path: Path) -> None:  # noqa: F811
    storage = fresh.Storage.create(root=str(tmp_path))
    kidney = fresh.Artifact.create(
        key="h5ads/kidney.h5ad", storage=storage, description=KIDNEY_TITLE
    )
    fields = {"key": "A study", "reference": "c-1", "reference_type": "cellxgene_collection_id"}
    first = fresh.Collection.create(version="2024-07-01", **fields)
    latest = fresh.Collection.create(version="2025-01-30", revises=first, **fields)
    other = fresh.Collection.create(key="Another study", reference="c-2", version="2024-07-01")
    for collection in (first, latest):
        collection.artifacts.add(kidney, through_defaults={"order": 0})

    assert pipeline.mirror_study_uid(fresh.alias) is True
    study = fresh.Collection.get(STUDY_UID)
    assert study.pk == latest.pk and study.is_latest
    assert [c.pk for c in study.versions] == [first.pk, latest.pk]
    assert fresh.Collection.get(pk=first.pk).uid == STUDY_UID[:16] + first.uid[16:]
    assert fresh.Collection.get(pk=other.pk).uid == other.uid
    assert pipeline.mirror_study_uid(fresh.alias) is False  # done: nothing changes


def test_the_study_uid_needs_the_curated_kidney_dataset(fresh: ln.DB) -> None:  # noqa: F811
    with pytest.raises(LookupError) as raised:
        pipeline.mirror_study_uid(fresh.alias)
    assert str(raised.value) == (
        "No collection of instance 'fresh' holds the dataset 'Mature kidney dataset: immune': "
        "curate the demo releases first (`python manage.py demo`)."
    )
