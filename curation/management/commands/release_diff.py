"""``manage.py release_diff OLD_TAG NEW_TAG``: what changed between two curated releases.

Prints tables (datasets added, removed and revised; labels gained and lost per dataset), or with
``--json`` one JSON object with the keys ``old``, ``new``, ``added``, ``removed``, ``revised``,
``unchanged``, ``label_changes`` and ``features``. See :mod:`curation.diff`.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from curation.diff import ReleaseDiff, release_diff
from curation.register import FEATURES
from registry.errors import RegistryError

#: label names shown per table cell; the JSON output has all
MAX_NAMES = 12
#: console width when the output is not a terminal (dataset ids and titles stay on one line)
PIPE_WIDTH = 160
ID_WIDTH = 36


class Command(BaseCommand):
    help = "Compare two curated Census releases: datasets added, removed, revised; label changes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("old", metavar="OLD_TAG", help="the earlier release, e.g. 2024-07-01")
        parser.add_argument("new", metavar="NEW_TAG", help="the later release, e.g. 2025-01-30")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--feature",
            dest="features",
            action="extend",
            nargs="+",
            choices=list(FEATURES),
            metavar="FEATURE",
            help=f"compare the labels of these features only (of: {', '.join(FEATURES)})",
        )
        parser.add_argument("--database", default="default", help="database alias")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            diff = release_diff(
                options["old"],
                options["new"],
                using=options["database"],
                features=options["features"],
            )
        except RegistryError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(diff.as_dict(), indent=1, ensure_ascii=False))
        else:
            self.stdout.write(render(diff, width=_width()), ending="")


def _width() -> int:
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size().columns, 100)
    return PIPE_WIDTH


def _names(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f", ... ({len(names) - MAX_NAMES} more)" if len(names) > MAX_NAMES else "")


def _cells(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("dataset_id", no_wrap=True, min_width=ID_WIDTH)
    for column in columns:
        table.add_column(column, justify="right" if "cells" in column else "left")
    return table


def render(diff: ReleaseDiff, width: int = PIPE_WIDTH) -> str:
    """The diff as text: a summary line and one table per section (empty sections say so)."""
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False)
    console.print(
        f"Release diff {escape(diff.old)} -> {escape(diff.new)}: {len(diff.added)} added, "
        f"{len(diff.removed)} removed, {len(diff.revised)} revised, {diff.unchanged} unchanged; "
        f"{len(diff.label_changes)} kept dataset(s) with label changes"
    )
    for name, entries in (("Added", diff.added), ("Removed", diff.removed)):
        console.print()
        if not entries:
            console.print(f"{name}: none")
            continue
        table = _table(f"{name} ({len(entries)})", "title", "cells", "dataset_version_id")
        for d in entries:
            table.add_row(d.dataset_id, escape(d.title), _cells(d.n_cells), d.dataset_version_id)
        console.print(table)
    console.print()
    if diff.revised:
        table = _table(f"Revised ({len(diff.revised)})", "title", "cells old -> new", "versions")
        for r in diff.revised:
            title = r.title if r.title == r.old_title else f"{r.title} (was: {r.old_title})"
            cells = f"{_cells(r.old_n_cells)} -> {_cells(r.new_n_cells)}"
            versions = f"{r.old_version_id}\n-> {r.new_version_id}"
            table.add_row(r.dataset_id, escape(title), cells, versions)
        console.print(table)
    else:
        console.print("Revised: none")
    console.print()
    if diff.label_changes:
        n = len(diff.label_changes)
        table = _table(
            f"Label changes ({n} dataset{'s' if n != 1 else ''})",
            "title",
            "feature",
            "gained",
            "lost",
        )
        for change in diff.label_changes:
            title = change.title + (" [revised]" if change.revised else "")
            for i, (feature, labels) in enumerate(change.features.items()):
                first = i == 0
                table.add_row(
                    change.dataset_id if first else "",
                    escape(title) if first else "",
                    feature,
                    escape(_names(labels.gained)) or "-",
                    escape(_names(labels.lost)) or "-",
                    end_section=i == len(change.features) - 1,
                )
        console.print(table)
    else:
        console.print("Label changes: none")
    console.print(f"(labels compared for: {', '.join(diff.features)})")
    return console.file.getvalue()
