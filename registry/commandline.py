"""The guard rails of ``manage.py`` and of the ``cellregistry`` command line
(:mod:`registry.cli`): the instance's database is checked before a command uses it, and whatever
goes wrong ends as one line on stderr (``error: ...``) and exit status 1.

- ``--instance NAME`` anywhere on the command line selects the instance
  (``$CELLREGISTRY_INSTANCE``).
- Before a command runs, :func:`check_database` checks what the command needs of the default
  instance's database (:class:`DatabaseNeed`): that it exists (a SQLite file is looked for before
  connecting, which would create it), that it answers, and that its schema is migrated. A command
  says what it needs with a ``database_needs`` attribute; Django's own commands are listed in
  :data:`DJANGO_COMMANDS`; any other command needs a migrated database.
- Whatever a command lets escape — a :class:`~registry.errors.RegistryError`, a database error
  (:mod:`registry.database_errors`), an S3 error (:mod:`registry.s3_errors`) — is printed by
  :func:`explain` as one line. ``CELLREGISTRY_TRACEBACK=1`` (or Django's ``--traceback``) shows the
  traceback instead.
- ``cellregistry`` runs the management commands through :func:`run_command`: their own options,
  usage errors in one line (:func:`usage_error`, exit status 2), the same checks and errors.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from registry.errors import RegistryError

if TYPE_CHECKING:
    from django.core.management import BaseCommand

TRACEBACK_VARIABLE = "CELLREGISTRY_TRACEBACK"
#: options that only print help or a version: never blocked by the database
_HELP_OPTIONS = {"-h", "--help", "--version"}


class DatabaseNeed(enum.Enum):
    """What a command needs of the default instance's database."""

    NONE = "none"  # nothing (or it opens instances of its own)
    REACHABLE = "reachable"  # a connection; the schema may be missing (migrate)
    MIGRATED = "migrated"  # the registry's tables, up to date
    WRITABLE = "writable"  # migrated, and the instance is not read-only (the command writes)


#: Django's own commands that use the database, and what they need; Django's other commands
#: (help, version, check, makemigrations, shell, test, ...) need none
DJANGO_COMMANDS = {
    "migrate": DatabaseNeed.REACHABLE,  # may create the SQLite file
    "showmigrations": DatabaseNeed.REACHABLE,
    "sqlmigrate": DatabaseNeed.REACHABLE,
    "dbshell": DatabaseNeed.REACHABLE,
    "inspectdb": DatabaseNeed.REACHABLE,
    "createcachetable": DatabaseNeed.REACHABLE,
    "changepassword": DatabaseNeed.WRITABLE,
    "clearsessions": DatabaseNeed.WRITABLE,
    "createsuperuser": DatabaseNeed.WRITABLE,
    "dumpdata": DatabaseNeed.MIGRATED,
    "flush": DatabaseNeed.WRITABLE,
    "loaddata": DatabaseNeed.WRITABLE,
    "remove_stale_contenttypes": DatabaseNeed.WRITABLE,
    "runserver": DatabaseNeed.MIGRATED,
}


def pop_instance_option(argv: list[str]) -> list[str]:
    """``argv`` without ``--instance NAME`` / ``--instance=NAME``, the name put into
    ``$CELLREGISTRY_INSTANCE``."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--instance" and i + 1 < len(argv):
            os.environ["CELLREGISTRY_INSTANCE"] = argv[i + 1]
            del argv[i : i + 2]
            break
        if arg.startswith("--instance="):
            os.environ["CELLREGISTRY_INSTANCE"] = arg.split("=", 1)[1]
            del argv[i]
            break
    return argv


def load_command(name: str) -> BaseCommand | None:
    """The management command ``name`` (Django set up), or ``None`` if there is none."""
    from django.core.management import BaseCommand, get_commands, load_command_class

    app = get_commands().get(name)
    if app is None:
        return None
    return app if isinstance(app, BaseCommand) else load_command_class(app, name)


def database_need(name: str) -> DatabaseNeed:
    """What the command ``name`` needs of the default instance's database (Django set up)."""
    command = load_command(name)
    if command is None:  # not a command: Django says so
        return DatabaseNeed.NONE
    declared = getattr(command, "database_needs", None)
    if declared is not None:
        return declared
    if type(command).__module__.startswith("django."):
        return DJANGO_COMMANDS.get(name, DatabaseNeed.NONE)
    return DatabaseNeed.MIGRATED


