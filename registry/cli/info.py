"""``cellregistry info``: the instance, its database and storage, and the records it holds."""

from __future__ import annotations

import argparse
import os

from registry.cli.parsing import add_subcommand, use_instance
from registry.commandline import DatabaseNeed, check_database


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """The ``info`` subcommand."""
    info = add_subcommand(
        subcommands,
        "info",
        "show the instance, its database, storage and the records of every registry",
    )
    info.set_defaults(run=run_info)


def chosen_by(option: str | None) -> str:
    """How the instance of this process was chosen (the order of
    :func:`registry.instances.default_instance`)."""
    from registry import instances

    if option:
        return "--instance"
    if os.environ.get("CELLREGISTRY_INSTANCE"):
        return "$CELLREGISTRY_INSTANCE"
    if instances.stored_default():
        return f"the default of {instances.config_path()}"
    return "nothing configured: the embedded instance"


def record_counts(alias: str) -> list[tuple[str, int]]:
    """(registry, number of records) of every registry: the core ones, then those of each
    namespace (``ontologies.CellType``, ...)."""
    from registry.connection import app_registries, namespaces

    counts = [
        (name, model._default_manager.using(alias).count())
        for name, model in sorted(app_registries("registry").items())
    ]
    for namespace, models in sorted(namespaces().items()):
        counts += [
            (f"{namespace}.{name}", model._default_manager.using(alias).count())
            for name, model in sorted(models.items())
        ]
    return counts


def run_info(args: argparse.Namespace) -> None:
    """``cellregistry info [--instance NAME]``."""
    source = chosen_by(args.instance)
    use_instance(args.instance)
    from django.db import connections

    from registry.connection import setup
    from registry.database_errors import database_url

    setup()
    check_database(DatabaseNeed.MIGRATED, command="info")
    entry = connections.settings["default"]
    access = "read-only" if entry.get("READ_ONLY") else "read-write"
    database = database_url("default")
    if os.environ.get("DATABASE_URL"):
        database += " (from $DATABASE_URL)"
    rows = [
        ("instance", f"{entry['INSTANCE']} ({access}; chosen by {source})"),
        ("database", database),
        ("storage", entry["STORAGE"]),
    ]
    counts = record_counts("default")
    width = max(len(name) for name, _ in counts)
    digits = max(len(f"{count:,}") for _, count in counts)
    for label, value in rows:
        print(f"{label:<10}{value}")
    print("records")
    for name, count in counts:
        print(f"  {name:<{width}}  {count:>{digits},}")
