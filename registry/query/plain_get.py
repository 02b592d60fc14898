"""``get(field=value, ...)`` in its plainest form without composing the query every time.

``CellType.get(name="T cell")`` is most of the lookups users type, and for a term registry
Django spends three times as long composing and compiling the query as the database spends
answering it. When every condition is a plain equality (a concrete, non-relation text or
integer field of the registry, a value of its type) on a query without anything else
(no filter, ordering, slice, ``select_related``, ``only``/``defer``, ``values``), the SQL Django
compiles depends on the fields named alone, so it is compiled once per (registry, database
connection, fields) and reused with the new values; the rows become records as Django makes
them (its converters, ``Model.from_db``); on PostgreSQL the statement is prepared
(:func:`registry.databases.fetch_prepared`). Any other ``get`` goes through Django as before.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import connections, models
from django.db.models.query import MAX_GET_RESULTS, ModelIterable

from registry.databases import fetch_prepared
from registry.errors import UnknownFieldError
from registry.query.aliases import resolve_path

#: field types whose values are passed to the database as given (after the type check below)
_TEXT_TYPES = {"CharField", "TextField"}
_INTEGER_TYPES = {"IntegerField", "BigIntegerField", "AutoField", "BigAutoField"}
#: compiled gets are kept for this many shapes (then the cache starts again)
MAX_SHAPES = 512
#: (registry, alias, connection, fields) -> (sql, converters, compiler, field names of a row)
_COMPILED: dict[tuple, tuple[str, list, Any, list[str]] | None] = {}
_LOCK = threading.Lock()


def plain_get_rows(queryset: models.QuerySet, kwargs: dict[str, Any]) -> list[Any] | None:
    """The records (at most ``MAX_GET_RESULTS``) ``queryset.get(**kwargs)`` would choose from,
    or ``None`` when the query or a condition is not of the plain form (the caller asks Django).
    """
    if not kwargs or not _pristine(queryset):
        return None
    model = queryset.model
    names = []
    for key, value in kwargs.items():
        name = _plain_name(model, key, value)
        if name is None:
            return None
        names.append(name)
    alias = queryset.db
    connection = connections[alias]
    shape = (model, alias, connection, tuple(names))
    by_name = dict(zip(names, kwargs.values(), strict=True))
    compiled = _COMPILED.get(shape, False)
    if compiled is False:
        compiled = _compile(model, alias, by_name)
        with _LOCK:
            if len(_COMPILED) >= MAX_SHAPES:
                _COMPILED.clear()
            _COMPILED[shape] = compiled
    if compiled is None:
        return None
    sql, converters, compiler, fields = compiled
    params = [by_name[name] for name in sorted(by_name)]  # Django orders a filter's keywords
    rows = fetch_prepared(alias, sql, params)  # on PostgreSQL planned once per session
    if converters:
        rows = compiler.apply_converters(rows, converters)
    return [model.from_db(alias, fields, row) for row in rows]


def _pristine(queryset: models.QuerySet) -> bool:
    """Nothing in the query but the registry's rows: ``get`` adds the only conditions."""
    query = queryset.query
    return (
        not query.where
        and not query.is_sliced
        and not query.distinct
        and not query.annotations
        and not query.extra
        and not query.combinator
        and not query.select_related
        and not query.select_for_update
        and not query.values_select
        and query.deferred_loading == (frozenset(), True)
        and queryset._iterable_class is ModelIterable
        and not queryset._prefetch_related_lookups
        and queryset._result_cache is None
    )


def _plain_name(model: type[models.Model], key: str, value: Any) -> str | None:
    """The field ``key`` names when it is a plain equality on a concrete, non-relation field
    with a value of its type (no lookup, no relation, no None), else None."""
    if key == "pk":
        field = model._meta.pk
        name = field.name
    else:
        try:
            path, _, field = resolve_path(model, key)
        except UnknownFieldError:  # Django's way reports it
            return None
        name = path
    if "__" in name or field is None or field.is_relation or not field.concrete:
        return None
    kind = field.get_internal_type()
    if kind in _TEXT_TYPES:
        return name if isinstance(value, str) else None
    if kind in _INTEGER_TYPES:
        plain_int = isinstance(value, int) and not isinstance(value, bool)
        return name if plain_int and -(2**63) <= value < 2**63 else None
    return None  # booleans too: Django writes "= true" as the column alone, the SQL varies


def _compile(
    model: type[models.Model], alias: str, conditions: dict[str, Any]
) -> tuple[str, list, Any, list[str]] | None:
    """Django's SQL for ``get(**conditions)``, with what turns its rows into records; None when
    its parameters are not the values in the order Django gives them (then it is not reused)."""
    queryset = models.QuerySet(model, using=alias).filter(**conditions).order_by()
    queryset.query.set_limits(high=MAX_GET_RESULTS)
    compiler = queryset.query.get_compiler(using=alias)
    sql, params = compiler.as_sql()
    if list(params) != [conditions[name] for name in sorted(conditions)]:
        return None
    klass_info, select = compiler.klass_info, compiler.select
    if klass_info is None or klass_info["model"] is not model or compiler.annotation_col_map:
        return None
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    if start != 0 or end != len(select):
        return None
    fields = [column[0].target.attname for column in select]
    converters = compiler.get_converters([column[0] for column in select])
    return sql, converters, compiler, fields
