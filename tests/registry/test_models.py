"""Records: uids, provenance, link-table uniqueness, versions, describe and features."""

from __future__ import annotations

import re

import pytest
from django.db import IntegrityError, transaction

import registry as ln
from demo import synthetic
from ontologies.models import ArtifactCellType, CellType, Tissue
from registry.models import (
    Artifact,
    ArtifactULabel,
    Collection,
    Feature,
    Storage,
    ULabel,
    User,
)

pytestmark = pytest.mark.django_db

UID = re.compile(r"^[0-9A-Za-z]+$")


@pytest.mark.parametrize(
    ("model", "length"),
    [(Artifact, 20), (Collection, 20), (User, 8), (Storage, 12), (Feature, 12), (ULabel, 8)],
)
def test_uids_are_base62_of_fixed_length(model: type, length: int) -> None:
    uids = list(model.objects.values_list("uid", flat=True))
    assert uids
    assert all(len(uid) == length and UID.match(uid) for uid in uids)
    assert len(set(uids)) == len(uids)


def test_ontology_uids_are_the_same_everywhere() -> None:
    b_cell = CellType.objects.get(ontology_id="CL:0000236")
    assert b_cell.uid == CellType.uid_for("CL:0000236")
    assert CellType(ontology_id="CL:0000236", name="x").uid == b_cell.uid
    # the registry is part of the uid: a CL id used as a tissue is another record
    assert Tissue.uid_for("CL:0000236") != b_cell.uid
    assert len(b_cell.uid) == 10


def test_created_by_is_the_current_user() -> None:
    label = ULabel.objects.create(name="mine")
    assert label.created_by.handle == "testuser"
    artifacts = Artifact.objects.bulk_create(
        [Artifact(key="bulk/x.h5ad", storage=Storage.objects.first())]
    )
    assert Artifact.objects.get(pk=artifacts[0].pk).created_by.handle == "testuser"


def test_rolled_back_user_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLREGISTRY_USER", "rolled-back-user")
    with pytest.raises(RuntimeError), transaction.atomic():
        ULabel.objects.create(name="doomed")
        raise RuntimeError("roll back")
    assert not User.objects.filter(handle="rolled-back-user").exists()
    label = ULabel.objects.create(name="after rollback")  # would hit a dangling user id
    assert label.created_by.handle == "rolled-back-user"


class TestLinkUniqueness:
    @pytest.fixture
    def artifact(self) -> Artifact:
        return Artifact.objects.create(key="links/a.h5ad", storage=Storage.objects.first())

    def test_duplicate_without_feature_is_rejected(self, artifact: Artifact) -> None:
        b_cell = CellType.objects.get(name="B cell")
        ArtifactCellType.objects.create(artifact=artifact, label=b_cell)
        with pytest.raises(IntegrityError), transaction.atomic():
            ArtifactCellType.objects.create(artifact=artifact, label=b_cell)

    def test_duplicate_with_feature_is_rejected(self, artifact: Artifact) -> None:
        b_cell = CellType.objects.get(name="B cell")
        feature = Feature.objects.get(name="cell_type")
        ArtifactCellType.objects.create(artifact=artifact, label=b_cell, feature=feature)
        with pytest.raises(IntegrityError), transaction.atomic():
            ArtifactCellType.objects.create(artifact=artifact, label=b_cell, feature=feature)

    def test_same_label_under_two_features_is_allowed(self, artifact: Artifact) -> None:
        kind = ULabel.objects.create(name="Kind", is_type=True)
        label = ULabel.objects.create(name="cell", type=kind)
        first = Feature.objects.create(name="f1", dtype="cat[ULabel]")
        second = Feature.objects.create(name="f2", dtype="cat[ULabel]")
        ArtifactULabel.objects.create(artifact=artifact, label=label, feature=first)
        ArtifactULabel.objects.create(artifact=artifact, label=label, feature=second)
        ArtifactULabel.objects.create(artifact=artifact, label=label)
        assert ArtifactULabel.objects.filter(artifact=artifact).count() == 3
        # and filtering by it still yields the artifact once
        assert list(Artifact.filter(ulabels=label)) == [artifact]

    def test_add_with_counts(self, artifact: Artifact) -> None:
        feature = Feature.objects.get(name="cell_type")
        t_cell = CellType.objects.get(name="T cell")
        artifact.cell_types.add(
            t_cell, through_defaults={"feature": feature, "n_cells": 120, "n_primary_cells": 100}
        )
        link = ArtifactCellType.objects.get(artifact=artifact, label=t_cell)
        assert (link.feature, link.n_cells, link.n_primary_cells) == (feature, 120, 100)

    def test_untyped_ulabels_are_unique_too(self) -> None:
        ULabel.objects.create(name="free")
        with pytest.raises(IntegrityError), transaction.atomic():
            ULabel.objects.create(name="free")


