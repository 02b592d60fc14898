"""``curate_release`` is resumable, idempotent and safe to run concurrently (issue 5, points 6
and 7).

The commands run as real processes (``manage.py --instance NAME curate_release``), each instance
a copy of the session's ontology template. Interruptions are SIGKILLs: the process gets no chance
to clean up. To kill it at chosen points (inside a dataset's transaction, after N datasets, in
the collections step, ...) rather than wherever a timer happens to land, the command runs under a
small launcher (``PAUSER``) that wraps one function of the pipeline to write a marker file and
wait there; the test sees the marker and sends SIGKILL. One interruption uses the unmodified
command, killed once the registry shows that it registered some datasets. The same launcher
interleaves two concurrent runs on PostgreSQL at a chosen point.

Registries are compared through :func:`registry_snapshot`: every record and link by natural keys
(artifact key + version, ontology id, ULabel type + name, feature name), never by uid, pk or
timestamp, so two databases curated differently must hold the same snapshot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db import connections
from django.db.models import Max

import registry as ln
from demo.census.release import build_release
from registry.models import (
    Artifact,
    Collection,
    CollectionArtifact,
    Feature,
    Run,
    Storage,
    Transform,
    ULabel,
    User,
)
from tests.conftest import _pg_admin, on_postgres
from tests.curation.conftest import copy_database

REPO = Path(__file__).resolve().parents[2]
OLD, NEW = "2024-07-01", "2025-01-30"
N_DATASETS, CELLS = 40, 100
TIMEOUT = 180  # seconds for one command (they take a few)

#: Runs ``manage.py`` (same argv) with one pipeline function wrapped to stop at a point given by
#: CURATION_PAUSE_AT: "dataset:N" (after the N-th newly registered dataset committed),
#: "in-dataset:N" (inside the N-th new dataset's transaction: its artifact row and first link
#: tables written), "collection:N" (inside the N-th new collection's transaction, members
#: added), "version:REF" (inside the transaction that saved the version with reference REF, e.g.
#: the SOMA store's), "step:NAME" (after step NAME was recorded done on the Run), or "none".
#: There it writes the file CURATION_PAUSE_MARKER and waits for MARKER.go (killed before, or
#: continuing then). With CURATION_START_FILE it imports everything, then waits for that file
#: before running the command (so a process can be started ahead, while the previous one runs).
PAUSER = r"""
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.getcwd())
os.environ["CELLREGISTRY_INSTANCE"] = sys.argv[sys.argv.index("--instance") + 1]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
import django

django.setup()
from django.db import connections

import curation.collections
import curation.management.commands.curate_release
import curation.register
import curation.steps
import manage

point, _, arg = os.environ["CURATION_PAUSE_AT"].partition(":")


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.01)


def pause(using):
    assert point in ("step", "dataset") or connections[using].in_atomic_block
    marker = os.environ["CURATION_PAUSE_MARKER"]
    with open(marker, "w") as file:
        file.write(point)
    wait_for(marker + ".go")


def wrap(module, name, make):
    setattr(module, name, make(getattr(module, name)))  # AttributeError if the code moved


if point == "dataset":
    new = []

    def make(register_dataset):
        def wrapper(*args, **kwargs):
            result = register_dataset(*args, **kwargs)
            if result[0] is not None:
                new.append(result[0].pk)
                if len(new) == int(arg):
                    pause(kwargs.get("using") or args[-1])
            return result
        return wrapper

    wrap(curation.steps, "register_dataset", make)
elif point == "in-dataset":
    calls = Counter()

    def make(insert_links):
        def wrapper(through, rows, using):
            rows = list(rows)
            insert_links(through, rows, using)
            calls[rows[0][0]] += 1
            if len(calls) == int(arg) and calls[rows[0][0]] == 2:
                pause(using)
        return wrapper

    wrap(curation.register, "insert_links", make)
elif point == "collection":
    added = []

    def make(add_members):
        def wrapper(collection, artifacts, using):
            add_members(collection, artifacts, using)
            added.append(collection.pk)
            if len(added) == int(arg):
                pause(using)
        return wrapper

    wrap(curation.collections, "_add_members", make)
