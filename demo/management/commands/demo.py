"""``python manage.py demo``: build the synthetic demo registry once, then run the example queries.

The demo works on an embedded instance (SQLite + a local folder under ``$CELLREGISTRY_HOME``),
named ``demo`` unless ``--instance`` / ``$CELLREGISTRY_INSTANCE`` names another one. The first run
writes the seeded synthetic registry (:mod:`demo.synthetic`) in one transaction; later runs
find the artifacts there and only query. The example queries are the ones of the LaminDB
CELLxGENE guide, run against the synthetic data. Each example is shown and run from the same
text, so what is printed is exactly what ran.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rich import box
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from curation.diff import release_diff
from curation.diff_report import render as render_diff
from curation.steps import CurationSummary
from demo import pipeline as full
from demo import synthetic
from registry import instances
from registry.connection import DB, connect, init, migrate
from registry.formatting import format_size

DEMO_INSTANCE = "demo"
#: the curated demo releases live in an embedded instance of their own, named <instance>-census
CENSUS_SUFFIX = "-census"
#: registries the synthetic build writes to; any record in them means "not a fresh instance"
BUILT_REGISTRIES = ("Artifact", "Collection", "Storage", "Feature", "ULabel")
BUILT_TERMS = ("CellType", "Tissue", "Disease", "Assay", "Organism")
TABLE_ROWS = 10


@dataclass(frozen=True)
class Example:
    """One example: its code (the value of the last line is the answer) and columns to show."""

    title: str
    code: str
    columns: tuple[str, ...] = ()


EXAMPLES = (
    Example(
        "Query across datasets",
        """\
users = db.User.lookup()
cell_types = db.bionty.CellType.lookup()
db.Artifact.filter(
    suffix=".h5ad",
    description__contains="immune",
    size__gt=1e9,  # size > 1 GB
    cell_types__name__in=["B cell", "T cell"],
    created_by=users.sunnyosun,
).order_by("created_at").to_dataframe(include=["cell_types__name", "created_by__handle"])""",
        ("description", "size", "cell_types__name", "created_by__handle"),
    ),
    Example(
        "Inspect a dataset",
        """\
artifact = db.Artifact.get(description="Mature kidney dataset: immune")
artifact.describe()""",
    ),
    Example(
        "Query within a collection",
        """\
