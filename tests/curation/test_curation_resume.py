"""``curate_release`` is resumable, idempotent and safe to run concurrently (issue 5, points 6
and 7; issue 9, point 2): commands run as real processes (``manage.py --instance NAME
curate_release``) under the launcher of :mod:`tests.curation.harness`, each instance a copy of
the session's ontology template."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import curation.steps
import registry as ln
from demo.census.release import build_release
from tests.conftest import on_postgres
from tests.curation.harness import (
    Runner,
    assert_same,
    assert_version_chains,
    blocked,
    registry_snapshot,
    table_dump,
)

OLD, NEW = "2024-07-01", "2025-01-30"
N_DATASETS, CELLS = 40, 100


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local bucket with one demo release (two organisms, several collections)."""
    dest = tmp_path_factory.mktemp("bucket")
    build_release(str(dest), OLD, n_datasets=N_DATASETS, cells_per_dataset=CELLS, workers=1)
    return dest


@pytest.fixture(scope="module")
def two_releases(bucket: Path) -> list[Path]:
    """The bucket's release and the next one (changed, added and dropped datasets)."""
    build_release(str(bucket), NEW, previous=OLD, workers=1)
    return [bucket / "cell-census" / OLD, bucket / "cell-census" / NEW]


def _unknown_and_deprecated_terms(db: ln.DB) -> None:
    """Datasets of the demo release with natural killer cells get an unknown term (deleted from
    the registry), those with CL:0000451 a deprecated one."""
    cell_types = db.ontologies.CellType
    cell_types.filter(ontology_id="CL:0000623").delete()
    t_cell = cell_types.get(ontology_id="CL:0000084")
    cell_types.filter(ontology_id="CL:0000451").update(is_deprecated=True, replaced_by=t_cell)


def _n_h5ads(db: ln.DB) -> int:
    return db.Artifact.filter(suffix=".h5ad").count()


def _assert_whole_datasets(db: ln.DB, reference: dict[str, list]) -> None:
    """Every artifact of ``db`` is one of the reference's, with all of its links (whole
    datasets or nothing)."""
    snapshot = registry_snapshot(db.alias)
    assert set(snapshot["artifacts"]) <= set(reference["artifacts"])
    keys = {(a[1], a[2]) for a in snapshot["artifacts"]}
    expected = [link for link in reference["links"] if (link[1], link[2]) in keys]
    assert snapshot["links"] == expected


# --- tests -----------------------------------------------------------------------------------


def test_killed_runs_resume_to_the_registry_of_an_uninterrupted_run(
    bucket: Path, copies: Callable[[str], ln.DB], runner: Runner
) -> None:
    release = bucket / "cell-census" / OLD
    reference, resumed = copies("reference"), copies("resumed")
    for db in (reference, resumed):  # problems to report: an unknown and a deprecated term
        _unknown_and_deprecated_terms(db)
    uninterrupted = runner.start("reference", release)

    # the later runs are started ahead (imports take most of a run's time)
    pausing = ("in-dataset:4", "dataset:10", "collection:3", "step:soma")
    paused = {at: runner.start("resumed", release, pause_at=at, held=True) for at in pausing}
    last, rerun = (runner.start("resumed", release, held=True) for _ in range(2))

    def kill(at: str) -> None:
        paused[at].start()
        paused[at].kill_at_pause()

    # killed inside the 4th dataset's transaction: its artifact and first links are not kept
    kill("in-dataset:4")
    assert _n_h5ads(resumed) == 3
    run = resumed.Run.one()
    assert run.status == "started" and set(run.report["steps"]) == {"check_files", "annotate"}
    uninterrupted.finish()
    expected = registry_snapshot(reference.alias)
    assert len([a for a in expected["artifacts"] if a[9] == ".h5ad"]) == N_DATASETS
    reasons = {problem[1] for problem in expected["runs"][0][4]}
    assert {"unknown term ids", "deprecated terms"} <= reasons
    assert_version_chains(reference.alias)
    _assert_whole_datasets(resumed, expected)

    # killed after 10 more datasets were committed
    kill("dataset:10")
    assert _n_h5ads(resumed) == 13
    _assert_whole_datasets(resumed, expected)

    # the command as it is, killed (wherever it is then) once 3 more datasets are there
    runner.start("resumed", release).kill_when(lambda: _n_h5ads(resumed) >= 16)
    assert resumed.Run.one().status == "started"
    _assert_whole_datasets(resumed, expected)

    # killed inside the 3rd new collection's transaction, then after the SOMA store's
    n_collections = resumed.Collection.count()
    kill("collection:3")
    assert _n_h5ads(resumed) == N_DATASETS
    assert resumed.Collection.count() == n_collections + 2
    assert "register" in resumed.Run.one().report["steps"]
    _assert_whole_datasets(resumed, expected)
    kill("step:soma")
    assert resumed.Artifact.filter(otype="tiledbsoma").count() == 1
    assert resumed.Run.one().status == "started"

    last.start()
    out = last.finish()
    assert "resumed; steps done before: check_files, annotate, register, collections, soma" in out
    assert_same(registry_snapshot(resumed.alias), expected)
    assert_version_chains(resumed.alias)
    assert resumed.Run.one().status == "completed"

    # a rerun of the finished release writes nothing: no row added, changed or removed
    dump = table_dump(resumed.alias)
    rerun.start()
    out = rerun.finish()
    assert "already curated" in out
    assert table_dump(resumed.alias) == dump


