"""The harness of the curation tests that run ``curate_release`` as real processes: a launcher
that pauses or forbids chosen pipeline functions, process handles, and registry snapshots.

Interruptions are SIGKILLs: the process gets no chance to clean up. To kill it at chosen points
(inside a dataset's transaction, after N datasets, in the collections step, ...) rather than
wherever a timer happens to land, the command runs under a small launcher (``PAUSER``) that wraps
one function of the pipeline to write a marker file and wait there; the test sees the marker and
sends SIGKILL. The same launcher interleaves concurrent runs on PostgreSQL at a chosen point.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db import connections
from django.db.models import Max

import registry as ln
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

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 180  # seconds for one command (they take a few)

#: Runs ``manage.py`` (same argv) with one pipeline function wrapped to stop at a point given by
#: CURATION_PAUSE_AT: "dataset:N" (after the N-th newly registered dataset committed),
#: "in-dataset:N" (inside the N-th new dataset's transaction: its artifact row and first link
#: tables written), "collection:N" (inside the N-th new collection's transaction, members
#: added), "version:REF" (inside the transaction that saved the version with reference REF, e.g.
#: the SOMA store's), "step:NAME" (after step NAME was recorded done on the Run), "forbid:F,G"
#: (the functions F and G of curation.steps exit the process when called), or "none".
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
            if result[1] == "added":
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
        def wrapper(run, step, using, *args, **facts):
            mark(run, step, using, *args, **facts)
            if step == arg:
                pause(using)
        return wrapper

    wrap(curation.steps, "_mark", make)
elif point == "forbid":  # the named functions of curation.steps must not be called
    def make(function):
        def wrapper(*args, **kwargs):
            raise SystemExit(f"{function.__name__} was called")
        return wrapper

    for name in arg.split(","):
        wrap(curation.steps, name, make)
elif point != "none":
    raise SystemExit(f"unknown pause point {point!r}")
if os.environ.get("CURATION_START_FILE"):
    wait_for(os.environ["CURATION_START_FILE"])
manage.main(sys.argv)
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
        # the storages curation registered: those holding artifacts (every instance also has
        # its own default storage, which init records and whose root differs per instance)
        "storages": sorted(
            Storage.objects.db_manager(alias)
            .filter(artifacts__isnull=False)
            .distinct()
            .values_list("root", "type", "endpoint_url")
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
        self,
        instance: str,
        release: Path,
        pause_at: str | None = None,
        held: bool = False,
        options: tuple[str, ...] = (),
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
        argv += ["--source", f"{release}/", "--quiet", "--workers", "1", *options]
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


def blocked(db: ln.DB) -> bool:
    """Whether a session on the instance's PostgreSQL database waits for a lock."""
    with connections[db.alias].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()"
        )
        return cursor.fetchone()[0] > 0
