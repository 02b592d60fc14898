"""The example queries ``manage.py demo`` runs on the demo instance, and how they are shown.

They are the queries of the LaminDB CELLxGENE guide, on the demo's curated releases (real
ontology terms, files that load offline). Each example is shown and run from the same text, like a
notebook cell whose last line is the answer, so what is printed is exactly what ran; all share
one namespace holding ``db`` (a handle on the demo instance).
"""

from __future__ import annotations

import ast
import contextlib
import io
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from django.core.management.base import CommandError
from rich import box
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from curation.diff import release_diff
from curation.diff_report import render as render_diff
from registry.connection import DB
from registry.formatting import format_size

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
    size__gt=4e5,  # size > 400 kB (the guide: > 1 GB; the demo's files are small)
    cell_types__name__in=["B cell", "T cell"],
    is_latest=True,
).order_by("created_at").to_dataframe(include=["cell_types__name", "created_by__handle"])""",
        ("description", "version", "size", "cell_types__name", "created_by__handle"),
    ),
    Example(
        "Inspect a dataset",
        """\
artifact = db.Artifact.get(description="Mature kidney dataset: immune")
artifact.describe()""",
    ),
    Example(
        "Cache and load it, then slice in memory",
        """\
cache_path = artifact.cache()  # local storage: the file itself, nothing is copied
adata = artifact.load()
tissues = db.bionty.Tissue.lookup()
suspension_types = db.ULabel.filter(type__name="SuspensionType").lookup()
experimental_factors = db.bionty.ExperimentalFactor.lookup()
adata[
    adata.obs.cell_type.isin([cell_types.dendritic_cell.name, cell_types.neutrophil.name])
    & (adata.obs.tissue == tissues.kidney.name)
    & (adata.obs.suspension_type == suspension_types.cell.name)
    & (adata.obs.assay == experimental_factors.ln_10x_3_v2.name)
]""",
    ),
    Example(
        "Stream a slice (only the selected rows are read)",
        """\
with artifact.open() as adata_backed:
    adata_backed_slice = adata_backed[
        adata_backed.obs.cell_type.isin([cell_types.dendritic_cell.name])
    ].to_memory()
adata_backed_slice""",
    ),
    Example(
        "The guide's study collection, by uid, and its versions",
        """\
collection = db.Collection.get("quQDnLsMLkP3JRsC8gp5")
collection.versions.to_dataframe()""",
        ("uid", "key", "version", "is_latest", "reference"),
    ),
    Example(
        "Query within the Census collection",
        """\
organisms = db.bionty.Organism.lookup()
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
        "Slice the release's TileDB-SOMA store",
        """\
from tiledbsoma import AxisQuery

features = db.Feature.lookup(return_field="name")
value_filter = (
    f'{features.tissue} == "{tissues.kidney.name}" and {features.cell_type} in'
    f' ["{cell_types.dendritic_cell.name}", "{cell_types.neutrophil.name}"]'
)
census_artifact = db.Artifact.get(key="cell-census/2025-01-30/soma")
with census_artifact.open() as store:
    experiment = store["census_data"]["homo_sapiens"]
    adata = experiment.axis_query(
        "RNA", obs_query=AxisQuery(value_filter=value_filter)
    ).to_anndata(X_name="raw", column_names={"obs": [features.cell_type, features.tissue]})
adata.obs.value_counts().to_frame()""",
    ),
)


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
    index_name = " / ".join(str(n) for n in frame.index.names if n is not None)
    table.add_column(index_name, justify="right")
    for column in shown:
        table.add_column(str(column), overflow="fold", no_wrap=column in {"uid", "key"})
    for index, row in frame.head(TABLE_ROWS).iterrows():
        label = " / ".join(map(str, index)) if isinstance(index, tuple) else str(index)
        table.add_row(label, *(_text(column, row[column]) for column in shown))
    return table


def show_examples(db: DB, console: Console, examples: tuple[Example, ...] = EXAMPLES) -> None:
    """Show and run each example on ``db``, with its answer and how long it took.

    Raises:
        CommandError: an example failed (named, with the instance and the error).
    """
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
                f"{type(exc).__name__}: {exc}. The examples need the demo's curated releases: "
                "run the demo on a fresh instance (`python manage.py demo`)."
            ) from exc
        if printed:
            console.print(printed.rstrip(), markup=False, soft_wrap=True)
        if isinstance(value, pd.DataFrame):
            console.print(frame_table(value, example.columns) if len(value) else "(no rows)")
        elif value is not None:
            console.print(repr(value), markup=False)
        console.print(f"[dim]({(time.perf_counter() - started) * 1000:.0f} ms)[/dim]")


def show_release_diff(db: DB, console: Console, old: str, new: str) -> None:
    """The release diff of two curated releases, as ``release_diff`` reports it."""
    console.rule(f"Release diff {old} -> {new}")
    console.print(Syntax(f"release_diff({old!r}, {new!r})", "python", theme="ansi_dark"))
    diff = release_diff(old, new, using=db.alias)
    console.print(render_diff(diff), markup=False, soft_wrap=True)
