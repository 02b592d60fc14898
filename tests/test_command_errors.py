"""``manage.py`` ends every failure in one line on stderr and exit status 1, never a traceback
(:mod:`registry.commandline`): a database that cannot be reached, does not exist or is not
migrated (checked before the command runs), a malformed release tag, a destination that cannot
be written, an S3 bucket that does not exist, and database or S3 errors that escape a command.

The commands run as real processes (``manage.py --instance NAME ...``) with their own
``CELLREGISTRY_HOME`` and without ``DATABASE_URL``; they do not use the suite's test database,
so they run in the SQLite pass only. The classification of real driver errors
(:mod:`registry.database_errors`, :mod:`registry.s3_errors`) is tested in-process, on both.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from registry import instances
from registry.commandline import DatabaseNeed, database_need, explain
from registry.database_errors import Problem, classify, translate
from tests.conftest import PG_SERVER, _pg_admin, pg_available
from tests.demo_runs import run
from tests.s3 import s3_client

subprocesses = pytest.mark.skipif(
    "postgresql" in os.environ.get("DATABASE_URL", ""),
    reason="manage.py runs in subprocesses on instances of its own: covered by the SQLite pass",
)
needs_pg = pytest.mark.skipif(not pg_available(), reason=f"no PostgreSQL server at {PG_SERVER}")

#: the project's commands that use the database, and Django's, with arguments that would work
DATABASE_COMMANDS = {
    command.split()[0]: command.split()
    for command in (
        "curate_release --source /nowhere/cell-census/2025-01-30/",
        "release_diff 2024-07-01 2025-01-30",
        "load_ontologies --only CL",
        "createsuperuser --noinput --username ada --email ada@example.org",
        "loaddata users.json",
        "flush --noinput",
    )
}


def error_line(result: subprocess.CompletedProcess, *names: str) -> str:
    """The one line a failed command printed; checks exit status 1, no traceback, one non-blank
    line on stderr, and that the line names every one of ``names``."""
    command = " ".join(result.args[2:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, f"{command}: exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr, f"{command}:\n{result.stderr}"
    assert len(lines) == 1, f"{command}: {len(lines)} lines on stderr:\n{result.stderr}"
    for name in names:
        assert name in lines[0], f"{command}: {name!r} not in {lines[0]!r}"
    return lines[0]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add_instance(name: str, db: str, tmp_path: Path) -> None:
    """Record an instance in the test's home (``$CELLREGISTRY_HOME``)."""
    config = instances.InstanceConfig(name=name, db=db, storage=str(tmp_path / f"{name}-data"))
    instances.save_instance(config)


@pytest.fixture
def empty_pg_database(pg_database: str) -> str:
    """The URL of a PostgreSQL database that exists and has no tables (dropped afterwards)."""
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{pg_database.rsplit("/", 1)[1]}"')
    return pg_database


# --- the database, checked before a command runs ---------------------------------------------


