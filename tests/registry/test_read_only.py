"""Read-only instances: refused in Python before the database, and by the database itself.

Every test that writes opens a read-only instance on a real database — a SQLite file and a
PostgreSQL database, both in every run — that a writable instance filled once per module (records
of every kind, label links, a closure table, admin users and a group), and checks that no row of
any table changed (:func:`nothing_written`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.urls import reverse

import registry as ln
from ontologies.hierarchy import add_links, rebuild_closure, write_closure
from ontologies.models import CellType
from registry import instances
from registry.errors import InstanceConnectionError, ReadOnlyInstanceError
from tests.conftest import PG_SERVER, pg_available

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
PASSWORD = "correct horse battery staple"
BACKENDS = ["sqlite", "postgresql"]
REFUSED_BY_DATABASE = "the database refused it"

README = Path(__file__).resolve().parents[2] / "README.md"
ROLE_HEADING = "#### A read-only PostgreSQL role for a public mirror"


def readme_role_sql(role: str, password: str, database: str) -> str:
    """The README's SQL for a read-only role (its first ```sql block after the heading), with
    the role, password and database of a test."""
    text = README.read_text()
    section = text[text.index(ROLE_HEADING) :]
    start = section.index("```sql\n") + len("```sql\n")
    sql = section[start : section.index("```", start)]
    for name, value in (
        ("reader", role),
        ("'change-me'", f"'{password}'"),
        ("cellxgene", database),
    ):
        assert name in sql, f"the README's role SQL no longer names {name}"
        sql = sql.replace(name, value)
    return sql


# ---------------------------------------------------------------------------------------------
# The database: filled once per module and backend through a writable instance
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """The module's database: its URL and the alias of the writable instance that filled it
    (used to read every table before and after a test)."""

    backend: str
    url: str
    alias: str
    storage: str


def _fill(db: ln.DB) -> None:
    storage = db.Storage.get(root=db.config.storage)  # recorded by init
    feature = db.Feature.create(name="cell_type", dtype="cat[CellType]")
    cell = db.ontologies.CellType.create(name="cell", ontology_id="CL:0000000")
    t_cell = db.ontologies.CellType.create(name="T cell", ontology_id="CL:0000084")
    cd8 = db.ontologies.CellType.create(name="CD8 T cell", ontology_id="CL:0000625")
    t_cell.parents.add(cell)  # the closure table is written through the signals
    cd8.parents.add(t_cell)
    suspension = db.ULabel.create(name="SuspensionType", is_type=True)
    db.ULabel.create(name="cell", type=suspension)
    artifact = db.Artifact.create(
        key="study/a.h5ad", storage=storage, suffix=".h5ad", otype="AnnData", size=1000
    )
    artifact.labels.add([t_cell, cd8], feature=feature, n_cells={t_cell.pk: 7, cd8.pk: 3})
    collection = db.Collection.create(key="study", version="1")
    collection.artifacts.add(artifact, through_defaults={"order": 0})
    users = get_user_model().objects.db_manager(db.alias)
    admin = users.create_superuser("admin", "admin@example.org", PASSWORD)
    # a hash that Django would rewrite on login (fewer iterations than this Django uses)
    legacy_hash = PBKDF2PasswordHasher().encode(PASSWORD, "legacysalt", iterations=1000)
    users.create(username="legacy", password=legacy_hash, is_staff=True, is_superuser=True)
    curators = Group.objects.using(db.alias).create(name="curators")
    curators.permissions.add(Permission.objects.using(db.alias).first())
    admin.groups.add(curators)


def _forget_alias(alias: str) -> None:
    for conn in connections.all(initialized_only=True):
        if conn.alias == alias:
            conn.close()
            del connections[alias]
    connections.settings.pop(alias, None)
    settings.DATABASES.pop(alias, None)


@pytest.fixture(scope="module", params=BACKENDS)
def source(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, django_db_blocker: Any
) -> Iterator[Source]:
    """The module's database on one backend, filled by the writable instance ``writer-<backend>``
    (PostgreSQL: a fresh database, dropped afterwards)."""
    backend = request.param
    folder = tmp_path_factory.mktemp(f"read-only-{backend}")
    if backend == "postgresql":
        if not pg_available():
            pytest.skip(f"no PostgreSQL server at {PG_SERVER}")
        url = f"{PG_SERVER}/cellregistry_t_ro_{uuid.uuid4().hex[:10]}"
    else:
        url = f"sqlite:///{folder / 'registry.sqlite3'}"
    with pytest.MonkeyPatch.context() as patch, django_db_blocker.unblock():
        patch.setenv("CELLREGISTRY_HOME", str(folder / "home"))
        writer = ln.init(f"writer-{backend}", db=url, storage=folder / "data", make_default=False)
        _fill(writer)
    yield Source(backend, url, writer.alias, writer.config.storage)
    with django_db_blocker.unblock():
        _forget_alias(writer.alias)
        if backend == "postgresql":
            connections.close_all()
            name = instances.parse_database_url(url)["NAME"]
            with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def table_rows(alias: str) -> dict[str, list[str]]:
    """Every row of every table of the database behind ``alias`` (found by introspection)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    rows = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {quote(table)}")
            rows[table] = sorted(map(repr, cursor.fetchall()))
    return rows


