"""Per-database-alias facts and guards: instance name, read-only check, reachability, user.

Every open instance is a Django database alias whose settings carry ``INSTANCE`` (name),
``READ_ONLY`` and ``STORAGE``; these helpers read them. They sit below the query layer, so both
the models and the query code can use them.

A read-only instance is guarded twice. In Python, :func:`check_writable` refuses a write before
it reaches the database (record and queryset writes, link inserts, many-to-many changes through
any related manager: :func:`refuse_many_to_many_change`). In the database, the connection itself
is read-only (:func:`registry.instances.read_only_connection`), so raw SQL, Django's own models
and commands are refused too; :func:`guard_read_only_connection` turns that refusal into the same
:class:`~registry.errors.ReadOnlyInstanceError`.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.apps import apps
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

import registry.instances as instances
from registry.errors import ReadOnlyInstanceError

_user_ids: dict[tuple[str, str], int] = {}
#: SQLSTATEs of PostgreSQL's refusals on a read-only instance: a write in a read-only
#: transaction, and a write the (read-only) role has no privilege for
_PG_READ_ONLY_STATES = {"25006", "42501"}
_M2M_VERBS = {"pre_add": "add", "pre_remove": "remove", "pre_clear": "clear"}


def instance_name(alias: str) -> str:
    """The instance name behind a database alias."""
    return connections.settings[alias].get("INSTANCE", alias)


def is_read_only(alias: str) -> bool:
    """Whether the instance behind a database alias is read-only."""
    return bool(connections.settings[alias].get("READ_ONLY"))


def configured_read_only(alias: str) -> bool:
    """Whether the instance behind ``alias`` is read-only, by its connection or by its entry in
    instances.toml (``init`` migrates a read-only instance through a writable connection)."""
    if is_read_only(alias):
        return True
    config = instances.known_instances().get(connections.settings[alias].get("INSTANCE", ""))
    return bool(config and config.read_only)


def default_storage(alias: str) -> Any:
    """The Storage record of the default storage root of the instance behind ``alias`` (its
    ``storage`` in instances.toml), recorded on first use on a writable instance."""
    from registry.storage_roots import normalise_root

    storage_model = apps.get_model("registry", "Storage")
    root = normalise_root(connections.settings[alias]["STORAGE"])
    found = storage_model.objects.db_manager(alias).filter(root=root).first()
    if found is None:
        check_writable(alias, f"record its default storage {root!r}")
        found, _ = storage_model.objects.db_manager(alias).get_or_create(root=root)
    return found


def read_only_error(alias: str, action: str) -> ReadOnlyInstanceError:
    """The error for a write refused on the read-only instance behind ``alias``."""
    name = instance_name(alias)
    return ReadOnlyInstanceError(
        f"Instance {name!r} is read-only: cannot {action}. Transfer the records into an "
        f"instance of your own to change them, or set read_only = false for {name!r} in "
        f"{instances.config_path()} if you administer it."
    )


def check_writable(alias: str, action: str) -> None:
    """Refuse a write on a read-only instance, before anything reaches the database.

    Raises:
        ReadOnlyInstanceError: naming the instance and the attempted action.
    """
    if is_read_only(alias):
        raise read_only_error(alias, action)


def refuse_many_to_many_change(
    sender: type, instance: Any, action: str, model: type, using: str, **kwargs: Any
) -> None:
    """``m2m_changed`` receiver: refuse ``add``/``remove``/``set``/``clear`` through any related
    manager (``term.parents.add(...)``, ``collection.artifacts.add(...)``, ``user.groups``) on a
    read-only instance, before the link table is touched."""
    verb = _M2M_VERBS.get(action)
    if verb is not None:
        owner = f"{type(instance).__name__} {instance.pk}"
        check_writable(using, f"{verb} {model.__name__} links of {owner} ({sender.__name__})")


def guard_read_only_connection(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """``connection_created`` receiver: on a read-only instance, report the database's refusal
    of a write as :class:`~registry.errors.ReadOnlyInstanceError`, and (SQLite) allow no
    ``ATTACH``, which could open the same file again for writing."""
    if not connection.settings_dict.get("READ_ONLY"):  # also Django's own aliases (__no_db__)
        return
    if connection.vendor == "sqlite":
        connection.connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    if _report_refused_write not in connection.execute_wrappers:
        connection.execute_wrappers.append(_report_refused_write)


def _report_refused_write(
    execute: Callable, sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    try:
        return execute(sql, params, many, context)
    except DatabaseError as exc:
        if not _refused_as_read_only(exc, sql):
            raise
        statement = " ".join(str(sql).split())
        if len(statement) > 80:
            statement = statement[:77] + "..."
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        alias = context["connection"].alias
        raise read_only_error(
            alias, f"run {statement} (the database refused it: {reason})"
        ) from exc


def is_read_only_refusal(exc: BaseException) -> bool:
    """Whether a database error (Django's wrapper or the driver's own) is the database refusing
    a write because the connection or the role is read-only: PostgreSQL's read-only transaction
    (25006) or missing privilege (42501), SQLite's ``SQLITE_READONLY*``. The one place this is
    decided (:mod:`registry.database_errors` asks it too)."""
    driver = exc.__cause__ if isinstance(exc, DatabaseError) and exc.__cause__ else exc
    state = getattr(driver, "sqlstate", None)
    if state is not None:
        return state in _PG_READ_ONLY_STATES
    if isinstance(driver, sqlite3.Error):
        name = getattr(driver, "sqlite_errorname", "") or ""
        return name.startswith("SQLITE_READONLY") or "readonly database" in str(driver).lower()
    return False


def _refused_as_read_only(exc: DatabaseError, sql: str) -> bool:
    if is_read_only_refusal(exc):
        return True
    # SQLite: with no database allowed to attach, ATTACH fails with an error of its own
    return isinstance(exc.__cause__, sqlite3.Error) and str(sql).lstrip().upper().startswith(
        "ATTACH"
    )


def current_user_handle() -> str:
    """Who is writing: ``$CELLREGISTRY_USER`` or the operating-system login."""
    try:
        fallback = getpass.getuser()
    except (KeyError, OSError):
        fallback = "anonymous"
    return os.environ.get("CELLREGISTRY_USER") or fallback


@contextlib.contextmanager
def writing_as(handle: str) -> Iterator[None]:
    """Write records as ``handle`` for the duration (worker processes started meanwhile too:
    the handle travels in ``$CELLREGISTRY_USER``)."""
    previous = os.environ.get("CELLREGISTRY_USER")
    os.environ["CELLREGISTRY_USER"] = handle
    try:
        yield
    finally:
        if previous is None:
            del os.environ["CELLREGISTRY_USER"]
        else:
            os.environ["CELLREGISTRY_USER"] = previous


def current_user_id(alias: str) -> int:
    """The id of the current user's record in the instance behind ``alias`` (created once)."""
    handle = current_user_handle()
    key = (alias, handle)
    if key in _user_ids:
        return _user_ids[key]
    user_model = apps.get_model("registry", "User")
    user, _ = user_model.objects.db_manager(alias).get_or_create(handle=handle)
    # remember the id only once it is committed: a rolled-back user must not be reused
    transaction.on_commit(lambda: _user_ids.__setitem__(key, user.pk), using=alias)
    return user.pk


