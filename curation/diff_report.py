"""The release diff as text: a summary line and one table per section (added, removed, revised,
label changes), as ``manage.py release_diff`` and the demo print it."""

from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from curation.diff import DatasetEntry, DatasetLabelChanges, ReleaseDiff, Revision

#: label names shown per table cell; the JSON output has all
MAX_NAMES = 12
#: console width when the output is not a terminal (dataset ids and titles stay on one line)
PIPE_WIDTH = 160


def _names(names: tuple[str, ...]) -> str:
    """Label names one per line (at most ``MAX_NAMES``), or ``-``."""
    if not names:
        return "-"
    shown = list(names[:MAX_NAMES])
    if len(names) > MAX_NAMES:
        shown.append(f"... ({len(names) - MAX_NAMES} more)")
    return escape("\n".join(shown))


def _cells(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("dataset_id", no_wrap=True)
    for column in columns:
        justify = "right" if "cells" in column else "left"
        table.add_column(column, justify=justify, overflow="fold")
    return table


def _datasets_section(name: str, entries: list[DatasetEntry]) -> Table | str:
    if not entries:
        return f"{name}: none"
    table = _table(f"{name} ({len(entries)})", "title", "cells", "dataset_version_id")
    for d in entries:
        table.add_row(d.dataset_id, escape(d.title), _cells(d.n_cells), d.dataset_version_id)
    return table


def _revised_section(revised: list[Revision]) -> Table | str:
    if not revised:
        return "Revised: none"
    table = _table(f"Revised ({len(revised)})", "title", "cells old -> new", "dataset_version_id")
    for r in revised:
        title = r.title if r.title == r.old_title else f"{r.title} (was: {r.old_title})"
        cells = f"{_cells(r.old_n_cells)} -> {_cells(r.new_n_cells)}"
        versions = f"{r.old_version_id}\n-> {r.new_version_id}"
        table.add_row(r.dataset_id, escape(title), cells, versions)
    return table


def _labels_section(changes: list[DatasetLabelChanges]) -> Table | str:
    if not changes:
        return "Label changes: none"
    plural = "s" if len(changes) != 1 else ""
    table = _table(
        f"Label changes ({len(changes)} dataset{plural})", "title", "feature", "gained", "lost"
    )
    for change in changes:
        title = change.title + (" [revised]" if change.revised else "")
        for i, (feature, labels) in enumerate(change.features.items()):
            table.add_row(
                change.dataset_id if i == 0 else "",
                escape(title) if i == 0 else "",
                feature,
                _names(labels.gained),
                _names(labels.lost),
                end_section=i == len(change.features) - 1,
            )
    return table


def render(diff: ReleaseDiff, width: int = PIPE_WIDTH) -> str:
    """The diff as text: a summary line, then the sections added, removed, revised and label
    changes (a table each; an empty section says "none"), and the features compared."""
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False)
    console.print(
        f"Release diff {escape(diff.old)} -> {escape(diff.new)}: {len(diff.added)} added, "
        f"{len(diff.removed)} removed, {len(diff.revised)} revised, {diff.unchanged} unchanged; "
        f"{len(diff.label_changes)} kept dataset(s) with label changes"
    )
    sections = (
        _datasets_section("Added", diff.added),
        _datasets_section("Removed", diff.removed),
        _revised_section(diff.revised),
        _labels_section(diff.label_changes),
    )
    for section in sections:
        console.print()
        console.print(section)
    console.print(f"(labels compared for: {', '.join(diff.features)})")
    return console.file.getvalue()