@contextmanager
def nothing_written(source: Source) -> Iterator[None]:
    """Assert that the block changes no row of any table: first the counts, then the rows."""
    before = table_rows(source.alias)
    assert sum(map(len, before.values())) > 100, "the module's database should hold rows"
    yield
    after = table_rows(source.alias)
    counts_before = {table: len(rows) for table, rows in before.items()}
    assert {table: len(rows) for table, rows in after.items()} == counts_before
    changed = [table for table in before if after[table] != before[table]]
    assert not changed, f"rows changed in {changed}"


@pytest.fixture
def mirror(source: Source, isolated_instances: None) -> ln.DB:
    """The read-only instance ``mirror`` on the module's database (in this test's home)."""
    config = instances.InstanceConfig("mirror", source.url, source.storage, read_only=True)
    instances.save_instance(config)
    return ln.DB("mirror")


def refused(match: str) -> Any:
    """``pytest.raises`` for a write refused on the instance ``mirror``."""
    return pytest.raises(ReadOnlyInstanceError, match=f"^Instance 'mirror' is read-only: {match}")


# ---------------------------------------------------------------------------------------------
# Writes through the registries: refused in Python, before the database
# ---------------------------------------------------------------------------------------------
def _save(db: ln.DB) -> None:
    label = db.ULabel.get(name="cell")
    label.description = "changed"
    label.save()


def _delete_record(db: ln.DB) -> None:
    db.Artifact.get(key="study/a.h5ad").delete()


def _link_labels(db: ln.DB) -> None:
    artifact = db.Artifact.get(key="study/a.h5ad")
    artifact.labels.add(db.ontologies.CellType.get(name="cell"))


REGISTRY_WRITES: dict[str, tuple[Callable[[ln.DB], Any], str]] = {
    "save": (_save, "cannot save ULabel"),
    "create": (lambda db: db.ULabel.create(name="new"), "cannot save ULabel"),
    "update": (
        lambda db: db.ULabel.filter(name="cell").update(description="x"),
        "cannot update ULabel records",
    ),
    "queryset delete": (lambda db: db.ULabel.all().delete(), "cannot delete ULabel records"),
    "record delete": (_delete_record, r"cannot delete Artifact \d+"),
    "bulk_create": (
        lambda db: db.ULabel.bulk_create([db.ULabel.model(name="bulk")]),
        "cannot bulk-create ULabel records",
    ),
    "label links": (_link_labels, r"cannot link labels \(ArtifactCellType\)"),
}


@pytest.mark.parametrize("case", REGISTRY_WRITES)
def test_registry_writes_are_refused_before_the_database(
    mirror: ln.DB, source: Source, case: str
) -> None:
    write, message = REGISTRY_WRITES[case]
    with nothing_written(source), refused(message):
        write(mirror)


# ---------------------------------------------------------------------------------------------
# Anything else: the database refuses, reported as the same error
# ---------------------------------------------------------------------------------------------
def _cursor(db: ln.DB, sql: str) -> None:
    with connections[db.alias].cursor() as cursor:
        cursor.execute(sql)