organisms = db.bionty.Organism.lookup()
tissues = db.bionty.Tissue.lookup()
experimental_factors = db.bionty.ExperimentalFactor.lookup()
suspension_types = db.ULabel.filter(type__name="SuspensionType").lookup()
collection = db.Collection.get(key="cellxgene-census", version="2025-01-30")
collection.artifacts.filter(
    organisms=organisms.human,
    cell_types__in=[cell_types.dendritic_cell, cell_types.neutrophil],
    tissues=tissues.kidney,
    ulabels=suspension_types.cell,
    experimental_factors=experimental_factors.ln_10x_3_v2,
).order_by("size").to_dataframe()""",
        ("key", "description", "size", "n_observations"),
    ),
    Example(
        "Versions of a collection",
        "collection.versions.to_dataframe()",
        ("uid", "key", "version", "is_latest", "description"),
    ),
)


CURATED = tuple(Example(title, code, columns) for title, code, columns in full.CURATED_EXAMPLES)


def open_instance(name: str, make_default: bool = True) -> DB:
    """Connect to ``name`` (migrated), creating it as an embedded instance if it is unknown;
    ``make_default=False`` returns a handle without changing the default instance."""
    config = instances.known_instances().get(name)
    if config is None:
        # SQLite + local folder under $CELLREGISTRY_HOME/<name>/
        return init(name, make_default=make_default)
    if config.is_embedded:
        database = instances.parse_database_url(config.db)["NAME"]
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    db = connect(name) if make_default else DB(name)
    if not config.read_only:
        migrate(db.alias)
    return db


def ensure_demo_data(db: DB, n_artifacts: int, seed: int, console: Console | None) -> bool:
    """Write the synthetic registry unless the instance has artifacts; True if it was written.

    Raises:
        CommandError: the instance is read-only, or holds other records but no artifacts (the
            synthetic build would collide with them).
    """
    if db.Artifact.count():
        return False
    if db.config.read_only:
        raise CommandError(
            f"Instance {db.name!r} is read-only and has no artifacts: nothing to demo. Run the "
            f"demo on a writable instance, e.g. the default {DEMO_INSTANCE!r}: "
            "`python manage.py demo`."
        )
    used = [name for name in BUILT_REGISTRIES if getattr(db, name).count()]
    used += [name for name in BUILT_TERMS if getattr(db.ontologies, name).count()]
    if used:
        raise CommandError(
            f"Instance {db.name!r} has no artifacts but already holds records ({', '.join(used)}), "
            "so the synthetic demo data cannot be added to it. Run the demo on a fresh instance: "
            f"unset CELLREGISTRY_INSTANCE and run `python manage.py demo` (instance "
            f"{DEMO_INSTANCE!r}), or point CELLREGISTRY_HOME at an empty folder."
        )
    status = (
        console.status(
            f"Building the synthetic registry in instance {db.name!r}: "
            f"{n_artifacts:,} artifacts, seed {seed} ..."
        )
        if console
        else contextlib.nullcontext()
    )
    with status, transaction.atomic(using=db.alias):  # all or nothing: a rerun starts clean
        synthetic.build(n_artifacts=n_artifacts, seed=seed, using=db.alias)
    return True


def redacted(url: str) -> str:
    """A database URL fit to print: the password (if any) replaced by ``***``."""
    return re.sub(r"(://[^:/@]+):[^@/]+@", r"\1:***@", url)


def run_example(code: str, namespace: dict[str, Any]) -> tuple[Any, str]:
    """Run an example like a notebook cell: the value of a final expression is the answer.

    Returns:
        The value of the last line (``None`` if it is a statement) and what the code printed.
    """
    tree = ast.parse(code)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(tree, "<demo example>", "exec"), namespace)
        value = None
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<demo example>", "eval"), namespace)
    return value, printed.getvalue()


def _text(column: str, value: Any) -> str:
    """A table cell: sizes readable, lists shortened, dates to the minute."""
    if isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:4])
        return shown + (f", ... ({len(value)} in all)" if len(value) > 4 else "")
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if column == "size":
        return format_size(int(value))
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


def frame_table(frame: pd.DataFrame, columns: tuple[str, ...]) -> Table:
    """The first rows of a DataFrame as a rich table, with the given columns (all by default)."""
    shown = [c for c in columns if c in frame.columns] or list(frame.columns)
    caption = f"{len(frame):,} rows" + (
        f", first {TABLE_ROWS} shown" if len(frame) > TABLE_ROWS else ""
    )
    table = Table(box=box.SIMPLE_HEAD, caption=caption, caption_justify="left")
    table.add_column(frame.index.name or "", justify="right")
    for column in shown:
        table.add_column(column, overflow="fold", no_wrap=column in {"uid", "key"})
    for index, row in frame.head(TABLE_ROWS).iterrows():
        table.add_row(str(index), *(_text(column, row[column]) for column in shown))
    return table


class Command(BaseCommand):
    """``manage.py demo``: the synthetic registry and the example queries on it."""

    help = (
        "Build the synthetic demo registry (once) in an embedded instance and run the example "
        "queries of the LaminDB CELLxGENE guide against it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--instance",
            default=None,
            help=f"instance to use (default: $CELLREGISTRY_INSTANCE, else {DEMO_INSTANCE!r}, "
            "created under $CELLREGISTRY_HOME if missing)",
        )
        parser.add_argument("--artifacts", type=int, default=1000, help="artifacts to build")
        parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
        parser.add_argument(
            "--quiet", action="store_true", help="no progress and no examples: one summary line"
        )
        parser.add_argument(
            "--synthetic-only",
            action="store_true",
            help="skip the ontologies, the demo releases and their curation (the quick demo)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["artifacts"] < 1:
            raise CommandError("--artifacts must be at least 1 (the examples query artifact 0).")
        # manage.py turns `--instance NAME` into $CELLREGISTRY_INSTANCE before Django starts
        name = options["instance"] or os.environ.get("CELLREGISTRY_INSTANCE") or DEMO_INSTANCE
        out = options.get("stdout") or sys.stdout
        console = Console(file=out, width=None if out.isatty() else 120, highlight=False)
        quiet = options["quiet"]
        started = time.perf_counter()
        db = open_instance(name)
        progress = None if quiet else console
        built = ensure_demo_data(db, options["artifacts"], options["seed"], progress)
        census: DB | None = None
        if not options["synthetic_only"] and not db.config.read_only:
            census = open_instance(f"{db.name}{CENSUS_SUFFIX}", make_default=False)
            curated = self._curate_demo_releases(census, console, quiet)
            built = built or any(s.added for s in curated)
        how = f"built in {time.perf_counter() - started:.1f} s" if built else "reused"
        summary = (
            f"Instance {db.name!r}: {db.Artifact.count():,} artifacts, "
            f"{db.Collection.count():,} collections ({how}; database {redacted(db.config.db)})"
        )
        if census is not None:
            summary += (
                f"\nInstance {census.name!r}: demo releases {', '.join(full.RELEASES)} curated, "
                f"{census.Artifact.count():,} artifacts (database {redacted(census.config.db)})"
            )
        console.print(summary, markup=False, soft_wrap=True)
        if not quiet:
            self._show_examples(db, console, EXAMPLES)
            if census is not None:
                self._show_examples(census, console, CURATED)
                self._show_diff(census, console)

    def _curate_demo_releases(self, db: DB, console: Console, quiet: bool) -> list[CurationSummary]:
        """Ontologies, two demo releases and their curation (each skipped when done)."""

        def say(message: str) -> None:
            if not quiet:
                console.print(message, markup=False, soft_wrap=True)

        full.ensure_ontologies(db.alias, say)
        roots = full.ensure_releases(full.bucket_of(db.name), say)
        return full.curate_all(roots, db.alias, say)

    def _show_diff(self, db: DB, console: Console) -> None:
        old, new = full.RELEASES
        console.rule(f"Release diff {old} -> {new}")
        console.print(Syntax(f"release_diff({old!r}, {new!r})", "python", theme="ansi_dark"))
        diff = release_diff(old, new, using=db.alias)
        console.print(render_diff(diff), markup=False, soft_wrap=True)

    def _show_examples(self, db: DB, console: Console, examples: tuple[Example, ...]) -> None:
        namespace: dict[str, Any] = {"db": db}
        for example in examples:
            console.rule(example.title)
            console.print(Syntax(example.code, "python", theme="ansi_dark"))
            started = time.perf_counter()
            try:
                value, printed = run_example(example.code, namespace)
            except Exception as exc:  # reported with the example that failed, not swallowed
                raise CommandError(
                    f"Example {example.title!r} failed on instance {db.name!r}: "
                    f"{type(exc).__name__}: {exc}. The examples need the synthetic demo data; "
                    "run the demo on a fresh instance (`python manage.py demo`)."
                ) from exc
            if printed:
                console.print(printed.rstrip(), markup=False, soft_wrap=True)
            if isinstance(value, pd.DataFrame):
                console.print(frame_table(value, example.columns) if len(value) else "(no rows)")
            elif value is not None:
                console.print(repr(value), markup=False)
            console.print(f"[dim]({(time.perf_counter() - started) * 1000:.0f} ms)[/dim]")
