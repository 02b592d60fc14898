"""Write a release's cell-level summary (``ontologies.Cells``, ``ln.Cells``) from the combinations
the annotate step counted (:data:`curation.annotate.Combinations`).

One row per (dataset, ``is_primary_data``, value of each summarized feature) with its cells.
Ontology values become term keys (none for ``unknown``/``na``, several terms ``"A || B"`` and
terms the registry lacks — the latter are reported by the register step); free-text features
keep their value. The release's rows are replaced as a whole, in one transaction, with COPY on
PostgreSQL and multi-row INSERTs on SQLite (building model instances would cost more than the
database work).
"""

from __future__ import annotations

from django.apps import apps
from django.db import connections, transaction

from curation.annotate import SUMMARY_NAMES, Combinations
from curation.features import BY_NAME
from curation.register import Vocabulary
from registry.databases import check_writable
from registry.models import Artifact

#: parameters per INSERT statement (within SQLite's and PostgreSQL's limits)
INSERT_PARAMETERS = 30_000


def summary_model() -> type:
    """The summary registry (found through the app registry: curation does not import
    ontologies)."""
    return apps.get_model("ontologies", "Cells")


def summary_rows(
    release: Artifact,
    artifacts: dict[str, int],
    combinations: Combinations,
    vocab: Vocabulary,
) -> list[tuple]:
    """The rows (in :func:`summary_columns` order) of the registered datasets' combinations.

    Args:
        release: the release's SOMA store artifact.
        artifacts: dataset_id -> artifact pk of the datasets registered in the release.
        combinations: the counts of the annotate step.
        vocab: term id -> pk per feature (:func:`curation.register.resolve_terms`).
    """
    lookups = []
    for name in SUMMARY_NAMES:
        spec = BY_NAME[name]
        lookups.append(vocab.terms.get(name, {}) if spec.is_ontology else None)
    rows = []
    for (dataset_id, primary, *values), n_cells in combinations.items():
        artifact_id = artifacts.get(dataset_id)
        if artifact_id is None:  # not registered (a problem of the dataset, reported)
            continue
        fields = [
            value if terms is None else terms.get(value)
            for value, terms in zip(values, lookups, strict=True)
        ]
        rows.append((release.pk, artifact_id, *fields, primary, n_cells))
    return rows


def summary_columns() -> list[str]:
    """The table columns of :func:`summary_rows`, in order."""
    model = summary_model()
    names = ["release", "artifact", *SUMMARY_NAMES, "is_primary_data", "n_cells"]
    missing = [n for n in names if n not in {f.name for f in model._meta.concrete_fields}]
    if missing:
        raise LookupError(
            f"{model.__name__} has no field(s) {', '.join(missing)} for the summarized features "
            "(curation.features.SUMMARIZED): add them to the model, with a migration."
        )
    return [model._meta.get_field(name).column for name in names]


def write_summary(
    release: Artifact,
    artifacts: dict[str, int],
    combinations: Combinations,
    vocab: Vocabulary,
    using: str,
) -> int:
    """Replace the release's summary rows; the number of rows written."""
    model = summary_model()
    check_writable(using, f"write the cell summary of {release.key}")
    columns = summary_columns()
    rows = summary_rows(release, artifacts, combinations, vocab)
    db = connections[using]
    quote = db.ops.quote_name
    head = (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(c) for c in columns)}) VALUES "
    )
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    chunk = max(1, INSERT_PARAMETERS // len(columns))
    with transaction.atomic(using=using), db.cursor() as cursor:
        model.objects.db_manager(using).filter(release_id=release.pk).delete()
        if db.vendor == "postgresql":  # COPY: ten times faster than INSERTs of many rows
            names = ", ".join(quote(c) for c in columns)
            statement = f"COPY {quote(model._meta.db_table)} ({names}) FROM STDIN"
            with cursor.cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(f"ANALYZE {quote(model._meta.db_table)}")  # the planner's figures
            return len(rows)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            cursor.execute(
                head + ", ".join([placeholder] * len(part)),
                [value for row in part for value in row],
            )
    return len(rows)