def _save_django_user(db: ln.DB) -> None:
    user = get_user_model().objects.using(db.alias).get(username="admin")
    user.first_name = "changed"
    user.save()


DATABASE_WRITES: dict[str, tuple[Callable[[ln.DB], Any], str]] = {
    "cursor INSERT": (
        lambda db: _cursor(db, "INSERT INTO auth_group (name) VALUES ('raw')"),
        "cannot run INSERT INTO auth_group",
    ),
    "cursor UPDATE": (
        lambda db: _cursor(db, "UPDATE registry_ulabel SET description = 'raw'"),
        "cannot run UPDATE registry_ulabel",
    ),
    "cursor DELETE": (
        lambda db: _cursor(db, "DELETE FROM ontologies_celltypeclosure"),
        "cannot run DELETE FROM ontologies_celltypeclosure",
    ),
    "Manager.raw UPDATE RETURNING": (
        lambda db: list(
            db.ULabel.raw("UPDATE registry_ulabel SET description = 'raw' RETURNING *")
        ),
        "cannot run UPDATE registry_ulabel SET description = 'raw' RETURNING",
    ),
    "Manager.raw INSERT RETURNING": (
        lambda db: list(
            Group.objects.db_manager(db.alias).raw(
                "INSERT INTO auth_group (name) VALUES ('raw') RETURNING id, name"
            )
        ),
        "cannot run INSERT INTO auth_group",
    ),
    "Django user save": (_save_django_user, 'cannot run UPDATE "auth_user"'),
    "Django queryset update": (
        lambda db: get_user_model().objects.using(db.alias).update(is_active=False),
        'cannot run UPDATE "auth_user"',
    ),
    "Django queryset delete": (
        lambda db: Group.objects.using(db.alias).all().delete(),
        'cannot run DELETE FROM "auth_',
    ),
    "Django create": (
        lambda db: Group.objects.using(db.alias).create(name="new"),
        'cannot run INSERT INTO "auth_group"',
    ),
    "admin log entry": (
        lambda db: LogEntry.objects.using(db.alias).create(action_flag=1, object_repr="x"),
        'cannot run INSERT INTO "django_admin_log"',
    ),
}


@pytest.mark.parametrize("case", DATABASE_WRITES)
def test_the_database_refuses_every_other_write(mirror: ln.DB, source: Source, case: str) -> None:
    write, message = DATABASE_WRITES[case]
    with nothing_written(source), refused(message) as error:
        write(mirror)
    assert REFUSED_BY_DATABASE in str(error.value)
    assert isinstance(error.value.__cause__, Exception)  # the database's own error is kept
    # the connection is still usable for reading afterwards
    assert mirror.ULabel.filter(name="cell").exists()


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_sqlite_attach_cannot_reopen_the_file_for_writing(mirror: ln.DB, source: Source) -> None:
    path = instances.parse_database_url(source.url)["NAME"]
    with nothing_written(source), refused("cannot run ATTACH DATABASE"):
        _cursor(mirror, f"ATTACH DATABASE 'file:{path}?mode=rw' AS writable")


def test_connection_settings_of_the_read_only_instance(mirror: ln.DB, source: Source) -> None:
    entry = connections.settings[mirror.alias]
    if source.backend == "sqlite":
        assert entry["NAME"].startswith("file:/") and entry["NAME"].endswith("?mode=ro")
        # no write pragma (WAL, synchronous) and no BEGIN IMMEDIATE; the page cache as usual
        assert entry["OPTIONS"]["init_command"] == instances.SQLITE_CACHE
        assert "transaction_mode" not in entry["OPTIONS"]
        with connections[mirror.alias].cursor() as cursor:
            cursor.execute("PRAGMA cache_size")
            assert cursor.fetchone()[0] == -65536
    else:
        with connections[mirror.alias].cursor() as cursor:
            cursor.execute("SHOW default_transaction_read_only")
            assert cursor.fetchone()[0] == "on"


# ---------------------------------------------------------------------------------------------
# Many-to-many changes through any related manager, and the closure tables
# ---------------------------------------------------------------------------------------------
def _term(db: ln.DB, name: str) -> CellType:
    return db.ontologies.CellType.get(name=name)