def unapplied_migrations(alias: str = "default") -> list[str]:
    """``app.migration`` names that the database of ``alias`` has not applied, in order."""
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def check_database(
    need: DatabaseNeed, alias: str = "default", command: str = "the command"
) -> None:
    """Check the database of ``alias`` for ``command``, which needs ``need`` of it.

    The embedded default instance is created on first use (as ``import registry`` does); any
    other SQLite file must exist unless the command only needs a connection (``migrate``
    creates it).

    Raises:
        InstanceDatabaseMissingError: the SQLite file or PostgreSQL database does not exist.
        InstanceConnectionError: the server cannot be reached, or refuses the login.
        InstanceNotMigratedError: ``need`` is MIGRATED or WRITABLE and migrations are not
            applied.
        ReadOnlyInstanceError: ``need`` is WRITABLE and the instance is read-only.
    """
    if need is DatabaseNeed.NONE:
        return
    from django.db import DatabaseError, connections

    from registry import database_errors, databases, instances
    from registry.connection import create_embedded_if_missing

    entry = connections.settings[alias]
    if entry["ENGINE"].endswith("sqlite3") and not instances.is_in_memory(entry["NAME"]):
        path = Path(instances.sqlite_path(entry["NAME"]))
        if alias == "default" and entry.get("INSTANCE") == instances.EMBEDDED_NAME:
            create_embedded_if_missing()
        elif need is not DatabaseNeed.REACHABLE and not path.exists():
            raise database_errors.missing_database_error(alias)
    if need is DatabaseNeed.WRITABLE and databases.is_read_only(alias):
        raise databases.read_only_error(alias, f"run {command}")
    try:
        connections[alias].ensure_connection()
        pending = unapplied_migrations(alias) if need is not DatabaseNeed.REACHABLE else []
    except DatabaseError as exc:
        raise database_errors.translate(exc, alias) from exc
    if pending:
        raise database_errors.not_migrated_error(
            alias, f"{len(pending)} migration(s) to apply, the first {pending[0]}"
        )


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks as single spaces."""
    return " ".join(text.split())


def explain(exc: BaseException) -> str | None:
    """The one-line message for an error that escaped a command, or ``None`` for an error this
    module does not know (a bug: its traceback is worth seeing)."""
    if isinstance(exc, RegistryError):
        return one_line(str(exc))
    module = type(exc).__module__
    if module.startswith(("django.db", "psycopg", "sqlite3")):
        from django.db import DatabaseError

        from registry.database_errors import translate

        if isinstance(exc, DatabaseError) or module.startswith(("psycopg", "sqlite3")):
            return one_line(str(translate(exc)))
    if module.startswith(("botocore", "boto3")):
        from registry.s3_errors import describe_s3_error

        return one_line(describe_s3_error(exc))
    return None


def wants_traceback(argv: list[str]) -> bool:
    """Whether errors should show their traceback (``$CELLREGISTRY_TRACEBACK``, ``--traceback``)."""
    return os.environ.get(TRACEBACK_VARIABLE, "") not in {"", "0"} or "--traceback" in argv


def usage_error(prog: str, message: str) -> NoReturn:
    """A command line that does not parse: one line on stderr and exit status 2 (argparse's)."""
    sys.stderr.write(f"{prog}: error: {one_line(message)} (see `{prog} --help`)\n")
    sys.exit(2)


def add_instance_option(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the ``--instance NAME`` option (if it has none of its own)."""
    with contextlib.suppress(argparse.ArgumentError):  # the command defines it already
        parser.add_argument(
            "--instance",
            metavar="NAME",
            help="the instance to work on (default: $CELLREGISTRY_INSTANCE, else the default "
            "of instances.toml, else the embedded instance)",
        )


def run_command(name: str, args: list[str], prog: str, subcommand: str) -> None:
    """Run the management command ``name`` with its own options ``args``, as ``prog
    subcommand`` (e.g. ``cellregistry curate`` for ``curate_release``).

    The arguments are parsed first (``--help`` and usage errors end here, a usage error as one
    line with exit status 2), then the database the command needs is checked, then the command
    runs as ``manage.py`` runs it (a ``CommandError`` ends as ``CommandError: ...``, exit status
    1). ``--instance NAME`` must already be taken out of ``args`` (:func:`pop_instance_option`):
    it chooses the settings Django is set up with.
    """
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    django.setup()
    command = load_command(name)
    if command is None:
        raise LookupError(f"no management command {name!r}")
    parser = command.create_parser(prog, subcommand)
    parser.error = lambda message: usage_error(parser.prog, message)
    add_instance_option(parser)  # for --help; its value is in $CELLREGISTRY_INSTANCE already
    parser.parse_args(args)
    check_database(database_need(name), command=name)
    command.run_from_argv([prog, subcommand, *args])


@contextlib.contextmanager
def errors_in_one_line(argv: list[str]) -> Iterator[None]:
    """An error :func:`explain` knows ends as ``error: <one line>`` on stderr and exit status
    1; any other error (a bug) keeps its traceback, as does every error with
    ``$CELLREGISTRY_TRACEBACK`` or ``--traceback`` in ``argv``."""
    try:
        yield
    except Exception as exc:
        message = None if wants_traceback(argv) else explain(exc)
        if message is None:
            raise
        sys.stderr.write(f"error: {message}\n")
        sys.exit(1)


def run(argv: list[str]) -> None:
    """Set Django up, check the database the command needs, run the command."""
    import django
    from django.core.management import execute_from_command_line

    django.setup()
    name = argv[1] if len(argv) > 1 else "help"
    if not _HELP_OPTIONS.intersection(argv[1:]):
        check_database(database_need(name), command=name)
    execute_from_command_line(argv)


def main(argv: list[str]) -> None:
    """``manage.py``: run a command; an error it lets escape becomes ``error: <one line>`` on
    stderr and exit status 1."""
    argv = pop_instance_option(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    with errors_in_one_line(argv):
        run(argv)