class TestVersions:
    def test_revision_shares_stem_and_moves_latest(self) -> None:
        storage = Storage.objects.first()
        v1 = Artifact.objects.create(key="v/data.h5ad", storage=storage, version="1")
        v2 = Artifact(key="v/data.h5ad", storage=storage, version="2", revises=v1)
        v2.save()
        v1.refresh_from_db()
        assert v2.uid[:16] == v1.uid[:16] and v2.uid != v1.uid
        assert (v1.is_latest, v2.is_latest) == (False, True)
        assert [a.version for a in v2.versions] == ["1", "2"]
        assert Artifact.get(v1.uid[:16]) == v2

    def test_one_latest_per_storage_and_key(self) -> None:
        storage = Storage.objects.first()
        Artifact.objects.create(key="dup/x.h5ad", storage=storage)
        with pytest.raises(IntegrityError), transaction.atomic():
            Artifact.objects.create(key="dup/x.h5ad", storage=storage)

    def test_collection_versions(self) -> None:
        census = Collection.get(key="cellxgene-census", version="2025-01-30")
        frame = census.versions.to_dataframe()
        assert list(frame["version"]) == ["2024-07-01", "2025-01-30"]
        assert list(frame["is_latest"]) == [False, True]
        assert census.artifacts.count() == 1000


class TestDescribe:
    def test_tree_has_every_section(self) -> None:
        artifact = Artifact.get(description=synthetic.KIDNEY_DATASET)
        text = artifact.describe(return_str=True)
        assert text.startswith("Artifact .h5ad · AnnData")
        for section in ("├── General", "├── Labels", "├── Collections", "└── Provenance"):
            assert section in text
        assert f"key: {artifact.key}" in text
        assert f"path: s3://cellxgene-data-public/{artifact.key}" in text
        assert "tissue (2) · Tissue: " in text and "kidney" in text
        assert "suspension_type (1) · ULabel: " in text
        assert f"{synthetic.CENSUS_KEY} (2025-01-30)" in text
        assert f"created_by: {artifact.created_by.handle}" in text
        n_cell_types = artifact.cell_types.count()
        assert f"cell_type ({n_cell_types}) · CellType" in text

    def test_describe_prints(self, capsys: pytest.CaptureFixture[str]) -> None:
        artifact = Artifact.get(description=synthetic.KIDNEY_DATASET)
        assert artifact.describe() is None
        assert "Provenance" in capsys.readouterr().out

    def test_describe_shows_counts_and_run(self) -> None:
        from registry.models import Run, Transform

        transform = Transform.objects.create(key="curate_release", version="0.1.0")
        run = Run.objects.create(transform=transform)
        artifact = Artifact.objects.create(key="d/x.h5ad", storage=Storage.objects.first(), run=run)
        artifact.cell_types.add(
            CellType.objects.get(name="B cell"), through_defaults={"n_cells": 1234}
        )
        text = artifact.describe(return_str=True)
        assert "B cell (1,234 cells)" in text
        assert f"run: {run.uid} · curate_release 0.1.0 (started)" in text

    def test_features_get_values(self) -> None:
        artifact = Artifact.get(description=synthetic.KIDNEY_DATASET)
        values = artifact.features.get_values()
        assert set(values) == {
            "cell_type",
            "tissue",
            "disease",
            "assay",
            "organism",
            "suspension_type",
        }
        assert sorted(values["cell_type"]) == sorted(
            artifact.cell_types.values_list("name", flat=True)
        )
        assert "kidney" in values["tissue"]
        assert "Features of" in repr(artifact.features)


