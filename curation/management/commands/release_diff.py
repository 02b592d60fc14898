"""``manage.py release_diff OLD_TAG NEW_TAG``: what changed between two curated releases.

Prints tables (datasets added, removed and revised; labels gained and lost per dataset), or with
``--json`` one JSON object with the keys ``old``, ``new``, ``added``, ``removed``, ``revised``,
``unchanged``, ``label_changes`` and ``features``. See :mod:`curation.diff` and
:mod:`curation.diff_report`.
"""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from curation.diff import release_diff
from curation.diff_report import PIPE_WIDTH, render
from curation.features import NAMES
from registry.commandline import DatabaseNeed
from registry.errors import RegistryError

#: narrowest console: the tables keep dataset ids (36 characters) on one line
MIN_WIDTH = 120


class Command(BaseCommand):
    help = "Compare two curated Census releases: datasets added, removed, revised; label changes."
    database_needs = DatabaseNeed.MIGRATED

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("old", metavar="OLD_TAG", help="the earlier release, e.g. 2024-07-01")
        parser.add_argument("new", metavar="NEW_TAG", help="the later release, e.g. 2025-01-30")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--feature",
            dest="features",
            action="extend",
            nargs="+",
            choices=list(NAMES),
            metavar="FEATURE",
            help=f"compare the labels of these features only (of: {', '.join(NAMES)})",
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
        return max(shutil.get_terminal_size().columns, MIN_WIDTH)
    return PIPE_WIDTH