M2M_WRITES: dict[str, tuple[Callable[[ln.DB], Any], str]] = {
    "parents.add": (
        lambda db: _term(db, "cell").parents.add(_term(db, "CD8 T cell")),
        r"cannot add CellType links of CellType \d+ \(CellType_parents\)",
    ),
    "parents.remove": (
        lambda db: _term(db, "T cell").parents.remove(_term(db, "cell")),
        r"cannot remove CellType links of CellType \d+ \(CellType_parents\)",
    ),
    "parents.set": (
        lambda db: _term(db, "T cell").parents.set([_term(db, "CD8 T cell")]),
        r"cannot remove CellType links of CellType \d+",
    ),
    "parents.clear": (
        lambda db: _term(db, "T cell").parents.clear(),
        r"cannot clear CellType links of CellType \d+",
    ),
    "children.add": (
        lambda db: _term(db, "CD8 T cell").children.add(_term(db, "cell")),
        r"cannot add CellType links of CellType \d+",
    ),
    "collection.artifacts.add": (
        lambda db: db.Collection.get(key="study").artifacts.add(
            db.Artifact.get(key="study/a.h5ad"), through_defaults={"order": 1}
        ),
        r"cannot add Artifact links of Collection \d+ \(CollectionArtifact\)",
    ),
    "user.groups.remove": (
        lambda db: (
            get_user_model()
            .objects.using(db.alias)
            .get(username="admin")
            .groups.remove(Group.objects.using(db.alias).get())
        ),
        r"cannot remove Group links of User \d+",
    ),
    "closure rebuild": (
        lambda db: rebuild_closure(CellType, db.alias),
        "cannot rebuild the closure table of CellType",
    ),
    "closure write": (
        lambda db: write_closure(CellType, db.alias, {}),
        "cannot replace the closure table of CellType",
    ),
    "closure add links": (
        lambda db: add_links(CellType, db.alias, [(1, 2)]),
        "cannot add links to the closure table of CellType",
    ),
}


@pytest.mark.parametrize("case", M2M_WRITES)
def test_related_managers_and_closure_tables_refuse(
    mirror: ln.DB, source: Source, case: str
) -> None:
    write, message = M2M_WRITES[case]
    with nothing_written(source), refused(message) as error:
        write(mirror)
    assert REFUSED_BY_DATABASE not in str(error.value)  # refused before the database


# ---------------------------------------------------------------------------------------------
# ln.DB(url)
# ---------------------------------------------------------------------------------------------
def _spellings(source: Source) -> list[str]:
    """The module's database URL, and the same database written differently."""
    if source.backend == "sqlite":
        path = Path(instances.parse_database_url(source.url)["NAME"])
        return [source.url, f"sqlite:///{path.parent}/./{path.name}"]
    name = instances.parse_database_url(source.url)["NAME"]
    return [source.url, f"postgresql://postgres:any-password@localhost:5432/{name}?sslmode=prefer"]


def test_db_of_the_url_of_a_read_only_instance_is_read_only(mirror: ln.DB, source: Source) -> None:
    # a writable instance on the same database: the read-only one still wins
    instances.save_instance(instances.InstanceConfig("writable", source.url, source.storage))
    for url in _spellings(source):
        db = ln.DB(url)
        assert (db.name, db.alias, db.config.read_only) == ("mirror", mirror.alias, True), url
        assert repr(db).startswith("DB('mirror', read-only")
        with nothing_written(source):
            with refused("cannot save ULabel"):
                db.ULabel.create(name="via url")
            with refused("cannot run INSERT INTO auth_group"):
                _cursor(db, "INSERT INTO auth_group (name) VALUES ('via url')")


def test_db_of_other_urls(tmp_path: Path, isolated_instances: None) -> None:
    def save(name: str, url: str, read_only: bool = False) -> None:
        instances.save_instance(instances.InstanceConfig(name, url, str(tmp_path), read_only))

    save("elsewhere", f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}")
    save("mirror", f"sqlite:///{tmp_path / 'other.sqlite3'}", read_only=True)
    save("broken", "mysql://root@localhost/db")  # matches nothing, and breaks nothing
    db = ln.DB(f"sqlite:///{tmp_path}/../{tmp_path.name}/elsewhere.sqlite3")
    assert (db.name, db.config.read_only) == ("elsewhere", False)
    unknown = f"sqlite:///{tmp_path / 'unknown.sqlite3'}"
    db = ln.DB(unknown)  # configured nowhere: an unnamed, writable handle
    assert (db.name, db.config.read_only) == (unknown, False)
    _cursor(db, "CREATE TABLE written (x integer)")


