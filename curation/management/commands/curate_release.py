"""``manage.py curate_release --source ROOT``: mirror a Census release into the registry.

ROOT is a release root, ``s3://bucket[/prefix]/cell-census/<tag>/`` or a local folder of the same
layout (relative to the working directory, if it is not absolute). Progress bars per step on
stderr, a summary at the end; the exit status is non-zero when datasets had problems only with
``--strict``. SIGTERM is handled like Ctrl-C: the worker processes are stopped, the run is marked
failed (the next run of the release resumes it) and the command exits with 128 + the signal's
number. See :mod:`curation.steps`.
"""

from __future__ import annotations

import json
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from curation.executors import EXECUTOR_KINDS
from curation.steps import CurationSummary, curate_release
from registry.commandline import DatabaseNeed
from registry.errors import RegistryError
from registry.progress import step_bars

MAX_LISTED = 20


class Command(BaseCommand):
    help = "Curate a CELLxGENE Census release (by reference) into the registry."
    database_needs = DatabaseNeed.WRITABLE

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
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            self._handle(**options)
        except KeyboardInterrupt as interrupt:
            name = str(interrupt) or "SIGINT"
            number = signal.SIGTERM if name == "SIGTERM" else signal.SIGINT
            raise CommandError(
                f"curate_release of {options['source']} interrupted ({name}); the run is marked "
                "failed and the next run of the same command resumes it.",
                returncode=128 + number,
            ) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _handle(self, **options: Any) -> None:
        with step_bars(options["quiet"]) as progress:
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


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM: stop like Ctrl-C does (the run is marked failed, workers are stopped)."""
    raise KeyboardInterrupt("SIGTERM")


def _as_json(summary: CurationSummary) -> dict:
    return {
        "release": summary.release,
        "run": summary.run_uid,
        "already_curated": summary.already_curated,
        "dry_run": summary.dry_run,
        "resumed": summary.resumed,
        "skipped_steps": summary.skipped_steps,
        "changed_since": summary.changed_since or None,
        "artifacts": {
            "added": summary.added,
            "unchanged": summary.unchanged,
            "revised": summary.revised,
            "removed": summary.removed,
        },
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
        collections = ", ".join(f"{v} {k}" for k, v in summary.collections.items() if v)
        changes = "".join(
            f", {n} {what}"
            for what, n in (("revised", summary.revised), ("removed", summary.removed))
            if n
        )
        notes = [", dry run" if summary.dry_run else ""]
        if summary.resumed:
            skipped = ", ".join(summary.skipped_steps) or "none"
            notes.append(f", resumed; steps done before: {skipped}")
        head = (
            f"{summary.release} (run {summary.run_uid}{''.join(notes)}): "
            f"{verb} {summary.added} artifacts, {summary.unchanged} already there{changes}; "
            f"SOMA store {'written' if summary.soma_added else 'already there'}.\n"
            f"  links by feature: {links or 'none'}\n  collections: {collections or 'none'}"
        )
        if summary.changed_since:
            head = (
                f"{summary.release} changed since run {summary.changed_since} curated it: "
                "curating the difference.\n" + head
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