elif point == "version":
    def make(save_version):
        def wrapper(record, family, using):
            save_version(record, family, using)
            if record.reference == arg:
                pause(using)
        return wrapper

    wrap(curation.collections, "save_version", make)
elif point == "step":
    def make(mark):
        def wrapper(run, step, using, **facts):
            mark(run, step, using, **facts)
            if step == arg:
                pause(using)
        return wrapper

    wrap(curation.steps, "_mark", make)
elif point != "none":
    raise SystemExit(f"unknown pause point {point!r}")
if os.environ.get("CURATION_START_FILE"):
    wait_for(os.environ["CURATION_START_FILE"])
manage.main()
"""


# --- snapshots -------------------------------------------------------------------------------


def _release(record: Any) -> str | None:
    """The release of the run that created ``record`` (runs compared by what they curated)."""
    return record.run.params.get("release") if record.run_id else None


def _families(records: list[Any]) -> dict[str, tuple]:
    """uid stem -> the (version, key) of the family's oldest member: a family id that does not
    depend on the random uids."""
    first: dict[str, tuple] = {}
    for record in sorted(records, key=lambda r: (r.version or "", r.key)):
        first.setdefault(record.stem_uid, (record.version, record.key))
    return first


def _assert_unique(name: str, rows: list[tuple], key: Callable[[tuple], Any]) -> None:
    repeated = [k for k, n in Counter(key(r) for r in rows).items() if n > 1]
    assert not repeated, f"duplicate {name}: {repeated[:5]}"


def _artifacts(alias: str) -> list[tuple]:
    records = list(
        Artifact.objects.db_manager(alias).select_related("storage", "revises", "run", "created_by")
    )
    family = _families(records)
    rows = [
        (
            a.storage.root,
            a.key,
            a.version,
            a.is_latest,
            (a.revises.key, a.revises.version) if a.revises_id else None,
            family[a.stem_uid],
            a.reference,
            a.reference_type,
            a.reference_version,
            a.suffix,
            a.otype,
            a.size,
            a.hash,
            a.hash_type,
            a.n_observations,
            a.description,
            a.created_by.handle if a.created_by_id else None,
            _release(a),
        )
        for a in records
    ]
    _assert_unique("artifacts", rows, lambda r: r[:3])
    return sorted(rows, key=repr)


def _links(alias: str) -> list[tuple]:
    rows = []
    for relation in Artifact.label_relations():
        manager = relation.through.objects.db_manager(alias)
        label = (
            ("label__type__name", "label__name")
            if relation.registry is ULabel
            else ("label__ontology_id",)
        )
        values = manager.values_list(
            "artifact__key",
            "artifact__version",
            *label,
            "feature__name",
            "n_cells",
            "n_primary_cells",
        )
        rows += [(relation.name, *v) for v in values]
        keys = ("artifact_id", "label_id", "feature_id")
        distinct = manager.order_by().values_list(*keys).distinct().count()
        assert distinct == manager.count(), f"duplicate {relation.name} links"
    _assert_unique("links", rows, lambda r: r[:-2])
    return sorted(rows, key=repr)


def _collections(alias: str) -> list[tuple]:
    records = list(Collection.objects.db_manager(alias).select_related("revises", "run"))
    members = defaultdict(list)
    for collection_id, order, key, version in (
        CollectionArtifact.objects.db_manager(alias)
        .order_by("collection_id", "order")
        .values_list("collection_id", "order", "artifact__key", "artifact__version")
    ):
        members[collection_id].append((order, key, version))
    family = _families(records)
    rows = [
        (
            c.key,
            c.version,
            c.is_latest,
            c.revises.version if c.revises_id else None,
            family[c.stem_uid],
            c.reference,
            c.reference_type,
            c.doi,
            c.description,
            tuple(members[c.pk]),
            _release(c),
        )
        for c in records
    ]
    _assert_unique("collections", rows, lambda r: r[:2])
    _assert_unique("collection versions", rows, lambda r: (r[5], r[1]) if r[5] else r)
    return sorted(rows, key=repr)


def _runs(alias: str) -> list[tuple]:
    rows = []
    for run in Run.objects.db_manager(alias).select_related("transform"):
        problems = sorted(
            (p["dataset_id"], p["reason"], p["column"], tuple(p["values"]))
            for p in run.report.get("problems", [])
        )
        steps = sorted(run.report.get("steps", {}))
        release = run.params.get("release")
        rows.append((run.transform.key, release, run.status, tuple(steps), tuple(problems)))
    return sorted(rows, key=repr)


def registry_snapshot(alias: str) -> dict[str, list]:
    """Everything curation writes, by natural keys (no uid, pk or timestamp), sorted; asserts on
    the way that no record or link is duplicated."""
    ulabels = sorted(
        ULabel.objects.db_manager(alias).values_list(
            "type__name", "name", "is_type", "description"
        ),
        key=repr,
    )
    _assert_unique("ulabels", ulabels, lambda r: r[:2])
    return {
        "artifacts": _artifacts(alias),
        "links": _links(alias),
        "collections": _collections(alias),
        "ulabels": ulabels,
        "features": sorted(Feature.objects.db_manager(alias).values_list("name", "dtype")),
        "storages": sorted(
            Storage.objects.db_manager(alias).values_list("root", "type", "endpoint_url")
        ),
        "users": sorted(User.objects.db_manager(alias).values_list("handle", flat=True)),
        "transforms": sorted(Transform.objects.db_manager(alias).values_list("key", "version")),
        "runs": _runs(alias),
    }


def assert_same(actual: dict[str, list], expected: dict[str, list]) -> None:
    """Snapshots are equal; otherwise fail naming the section and the rows that differ."""
    assert actual.keys() == expected.keys()
    for name, rows in expected.items():
        if actual[name] != rows:
            missing = [r for r in rows if r not in actual[name]]
            extra = [r for r in actual[name] if r not in rows]
            pytest.fail(f"{name} differ:\nmissing: {missing[:6]}\nextra: {extra[:6]}")


def table_dump(alias: str) -> dict[str, Any]:
    """Every row of every registry table, all columns (pks, uids and timestamps included), and
    the row count and largest pk of every ontology table: equal dumps = no row changed."""
    dump: dict[str, Any] = {}
    for model in apps.get_app_config("registry").get_models(include_auto_created=True):
        rows = model._base_manager.db_manager(alias).order_by("pk").values_list()
        dump[model._meta.label] = list(rows)
    for model in apps.get_app_config("ontologies").get_models(include_auto_created=True):
        manager = model._base_manager.db_manager(alias)
        dump[model._meta.label] = (manager.count(), manager.aggregate(m=Max("pk"))["m"])
    return dump


def assert_version_chains(alias: str) -> None:
    """Versions of artifacts and collections form one family (uid stem) per dataset, collection
    or store; in a family the versions are distinct, only the newest is latest, and each
    version revises the one before it."""
    for model in (Artifact, Collection):
        families: dict[str, list] = defaultdict(list)
        stems: dict[tuple, set[str]] = defaultdict(set)
        for record in model.objects.db_manager(alias).exclude(version=None):
            families[record.stem_uid].append(record)
            stems[(record.reference_type, record.reference or record.key)].add(record.stem_uid)
        split = {identity: len(s) for identity, s in stems.items() if len(s) > 1}
        assert not split, f"{model.__name__}s in several version families: {split}"
        for members in families.values():
            members.sort(key=lambda r: r.version)
            where = f"{model.__name__} {members[-1].key}"
            assert len({m.version for m in members}) == len(members), where
            assert [m.is_latest for m in members] == [False] * (len(members) - 1) + [True], where
            assert [m.revises_id for m in members] == [None] + [m.pk for m in members[:-1]], where


# --- processes -------------------------------------------------------------------------------


@dataclass
class Command:
    """A ``curate_release`` process, its output files and pause files."""

    process: subprocess.Popen
    stdout: Path
    stderr: Path
    marker: Path | None = None
    start_file: Path | None = None

    def output(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()}"

    def start(self) -> None:
        """Let a process started ahead (``held``) run the command."""
        assert self.start_file is not None
        self.start_file.touch()

    def finish(self) -> str:
        """Wait for the end; its stdout (fails unless the exit status is 0, or IntegrityError
        shows in stderr)."""
        self.process.wait(timeout=TIMEOUT)
        assert self.process.returncode == 0, self.output()
        assert "IntegrityError" not in self.stderr.read_text(), self.output()
        return self.stdout.read_text()

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Poll ``condition()``; fails if the process ends or time runs out first."""
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            assert self.process.poll() is None, f"ended before {what}\n{self.output()}"
            assert time.monotonic() < deadline, f"{what} not reached\n{self.output()}"
            time.sleep(0.01)

    def wait_for_pause(self) -> None:
        """Wait until the process reached its pause point."""
        assert self.marker is not None
        self.wait_until(self.marker.exists, f"pause point {self.marker.name}")

    def resume(self) -> None:
        """Let a paused process go on."""
        assert self.marker is not None
        self.marker.with_name(self.marker.name + ".go").touch()

    def kill_when(self, condition: Callable[[], bool]) -> None:
        """SIGKILL once ``condition()`` holds."""
        self.wait_until(condition, "the kill point")
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=TIMEOUT)
        assert self.process.returncode == -signal.SIGKILL, self.output()

    def kill_at_pause(self) -> None:
        """SIGKILL once the process reached its pause point."""
        self.wait_for_pause()
        self.kill_when(lambda: True)


