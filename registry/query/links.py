"""Link-table SQL: the one module that writes SQL over the tables linking records (label links,
collection members, any many-to-many relation).

The ORM composes subqueries over link tables far more slowly than the database runs them, so the
hot paths are plain SQL built here, once:

- :func:`link_subquery_sql`: a filter on a many-to-many relation as ``SELECT source FROM link
  WHERE target IN (...)``;
- :func:`link_values`: the values of a many-valued ``include`` column for a chunk of records;
- :func:`linked_labels_sql`: every label of an artifact, across all label registries, as one
  ``UNION ALL``;
- :func:`insert_links`: link rows as multi-row INSERTs that keep links that exist already;
- :class:`InLinkSubqueries`: such subqueries added to a query's WHERE as they are (the ORM's
  ``pk__in=...`` machinery would cost more than the database spends running them);
- :func:`keep_label_counts`: on SQLite, the number of artifacts of each label, kept by triggers
  on the label link tables, so that ``Artifact.filter(cell_types__name=...).count()`` reads one
  row however many artifacts the instance holds.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from django.apps import apps
from django.db import connection, connections, models, transaction
from django.db.models.constants import LOOKUP_SEP
from django.db.models.expressions import RawSQL

from registry.databases import check_writable, configured_read_only
from registry.query.aliases import has_field

#: a link row: (artifact_id, label_id, feature_id, n_cells, n_primary_cells)
LinkRow = tuple[int, int, int | None, int | None, int | None]
LINK_FIELDS = ("artifact", "label", "feature", "n_cells", "n_primary_cells")
#: rows per INSERT statement (5 parameters each; well within SQLite's and PostgreSQL's limits)
INSERT_CHUNK = 1000


def m2m_link(
    model: type[models.Model], relation: str
) -> tuple[type[models.Model], str, str] | None:
    """For a many-to-many relation of ``model``: (link table, FK to model, FK to the other side).

    Works for forward (``Artifact.cell_types``) and reverse (``Artifact.collections``) relations;
    ``None`` for anything else.
    """
    field = model._meta.get_field(relation)
    if isinstance(field, models.ManyToManyField):
        return field.remote_field.through, field.m2m_field_name(), field.m2m_reverse_field_name()
    if isinstance(field, models.ManyToManyRel):
        forward = field.remote_field
        return field.through, forward.m2m_reverse_field_name(), forward.m2m_field_name()
    return None


_ID_SUFFIXES = {"", "__exact", "__pk", "__id", "__in", "__pk__in", "__id__in"}
_TEXT_TYPES = {"CharField", "TextField"}
_INT_TYPES = {"IntegerField", "BigIntegerField", "PositiveIntegerField", "SmallIntegerField"}


def _plain_values(values: Any, accept: Callable[[Any], Any]) -> list[Any] | None:
    """The values of an equality/IN condition if all are plain, else None."""
    if not isinstance(values, list | tuple | set | frozenset):
        return None
    accepted = [accept(value) for value in values]
    return None if any(value is None for value in accepted) else accepted


def _as_id(value: Any) -> int | None:
    if isinstance(value, models.Model):
        return value.pk
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class PlainColumn(NamedTuple):
    """A column on the far side of a link table that plain SQL can read and compare."""

    model: type[models.Model]
    name: str | None  # None: the related id itself
    accept: Callable[[Any], Any]  # a value as it may be passed as a parameter, or None


def _accept_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _accept_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def plain_column(through: type[models.Model], target: str, name: str) -> PlainColumn | None:
    """The text or integer column ``name`` of the model behind ``through.target`` ("" or "pk"/"id"
    for the related id), or ``None`` when plain SQL would not read it exactly like the ORM."""
    other = through._meta.get_field(target).related_model
    if name in {"", "pk", "id"}:
        return PlainColumn(other, None, _as_id)
    if not has_field(other, name):
        return None
    field = other._meta.get_field(name)
    kind = field.get_internal_type() if field.concrete and not field.is_relation else ""
    if kind in _TEXT_TYPES:
        return PlainColumn(other, field.column, _accept_text)
    if kind in _INT_TYPES:
        return PlainColumn(other, field.column, _accept_int)
    return None


def link_subquery_sql(
    through: type[models.Model], source: str, target: str, rest: str, value: Any
) -> RawSQL | None:
    """A condition on a many-to-many relation as plain SQL over its link table, if it is simple.

    Simple means: related records or ids (``cell_types=rec``, ``cell_types__in=[...]``), or
    equality/IN on a text or integer column of the other side (``cell_types__name__in=[...]``).
    Building this costs a fraction of the ORM's subquery machinery, which for these filters costs
    more than running the query. Anything else returns ``None`` and goes through the ORM.
    """
    quote = connection.ops.quote_name
    if rest in _ID_SUFFIXES:
        is_in, column = rest.endswith("__in"), plain_column(through, target, "")
    else:
        name, _, lookup = rest[len(LOOKUP_SEP) :].partition(LOOKUP_SEP)
        if lookup not in {"", "exact", "in"}:
            return None
        is_in, column = lookup == "in", plain_column(through, target, name)
    if column is None:
        return None
    params = _plain_values(value if is_in else [value], column.accept)
    if params is None:
        return None
    marks = ", ".join(["%s"] * len(params)) or "NULL"
    if column.name is None:
        targets = f"IN ({marks})"
    else:
        other = column.model._meta
        targets = (
            f"IN (SELECT {quote(other.pk.column)} "
            f"FROM {quote(other.db_table)} WHERE {quote(column.name)} IN ({marks}))"
        )
    return LinkSubquery(through, source, target, targets, tuple(params))


class LinkSubquery(RawSQL):
    """``SELECT source FROM link WHERE condition`` (:func:`link_subquery_sql`), which can also be
    written as a correlated ``EXISTS`` probe and knows roughly how many link rows it selects."""

    def __init__(
        self, through: type[models.Model], source: str, target: str, targets: str, params: tuple
    ) -> None:
        quote = connection.ops.quote_name
        self.through, self.source, self.targets = through, source, targets
        self.condition = f"{quote(through._meta.get_field(target).column)} {targets}"
        self.table = quote(through._meta.db_table)
        self.source_name = quote(through._meta.get_field(source).column)
        self.source_column = f"{self.table}.{self.source_name}"
        super().__init__(
            f"SELECT {self.source_column} FROM {self.table} WHERE {self.condition}", params
        )

    def exists_sql(self, outer: str, fenced: bool = False) -> str:
        """The condition "``outer`` is the source of a matching link row", as one index probe
        per outer row. ``fenced`` (PostgreSQL) adds ``OFFSET 0``, which keeps the planner from
        turning the probe back into a join over every matching link row."""
        fence = " OFFSET 0" if fenced else ""
        return (
            f"EXISTS (SELECT 1 FROM {self.table} WHERE {self.source_column} = {outer} "
            f"AND {self.condition}{fence})"
        )

    def driving_sql(self, probes: list[LinkSubquery]) -> str:
        """This subquery with ``probes`` checked on each of its link rows: the sources that
        pass them all, found from the link tables' indexes alone (the filtered table's rows
        are read for the survivors only). Its link rows are ``d``, so that a probe of the same
        link table names its own rows."""
        checks = "".join(f" AND {probe.exists_sql(f'd.{self.source_name}')}" for probe in probes)
        return f"SELECT d.{self.source_name} FROM {self.table} d WHERE {self.condition}{checks}"

    def count_sql(self) -> str:
        """The number of distinct sources of the matching link rows (from the index alone)."""
        sources = f"COUNT(DISTINCT {self.source_column})"
        return f"SELECT {sources} FROM {self.table} WHERE {self.condition}"

    def count(self, db: Any) -> int:
        """The number of distinct sources of the matching link rows: read from the kept label
        counts (:func:`keep_label_counts`) when they answer it, else counted."""
        with db.cursor() as cursor:
            if self.source == "artifact" and self.through._meta.db_table in kept_counts(db):
                cursor.execute(kept_count_sql(self), [self.through._meta.db_table, *self.params])
                kept = cursor.fetchone()[0]
                if kept is not None:
                    return kept
            cursor.execute(self.count_sql(), self.params)
            return cursor.fetchone()[0]

    def estimated_rows(self, db: Any) -> int:
        """Link rows this subquery selects, counted (from the index alone) and reused for
        :data:`ESTIMATE_TTL` s: a plan choice, never an answer, rests on it."""
        return planning_count(
            db, f"SELECT COUNT(*) FROM {self.table} WHERE {self.condition}", self.params
        )


#: seconds a count of :func:`planning_count` is reused before it is read again
ESTIMATE_TTL = 300.0
#: counts kept at most (the oldest go first)
ESTIMATE_ENTRIES = 4096
_planning_counts: dict[tuple[Any, ...], tuple[int, float]] = {}


def planning_count(db: Any, sql: str, params: tuple = ()) -> int:
    """``sql`` (a ``SELECT COUNT(*)``) on connection ``db``, read at most every
    :data:`ESTIMATE_TTL` s. For choosing a plan only: a count up to that old may be stale."""
    key = (db.alias, str(db.settings_dict.get("NAME")), sql, params)
    now = time.monotonic()
    cached = _planning_counts.get(key)
    if cached is not None and now - cached[1] < ESTIMATE_TTL:
        return cached[0]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        (count,) = cursor.fetchone()
    if len(_planning_counts) >= ESTIMATE_ENTRIES:  # the oldest goes
        with contextlib.suppress(KeyError, RuntimeError, StopIteration):  # another thread's race
            del _planning_counts[next(iter(_planning_counts))]
    _planning_counts[key] = (int(count), now)
    return int(count)


def link_values(
    using: str, link: tuple[type[models.Model], str, str], column: PlainColumn, ids: list[int]
) -> list[tuple[int, Any]]:
    """(record id, value) of every link of the records ``ids``: the related id itself, or the
    column of the other side named by ``column`` (NULLs left out)."""
    through, source, target = link
    quote = connections[using].ops.quote_name
    source_column = quote(through._meta.get_field(source).column)
    target_column = quote(through._meta.get_field(target).column)
    marks = ", ".join(["%s"] * len(ids)) or "NULL"
    if column.name is None:
        select, join = target_column, ""
    else:
        other = column.model._meta
        select = f"o.{quote(column.name)}"
        join = f" JOIN {quote(other.db_table)} o ON o.{quote(other.pk.column)} = {target_column}"
    sql = (
        f"SELECT {source_column}, {select} FROM {quote(through._meta.db_table)}{join} "
        f"WHERE {source_column} IN ({marks}) AND {select} IS NOT NULL"
    )
    with connections[using].cursor() as cursor:
        cursor.execute(sql, ids)
        return cursor.fetchall()


@functools.cache
def linked_labels_sql(relations: tuple[Any, ...]) -> tuple[str, int, dict[str, str]]:
    """The UNION ALL over the link tables of ``relations`` (``Artifact.label_relations()``)
    selecting (relation, feature name, label name,
    n_cells) of one artifact (``%s`` once per table), the number of parameters, and the registry
    name of each relation. Built once per process (the ORM would spend ten times longer composing
    it than the database spends running it)."""
    quote = connections["default"].ops.quote_name  # SQLite and PostgreSQL quote alike
    parts, registries = [], {}
    for relation in relations:
        link = relation.through._meta
        label = relation.registry._meta
        feature = link.get_field("feature").related_model._meta
        registries[relation.name] = label.object_name
        n_cells = quote(link.get_field("n_cells").column)
        parts.append(
            f"SELECT '{relation.name}', f.{quote(feature.get_field('name').column)}, "
            f"l.{quote(label.get_field('name').column)}, x.{n_cells} "
            f"FROM {quote(link.db_table)} x "
            f"JOIN {quote(label.db_table)} l ON l.{quote(label.pk.column)} = "
            f"x.{quote(link.get_field('label').column)} "
            f"LEFT JOIN {quote(feature.db_table)} f ON f.{quote(feature.pk.column)} = "
            f"x.{quote(link.get_field('feature').column)} "
            f"WHERE x.{quote(link.get_field('artifact').column)} = %s"
        )
    return " UNION ALL ".join(parts), len(parts), registries


def insert_links(through: type[models.Model], rows: Iterable[LinkRow], using: str) -> None:
    """Insert link rows as multi-row INSERTs, keeping links that exist already (the link
    tables' unique constraints decide, also when ``feature`` is NULL).

    This is the one place link rows are written in bulk: building thousands of model instances
    for ``bulk_create`` costs ten times more than the database work.
    """
    check_writable(using, f"link labels ({through.__name__})")
    db = connections[using]
    quote = db.ops.quote_name
    columns = ", ".join(quote(through._meta.get_field(name).column) for name in LINK_FIELDS)
    table = quote(through._meta.db_table)
    if db.vendor == "postgresql":
        head, tail = f"INSERT INTO {table} ({columns}) VALUES ", " ON CONFLICT DO NOTHING"
    else:
        head, tail = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ", ""
    rows = list(rows)
    with db.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
            cursor.execute(head + values + tail, [value for row in chunk for value in row])


#: a link condition selecting more rows than this share of the filtered table does not drive a
#: query that has other conditions (see :meth:`InLinkSubqueries._planned_sql`)
DRIVER_MAX_FRACTION = 0.05


class InLinkSubqueries:
    """A WHERE condition ``<table>.id IN (subquery) AND ...`` over link-table subqueries
    (:func:`link_subquery_sql`), added to a query's ``where`` without the ORM composing a lookup
    for each. It knows the alias of the table it filters, and follows it when Django relabels
    the query (as a subquery of another, or combined with ``|``)."""

    contains_aggregate = False
    contains_over_clause = False
    is_summary = False

    def __init__(self, alias: str, column: str, subqueries: list[RawSQL]) -> None:
        self.alias, self.column, self.subqueries = alias, column, subqueries

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        table = compiler.quote_name_unless_alias(self.alias)
        target = f"{table}.{connection.ops.quote_name(self.column)}"
        subqueries = self.subqueries
        if all(isinstance(subquery, LinkSubquery) for subquery in subqueries):
            return self._planned_sql(target, compiler, connection)
        sql = " AND ".join(f"{target} IN ({subquery.sql})" for subquery in subqueries)
        return f"({sql})", [param for subquery in subqueries for param in subquery.params]

    def _planned_sql(self, target: str, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        """The subquery selecting the fewest link rows drives (``IN``; on PostgreSQL the two
        fewest) and the others are index probes (``EXISTS``, the most selective first; on SQLite
        inside the driving subquery, so that only the rows passing all of them are read). When
        that subquery is common (over :data:`DRIVER_MAX_FRACTION` of the table) and the query
        has other conditions, every link condition is a probe, so that the database drives by
        an index of those conditions (``created_by`` and ``size``) instead of reading thousands
        of link rows.

        Neither database can plan this alone: SQLite plans an ``IN (subquery)`` as if it held a
        few rows, PostgreSQL estimates a label named through a subquery by the average label,
        and spends longer planning the semi-joins of five conditions than running them."""
        fenced = connection.vendor == "postgresql"
        rows = {id(subquery): subquery.estimated_rows(connection) for subquery in self.subqueries}
        ordered = sorted(self.subqueries, key=lambda subquery: rows[id(subquery)])
        fewest = rows[id(ordered[0])]
        others = any(child is not self for child in compiler.query.where.children)
        if others and fewest > DRIVER_MAX_FRACTION * self._table_rows(compiler, connection):
            parts = [subquery.exists_sql(target, fenced) for subquery in ordered]
        elif fenced:  # PostgreSQL joins the two rarest by hashing, faster than probing more
            parts = [f"{target} IN ({subquery.sql})" for subquery in ordered[:2]]
            parts += [subquery.exists_sql(target, fenced) for subquery in ordered[2:]]
        else:  # SQLite probes each driving link row, then reads the survivors' rows only
            parts = [f"{target} IN ({ordered[0].driving_sql(ordered[1:])})"]
        params = [param for subquery in ordered for param in subquery.params]
        return f"({' AND '.join(parts)})", params

    def _table_rows(self, compiler: Any, connection: Any) -> int:
        table = compiler.query.alias_map[self.alias].table_name
        return planning_count(
            connection, f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}"
        )

    def merged(self, other: InLinkSubqueries) -> InLinkSubqueries:
        """One condition with the subqueries of both (they filter the same table)."""
        return InLinkSubqueries(self.alias, self.column, [*self.subqueries, *other.subqueries])

    def relabeled_clone(self, change_map: dict[str, str]) -> InLinkSubqueries:
        alias = change_map.get(self.alias, self.alias)
        return InLinkSubqueries(alias, self.column, self.subqueries)

    def get_group_by_cols(self) -> list[Any]:
        return []

    def get_refs(self) -> set[Any]:
        return set()

    def replace_expressions(self, replacements: dict[Any, Any]) -> InLinkSubqueries:
        return self


# --- label counts kept by the database (SQLite) ---------------------------------------------
#
# "How many artifacts have label X" counts every artifact of X: on ten releases, eighteen times
# the rows of one. On SQLite (one writer at a time, so a trigger sees every other write) the
# answer is kept per label by triggers on each label link table and read as one row. PostgreSQL
# counts, as before: concurrent writers would need locks around each link insert to keep it.

#: per label link table and label: the number of distinct artifacts linked to the label
COUNTS_TABLE = "registry_label_artifact_count"
#: the label link tables whose counts are kept, per (alias, database name)
_kept_tables: dict[tuple[str, str], frozenset[str]] = {}


def label_link_tables() -> list[type[models.Model]]:
    """The link tables of artifacts to labels (any app's): ``artifact``, ``label`` columns."""
    return [
        model
        for model in apps.get_models()
        if getattr(model, "is_link_table", False)
        and has_field(model, "artifact")
        and has_field(model, "label")
    ]


def _triggers(db: Any) -> set[str]:
    """The names of the triggers of an SQLite database."""
    with db.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return {row[0] for row in cursor.fetchall()}


def _trigger_names(table: str) -> tuple[str, str, str]:
    return f"{table}_count_insert", f"{table}_count_delete", f"{table}_count_update"


def _label_count_triggers(link: type[models.Model]) -> list[str]:
    """SQLite triggers keeping :data:`COUNTS_TABLE` for ``link``: a link row counts its
    artifact for its label unless another row links the same pair (other features)."""
    table = link._meta.db_table
    artifact = link._meta.get_field("artifact").column
    label = link._meta.get_field("label").column
    pk = link._meta.pk.column

    def added(row: str) -> str:
        return (
            f'INSERT INTO "{COUNTS_TABLE}" (link_table, label_id, n_artifacts) '
            f'SELECT \'{table}\', {row}."{label}", 1 WHERE NOT EXISTS (SELECT 1 FROM "{table}" '
            f'WHERE "{label}" = {row}."{label}" AND "{artifact}" = {row}."{artifact}" '
            f'AND "{pk}" <> {row}."{pk}") '
            "ON CONFLICT (link_table, label_id) DO UPDATE SET n_artifacts = n_artifacts + 1;"
        )

    def removed(row: str) -> str:
        return (
            f'UPDATE "{COUNTS_TABLE}" SET n_artifacts = n_artifacts - 1 '
            f"WHERE link_table = '{table}' AND label_id = {row}.\"{label}\" AND NOT EXISTS "
            f'(SELECT 1 FROM "{table}" WHERE "{label}" = {row}."{label}" '
            f'AND "{artifact}" = {row}."{artifact}");'
        )

    on_insert, on_delete, on_update = _trigger_names(table)
    moved = f'OLD."{artifact}" IS NOT NEW."{artifact}" OR OLD."{label}" IS NOT NEW."{label}"'
    return [
        f'CREATE TRIGGER "{on_insert}" AFTER INSERT ON "{table}" BEGIN {added("NEW")} END',
        f'CREATE TRIGGER "{on_delete}" AFTER DELETE ON "{table}" BEGIN {removed("OLD")} END',
        f'CREATE TRIGGER "{on_update}" AFTER UPDATE OF "{artifact}", "{label}" ON "{table}" '
        f"WHEN {moved} BEGIN {removed('OLD')} {added('NEW')} END",
    ]


def keep_label_counts(using: str) -> list[str]:
    """On a writable SQLite instance, make sure every label link table's counts are kept:
    where a table's triggers are missing (a new table, a database of an earlier version, a
    table SQLite rebuilt in a migration), count its links afresh and add them, in one
    transaction. Returns the tables set up now. Run after every ``migrate``; a read-only
    instance is left as it is (its counts are kept if the instance that wrote it kept them)."""
    db = connections[using]
    if db.vendor != "sqlite" or configured_read_only(using):
        return []  # a read-only instance's database is never written: its links are counted
    _kept_tables.clear()
    triggers = _triggers(db)
    added = []
    for link in label_link_tables():
        table = link._meta.db_table
        if set(_trigger_names(table)) <= triggers:
            continue
        artifact = link._meta.get_field("artifact").column
        label = link._meta.get_field("label").column
        with transaction.atomic(using=using), db.cursor() as cursor:
            cursor.execute(
                f'CREATE TABLE IF NOT EXISTS "{COUNTS_TABLE}" (link_table TEXT NOT NULL, '
                "label_id INTEGER NOT NULL, n_artifacts INTEGER NOT NULL, "
                "PRIMARY KEY (link_table, label_id)) WITHOUT ROWID"
            )
            for name in _trigger_names(table):
                cursor.execute(f'DROP TRIGGER IF EXISTS "{name}"')
            cursor.execute(f'DELETE FROM "{COUNTS_TABLE}" WHERE link_table = %s', [table])
            cursor.execute(
                f'INSERT INTO "{COUNTS_TABLE}" (link_table, label_id, n_artifacts) '
                f'SELECT %s, "{label}", COUNT(DISTINCT "{artifact}") FROM "{table}" '
                f'GROUP BY "{label}"',
                [table],
            )
            for statement in _label_count_triggers(link):
                cursor.execute(statement)
        added.append(table)
    return added


def kept_counts(db: Any) -> frozenset[str]:
    """The label link tables whose counts the database behind ``db`` keeps (all three
    triggers present), read once per database."""
    if db.vendor != "sqlite":
        return frozenset()
    key = (db.alias, str(db.settings_dict.get("NAME")))
    if key not in _kept_tables:
        triggers = _triggers(db)
        _kept_tables[key] = frozenset(
            link._meta.db_table
            for link in label_link_tables()
            if set(_trigger_names(link._meta.db_table)) <= triggers
        )
    return _kept_tables[key]


def kept_count_sql(subquery: LinkSubquery) -> str:
    """The artifacts of the labels ``subquery`` selects, from the kept counts: a number when
    at most one of those labels has artifacts, else NULL (an artifact may carry several of
    them, so the counts do not add up; the links are counted instead)."""
    return (
        "SELECT CASE WHEN COUNT(*) <= 1 THEN COALESCE(SUM(n_artifacts), 0) END "
        f'FROM "{COUNTS_TABLE}" WHERE link_table = %s AND n_artifacts > 0 '
        f"AND label_id {subquery.targets}"
    )