# ---------------------------------------------------------------------------------------------
# manage.py: flush, loaddata, createsuperuser
# ---------------------------------------------------------------------------------------------
def _manage(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "CELLREGISTRY_HOME": str(home), **env}
    environ.pop("DATABASE_URL", None)  # the instance's own database, not the test suite's
    environ.pop("CELLREGISTRY_INSTANCE", None)
    return subprocess.run(
        [sys.executable, str(MANAGE), *args, "--instance", "mirror"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def _command_arguments(command: str, tmp_path: Path) -> list[str]:
    fixture = tmp_path / "groups.json"
    fixture.write_text(
        json.dumps([{"model": "auth.group", "pk": 999, "fields": {"name": "loaded"}}])
    )
    return {
        "flush": ["flush", "--noinput"],
        "loaddata": ["loaddata", str(fixture)],
        "createsuperuser": ["createsuperuser", "--noinput"],
        "load_ontologies": ["load_ontologies", "--only", "CL"],
        "curate_release": ["curate_release", "--source", str(tmp_path / "cell-census" / "x")],
    }[command]


SUPERUSER = {
    "DJANGO_SUPERUSER_USERNAME": "intruder",
    "DJANGO_SUPERUSER_EMAIL": "intruder@example.org",
    "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
}


@pytest.mark.parametrize(
    "command", ["flush", "loaddata", "createsuperuser", "load_ontologies", "curate_release"]
)
def test_manage_py_commands_are_refused(
    mirror: ln.DB, source: Source, registry_home: Path, tmp_path: Path, command: str
) -> None:
    """manage.py refuses the commands that write before they run: one line, exit 1."""
    with nothing_written(source):
        result = _manage(registry_home, *_command_arguments(command, tmp_path), **SUPERUSER)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: Instance 'mirror' is read-only: cannot run {command}. Transfer the records into "
        "an instance of your own to change them, or set read_only = false for 'mirror' in "
        f"{registry_home / 'instances.toml'} if you administer it."
    ]


@pytest.mark.parametrize("command", ["flush", "loaddata"])
def test_the_database_refuses_the_commands_too(
    mirror: ln.DB,
    source: Source,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """The same commands run past manage.py's check (in-process, on the mirror's database
    alias) are refused by the database itself (createsuperuser's write, a user's save, is
    covered by the tests of Django's own models above)."""
    for name, value in SUPERUSER.items():
        monkeypatch.setenv(name, value)
    name, *arguments = _command_arguments(command, tmp_path)
    with nothing_written(source), pytest.raises(Exception) as refused:
        call_command(name, *arguments, database=mirror.alias, verbosity=0)
    message = str(refused.value)
    assert REFUSED_BY_DATABASE in message or "couldn't be flushed" in message, message


# ---------------------------------------------------------------------------------------------
# The admin
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def admin_client(mirror: ln.DB) -> Client:
    """A test client of the admin, whose instance (the default) is the read-only ``mirror``."""
    ln.connect("mirror")
    return Client()


@pytest.mark.parametrize("username", ["admin", "legacy"])
def test_logging_into_the_admin_writes_nothing(
    admin_client: Client, source: Source, username: str
) -> None:
    users = get_user_model().objects.using(source.alias)
    # Django would rewrite the legacy hash on login (this Django hashes with more iterations)
    rewrite = PBKDF2PasswordHasher().must_update(users.get(username=username).password)
    assert rewrite is (username == "legacy")
    with nothing_written(source):
        login = admin_client.post(
            reverse("admin:login"),
            {"username": username, "password": PASSWORD, "next": reverse("admin:index")},
        )
        assert login.status_code == 302, login.content.decode()[:2000]
        assert login.url == reverse("admin:index")
        index = admin_client.get(reverse("admin:index"))
        assert index.status_code == 200
        assert "Registries" in index.content.decode()
        labels = admin_client.get(reverse("admin:registry_ulabel_changelist"))
        assert "SuspensionType" in labels.content.decode()
        wrong = Client().post(reverse("admin:login"), {"username": "admin", "password": "no"})
        assert wrong.status_code == 200  # the form again, with its error
        assert "_auth_user_id" not in wrong.wsgi_request.session
        admin_client.post(reverse("admin:logout"))
    assert users.get(username=username).last_login is None
    # the session travels in a signed cookie, not in the database
    assert ":" in login.cookies[settings.SESSION_COOKIE_NAME].value


def test_admin_user_and_group_pages_are_view_only(admin_client: Client, source: Source) -> None:
    admin_client.post(reverse("admin:login"), {"username": "admin", "password": PASSWORD})
    user = get_user_model().objects.using(source.alias).get(username="admin")
    group = Group.objects.using(source.alias).get(name="curators")
    with nothing_written(source):
        for url in (
            reverse("admin:auth_user_changelist"),
            reverse("admin:auth_user_change", args=[user.pk]),
            reverse("admin:auth_group_changelist"),
            reverse("admin:auth_group_change", args=[group.pk]),
        ):
            assert admin_client.get(url).status_code == 200, url
        new_user = {"username": "new", "password1": PASSWORD, "password2": PASSWORD}
        refused_requests = [
            ("get", reverse("admin:auth_user_add"), {}),
            ("post", reverse("admin:auth_user_add"), new_user),
            ("post", reverse("admin:auth_user_change", args=[user.pk]), {"username": "renamed"}),
            ("post", reverse("admin:auth_user_delete", args=[user.pk]), {"post": "yes"}),
            ("get", reverse("admin:auth_user_password_change", args=[user.pk]), {}),
            (
                "post",
                reverse("admin:auth_user_password_change", args=[user.pk]),
                {"password1": "x-Y-z-12345", "password2": "x-Y-z-12345"},
            ),
            ("post", reverse("admin:auth_group_add"), {"name": "new"}),
            ("post", reverse("admin:auth_group_change", args=[group.pk]), {"name": "renamed"}),
            ("post", reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"}),
            ("post", reverse("admin:registry_ulabel_add"), {"name": "new"}),
        ]
        for method, url, data in refused_requests:
            assert getattr(admin_client, method)(url, data).status_code == 403, (method, url)
        bulk_delete = {"action": "delete_selected", "_selected_action": [user.pk]}
        admin_client.post(reverse("admin:auth_user_changelist"), bulk_delete)


def test_init_of_a_read_only_instance_on_a_migrated_database_writes_nothing(
    source: Source, isolated_instances: None
) -> None:
    with nothing_written(source):
        mirror = ln.init("mirror", db=source.url, read_only=True, make_default=False)
        assert mirror.config.read_only
        assert mirror.ULabel.filter(name="cell").exists()
        with refused("cannot save ULabel"):
            mirror.ULabel.create(name="new")


# ---------------------------------------------------------------------------------------------
# Read-only from the start: a missing database is an error, never a new empty one
# ---------------------------------------------------------------------------------------------
def test_a_missing_sqlite_file_is_not_created(tmp_path: Path, isolated_instances: None) -> None:
    path = tmp_path / "absent.sqlite3"
    instances.save_instance(
        instances.InstanceConfig("mirror", f"sqlite:///{path}", str(tmp_path), read_only=True)
    )
    with pytest.raises(InstanceConnectionError) as error:
        ln.DB("mirror")
    assert f"The SQLite file {path} of instance 'mirror' does not exist" in str(error.value)
    assert not path.exists()


# ---------------------------------------------------------------------------------------------
# The documented read-only PostgreSQL role of a public mirror
# ---------------------------------------------------------------------------------------------
def test_read_only_postgresql_role(pg_database: str, isolated_instances: None) -> None:
    writer = ln.init("owner", db=pg_database, make_default=False)
    writer.ULabel.create(name="public record")
    database = instances.parse_database_url(pg_database)["NAME"]
    role = f"cellregistry_reader_{uuid.uuid4().hex[:8]}"
    password = "reader-secret"
    with psycopg.connect(pg_database, autocommit=True) as owner:
        owner.execute(readme_role_sql(role, password, database))
    try:
        with psycopg.connect(pg_database, autocommit=True) as owner:
            owner.execute("CREATE TABLE added_later (x integer)")  # default privileges cover it
        reader_url = pg_database.replace("postgres@", f"{role}:{password}@", 1)
        with psycopg.connect(reader_url, autocommit=True) as reader:
            assert reader.execute("SELECT count(*) FROM registry_ulabel").fetchone() == (1,)
            assert reader.execute("SELECT count(*) FROM added_later").fetchone() == (0,)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                reader.execute("INSERT INTO added_later VALUES (1)")
            # switching the session setting off does not help: the role has no write privilege
            reader.execute("SET default_transaction_read_only = off")
            for sql in (
                "INSERT INTO added_later VALUES (1)",
                "UPDATE registry_ulabel SET description = 'x'",
                "CREATE TABLE mine (x integer)",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    reader.execute(sql)
        # the role as a read-only instance: init writes nothing, reads work, writes are refused
        public = ln.init("public", db=reader_url, read_only=True, make_default=False)
        assert public.ULabel.get(name="public record")
        with pytest.raises(ReadOnlyInstanceError, match="'public' is read-only: cannot save"):
            public.ULabel.create(name="not allowed")
        with connections[public.alias].cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = off")
            with pytest.raises(ReadOnlyInstanceError, match="permission denied for table"):
                cursor.execute("UPDATE registry_ulabel SET description = 'x'")
        assert writer.ULabel.get(name="public record").description == ""
    finally:
        connections.close_all()
        with psycopg.connect(pg_database, autocommit=True) as owner:
            owner.execute(f"DROP OWNED BY {role}")
            owner.execute(f"DROP ROLE {role}")


# ---------------------------------------------------------------------------------------------
# Connection settings and database URLs (no database needed)
# ---------------------------------------------------------------------------------------------
def test_read_only_sqlite_settings_quote_the_path() -> None:
    entry = instances.database_settings(
        instances.InstanceConfig("m", "sqlite:////data/my mirror#1?.sqlite3", "/s", True)
    )
    assert entry["NAME"] == "file:/data/my%20mirror%231%3F.sqlite3?mode=ro"
    assert entry["OPTIONS"] == {"timeout": 30, "init_command": instances.SQLITE_CACHE}
    assert instances.sqlite_path(entry["NAME"]) == "/data/my mirror#1?.sqlite3"
    writable = instances.database_settings(
        instances.InstanceConfig("m", "sqlite:////data/m.sqlite3", "/s")
    )
    assert writable["NAME"] == "/data/m.sqlite3"
    assert writable["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert (writable["INSTANCE"], writable["READ_ONLY"], writable["STORAGE"]) == ("m", False, "/s")


def test_read_only_postgresql_settings_keep_the_urls_options() -> None:
    url = "postgresql://u@h/db?options=-c%20search_path%3Dmirror&sslmode=require"
    entry = instances.database_settings(instances.InstanceConfig("m", url, "/s", True))
    assert entry["OPTIONS"] == {
        "connect_timeout": "10",
        "prepare_threshold": instances.PG_PREPARE_THRESHOLD,
        "options": "-c search_path=mirror -c default_transaction_read_only=on",
        "sslmode": "require",
    }
    plain = instances.database_settings(instances.InstanceConfig("m", "postgresql://u@h/db", "/"))
    assert plain["OPTIONS"] == {"connect_timeout": "10", "prepare_threshold": 5}


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("postgresql://u:a@localhost/db", "postgres://u:b@127.0.0.1:5432/db?sslmode=require", True),
        ("postgresql://u@localhost/db", "postgresql://u@localhost/other", False),
        ("postgresql://u@localhost/db", "postgresql://v@localhost/db", False),
        ("postgresql://u@localhost/db", "postgresql://u@localhost:5433/db", False),
        ("postgresql://u@db.example.org/db", "postgresql://u@DB.example.org/db", True),
        ("sqlite:////tmp/x/../m.sqlite3", "sqlite:////tmp/m.sqlite3", True),
        ("sqlite:////tmp/m.sqlite3", "postgresql://u@localhost/m", False),
    ],
)
def test_database_identity(first: str, second: str, same: bool) -> None:
    assert (instances.database_identity(first) == instances.database_identity(second)) is same