def _unreachable(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    port = closed_port()
    add_instance("down", f"postgresql://postgres:s3cret@127.0.0.1:{port}/registry", tmp_path)
    return "down", [
        f"Cannot connect to PostgreSQL at 127.0.0.1:{port}",
        f"postgresql://postgres:***@127.0.0.1:{port}/registry",
        "Check that the server is running",
    ]


def _pg_missing(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    url = request.getfixturevalue("pg_database")  # a name the server does not have
    add_instance("nodb", url, tmp_path)
    name = url.rsplit("/", 1)[1]
    return "nodb", [f"has no database {name!r}", url, f"createdb {name}", "--instance nodb"]


def _sqlite_missing(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    path = tmp_path / "missing" / "lab.sqlite3"
    add_instance("lab", f"sqlite:///{path}", tmp_path)
    return "lab", [f"The SQLite file {path}", "does not exist", "migrate --instance lab"]


def _sqlite_unmigrated(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()  # an empty database
    add_instance("bare", f"sqlite:///{path}", tmp_path)
    return "bare", [f"sqlite:///{path}", "is not migrated", "migrate --instance bare"]


def _pg_unmigrated(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    url = request.getfixturevalue("empty_pg_database")
    add_instance("pgbare", url, tmp_path)
    return "pgbare", [url, "is not migrated", "migrate --instance pgbare"]


DATABASE_CASES = {
    "unreachable-postgresql": _unreachable,
    "missing-postgresql-database": _pg_missing,
    "missing-sqlite-file": _sqlite_missing,
    "unmigrated-sqlite": _sqlite_unmigrated,
    "unmigrated-postgresql": _pg_unmigrated,
}


@subprocesses
@pytest.mark.parametrize("case", list(DATABASE_CASES))
def test_database_problems_are_one_line_for_every_command(
    case: str, tmp_path: Path, registry_home: Path, request: pytest.FixtureRequest
) -> None:
    instance, expected = DATABASE_CASES[case](tmp_path, request)
    for name, args in DATABASE_COMMANDS.items():
        result = run(registry_home, *args, "--instance", instance)
        line = error_line(result, f"'{instance}'", *expected)
        assert line.startswith("error: "), f"{name}: {line}"
        assert "s3cret" not in line  # passwords never show
    assert not (tmp_path / "missing").exists()  # the check created no SQLite file


@pytest.fixture
def migrated_sqlite(tmp_path: Path, registry_home: Path) -> Path:
    """An instance 'lab' whose SQLite file ``migrate`` created (it is not blocked)."""
    path = tmp_path / "lab" / "lab.sqlite3"
    path.parent.mkdir()
    add_instance("lab", f"sqlite:///{path}", tmp_path)
    migrated = run(registry_home, "migrate", "--instance", "lab")
    assert migrated.returncode == 0, migrated.stderr
    return path


@subprocesses
def test_a_migrated_instance_passes_the_check(migrated_sqlite: Path, registry_home: Path) -> None:
    """On the instance ``migrate`` made, the command itself runs and answers (here: no curated
    releases, in its own one-line error); a malformed tag is refused before any query."""
    diff = run(registry_home, "release_diff", "2024-07-01", "2025-01-30", "--instance", "lab")
    line = error_line(diff, "No curated datasets of release '2024-07-01' and '2025-01-30'")
    assert line.startswith("CommandError: ") and "instance 'lab'" in line
    bad_tag = run(registry_home, "release_diff", "../x", "2025-01-30", "--instance", "lab")
    error_line(bad_tag, "Invalid old release tag '../x'", "starting with a letter or a digit")


@subprocesses
def test_a_missing_table_that_escapes_a_command_is_one_line(
    migrated_sqlite: Path, registry_home: Path
) -> None:
    """The backstop: a database error no check foresaw (a table dropped after migrating)."""
    with sqlite3.connect(migrated_sqlite) as db:
        db.execute("DROP TABLE auth_user")
    result = run(registry_home, *DATABASE_COMMANDS["createsuperuser"], "--instance", "lab")
    line = error_line(result, "instance 'lab'", f"sqlite:///{migrated_sqlite}")
    assert "is not migrated (no such table: auth_user)" in line
    assert "`python manage.py migrate --instance lab`" in line
    shown = run(
        registry_home,
        *DATABASE_COMMANDS["createsuperuser"],
        "--instance",
        "lab",
        CELLREGISTRY_TRACEBACK="1",
    )
    assert shown.returncode != 0 and "Traceback" in shown.stderr  # for debugging, on request
    assert "no such table: auth_user" in shown.stderr


@subprocesses
@needs_pg
def test_a_database_refusing_writes_is_reported_as_read_only(
    empty_pg_database: str, tmp_path: Path, registry_home: Path
) -> None:
    """``migrate`` runs on an unmigrated PostgreSQL database; the same database opened in
    read-only sessions then refuses a command's write, reported in one line."""
    add_instance("pg", empty_pg_database, tmp_path)
    migrated = run(registry_home, "migrate", "--instance", "pg")
    assert migrated.returncode == 0, migrated.stderr
    read_only_url = f"{empty_pg_database}?options=-c%20default_transaction_read_only%3Don"
    add_instance("replica", read_only_url, tmp_path)
    result = run(registry_home, *DATABASE_COMMANDS["createsuperuser"], "--instance", "replica")
    line = error_line(result, "Instance 'replica' is read-only", empty_pg_database)
    assert "the database refused it: cannot execute INSERT in a read-only transaction" in line


@subprocesses
def test_commands_that_need_no_database_are_not_blocked(
    tmp_path: Path, registry_home: Path, request: pytest.FixtureRequest
) -> None:
    """The default instance's server is down: help, --help and build_demo_release still run."""
    _unreachable(tmp_path, request)
    instances.set_default("down")
    for args in [("help",), ("curate_release", "--help")]:
        result = run(registry_home, *args)
        assert result.returncode == 0, result.stderr
        assert "Cannot connect" not in result.stderr
    dest = tmp_path / "bucket"
    built = run(registry_home, "build_demo_release", "--tag", "../x", "--dest", str(dest))
    error_line(built, "Invalid release tag '../x'", "(e.g. 2025-01-30)")
    assert not dest.exists()


@subprocesses
def test_an_unknown_instance_is_one_line(registry_home: Path) -> None:
    result = run(registry_home, "flush", "--noinput", "--instance", "nope")
    line = error_line(result, "Unknown instance 'nope'", "registry.init('nope'")
    assert line.startswith("error: ")


# --- build_demo_release: tag and destination, checked before anything is written -------------


@subprocesses
def test_build_demo_release_refuses_bad_tags_and_unwritable_destinations(
    tmp_path: Path, registry_home: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    dest = tmp_path / "bucket"
    build = ("build_demo_release", "--dest")
    bad_tag = run(registry_home, *build, str(dest), "--tag", "../x")
    error_line(bad_tag, "Invalid release tag '../x'", "letters, digits")
    bad_previous = run(registry_home, *build, str(dest), "--tag", "b", "--previous", "a/..")
    error_line(bad_previous, "Invalid previous release tag 'a/..'")
    under_a_file = run(registry_home, *build, str(blocker / "sub"), "--tag", "t1")
    where = f"Cannot write a release to {blocker / 'sub'}: Not a directory"
    error_line(under_a_file, where, "Choose a folder")
    on_proc = run(registry_home, *build, "/proc/cellregistry", "--tag", "t1")
    error_line(on_proc, "Cannot write a release to /proc/cellregistry")
    assert not dest.exists()


@subprocesses
def test_build_demo_release_refuses_a_bucket_that_does_not_exist(
    s3_server: str, tmp_path: Path, registry_home: Path
) -> None:
    bucket = f"cr-missing-{uuid.uuid4().hex[:12]}"
    result = run(
        registry_home, "build_demo_release", "--tag", "2025-01-30", "--dest", f"s3://{bucket}/x"
    )
    error_line(
        result,
        f"Cannot write a release to s3://{bucket}/x: S3 bucket '{bucket}' does not exist",
        s3_server,
    )
    assert bucket not in [b["Name"] for b in s3_client(s3_server).list_buckets()["Buckets"]]


# --- what each command needs, and the classification of real errors (in-process) -------------


def test_commands_say_what_they_need_of_the_database() -> None:
    assert database_need("release_diff") is DatabaseNeed.MIGRATED
    assert database_need("load_ontologies") is DatabaseNeed.WRITABLE
    assert database_need("curate_release") is DatabaseNeed.WRITABLE
    assert database_need("demo") is DatabaseNeed.NONE  # it opens instances of its own
    assert database_need("build_demo_release") is DatabaseNeed.NONE
    assert database_need("migrate") is DatabaseNeed.REACHABLE
    assert database_need("flush") is DatabaseNeed.WRITABLE
    assert database_need("dumpdata") is DatabaseNeed.MIGRATED
    assert database_need("makemigrations") is DatabaseNeed.NONE
    assert database_need("no-such-command") is DatabaseNeed.NONE  # Django says it is unknown


def _driver_error(url: str, sql: str | None = None, **options: str) -> psycopg.Error:
    try:
        with psycopg.connect(url, connect_timeout=5, **options) as conn:
            conn.execute(sql or "SELECT 1")
    except psycopg.Error as exc:
        return exc
    raise AssertionError(f"no error from {url} {sql}")


@needs_pg
def test_postgresql_errors_are_classified() -> None:
    port = closed_port()
    assert classify(_driver_error(f"postgresql://postgres@127.0.0.1:{port}/x")) is (
        Problem.CONNECTION
    )
    missing = _driver_error(f"{PG_SERVER}/cellregistry_no_{uuid.uuid4().hex[:8]}")
    assert classify(missing) is Problem.NO_DATABASE
    nobody = PG_SERVER.replace("postgres@", f"nobody_{uuid.uuid4().hex[:6]}@")
    assert classify(_driver_error(f"{nobody}/postgres")) is Problem.LOGIN
    admin = f"{PG_SERVER}/postgres"
    read_only = _driver_error(
        admin, "CREATE TABLE t (x int)", options="-c default_transaction_read_only=on"
    )
    assert classify(read_only) is Problem.READ_ONLY
    assert classify(_driver_error(admin, "SELECT * FROM no_such_table")) is Problem.NOT_MIGRATED
    assert classify(_driver_error(admin, "SELECT 'a' ~ '('")) is Problem.USER_INPUT
    assert classify(_driver_error(admin, "SELECT 1/0")) is Problem.USER_INPUT
    assert classify(_driver_error(admin, "SELEC 1")) is Problem.OTHER


def test_sqlite_errors_are_classified(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    sqlite3.connect(path).close()
    errors = {}
    for name, url, sql in [
        ("read-only", f"file:{path}?mode=ro", "CREATE TABLE t (x int)"),
        ("cannot-open", f"file:{tmp_path / 'no' / 'db.sqlite3'}?mode=rw", "SELECT 1"),
        ("no-table", f"file:{path}", "SELECT * FROM registry_artifact"),
        ("like", f"file:{path}", f"SELECT 'a' LIKE '{'x' * 60_000}'"),
        ("syntax", f"file:{path}", "SELEC 1"),
    ]:
        try:
            sqlite3.connect(url, uri=True).execute(sql)
        except sqlite3.Error as exc:
            errors[name] = exc
    assert {name: classify(exc) for name, exc in errors.items()} == {
        "read-only": Problem.READ_ONLY,
        "cannot-open": Problem.CONNECTION,
        "no-table": Problem.NOT_MIGRATED,
        "like": Problem.USER_INPUT,
        "syntax": Problem.OTHER,
    }
    message = explain(errors["read-only"])
    assert message.startswith("Instance 'default' is read-only: cannot write to its database ")
    assert "(the database refused it: attempt to write a readonly database)" in message
    assert str(translate(errors["no-table"])).endswith(
        "is not migrated (no such table: registry_artifact): run "
        "`python manage.py migrate --instance default`."
    )


def test_s3_errors_escaping_a_command_are_one_line(s3_server: str) -> None:
    bucket = f"cr-missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as missing:
        s3_client(s3_server).list_objects_v2(Bucket=bucket)
    assert explain(missing.value) == (
        f"S3 bucket {bucket!r} does not exist at {s3_server}: create it, or check the bucket "
        "name and the endpoint (AWS_ENDPOINT_URL)."
    )
    nowhere = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(EndpointConnectionError) as unreachable:
        s3_client(nowhere, retries={"max_attempts": 0}).list_objects_v2(Bucket=bucket)
    message = explain(unreachable.value)
    assert message.startswith(
        f'Cannot reach S3: Could not connect to the endpoint URL: "{nowhere}/'
    )
    assert message.endswith("Check the endpoint (AWS_ENDPOINT_URL) and the network.")


def test_errors_of_unknown_kinds_keep_their_traceback() -> None:
    assert explain(KeyError("bug")) is None