def test_a_resumed_run_skips_the_steps_it_recorded_done(
    bucket: Path, copies: Callable[[str], ln.DB], runner: Runner
) -> None:
    """Killed after its obs scan, a run resumes from the register step: the header checks and
    the scan are not run again (they would exit the process), their outputs are read back."""
    release = bucket / "cell-census" / OLD
    db = copies("skips")
    runner.start("skips", release, pause_at="step:annotate").kill_at_pause()
    run = db.Run.one()
    assert run.status == "started" and set(run.report["steps"]) == {"check_files", "annotate"}
    assert len(run.outputs["annotate"]["counts"]) == N_DATASETS
    assert _n_h5ads(db) == 0
    forbid = "forbid:scan_store,probe_h5ad,count_obs"
    out = runner.start("skips", release, pause_at=forbid, options=("--json",)).finish()
    summary = json.loads(out)
    assert summary["resumed"] and summary["skipped_steps"] == ["check_files", "annotate"]
    assert summary["artifacts"]["added"] == N_DATASETS
    run = db.Run.one()
    assert run.status == "completed"
    assert set(run.report["steps"]) == {step.name for step in curation.steps.STEPS}


@pytest.mark.skipif(
    not on_postgres(), reason="concurrent writers need PostgreSQL (SQLite serialises writes)"
)
def test_concurrent_runs_of_two_releases(
    two_releases: list[Path], copies: Callable[[str], ln.DB], runner: Runner
) -> None:
    """Both releases start at once and register their datasets side by side (the same datasets,
    donors, features, user, storage, transform). Their later steps are interleaved on purpose:
    the new release's collections run once the old release's are committed (as they would
    sequentially: a collection's version depends on the older versions present), while the old
    release holds its SOMA store's version uncommitted; the new release's store must then wait
    for it and revise it, not start a version family of its own."""
    old_release, new_release = two_releases
    concurrent, sequential = copies("concurrent"), copies("sequential")
    in_order = runner.start("sequential", old_release)

    old = runner.start("concurrent", old_release, pause_at="version:cellxgene-census-soma")
    new = runner.start("concurrent", new_release, pause_at="step:register")
    old.wait_for_pause()
    new.wait_for_pause()
    new.resume()
    new.wait_until(lambda: blocked(concurrent), "a wait for the old release's SOMA store")
    old.resume()
    for command in (old, new):
        command.finish()
    in_order.finish()
    runner.start("sequential", new_release).finish()

    snapshot = registry_snapshot(concurrent.alias)
    assert "testuser" in snapshot["users"]
    assert len(snapshot["transforms"]) == 1 and len(snapshot["storages"]) == 1
    assert [r[2] for r in snapshot["runs"]] == ["completed", "completed"]
    assert_version_chains(concurrent.alias)
    old_artifacts, new_artifacts = (
        {a.reference: a for a in concurrent.Artifact.filter(version=tag)} for tag in (OLD, NEW)
    )
    both = old_artifacts.keys() & new_artifacts.keys()
    assert len(both) > N_DATASETS // 2
    for dataset_id in both:
        older, newer = old_artifacts[dataset_id], new_artifacts[dataset_id]
        assert not older.is_latest and newer.is_latest
        assert newer.revises_id == older.pk and newer.stem_uid == older.stem_uid
    assert_same(snapshot, registry_snapshot(sequential.alias))