def test_registries_reachable_from_public_api() -> None:
    db = ln.DB("default")
    for name in (
        "Artifact",
        "Collection",
        "User",
        "Storage",
        "Feature",
        "ULabel",
        "Run",
        "Transform",
    ):
        assert getattr(db, name).model is getattr(ln, name)
    for name in (
        "CellType",
        "Tissue",
        "Disease",
        "Assay",
        "Organism",
        "DevelopmentalStage",
        "Ethnicity",
        "Phenotype",
        "Gene",
        "Source",
    ):
        assert getattr(db.ontologies, name).model.__name__ == name


class TestLinkingLabels:
    @pytest.fixture
    def artifact(self) -> Artifact:
        return Artifact.objects.create(key="curate/x.h5ad", storage=Storage.objects.first())

    def test_add_values_by_name_and_record(self, artifact: Artifact) -> None:
        lung = Tissue.objects.get(name="lung")
        artifact.features.add_values(
            {"cell_type": ["B cell", "T cell"], "tissue": lung, "suspension_type": "nucleus"}
        )
        assert artifact.features.get_values() == {
            "cell_type": ["B cell", "T cell"],
            "suspension_type": ["nucleus"],
            "tissue": ["lung"],
        }
        link = ArtifactCellType.objects.get(artifact=artifact, label__name="B cell")
        assert link.feature.name == "cell_type"

    def test_adding_twice_keeps_one_link(self, artifact: Artifact) -> None:
        artifact.features.add_values({"cell_type": ["B cell"]})
        artifact.features.add_values({"cell_type": ["B cell"]})
        artifact.labels.add(CellType.objects.get(name="B cell"))  # no feature: a separate link
        artifact.labels.add(CellType.objects.get(name="B cell"))
        assert ArtifactCellType.objects.filter(artifact=artifact).count() == 2

    def test_labels_add_with_counts_and_get(self, artifact: Artifact) -> None:
        b_cell, lung = CellType.objects.get(name="B cell"), Tissue.objects.get(name="lung")
        artifact.labels.add([b_cell, lung], n_cells={b_cell.pk: 10, lung.pk: 12})
        assert list(artifact.labels.get("CellType")) == [b_cell]
        assert list(artifact.labels.get(Tissue)) == [lung]
        assert ArtifactCellType.objects.get(artifact=artifact).n_cells == 10

    def test_unknown_feature(self, artifact: Artifact) -> None:
        with pytest.raises(LookupError, match="Unknown feature\\(s\\) 'celltype'"):
            artifact.features.add_values({"celltype": ["B cell"]})

    def test_unknown_value_writes_nothing(self, artifact: Artifact) -> None:
        with pytest.raises(
            LookupError, match="Unknown CellType value\\(s\\) for feature 'cell_type': 'B-cell'"
        ):
            artifact.features.add_values({"tissue": ["lung"], "cell_type": ["B cell", "B-cell"]})
        assert artifact.features.get_values() == {}

    def test_ulabel_values_respect_their_type(self, artifact: Artifact) -> None:
        other = ULabel.objects.create(name="OtherType", is_type=True)
        ULabel.objects.create(name="droplet", type=other)
        with pytest.raises(LookupError, match="'droplet'"):
            artifact.features.add_values({"suspension_type": ["droplet"]})

    def test_non_label_record(self, artifact: Artifact) -> None:
        with pytest.raises(TypeError, match="Cannot link Storage"):
            artifact.labels.add(Storage.objects.first())

    def test_unknown_registry_in_get(self, artifact: Artifact) -> None:
        with pytest.raises(LookupError, match="No label registry 'Cell'"):
            artifact.labels.get("Cell")
