"""Per-database-alias facts and guards: instance name, read-only check, reachability, user.

Every open instance is a Django database alias whose settings carry ``INSTANCE`` (name),
``READ_ONLY`` and ``STORAGE``; these helpers read them. They sit below the query layer, so both
the models and the query code can use them.
"""

from __future__ import annotations

import getpass
import os

from django.apps import apps
from django.db import connections, transaction

import registry.instances as instances
from registry.errors import InstanceConnectionError, ReadOnlyInstanceError

_user_ids: dict[tuple[str, str], int] = {}


def instance_name(alias: str) -> str:
    """The instance name behind a database alias."""
    return connections.settings[alias].get("INSTANCE", alias)


def check_writable(alias: str, action: str) -> None:
    """Refuse a write on a read-only instance, before anything reaches the database.

    Raises:
        ReadOnlyInstanceError: naming the instance and the attempted action.
    """
    entry = connections.settings[alias]
    if entry.get("READ_ONLY"):
        name = entry.get("INSTANCE", alias)
        raise ReadOnlyInstanceError(
            f"Instance {name!r} is read-only: cannot {action}. Transfer the records into an "
            f"instance of your own to change them, or set read_only = false for {name!r} in "
            f"{instances.config_path()} if you administer it."
        )


def ensure_reachable(alias: str) -> None:
    """Open the connection now so that an unreachable server is reported clearly.

    Raises:
        InstanceConnectionError: naming the instance, host and port.
    """
    try:
        connections[alias].ensure_connection()
    except Exception as exc:  # the driver's own error type varies by backend
        entry = connections.settings[alias]
        name = entry.get("INSTANCE", alias)
        if "postgresql" in entry["ENGINE"]:
            where = f"PostgreSQL at {entry.get('HOST') or 'localhost'}:{entry.get('PORT') or 5432}"
            where += f", database {entry['NAME']!r}"
        else:
            where = f"SQLite file {entry['NAME']}"
        raise InstanceConnectionError(
            f"Cannot connect to {where} (instance {name!r}): {str(exc).strip()}. "
            "Check that the server is running and the URL in instances.toml is right."
        ) from exc


def current_user_handle() -> str:
    """Who is writing: ``$CELLREGISTRY_USER`` or the operating-system login."""
    try:
        fallback = getpass.getuser()
    except (KeyError, OSError):
        fallback = "anonymous"
    return os.environ.get("CELLREGISTRY_USER") or fallback


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
