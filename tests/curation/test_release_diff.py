"""The release diff (curation.diff, ``manage.py release_diff``) against the truth of two
consecutive demo releases: their plans (dataset ids and version ids) and their h5ads' obs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anndata
import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext

import registry as ln
from curation.diff import ReleaseDiff, ReleaseDiffError, release_diff
from curation.diff_report import render
from curation.register import REFERENCE_TYPE
from curation.steps import curate_release
from demo.census.plan import ReleasePlan
from demo.census.release import PLAN_FILE, build_release
from ontologies.models import ArtifactCellType, ArtifactTissue
from registry.models import Artifact, Storage

OLD, NEW = "2024-07-01", "2025-01-30"
N_DATASETS, CELLS = 20, 100
#: queries of a whole diff: tags, artifacts, features, two per label relation
MAX_QUERIES = 25


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two consecutive demo releases in one local bucket folder."""
    dest = tmp_path_factory.mktemp("bucket")
    build_release(str(dest), OLD, n_datasets=N_DATASETS, cells_per_dataset=CELLS, workers=1)
    build_release(str(dest), NEW, previous=OLD, workers=1)
    return dest / "cell-census"


@pytest.fixture
def curated(curation_db: ln.DB, releases: Path) -> ln.DB:
    """Both releases curated into a fresh instance with the ontologies."""
    for tag in (OLD, NEW):
        summary = curate_release(str(releases / tag), using=curation_db.alias, workers=1)
        assert summary.added == N_DATASETS or tag == NEW, summary.problems
    return curation_db


def plan(releases: Path, tag: str) -> ReleasePlan:
    return ReleasePlan.from_json((releases / tag / PLAN_FILE).read_text())


def obs_cell_types(releases: Path, tag: str, dataset_id: str) -> set[str]:
    """The cell type names of a dataset's h5ad (read with anndata, not the registry)."""
    adata = anndata.read_h5ad(releases / tag / "h5ads" / f"{dataset_id}.h5ad", backed="r")
    try:
        return set(adata.obs.cell_type.astype(str))
    finally:
        adata.file.close()


