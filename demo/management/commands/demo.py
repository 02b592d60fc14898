"""``python manage.py demo``: build the demo instance once, then run the example queries on it.

The demo instance (``demo``, an embedded instance under ``$CELLREGISTRY_HOME`` unless
``--instance`` / ``$CELLREGISTRY_INSTANCE`` names another one) is built by :mod:`demo.pipeline`:
the CELLxGENE ontologies, two demo Census releases as local files, both curated. Later runs find
everything built and only query. ``--synthetic`` builds the seeded synthetic registry instead
(:mod:`demo.synthetic`, the benchmark workload) into its own instance, ``synthetic-benchmark``.

Runs are serialised by a lock file under ``$CELLREGISTRY_HOME``: a second run started while one
builds says so, waits for it, then finds everything built.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rich.console import Console

from demo import pipeline, synthetic
from demo.examples import show_examples, show_release_diff
from registry import instances
from registry.commandline import DatabaseNeed
from registry.connection import DB, connect, init, migrate
from registry.database_errors import database_url
from registry.locks import file_lock

DEMO_INSTANCE = "demo"
SYNTHETIC_INSTANCE = "synthetic-benchmark"
LOCK_FILE = "demo.lock"
DESCRIPTIONS = {
    DEMO_INSTANCE: (
        "The demo of `manage.py demo`: CELLxGENE ontologies and two demo Census releases "
        f"({', '.join(pipeline.RELEASES)}), curated from local files."
    ),
    SYNTHETIC_INSTANCE: (
        "Benchmark workload (`manage.py demo --synthetic`, bench/registry_bench.py): a seeded "
        "synthetic registry with placeholder terms; its artifacts point at the public CELLxGENE "
        "bucket, so their data does not load offline."
    ),
}


def open_instance(name: str, make_default: bool) -> DB:
    """Connect to ``name`` (migrated), creating it as an embedded instance if it is unknown
    (with the description of :data:`DESCRIPTIONS`, if any, in instances.toml);
    ``make_default=False`` returns a handle without changing the default instance."""
    config = instances.known_instances().get(name)
    if config is None:  # SQLite + local folder under $CELLREGISTRY_HOME/<name>/
        db = init(name, make_default=make_default)
        if name in DESCRIPTIONS:
            extra = {**db.config.extra, "description": DESCRIPTIONS[name]}
            instances.save_instance(replace(db.config, extra=extra))
        return db
    if config.is_embedded:
        database = instances.parse_database_url(config.db)["NAME"]
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    db = connect(name) if make_default else DB(name)
    if not config.read_only:
        migrate(db.alias)
    return db


@contextlib.contextmanager
def demo_lock(on_wait: Callable[[Path], None]) -> Iterator[None]:
    """Hold the lock of demo builds (``$CELLREGISTRY_HOME/demo.lock``); when another process
    holds it, call ``on_wait`` with the lock file, then wait for it."""
    path = instances.home().resolve() / LOCK_FILE
    with file_lock(path, blocking=False) as acquired:
        if acquired:
            yield
            return
    on_wait(path)
    with file_lock(path):
        yield


def refuse_used_instance(db: DB, what: str) -> None:
    """Stop unless the instance is writable and holds no records (users aside).

    Raises:
        CommandError: the instance is read-only, or holds records the demo did not write.
    """
    if db.config.read_only:
        raise CommandError(
            f"Instance {db.name!r} is read-only and does not hold {what}: nothing to demo. Run "
            f"the demo on a writable instance, e.g. the default {DEMO_INSTANCE!r}: "
            "`python manage.py demo`."
        )
    used = pipeline.used_registries(db.alias)
    if used:
        raise CommandError(
            f"Instance {db.name!r} already holds records ({', '.join(used)}), so {what} cannot "
            "be added to it. Run the demo on a fresh instance: unset CELLREGISTRY_INSTANCE and "
            f"run `python manage.py demo` (instance {DEMO_INSTANCE!r}), or pass "
            "`--instance NEW_NAME`."
        )


class Command(BaseCommand):
    """``manage.py demo``: the demo instance and the example queries on it."""

    #: the demo opens (or creates) the instances it works on itself
    database_needs = DatabaseNeed.NONE
    help = (
        "Build the demo instance once (CELLxGENE ontologies, two demo Census releases, both "
        "curated) and run the example queries of the LaminDB CELLxGENE guide on it; "
        "--synthetic builds the synthetic benchmark registry instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--instance",
            default=None,
            help=f"instance to use (default: $CELLREGISTRY_INSTANCE, else {DEMO_INSTANCE!r}, "
            f"or {SYNTHETIC_INSTANCE!r} with --synthetic; created under $CELLREGISTRY_HOME if "
            "missing)",
        )
        parser.add_argument(
            "--synthetic",
            action="store_true",
            help=f"build the seeded synthetic registry (benchmark workload) in "
            f"{SYNTHETIC_INSTANCE!r} instead of the demo",
        )
        parser.add_argument(
            "--artifacts", type=int, default=1000, help="with --synthetic: artifacts to build"
        )
        parser.add_argument("--seed", type=int, default=0, help="with --synthetic: the seed")
        parser.add_argument(
            "--quiet", action="store_true", help="no progress and no examples: a summary line"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["artifacts"] < 1:
            raise CommandError("--artifacts must be at least 1 (the synthetic plan needs one).")
        out = options.get("stdout") or sys.stdout
        console = Console(file=out, width=None if out.isatty() else 120, highlight=False)
        errors = Console(file=sys.stderr, highlight=False)
        # manage.py turns `--instance NAME` into $CELLREGISTRY_INSTANCE before Django starts
        default = SYNTHETIC_INSTANCE if options["synthetic"] else DEMO_INSTANCE
        name = options["instance"] or os.environ.get("CELLREGISTRY_INSTANCE") or default

        def say(message: str) -> None:
            if not options["quiet"]:
                console.print(message, markup=False, soft_wrap=True)

        def waiting(lock: Path) -> None:
            errors.print(
                f"Another `manage.py demo` is building in {instances.home().resolve()} (lock "
                f"file {lock}): waiting for it to finish, then using what it built ...",
                markup=False,
                soft_wrap=True,
            )

        started = time.perf_counter()
        with demo_lock(waiting):
            if options["synthetic"]:
                db = open_instance(name, make_default=False)
                wrote = self._build_synthetic(db, options, say)
            else:
                db = open_instance(name, make_default=True)
                wrote = self._build_demo(db, say, errors)
        how = f"built in {time.perf_counter() - started:.1f} s" if wrote else "reused"
        what = (
            "synthetic benchmark registry"
            if options["synthetic"]
            else f"demo releases {', '.join(pipeline.RELEASES)} curated"
        )
        console.print(
            f"Instance {db.name!r}: {what}, {db.Artifact.count():,} artifacts, "
            f"{db.Collection.count():,} collections ({how}; database {database_url(db.alias)})",
            markup=False,
            soft_wrap=True,
        )
        if not options["quiet"] and not options["synthetic"]:
            show_examples(db, console)
            show_release_diff(db, console, *pipeline.RELEASES)

    def _build_demo(self, db: DB, say: Callable[[str], None], errors: Console) -> bool:
        """The demo's steps on ``db`` (each skipped when done); True if anything was written.
        Problems the curation reports are printed on ``errors``, also with ``--quiet``."""
        bucket = pipeline.demo_bucket(db.alias)
        if bucket is None:
            refuse_used_instance(db, "the demo")
            bucket = pipeline.bucket_of(db.name)
        elif db.config.read_only:  # it holds the demo: only query
            return False
        build = pipeline.build(db.alias, bucket, say)
        for summary in build.curated:
            for problem in summary.problems:
                errors.print(f"Problem in {summary.release}: {problem}", markup=False)
        return build.wrote

    def _build_synthetic(self, db: DB, options: dict[str, Any], say: Callable[[str], None]) -> bool:
        """The synthetic registry, unless the instance has artifacts; True if it was written."""
        if db.Artifact.count():
            return False
        refuse_used_instance(db, "the synthetic registry")
        say(
            f"Building the synthetic registry in instance {db.name!r}: "
            f"{options['artifacts']:,} artifacts, seed {options['seed']} ..."
        )
        with transaction.atomic(using=db.alias):  # all or nothing: a rerun starts clean
            synthetic.build(n_artifacts=options["artifacts"], seed=options["seed"], using=db.alias)
        return True
