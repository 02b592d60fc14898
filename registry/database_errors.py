"""Database failures, classified and told in one line that names the instance and what to do.

The drivers say what went wrong in their own words (psycopg: SQLSTATE codes and multi-line
messages, or none at all for a failed connection; sqlite3: error names and messages). This module
reads both, sorts a failure into a :class:`Problem`, and turns it into the project's own error
(:func:`translate`), so that ``manage.py`` (:mod:`registry.commandline`) and the query layer
(:mod:`registry.query.queryset`) speak the same language.
"""

from __future__ import annotations

import enum
import os
import re

from django.db import connections

import registry.databases as databases
import registry.instances as instances
from registry.databases import instance_name
from registry.errors import (
    DatabaseFailureError,
    InstanceConnectionError,
    InstanceDatabaseMissingError,
    InstanceNotMigratedError,
    ReadOnlyInstanceError,
    RegistryError,
)


class Problem(enum.Enum):
    """What a database failure means for the user."""

    CONNECTION = "connection"  # the server or file cannot be reached or opened
    NO_DATABASE = "no database"  # the server answers but lacks the database
    LOGIN = "login"  # the server refused the user or password
    NOT_MIGRATED = "not migrated"  # a table or column of the schema is missing
    READ_ONLY = "read-only"  # the database refused a write
    USER_INPUT = "user input"  # the values of a query (too long, malformed, out of range)
    OTHER = "other"