def diff_json(*args: str) -> dict:
    out = io.StringIO()
    call_command("release_diff", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


# --- datasets ---------------------------------------------------------------------------------


def test_datasets_added_removed_revised_follow_the_plans(curated: ln.DB, releases: Path) -> None:
    old = {d.dataset_id: d for d in plan(releases, OLD).datasets}
    new = {d.dataset_id: d for d in plan(releases, NEW).datasets}
    revised = {
        i for i in set(old) & set(new) if old[i].dataset_version_id != new[i].dataset_version_id
    }
    assert set(new) - set(old) and set(old) - set(new) and revised  # the demo evolves all three

    with CaptureQueriesContext(connections[curated.alias]) as queries:
        diff = release_diff(OLD, NEW, using=curated.alias)
    assert len(queries) <= MAX_QUERIES  # a handful, not one per dataset

    assert (diff.old, diff.new) == (OLD, NEW)
    assert {d.dataset_id for d in diff.added} == set(new) - set(old)
    assert {d.dataset_id for d in diff.removed} == set(old) - set(new)
    assert {r.dataset_id for r in diff.revised} == revised
    assert diff.unchanged == len(set(old) & set(new)) - len(revised)
    for d in diff.added:
        assert (d.dataset_version_id, d.title) == (
            new[d.dataset_id].dataset_version_id,
            new[d.dataset_id].title,
        )
        assert d.key == f"cell-census/{NEW}/h5ads/{d.dataset_id}.h5ad"
    for d in diff.removed:
        assert d.dataset_version_id == old[d.dataset_id].dataset_version_id
    for r in diff.revised:
        assert r.old_version_id == old[r.dataset_id].dataset_version_id
        assert r.new_version_id == new[r.dataset_id].dataset_version_id
        assert r.title == new[r.dataset_id].title
    # sorted by dataset id: the output is stable
    assert [r.dataset_id for r in diff.revised] == sorted(revised)


def test_cell_types_gained_and_lost_equal_the_h5ads(curated: ln.DB, releases: Path) -> None:
    diff = release_diff(OLD, NEW, using=curated.alias)
    changes = {c.dataset_id: c for c in diff.label_changes}
    revised = {r.dataset_id for r in diff.revised}
    differing = 0
    for dataset_id in revised:
        before = obs_cell_types(releases, OLD, dataset_id)
        after = obs_cell_types(releases, NEW, dataset_id)
        differing += before != after
        change = changes.get(dataset_id)
        found = change.features.get("cell_type") if change else None
        assert set(found.gained if found else ()) == after - before, dataset_id
        assert set(found.lost if found else ()) == before - after, dataset_id
    # the seeded demo releases have a revised dataset whose cell types changed: not vacuous
    assert differing, "no revised dataset changed its cell types: pick another seed or size"
    # the unchanged datasets are the same files: no label changes at all
    assert {c.dataset_id for c in diff.label_changes} <= revised
    assert all(c.revised for c in diff.label_changes)


def test_label_changes_of_a_kept_dataset_per_feature(curated: ln.DB) -> None:
    """Labels are compared per feature, for every dataset in both releases (revised or not):
    tissue and tissue_general share one relation but are told apart."""
    alias = curated.alias
    base = release_diff(OLD, NEW, using=alias)
    unchanged = (
        Artifact.objects.db_manager(alias)
        .filter(reference_type=REFERENCE_TYPE, version=NEW)
        .exclude(
            reference__in=[r.dataset_id for r in base.revised] + [d.dataset_id for d in base.added]
        )
    )
    artifact = unchanged.order_by("reference").first()
    cell_link = (
        ArtifactCellType.objects.db_manager(alias)
        .filter(artifact=artifact, feature__name="cell_type")
        .select_related("label")
        .first()
    )
    links = ArtifactTissue.objects.db_manager(alias).filter(artifact=artifact)
    tissues = set(links.filter(feature__name="tissue").values_list("label_id", flat=True))
    general = links.filter(feature__name="tissue_general").select_related("label")
    # a tissue_general term that is also linked as a tissue, if the dataset has one
    tissue_link = min(general, key=lambda link: (link.label_id not in tissues, link.pk))
    cell_link.delete()
    tissue_link.delete()

    diff = release_diff(OLD, NEW, using=alias)
    change = next(c for c in diff.label_changes if c.dataset_id == artifact.reference)
    assert not change.revised and change.title == artifact.description
    assert change.features["cell_type"].lost == (cell_link.label.name,)
    assert change.features["cell_type"].gained == ()
    assert change.features["tissue_general"].lost == (tissue_link.label.name,)
    assert "tissue" not in change.features  # its "tissue" links are untouched
    # the reverse diff sees the same labels gained
    back = {c.dataset_id: c for c in release_diff(NEW, OLD, using=alias).label_changes}
    assert back[artifact.reference].features["cell_type"].gained == (cell_link.label.name,)
    # --feature restricts the comparison
    only = release_diff(OLD, NEW, using=alias, features=["cell_type"])
    assert only.features == ("cell_type",)
    assert all(set(c.features) == {"cell_type"} for c in only.label_changes)


# --- the command ------------------------------------------------------------------------------


def test_command_table_and_json(curated: ln.DB, releases: Path) -> None:
    diff: ReleaseDiff = release_diff(OLD, NEW, using=curated.alias)
    out = io.StringIO()
    call_command("release_diff", OLD, NEW, stdout=out)
    table = out.getvalue()
    assert f"Release diff {OLD} -> {NEW}: {len(diff.added)} added" in table
    for heading in ("Added (", "Removed (", "Revised ("):
        assert heading in table
    for entry in diff.added + diff.removed + diff.revised + diff.label_changes:
        assert entry.dataset_id in table
    # label names one per line (wide enough, none wraps)
    wide = render(diff, width=400)
    for change in diff.label_changes:
        for labels in change.features.values():
            assert all(name in wide for name in labels.gained + labels.lost)
    # a title's marker is text, not rich markup
    assert ("[revised]" in table) == any(c.revised for c in diff.label_changes)

    data = diff_json(OLD, NEW)
    assert list(data) == [
        "old", "new", "added", "removed", "revised", "unchanged", "label_changes", "features"
    ]  # fmt: skip
    old = {d.dataset_id: d.dataset_version_id for d in plan(releases, OLD).datasets}
    new = {d.dataset_id: d.dataset_version_id for d in plan(releases, NEW).datasets}
    assert {d["dataset_id"] for d in data["added"]} == set(new) - set(old)
    assert {d["dataset_id"] for d in data["removed"]} == set(old) - set(new)
    assert {d["dataset_id"] for d in data["revised"]} == {
        i for i in set(old) & set(new) if old[i] != new[i]
    }
    assert data["unchanged"] == diff.unchanged
    assert data["label_changes"] == diff.as_dict()["label_changes"]

    only = diff_json(OLD, NEW, "--feature", "tissue", "--feature", "cell_type")
    assert only["features"] == ["cell_type", "tissue"]
    assert diff_json(OLD, NEW, "--feature", "cell_type", "tissue")["features"] == only["features"]


def test_errors_name_the_tags(curated: ln.DB) -> None:
    with pytest.raises(ReleaseDiffError, match=f"Both releases are '{OLD}'"):
        release_diff(OLD, OLD, using=curated.alias)
    with pytest.raises(CommandError, match=f"Both releases are '{NEW}'"):
        call_command("release_diff", NEW, NEW)
    message = f"No curated datasets of release '2023-01-01' .*Curated releases: {OLD}, {NEW}"
    with pytest.raises(CommandError, match=message):
        call_command("release_diff", "2023-01-01", NEW)
    with pytest.raises(ReleaseDiffError, match="'2023-01-01' and '2023-02-02'"):
        release_diff("2023-01-01", "2023-02-02", using=curated.alias)
    with pytest.raises(ReleaseDiffError, match="Unknown feature.*'cell_types'.*choose from"):
        release_diff(OLD, NEW, using=curated.alias, features=["cell_types"])
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("release_diff", OLD, NEW, "--feature", "celltype")
    # the same release curated from a second storage: which artifact to compare is ambiguous
    alias = curated.alias
    artifact = Artifact.objects.db_manager(alias).filter(version=NEW, suffix=".h5ad").first()
    mirror = Storage.objects.db_manager(alias).create(root="s3://mirror-bucket")
    Artifact.objects.db_manager(alias).create(
        key=artifact.key,
        storage=mirror,
        version=NEW,
        reference=artifact.reference,
        reference_type=REFERENCE_TYPE,
        reference_version=artifact.reference_version,
    )
    message = f"Release '{NEW}' has two artifacts of dataset {artifact.reference}: .* and "
    with pytest.raises(ReleaseDiffError, match=message + f"s3://mirror-bucket/{artifact.key}"):
        release_diff(OLD, NEW, using=alias)


def test_no_curated_release_at_all(curation_db: ln.DB) -> None:
    with pytest.raises(ReleaseDiffError, match="Curated releases: none"):
        release_diff(OLD, NEW, using=curation_db.alias)