def forget_user_ids(alias: str) -> None:
    """Drop cached user ids of an alias (its database changed)."""
    for key in [k for k in _user_ids if k[0] == alias]:
        del _user_ids[key]


def analyze(alias: str) -> None:
    """Refresh the query planner's statistics after a bulk load (SQLite and PostgreSQL both
    plan the link-table subqueries better with them)."""
    with connections[alias].cursor() as cursor:
        cursor.execute("ANALYZE")


def fetch_prepared(alias: str, sql: str, params: list[Any]) -> list[tuple]:
    """The rows of ``sql``; on PostgreSQL as a prepared statement of the session (bound on the
    server, planned once for all its runs: a plan that takes as long to make as to run, as
    ln.Cells' questions at LTS scale, costs it only once). Elsewhere, or with prepared
    statements switched off (``prepare_threshold``, :data:`registry.instances.
    PG_PREPARE_THRESHOLD`), a query like any other. Logged as Django logs its own queries."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        connection.validate_no_broken_transaction()
        raw = connection.connection
        if raw.prepare_threshold is not None:
            import psycopg

            started = time.monotonic()
            with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
                cursor.execute(sql, params, prepare=True)
                rows = cursor.fetchall()
            if connection.queries_logged:  # as Django's debug cursor logs a query
                seconds = time.monotonic() - started
                logged = f"{sql} -- prepared, parameters {params!r}"
                connection.queries_log.append({"sql": logged, "time": f"{seconds:.3f}"})
            return rows
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
