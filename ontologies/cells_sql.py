"""The SQL of an ``ln.Cells`` question in its common shapes, written directly.

A question is a few conditions on the summary's fields and a grouping. For the ORM, composing
that query costs several times what the database spends answering it (at LTS scale: 0.9 of
1.1 ms on SQLite, without the answer's frame). :func:`question_sql` writes it here when every
condition has one of these shapes (``filter`` keyword arguments, no ``exclude``, no ``Q``):

- a term field: ``cell_type=<term or id>``, ``cell_type__in=<terms, ids or a term queryset>``
  (e.g. ``descendants()``), ``tissue__name=...``, ``tissue__ontology_id__in=[...]``: any plain
  text or integer field of the term, equal or ``__in``;
- a value field or ``is_primary_data``, equal or ``__in``;

and every group is ``dataset``, ``release``, a term field's column or a value field. Anything
else returns ``None``, and the ORM composes the query as before: the answers are the same, the
shapes here only skip the composing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import FieldDoesNotExist
from django.db import connections, models
from django.db.models.constants import LOOKUP_SEP
from django.db.models.expressions import RawSQL

if TYPE_CHECKING:
    from ontologies.cells import CellsQuerySet

#: field types a condition or a group may name on a term (plain SQL reads them as the ORM does)
_PLAIN_TYPES = {"CharField", "TextField", "IntegerField", "BigIntegerField", "BooleanField"}


def question_sql(
    selection: CellsQuerySet, release: tuple[str, list[Any]], group_paths: list[str]
) -> tuple[str, list[Any]] | None:
    """``SELECT <groups>, SUM(n_cells) ... GROUP BY <groups> ORDER BY <the sum> DESC,
    <groups>`` (no groups: the sum alone) for ``selection`` within ``release`` (SQL selecting
    its store's key, and its parameters), or ``None`` when a condition or group has another
    shape."""
    # the query as the conditions left it (conditions still waiting are in _conditions too)
    if selection._deferred_filter is not None or not plain_query(selection._query):
        return None
    connection = connections[selection.db]
    quote = connection.ops.quote_name
    model = selection.model
    table = _Tables(quote)
    where, params = [f"c.{quote('release_id')} = {release[0]}"], list(release[1])
    for kind, args, kwargs in selection._conditions:
        if kind != "filter" or args:
            return None
        conditions = conditions_sql(model, kwargs, selection.db)
        if conditions is None:
            return None
        for sql, condition_params in conditions:
            where.append(sql)
            params += condition_params
    cells = f"{quote(model._meta.db_table)} c WHERE {' AND '.join(where)}"
    n_cells = quote("n_cells")
    if not group_paths:
        return f"SELECT SUM(c.{n_cells}) FROM {cells}", params
    groups = []
    for path in group_paths:
        group = _group(model, path, table, quote)
        if group is None:
            return None
        groups.append(group)
    # summed by the summary's own keys first (its index), then the few sums get their names
    keys = ", ".join(dict.fromkeys(f"c.{quote(key)}" for key, _ in groups))
    summed = f"SELECT {keys}, SUM(c.{n_cells}) AS {n_cells} FROM {cells} GROUP BY {keys}"
    select = ", ".join([*(shown for _, shown in groups), f"SUM(s.{n_cells})"])
    numbers = ", ".join(str(i) for i in range(1, len(groups) + 1))
    sql = (
        f"SELECT {select} FROM ({summed}) s{table.joins()} "
        f"GROUP BY {numbers} ORDER BY {len(groups) + 1} DESC, {numbers}"
    )
    return sql, params


def conditions_sql(
    model: type[models.Model], kwargs: dict[str, Any], using: str
) -> list[tuple[str, list[Any]]] | None:
    """The SQL of each ``filter`` keyword condition on the summary (alias ``c``), or None when
    one of them has another shape."""
    connection = connections[using]
    quote = connection.ops.quote_name
    conditions = []
    for key, value in kwargs.items():
        condition = _condition(model, key, value, using, connection.vendor, quote)
        if condition is None:
            return None
        conditions.append(condition)
    return conditions


def plain_query(query: Any) -> bool:
    """Nothing beyond the conditions: no slice, distinct, annotation, combination, extra or
    ``none()`` (the ordering does not matter: the question has its own)."""
    return not (
        query.is_empty()
        or query.is_sliced
        or query.distinct
        or query.annotations
        or query.combinator
        or query.extra
        or query.values_select
    )


class _Tables:
    """The joins of the groups: the dataset (``a``), the release (``r``), terms (``t0``...)."""

    def __init__(self, quote: Any) -> None:
        self.quote = quote
        self.aliases: dict[str, str] = {}  # column of the summary -> alias of its join
        self.sql: list[str] = []

    def alias(self, column: str, table: str, outer: bool) -> str:
        """The alias of the table ``column`` refers to, joined (``outer``: a LEFT JOIN)."""
        if column not in self.aliases:
            alias = {"artifact_id": "a", "release_id": "r"}.get(column, f"t{len(self.aliases)}")
            quote = self.quote
            self.sql.append(
                f" {'LEFT JOIN' if outer else 'JOIN'} {quote(table)} {alias} "
                f"ON {alias}.{quote('id')} = s.{quote(column)}"
            )
            self.aliases[column] = alias
        return self.aliases[column]

    def joins(self) -> str:
        return "".join(self.sql)


def _term_field(model: type[models.Model], name: str) -> Any:
    """The summary's foreign key ``name`` to a term registry, or None."""
    from ontologies.models.cells import TERM_FIELDS

    return model._meta.get_field(name) if name in TERM_FIELDS else None


def _plain_field(model: type[models.Model], name: str) -> Any:
    """A concrete, non-relation field of ``model`` that plain SQL reads as the ORM does."""
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    if field.is_relation or not field.concrete or field.get_internal_type() not in _PLAIN_TYPES:
        return None
    return field


def _condition(
    model: type[models.Model], key: str, value: Any, using: str, vendor: str, quote: Any
) -> tuple[str, list[Any]] | None:
    parts = key.split(LOOKUP_SEP)
    is_in = parts[-1] in ("in", "in_array")  # in_array: a term queryset on PostgreSQL
    if is_in or parts[-1] == "exact":
        parts = parts[:-1]
    values = _values(value) if is_in else [value]
    if len(parts) == 1 and (field := _plain_field(model, parts[0])) is not None:
        if values is None or not all(_accepts(field, v) for v in values):
            return None
        return _in(f"c.{quote(field.column)}", values)
    term = _term_field(model, parts[0])
    if term is None or len(parts) > 2:
        return None
    column = f"c.{quote(term.column)}"
    if len(parts) == 1 or parts[1] in ("id", "pk"):  # terms, their keys, or a queryset
        if is_in and isinstance(value, models.QuerySet | RawSQL):
            keys = _keys_sql(value, term.related_model, using)
            if keys is None:
                return None
            sub, sub_params = keys
            if vendor == "postgresql":  # run once, not as a semi-join per row
                return f"{column} = ANY(ARRAY({sub}))", list(sub_params)
            return f"{column} IN ({sub})", list(sub_params)
        if values is None:
            return None
        keys = [v.pk if isinstance(v, term.related_model) else v for v in values]
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
            return None
        return _in(column, keys)
    field = _plain_field(term.related_model, parts[1])
    if field is None or values is None or not all(_accepts(field, v) for v in values):
        return None
    terms = quote(term.related_model._meta.db_table)
    sub, sub_params = _in(quote(field.column), values)
    return f"{column} IN (SELECT {quote('id')} FROM {terms} WHERE {sub})", sub_params


def _keys_sql(
    value: models.QuerySet | RawSQL, terms: type[models.Model], using: str
) -> tuple[str, list[Any]] | None:
    """SQL selecting the keys of a term queryset (``descendants()``: its hierarchy SQL alone,
    without reading the terms), or None when it is not a queryset of ``terms``' keys."""
    if isinstance(value, RawSQL):  # in_array's keys (PostgreSQL), as descendants() wrote them
        return value.sql, list(value.params)
    ids_sql = getattr(value, "ids_sql", None)
    if value.model is not terms:
        return None
    if ids_sql is not None:
        return ids_sql[0], list(ids_sql[1])
    if value.query.values_select not in {(), ("pk",), (terms._meta.pk.name,)}:
        return None
    sql, params = value.order_by().values("pk").query.get_compiler(using).as_sql()
    return sql, list(params)


def _accepts(field: Any, value: Any) -> bool:
    """``value`` is what the database compares ``field``'s column with as the ORM would
    (anything else, such as None or a number for a text field, goes through the ORM)."""
    kind = field.get_internal_type()
    if kind == "BooleanField":
        return isinstance(value, bool)
    if kind in ("CharField", "TextField"):
        return isinstance(value, str)
    return isinstance(value, int) and not isinstance(value, bool)


def _values(value: Any) -> list[Any] | None:
    if isinstance(value, models.QuerySet):
        return [value]
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return None


def _in(column: str, values: list[Any]) -> tuple[str, list[Any]] | None:
    if len(values) == 1:
        return f"{column} = %s", values
    if not values:
        return "1 = 0", []  # __in=[] matches nothing, as in Django
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def _group(
    model: type[models.Model], path: str, tables: _Tables, quote: Any
) -> tuple[str, str] | None:
    """(the summary's column a group is of, the group's value over the summed rows ``s``)."""
    parts = path.split(LOOKUP_SEP)
    if len(parts) == 1:
        field = _plain_field(model, parts[0])
        return None if field is None else (field.column, f"s.{quote(field.column)}")
    if len(parts) != 2:
        return None
    relation = model._meta.get_field(parts[0])
    if not relation.is_relation or not relation.many_to_one:
        return None
    field = _plain_field(relation.related_model, parts[1])
    if field is None:
        return None
    outer = relation.null  # a summary row without the term is a group of its own (None)
    alias = tables.alias(relation.column, relation.related_model._meta.db_table, outer)
    return relation.column, f"{alias}.{quote(field.column)}"
