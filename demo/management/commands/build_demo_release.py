"""``manage.py build_demo_release``: write a CELLxGENE-Census-like release, offline.

Writes ``DEST/cell-census/<tag>/h5ads/<dataset_id>.h5ad`` and ``DEST/cell-census/<tag>/soma/``
(the Census SOMA layout), DEST being a local folder or ``s3://bucket/prefix`` (endpoint and
credentials from the usual AWS variables, e.g. ``AWS_ENDPOINT_URL``). With ``--previous TAG``
the new release evolves from release TAG at the same DEST. Each build also adds its release to
the release directory ``DEST/cell-census/release.json`` (the Census's ``release.json``: tags with
their SOMA and h5ad locations and LTS flags, aliases ``latest`` and ``stable``), flagged LTS unless
``--no-lts``. No database is touched.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.census.release import build_release
from registry.commandline import DatabaseNeed
from registry.errors import RegistryError
from registry.formatting import format_size
from registry.progress import step_bars


class Command(BaseCommand):
    help = "Build a demo CELLxGENE Census release (h5ads + SOMA store) into a folder or S3."
    database_needs = DatabaseNeed.NONE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tag", required=True, help="release tag, e.g. 2025-01-30")
        parser.add_argument(
            "--dest", required=True, help="local folder or s3://bucket/prefix (the bucket root)"
        )
        parser.add_argument("--previous", help="evolve this earlier release found at DEST")
        parser.add_argument("--datasets", type=int, default=100, help="datasets (default 100)")
        parser.add_argument(
            "--cells-per-dataset", type=int, default=2000, help="mean cells per dataset"
        )
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        parser.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
        parser.add_argument("--overwrite", action="store_true", help="replace an existing tag")
        parser.add_argument(
            "--lts",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="flag the release long-term stable in cell-census/release.json (default: LTS)",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress, no summary")

    def handle(self, *args: Any, **options: Any) -> None:
        with step_bars(options["quiet"]) as progress:
            try:
                summary = build_release(
                    options["dest"],
                    options["tag"],
                    previous=options["previous"],
                    n_datasets=options["datasets"],
                    cells_per_dataset=options["cells_per_dataset"],
                    seed=options["seed"],
                    workers=options["workers"],
                    overwrite=options["overwrite"],
                    lts=options["lts"],
                    progress=progress,
                )
            except RegistryError as exc:  # a bad tag or destination, a missing previous release
                raise CommandError(str(exc)) from exc
        if options["quiet"]:
            return
        evolved = f" (from {summary.previous_tag})" if summary.previous_tag else ""
        self.stdout.write(
            f"Release {summary.tag}{evolved} at {summary.root}: "
            f"{summary.n_datasets} datasets in {summary.n_collections} collections, "
            f"{summary.n_cells:,} cells, {format_size(summary.h5ad_bytes)} of new h5ads"
            f"{f', {summary.copied} unchanged h5ads copied' if summary.copied else ''}, "
            f"{summary.seconds:.1f} s."
        )