class Runner:
    """Starts ``manage.py --instance NAME curate_release`` processes (``--quiet --workers 1``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pauser = folder / "pauser.py"
        self.pauser.write_text(PAUSER)
        self.count = 0
        self.commands: list[Command] = []

    def start(
        self, instance: str, release: Path, pause_at: str | None = None, held: bool = False
    ) -> Command:
        """Start the command; ``pause_at`` (see PAUSER) runs it under the pauser; ``held`` starts
        the process but lets it run the command only on ``Command.start()``."""
        self.count += 1
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "CELLREGISTRY_INSTANCE", "DJANGO_SETTINGS_MODULE"}
        }
        script, marker, start_file = "manage.py", None, None
        if pause_at is not None or held:
            script, marker = str(self.pauser), self.folder / f"paused-{self.count}"
            env.update(CURATION_PAUSE_AT=pause_at or "none", CURATION_PAUSE_MARKER=str(marker))
        if held:
            start_file = self.folder / f"start-{self.count}"
            env["CURATION_START_FILE"] = str(start_file)
        argv = [sys.executable, script, "--instance", instance, "curate_release"]
        argv += ["--source", f"{release}/", "--quiet", "--workers", "1"]
        stdout = self.folder / f"run-{self.count}.out"
        stderr = self.folder / f"run-{self.count}.err"
        with stdout.open("w") as out, stderr.open("w") as err:
            process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=err)
        self.commands.append(Command(process, stdout, stderr, marker, start_file))
        return self.commands[-1]

    def close(self) -> None:
        """Kill the processes still running (a failed test leaves held or paused ones)."""
        for command in self.commands:
            if command.process.poll() is None:
                command.process.kill()
                command.process.wait(timeout=TIMEOUT)


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


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    """Starts curation processes; kills those left running at the end."""
    started = Runner(tmp_path)
    yield started
    started.close()


@pytest.fixture
def copies(
    ontology_template: str, isolated_instances: None, tmp_path: Path
) -> Iterator[Callable[[str], ln.DB]]:
    """Makes named instances, each a copy of the ontology template (dropped afterwards)."""
    urls = []

    def make(name: str) -> ln.DB:
        url = copy_database(ontology_template, tmp_path)
        urls.append(url)
        return ln.init(name, db=url, make_default=False)

    yield make
    connections.close_all()
    for url in urls:
        if url.startswith("postgresql"):
            with _pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


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
    assert run.status == "started" and run.report["steps"].keys() == {"manifest", "annotate"}
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
    assert f"added 0 artifacts, {N_DATASETS} already there" in out
    assert_same(registry_snapshot(resumed.alias), expected)
    assert_version_chains(resumed.alias)
    assert resumed.Run.one().status == "completed"

    # a rerun of the finished release writes nothing: no row added, changed or removed
    dump = table_dump(resumed.alias)
    rerun.start()
    out = rerun.finish()
    assert "already curated" in out
    assert table_dump(resumed.alias) == dump


def _blocked(db: ln.DB) -> bool:
    """Whether a session on the instance's PostgreSQL database waits for a lock."""
    with connections[db.alias].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


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
    new.wait_until(lambda: _blocked(concurrent), "a wait for the old release's SOMA store")
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
