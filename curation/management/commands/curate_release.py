"""``manage.py curate_release --source ROOT``: mirror a Census release into the registry.

ROOT is a release root, ``s3://bucket[/prefix]/cell-census/<tag>/`` or a local folder of the same
layout. Progress bars per step on stderr, a summary at the end; the exit status is non-zero when
datasets had problems only with ``--strict``. See :mod:`curation.steps`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from curation.executors import EXECUTOR_KINDS
from curation.steps import CurationSummary, curate_release
from registry.errors import RegistryError

MAX_LISTED = 20


class Command(BaseCommand):
    help = "Curate a CELLxGENE Census release (by reference) into the registry."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, help="ROOT/cell-census/<tag>/ (S3 or local)")
        parser.add_argument("--workers", type=int, default=None, help="worker processes")
        parser.add_argument("--executor", choices=EXECUTOR_KINDS, default="local")
        parser.add_argument("--ray-address", default=None, help="an existing Ray cluster")
        parser.add_argument("--limit", type=int, default=None, help="first K datasets only")
        parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
        parser.add_argument(
            "--strict", action="store_true", help="exit 1 if any dataset had problems"
        )
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")

    def handle(self, *args: Any, **options: Any) -> None:
        console = Console(file=sys.stderr, quiet=options["quiet"])
        columns = (
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            tasks: dict[str, Any] = {}

            def progress(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(step, total=total)
                bar.update(tasks[step], completed=done, total=total)

            try:
                summary = curate_release(
                    options["source"],
                    using=options.get("database") or "default",
                    workers=options["workers"],
                    executor=options["executor"],
                    ray_address=options["ray_address"],
                    limit=options["limit"],
                    dry_run=options["dry_run"],
                    progress=progress,
                )
            except RegistryError as exc:
                raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(_as_json(summary), indent=1))
        else:
            self.stdout.write(_as_text(summary))
        if options["strict"] and summary.problems:
            raise CommandError(f"{len(summary.problems)} problem(s) (--strict)", returncode=1)


def _as_json(summary: CurationSummary) -> dict:
    return {
        "release": summary.release,
        "run": summary.run_uid,
        "already_curated": summary.already_curated,
        "dry_run": summary.dry_run,
        "artifacts": {"added": summary.added, "unchanged": summary.unchanged},
        "soma_added": summary.soma_added,
        "links": dict(summary.links),
        "collections": summary.collections,
        "problems": summary.problems,
        "unlisted_files": summary.unlisted_files,
    }


def _as_text(summary: CurationSummary) -> str:
    if summary.already_curated:
        head = f"{summary.release}: already curated by run {summary.run_uid}; nothing to do."
    else:
        verb = "would add" if summary.dry_run else "added"
        links = ", ".join(f"{k} {v}" for k, v in sorted(summary.links.items()) if v)
        collections = ", ".join(f"{v} {k}" for k, v in summary.collections.items())
        head = (
            f"{summary.release} (run {summary.run_uid}{', dry run' if summary.dry_run else ''}): "
            f"{verb} {summary.added} artifacts, {summary.unchanged} already there; "
            f"SOMA store {'added' if summary.soma_added else 'already there'}.\n"
            f"  links by feature: {links or 'none'}\n  collections: {collections or 'none'}"
        )
    lines = [head]
    if summary.unlisted_files:
        lines.append(
            f"  {len(summary.unlisted_files)} h5ad file(s) not in the manifest (not registered): "
            + ", ".join(summary.unlisted_files[:MAX_LISTED])
        )
    if summary.problems:
        lines.append(f"  {len(summary.problems)} problem(s):")
        for p in summary.problems[:MAX_LISTED]:
            column = f" [{p['column']}]" if p["column"] else ""
            values = f": {', '.join(p['values'])}" if p["values"] else ""
            lines.append(f"    {p['dataset_id']}{column} {p['reason']}{values}")
        if len(summary.problems) > MAX_LISTED:
            lines.append(f"    ... ({len(summary.problems) - MAX_LISTED} more in the run report)")
    return "\n".join(lines)