#: SQLite messages caused by the values of a query, not by the database
_SQLITE_INPUT_MESSAGES = (
    "like or glob pattern too complex",  # a LIKE pattern over 50,000 bytes
    "user-defined function raised exception",  # e.g. REGEXP on a pattern Python cannot use
    "too many sql variables",
    "string or blob too big",
    "expression tree is too large",
    "parser stack overflow",
)
#: modules of the database drivers' exceptions
_DRIVERS = ("psycopg", "sqlite3")


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception behind a Django database error (or ``exc`` itself)."""
    cause = exc.__cause__
    return cause if cause is not None and type(cause).__module__.startswith(_DRIVERS) else exc


def reason(exc: BaseException) -> str:
    """The driver's message in one line, without libpq's ``connection to server ... failed:``
    preamble and ``FATAL:`` / ``ERROR:`` prefixes."""
    text = str(driver_error(exc)).strip()
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    first = first.rsplit(" failed: ", 1)[-1]
    first = re.sub(r"^(?:connection failed: )?(?:FATAL|ERROR):\s*", "", first)
    return " ".join(first.split())


def classify(exc: BaseException) -> Problem:
    """What a database failure (Django's wrapper or the driver's exception) means."""
    driver = driver_error(exc)
    if type(driver).__module__.startswith("sqlite3"):
        return _classify_sqlite(driver)
    return _classify_postgres(driver)


def _classify_sqlite(driver: BaseException) -> Problem:
    name = getattr(driver, "sqlite_errorname", "") or ""
    message = str(driver).lower()
    if databases.is_read_only_refusal(driver):
        return Problem.READ_ONLY
    if name.startswith("SQLITE_CANTOPEN") or "unable to open database" in message:
        return Problem.CONNECTION
    if message.startswith(("no such table", "no such column")):
        return Problem.NOT_MIGRATED
    if name == "SQLITE_TOOBIG" or any(text in message for text in _SQLITE_INPUT_MESSAGES):
        return Problem.USER_INPUT
    return Problem.OTHER


#: libpq reports a failed connection without a SQLSTATE: these messages tell the cases apart
_NO_DATABASE = re.compile(r'database "[^"]+" does not exist')
_LOGIN = re.compile(r'password authentication failed|role "[^"]+" does not exist')


def _classify_postgres(driver: BaseException) -> Problem:
    state = getattr(driver, "sqlstate", None) or ""
    message = str(driver)
    if state == "3D000" or (not state and _NO_DATABASE.search(message)):
        return Problem.NO_DATABASE
    if state.startswith("28") or (not state and _LOGIN.search(message)):
        return Problem.LOGIN
    failed_link = not state and type(driver).__name__ in {"OperationalError", "InterfaceError"}
    if state.startswith(("08", "57P")) or failed_link:
        return Problem.CONNECTION
    if databases.is_read_only_refusal(driver):
        return Problem.READ_ONLY
    if state in {"42P01", "42703"}:  # undefined table, undefined column
        return Problem.NOT_MIGRATED
    if state.startswith(("22", "54")) or type(driver).__name__ == "DataError":
        return Problem.USER_INPUT  # data exceptions, program limits exceeded
    return Problem.OTHER


def database_url(alias: str) -> str:
    """The database URL of an alias as it may be printed: the password shown as ``***``."""
    entry = connections.settings[alias]
    if "postgresql" not in entry["ENGINE"]:
        return f"sqlite:///{instances.sqlite_path(entry['NAME'])}"
    user = entry.get("USER") or ""
    login = f"{user}{':***' if entry.get('PASSWORD') else ''}@" if user else ""
    port = f":{entry['PORT']}" if entry.get("PORT") else ""
    return f"postgresql://{login}{entry.get('HOST') or 'localhost'}{port}/{entry['NAME']}"


def describe_instance(alias: str) -> str:
    """``instance 'lab' (postgresql://user:***@host:5432/lab)``."""
    return f"instance {instance_name(alias)!r} ({database_url(alias)})"


def url_source(alias: str) -> str:
    """Where the URL of the alias's instance is set, for messages that say to correct it."""
    if alias == "default" and os.environ.get("DATABASE_URL"):
        return "$DATABASE_URL"
    return f"the db URL of {instance_name(alias)!r} in {instances.config_path()}"


def _server(alias: str) -> str:
    entry = connections.settings[alias]
    if "postgresql" not in entry["ENGINE"]:
        return f"the SQLite file {instances.sqlite_path(entry['NAME'])}"
    return f"PostgreSQL at {entry.get('HOST') or 'localhost'}:{entry.get('PORT') or 5432}"


def migrate_command(alias: str) -> str:
    """The command that brings the alias's instance up to date."""
    return f"`python manage.py migrate --instance {instance_name(alias)}`"


def connection_error(alias: str, detail: str) -> InstanceConnectionError:
    """The alias's server cannot be reached, or its SQLite file not opened (``detail``: the
    driver's reason)."""
    if "postgresql" not in connections.settings[alias]["ENGINE"]:
        return InstanceConnectionError(
            f"Cannot open {_server(alias)} of instance {instance_name(alias)!r}: {detail}. Check "
            f"that its folder exists and that {url_source(alias)} is right."
        )
    return InstanceConnectionError(
        f"Cannot connect to {_server(alias)} for {describe_instance(alias)}: {detail}. "
        f"Check that the server is running and that {url_source(alias)} is right."
    )


def missing_database_error(alias: str) -> InstanceDatabaseMissingError:
    """The alias's database does not exist (PostgreSQL database or SQLite file)."""
    entry = connections.settings[alias]
    name = instance_name(alias)
    if "postgresql" in entry["ENGINE"]:
        return InstanceDatabaseMissingError(
            f"{_server(alias)} has no database {entry['NAME']!r} for {describe_instance(alias)}: "
            f"create it with `createdb {entry['NAME']}` and then run {migrate_command(alias)} "
            f"(registry.init({name!r}, db=...) does both), or correct {url_source(alias)}."
        )
    return InstanceDatabaseMissingError(
        f"The SQLite file {instances.sqlite_path(entry['NAME'])} of instance {name!r} does not "
        f"exist: create it with {migrate_command(alias)}, or correct {url_source(alias)}."
    )


def login_error(alias: str, detail: str) -> InstanceConnectionError:
    """The server refused the user or password of the alias's URL."""
    user = connections.settings[alias].get("USER") or "(none)"
    return InstanceConnectionError(
        f"{_server(alias)} refused the login of user {user!r} for {describe_instance(alias)}: "
        f"{detail}. Check the user and password in {url_source(alias)}."
    )


def not_migrated_error(alias: str, detail: str) -> InstanceNotMigratedError:
    """The alias's schema is not up to date (``detail``: what is missing)."""
    return InstanceNotMigratedError(
        f"The database of {describe_instance(alias)} is not migrated ({detail}): "
        f"run {migrate_command(alias)}."
    )


def read_only_error(alias: str, detail: str) -> ReadOnlyInstanceError:
    """The alias's database refused a write (the message of every read-only refusal:
    :func:`registry.databases.read_only_error`)."""
    return databases.read_only_error(
        alias, f"write to its database {database_url(alias)} (the database refused it: {detail})"
    )


def translate(exc: BaseException, alias: str = "default") -> RegistryError:
    """The project's error for a database failure on ``alias``: one line naming the instance,
    its URL (password hidden) and what to do. User-input failures are the query layer's
    (:class:`registry.errors.QueryError`); here they become a :class:`DatabaseFailureError`."""
    problem = classify(exc)
    detail = reason(exc)
    if problem is Problem.NO_DATABASE:
        return missing_database_error(alias)
    if problem is Problem.LOGIN:
        return login_error(alias, detail)
    if problem is Problem.CONNECTION:
        return connection_error(alias, detail)
    if problem is Problem.NOT_MIGRATED:
        return not_migrated_error(alias, detail)
    if problem is Problem.READ_ONLY:
        return read_only_error(alias, detail)
    return DatabaseFailureError(f"The database of {describe_instance(alias)} failed: {detail}.")


def ensure_reachable(alias: str) -> None:
    """Open the connection of ``alias`` now, so that a database that cannot be used is reported
    at once, in one line (a missing read-only SQLite file is never created).

    Raises:
        InstanceConnectionError, InstanceDatabaseMissingError: see :func:`translate`.
    """
    entry = connections.settings[alias]
    if entry["ENGINE"].endswith("sqlite3") and entry.get("READ_ONLY"):
        path = instances.sqlite_path(entry["NAME"])
        if path != ":memory:" and not os.path.exists(path):
            raise missing_database_error(alias)
    try:
        connections[alias].ensure_connection()
    except Exception as exc:  # the driver's own error type varies by backend
        raise translate(exc, alias) from exc
