"""``cellregistry init`` and ``cellregistry connect``: create an instance, choose the default one.

Both record their choice in ``instances.toml``, so later commands (``cellregistry``,
``manage.py``, ``import registry``) use the instance without ``--instance``.
"""

from __future__ import annotations

import argparse
import os

from registry.cli.parsing import Parser, add_subcommand, use_instance
from registry.commandline import DatabaseNeed, check_database


def add_parsers(subcommands: argparse._SubParsersAction) -> None:
    """The ``init`` and ``connect`` subcommands."""
    init = add_subcommand(
        subcommands,
        "init",
        "create an instance (database + storage) and make it the default",
        "Create an instance, or update the one of that name: record it in instances.toml, "
        "create and migrate its database, and make it the default instance (as ln.init does). "
        "Without --db it is embedded: SQLite + a storage folder under $CELLREGISTRY_HOME/NAME/.",
        instance_help="the instance name (instead of NAME)",
    )
    init.add_argument("name", nargs="?", metavar="NAME", help="the instance name (or --instance)")
    init.add_argument(
        "--db",
        metavar="URL",
        help="database URL: sqlite:///path/to/file.sqlite3 or postgresql://user@host:port/dbname "
        "(created if the server does not have it)",
    )
    init.add_argument(
        "--storage", metavar="ROOT", help="default storage root: a folder or s3://bucket/prefix"
    )
    init.add_argument(
        "--read-only", action="store_true", help="a read-only instance (a public mirror)"
    )
    init.add_argument(
        "--no-default", action="store_true", help="leave the default instance as it is"
    )
    init.set_defaults(run=run_init, parser=init)

    connect = add_subcommand(
        subcommands,
        "connect",
        "make an instance the default one",
        "Check that the instance's database answers and is migrated, and record the instance as "
        "the default of instances.toml: later commands, manage.py and `import registry` use it "
        "($CELLREGISTRY_INSTANCE still takes precedence where it is set).",
        instance_help="the instance (instead of NAME)",
    )
    connect.add_argument(
        "name", nargs="?", metavar="NAME", help="a configured instance (or --instance)"
    )
    connect.set_defaults(run=run_connect, parser=connect)


def instance_name(args: argparse.Namespace) -> str:
    """The instance named by ``NAME`` or ``--instance`` (one of them, or both alike)."""
    parser: Parser = args.parser
    if args.name and args.instance and args.name != args.instance:
        parser.error(f"NAME {args.name!r} and --instance {args.instance!r} differ: give one")
    name = args.name or args.instance
    if not name:
        parser.error(f"the instance name is required: {parser.prog} NAME")
    return name


def run_init(args: argparse.Namespace) -> None:
    """``cellregistry init NAME [--db URL] [--storage ROOT]``."""
    from registry import instances
    from registry.connection import init
    from registry.database_errors import database_url

    name = instance_name(args)
    instances.validate_name(name)
    if args.db:
        instances.parse_database_url(args.db)  # a URL it cannot use: said before anything runs
    db = init(
        name,
        db=args.db,
        storage=args.storage,
        read_only=args.read_only,
        make_default=not args.no_default,
    )
    access = "read-only" if db.config.read_only else "read-write"
    print(
        f"Instance {name!r} ({access}) is ready: database {database_url(db.alias)}, "
        f"storage {db.config.storage}."
    )
    if not args.no_default:
        print(f"It is the default instance now ({instances.config_path()}).")


def run_connect(args: argparse.Namespace) -> None:
    """``cellregistry connect NAME``."""
    from registry import instances
    from registry.connection import setup
    from registry.database_errors import database_url

    name = instance_name(args)
    chosen_in_shell = os.environ.get("CELLREGISTRY_INSTANCE")
    config = instances.get_instance(name)
    use_instance(name)
    setup()
    check_database(DatabaseNeed.MIGRATED, command="connect")
    instances.set_default(name)
    access = "read-only" if config.read_only else "read-write"
    print(
        f"Connected to instance {name!r} ({access}): database {database_url('default')}, "
        f"storage {config.storage}. It is the default instance now ({instances.config_path()})."
    )
    if chosen_in_shell and chosen_in_shell != name:
        print(
            f"Note: $CELLREGISTRY_INSTANCE={chosen_in_shell} is set in this shell and takes "
            "precedence over the default; unset it to use the default."
        )
