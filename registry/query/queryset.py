"""The query surface of every registry, written once: ``RegistryQuerySet`` and its manager.

Beyond Django's QuerySet it adds LaminDB's vocabulary (``one``, ``one_or_none``, ``to_dataframe``,
``lookup``, ``search``, ``get("uid")``), LaminDB-compatible names (:mod:`registry.query.aliases`),
field checking with suggestions, duplicate-free filters across many-valued relations (plain
link-table SQL, :mod:`registry.query.links`), and write guards for read-only instances.

Values a database cannot take are refused before the query runs
(:mod:`registry.query.input_checks`); a database error the query's values cause when it runs
(a pattern too long for SQLite, an invalid PostgreSQL regular expression, ...) becomes a
:class:`~registry.errors.QueryError` naming the registry, the instance and the conditions.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import DatabaseError, connections, models
from django.db.models import Case, F, Q, Value, When
from django.db.models.constants import LOOKUP_SEP
from django.db.models.expressions import RawSQL
from django.db.models.functions import Concat, Length
from django.db.models.sql.where import AND, WhereNode

from registry.database_errors import Problem, classify, reason
from registry.databases import check_writable, current_user_id, instance_name
from registry.errors import MultipleRecordsError, NoRecordError, QueryError
from registry.query.aliases import ResolvedPath, has_field, resolve_path, rewrite_q
from registry.query.input_checks import (
    check_condition_values,
    check_search_text,
    describe_conditions,
)
from registry.query.links import (
    InLinkSubqueries,
    LinkSubquery,
    link_subquery_sql,
    link_values,
    m2m_link,
    plain_column,
)
from registry.query.lookup import Lookup
from registry.query.plain_get import plain_get_rows

if TYPE_CHECKING:
    import pandas as pd

#: how many ids go into one ``IN (...)`` list
ID_CHUNK = 5000
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _input_errors_translated(method: _Method) -> _Method:
    """``method`` (one that runs the query), raising :class:`QueryError` when the database
    refuses the query's values (:meth:`RegistryQuerySet._raise_if_input_error`)."""

    @functools.wraps(method)
    def running(self: RegistryQuerySet, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except DatabaseError as exc:
            self._raise_if_input_error(exc)
            raise

    return running


class RegistryQuerySet(models.QuerySet):
    """Django QuerySet with the registry vocabulary; see the module docstring."""

    #: the conditions of this query as written, (kind, args, kwargs), for messages; every
    #: clone keeps them. Described only when a message needs them (describing costs time).
    _conditions: tuple[tuple[str, tuple, dict[str, Any]], ...] = ()

    def _clone(self) -> RegistryQuerySet:
        """Django's clone, with the conditions as written."""
        clone = super()._clone()
        clone._conditions = self._conditions
        return clone

    # --- filtering ------------------------------------------------------------------------
    def _filter_or_exclude(self, negate: bool, args: tuple, kwargs: dict) -> RegistryQuerySet:
        model = self.model
        check_condition_values(model.__name__, args, kwargs, connections[self.db].vendor)
        clone = self._filtered(negate, args, kwargs)
        if args or kwargs:
            kind = "exclude" if negate else "filter"
            clone._conditions = (*self._conditions, (kind, args, kwargs))
        return clone

    def _filtered(self, negate: bool, args: tuple, kwargs: dict) -> RegistryQuerySet:
        """The filter itself: aliases resolved, many-valued relations as subqueries."""
        model = self.model
        plain: dict[str, Any] = {}
        many_groups: dict[str, dict[str, Any]] = defaultdict(dict)
        for key, value in kwargs.items():
            path, many, _ = self._resolve(key)
            if many and not negate:
                many_groups[path.split(LOOKUP_SEP)[0]][path] = value
            else:
                plain[path] = value
        plain_args: list[Q] = []
        for arg in args:
            if isinstance(arg, Q):
                q, many = rewrite_q(model, arg)
                if many and not negate:
                    q = Q(pk__in=self._subquery(q))
                plain_args.append(q)
            else:
                plain_args.append(arg)
        # conditions on one relation stay in one subquery (they apply to the same related row,
        # as in Django); the outer query gets no join, hence no duplicate rows
        subqueries = [self._relation_subquery(rel, group) for rel, group in many_groups.items()]
        raw = [q for q in subqueries if isinstance(q, RawSQL)]
        plain_args += [Q(pk__in=q) for q in subqueries if not isinstance(q, RawSQL)]
        clone = super()._filter_or_exclude(negate, tuple(plain_args), plain)
        if raw:  # plain SQL over link tables goes into the WHERE as it is
            query = clone.query
            condition = InLinkSubqueries(query.get_initial_alias(), model._meta.pk.column, raw)
            _add_link_condition(query.where, condition)
        return clone

    def _resolve(self, path: str) -> ResolvedPath:
        """:func:`resolve_path`, letting annotations of this query through."""
        if path.split(LOOKUP_SEP, 1)[0] in self.query.annotations:
            return ResolvedPath(path, False, None)
        return resolve_path(self.model, path)

    def _subquery(self, condition: Q) -> models.QuerySet:
        return models.QuerySet(self.model).filter(condition).values("pk")

    def _relation_subquery(self, relation: str, conditions: dict[str, Any]) -> models.QuerySet:
        """Ids of records matching ``conditions`` on one many-valued relation.

        Many-to-many relations are answered from their link table alone
        (``SELECT artifact_id FROM link WHERE label_id IN (...)``), which is cheaper to build and
        to run than a join back to this registry.
        """
        link = m2m_link(self.model, relation)
        if link is None or any(path.endswith("__isnull") for path in conditions):
            # "has no related record" needs the outer join of the generic form
            return self._subquery(Q(**conditions))
        through, source, target = link
        if len(conditions) == 1:
            ((path, value),) = conditions.items()
            sql = link_subquery_sql(through, source, target, path[len(relation) :], value)
            if sql is not None:
                return sql
        translated = {}
        for path, value in conditions.items():
            rest = path[len(relation) :]
            translated[target + rest] = value
        return models.QuerySet(through).filter(**translated).values(f"{source}_id")

    def order_by(self, *field_names: Any) -> RegistryQuerySet:
        """Order by fields; LaminDB aliases and unknown names are handled as in ``filter``.

        Empty (NULL) values come last in both directions, on every database (PostgreSQL and
        SQLite disagree on this by default).
        """
        resolved: list[Any] = []
        for name in field_names:
            if not isinstance(name, str) or name == "?":
                resolved.append(name)
                continue
            desc = name.startswith("-")
            path, _, field = self._resolve(name.lstrip("-"))
            if getattr(field, "null", False):
                column = F(path)
                resolved.append(
                    column.desc(nulls_last=True) if desc else column.asc(nulls_last=True)
                )
            else:
                resolved.append(f"-{path}" if desc else path)
        return super().order_by(*resolved)

    # --- running queries ------------------------------------------------------------------
    _fetch_all = _input_errors_translated(models.QuerySet._fetch_all)

    @_input_errors_translated
    def count(self) -> int:
        """The number of records; a query with only a condition on one label relation is
        counted from its link table alone (``COUNT(DISTINCT artifact_id)``), or on SQLite read
        from the label's kept count (:func:`registry.query.links.keep_label_counts`)."""
        link = self._only_link_condition()
        if link is None:
            return super().count()
        return link.count(connections[self.db])

    def _only_link_condition(self) -> LinkSubquery | None:
        """The link subquery when it is this query's only condition (no slice, join, distinct,
        annotation or combination), else None."""
        query = self.query
        if self._result_cache is not None or query.is_sliced or query.distinct:
            return None
        if query.combinator or query.annotations or len(query.alias_map) > 1:
            return None
        where = query.where
        if where.negated or len(where.children) != 1:
            return None
        (condition,) = where.children
        if not isinstance(condition, InLinkSubqueries) or len(condition.subqueries) != 1:
            return None
        (subquery,) = condition.subqueries
        return subquery if isinstance(subquery, LinkSubquery) else None

    exists = _input_errors_translated(models.QuerySet.exists)
    aggregate = _input_errors_translated(models.QuerySet.aggregate)

    def _raise_if_input_error(self, exc: DatabaseError) -> None:
        """Raise a :class:`QueryError` if the database refused the query's values."""
        if classify(exc) is Problem.USER_INPUT:
            raise QueryError(
                f"The database of instance {self._instance_label()!r} refused the "
                f"{self.model.__name__} query {self._described_conditions()}: {reason(exc)}. "
                "Correct the values of these conditions."
            ) from exc

    def _described_conditions(self) -> str:
        """``filter(...).exclude(...).search(...)`` as this query was built."""
        parts = [
            f"{kind}({describe_conditions(args, kwargs)})"
            for kind, args, kwargs in self._conditions
        ]
        return ".".join(parts) or "without conditions"

    # --- single records -------------------------------------------------------------------
    def get(self, *args: Any, **kwargs: Any) -> models.Model:
        """One record by conditions, or by ``uid`` given as the only positional argument.

        A uid shorter than the registry's uid length is taken as a version stem: the latest
        version is returned.

        Raises:
            QueryError: nothing names a record: ``get("")``, ``get(None)``, or ``get()`` on a
                query without conditions (which would return an arbitrary record).
        """
        if not kwargs:
            self._check_names_a_record(args)
        if len(args) == 1 and isinstance(args[0], str) and not kwargs:
            return self._get_by_uid(args[0])
        if len(args) == 1 and isinstance(args[0], int) and not kwargs:
            kwargs = {"pk": args[0]}
            args = ()
        if not args:
            check_condition_values(self.model.__name__, args, kwargs, connections[self.db].vendor)
            try:
                found = plain_get_rows(self, kwargs)
            except DatabaseError as exc:
                self._raise_if_input_error(exc)
                raise
            if found is not None and len(found) < 2:  # several: as Django does it, below
                if not found:
                    raise self.model.DoesNotExist(self._no_match_message(args, kwargs))
                return found[0]
        try:
            return super().get(*args, **kwargs)
        except self.model.DoesNotExist:
            raise self.model.DoesNotExist(self._no_match_message(args, kwargs)) from None
        except self.model.MultipleObjectsReturned:
            latest = self._latest_of_one_family(args, kwargs)
            if latest is not None:
                return latest
            raise self.model.MultipleObjectsReturned(
                self._many_match_message(args, kwargs)
            ) from None

    def _latest_of_one_family(self, args: tuple, kwargs: dict) -> models.Model | None:
        """When the records that match are versions of one record (as LaminDB's ``get``
        decides), the latest of them; ``None`` when different records match, or when the
        registry has no versions, or the caller pinned a ``version``."""
        if not has_field(self.model, "is_latest") or "version" in kwargs:
            return None
        matches = self.filter(*args, **kwargs)
        stem_length = self.model.STEM_LENGTH
        stems = {uid[:stem_length] for uid in matches.values_list("uid", flat=True)}
        if len(stems) != 1:
            return None
        return matches.order_by("-is_latest", "-version", "-created_at", "-id").first()

    def _check_names_a_record(self, args: tuple) -> None:
        """Refuse a ``get`` without keyword conditions that names no record."""
        name = self.model.__name__
        hint = (
            f"pass a uid (or its first characters), or conditions such as "
            f"{name}.get({self.model.name_field}=...)"
        )
        if len(args) == 1 and (args[0] is None or (isinstance(args[0], str) and not args[0])):
            raise QueryError(f"{name}.get({args[0]!r}) names no record: {hint}.")
        if not args and not self.query.has_filters():
            raise QueryError(
                f"{name}.get() without conditions would return an arbitrary record: {hint}."
            )

    def _get_by_uid(self, uid: str) -> models.Model:
        length = self.model._meta.get_field("uid").max_length
        if len(uid) == length:
            return self.get(uid=uid)
        matches = self.filter(uid__startswith=uid)
        if has_field(self.model, "is_latest"):
            matches = matches.order_by("-is_latest", "-created_at")
        record = matches.first()
        if record is None:
            raise self.model.DoesNotExist(self._no_match_message((), {"uid": uid}))
        return record

    def _instance_label(self) -> str:
        return instance_name(self.db)

    def _no_match_message(self, args: tuple, kwargs: dict) -> str:
        name = self.model.__name__
        return (
            f"No {name} matches {describe_conditions(args, kwargs)} in instance "
            f"{self._instance_label()!r}. Use {name}.filter(...) to see what is there, or "
            f"{name}.search('...') for a fuzzy match."
        )

    def _many_match_message(self, args: tuple, kwargs: dict) -> str:
        name = self.model.__name__
        qs = self.filter(*args, **kwargs)
        count = qs.count()
        uids = list(qs.values_list("uid", flat=True)[:5]) if has_field(self.model, "uid") else []
        shown = f" (uids: {', '.join(uids)}{', ...' if count > 5 else ''})" if uids else ""
        return (
            f"{count} {name} records match {describe_conditions(args, kwargs)}{shown}; "
            f"get() needs exactly one. Add conditions, or use .filter(...).first()."
        )

    def one(self) -> models.Model:
        """The only record of the query; an error when there are none or several."""
        rows = list(self[:2])
        if not rows:
            raise NoRecordError(
                f"No {self.model.__name__} matches this query in instance "
                f"{self._instance_label()!r}."
            )
        if len(rows) > 1:
            raise MultipleRecordsError(
                f"{self.count()} {self.model.__name__} records match this query; one() needs "
                "exactly one. Add conditions, or use .first()."
            )
        return rows[0]

    def one_or_none(self) -> models.Model | None:
        """The only record of the query, ``None`` if there is none; an error if several."""
        rows = list(self[:2])
        if len(rows) > 1:
            raise MultipleRecordsError(
                f"{self.count()} {self.model.__name__} records match this query; "
                "one_or_none() needs at most one."
            )
        return rows[0] if rows else None

    # --- tables ---------------------------------------------------------------------------
    def to_dataframe(
        self, include: Iterable[str] | None = None, limit: int | None = None
    ) -> pd.DataFrame:
        """All matching records as a DataFrame indexed by ``id``.

        Args:
            include: extra columns as ``__`` paths. Single-valued paths (``created_by__handle``)
                are plain columns; many-valued ones (``cell_types__name``) hold a sorted list
                of **all** values of each record, whatever the filter matched.
            limit: at most this many rows (default: all of them, never silently cut).
        """
        import pandas as pd

        model = self.model
        base_columns = table_columns(model)
        single: list[tuple[str, str]] = []
        many: list[tuple[str, str]] = []
        single_dtypes: list[str | None] = []
        for column in include or []:
            path, is_many, field = resolve_path(model, column)
            (many if is_many else single).append((column, path))
            if not is_many:
                single_dtypes.append(field_dtype(field))
        query = self if limit is None else self[:limit]
        rows = list(query.values_list(*base_columns, *[path for _, path in single]))
        columns = base_columns + [column for column, _ in single]
        # column by column, as numpy arrays of the field's type where the type is known (pandas
        # need not infer it); a tuple of the values otherwise
        by_column = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
        ids = list(by_column[0])
        dtypes = column_dtypes(model) + tuple(single_dtypes)
        data = {name: (by_column[i], dtypes[i]) for i, name in enumerate(columns) if i > 0}
        for column, path in many:
            values = self._many_values(ids, path)
            data[column] = ([values.get(pk, []) for pk in ids], "list")
        return typed_frame(data, pd.Index(ids, name="id"))

    def _many_values(self, ids: list[int], path: str) -> dict[int, list[Any]]:
        """All values of a many-valued path for the given record ids, sorted per record.

        Paths through a record's link rows (``links_cell_type__n_cells``) keep one value per
        link row, in link order, so that several such columns line up (the i-th count belongs
        to the i-th cell type)."""
        relation, _, rest = path.partition(LOOKUP_SEP)
        link = m2m_link(self.model, relation)
        plain = link and plain_column(link[0], link[2], rest)
        per_link_row = _reaches_link_rows(self.model, relation)
        collected: dict[int, list[Any]] = defaultdict(list)
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            if plain:  # the link table joined to the other side, as plain SQL
                pairs = link_values(self.db, link, plain, chunk)
            else:
                rows = models.QuerySet(self.model).using(self.db).filter(pk__in=chunk)
                if per_link_row:  # NULLs too: a count of None stays beside its label
                    rows = rows.filter(**{f"{relation}__isnull": False})
                else:
                    rows = rows.filter(**{f"{path}__isnull": False})
                pairs = rows.order_by("pk", f"{relation}__pk").values_list("pk", path)
            for pk, item in pairs:
                collected[pk].append(item)
        if per_link_row:
            return dict(collected)
        return {pk: sorted(set(items), key=_sort_key) for pk, items in collected.items()}

    # --- lookup and search ----------------------------------------------------------------
    def lookup(self, field: str | None = None, return_field: str | None = None) -> Lookup:
        """Attribute access to the records (or to ``return_field`` values) by ``field``.

        ``field`` defaults to the registry's name field (``name``, ``handle``, ``key`` ...).
        See :class:`Lookup` for how names are made and how duplicates are resolved.
        """
        field = resolve_path(self.model, field or self.model.name_field)[0]
        ordered = self.order_by("pk")
        if return_field is not None:
            return_path = resolve_path(self.model, return_field)[0]
            return Lookup(self.model.__name__, field, ordered.values_list(field, return_path))
        # Fetch names and ids only; a record is read when its name is first used (one indexed
        # query), because building hundreds of records costs far more than the query.
        manager = models.QuerySet(self.model).using(self.db)
        return Lookup(
            self.model.__name__,
            field,
            ordered.values_list(field, "pk"),
            make=lambda pk: manager.get(pk=pk),
            make_all=lambda pks: manager.in_bulk(pks),
        )

    def search(
        self, text: str, field: str | None = None, limit: int | None = None
    ) -> RegistryQuerySet:
        """Records whose name (or synonyms, or description) contain ``text``, best first.

        Ranking: exact name, exact synonym, name prefix, name substring, synonym substring,
        then description; ties by shorter name.

        Raises:
            QueryError: ``text`` has a NUL character or is longer than
                :data:`~registry.query.input_checks.MAX_SEARCH_LENGTH` characters.
        """
        check_search_text(self.model.__name__, text)
        name = resolve_path(self.model, field or self.model.name_field)[0]
        has_synonyms = has_field(self.model, "synonyms")
        has_description = has_field(self.model, "description") and field is None
        match = Q(**{f"{name}__icontains": text})
        ranks = [
            When(**{f"{name}__iexact": text}, then=Value(0)),
            When(**{f"{name}__istartswith": text}, then=Value(2)),
            When(**{f"{name}__icontains": text}, then=Value(3)),
        ]
        queryset = self
        if has_synonyms:
            queryset = queryset.annotate(
                _delimited_synonyms=Concat(
                    Value("|"), "synonyms", Value("|"), output_field=models.TextField()
                )
            )
            match |= Q(synonyms__icontains=text)
            ranks.insert(1, When(_delimited_synonyms__icontains=f"|{text}|", then=Value(1)))
            ranks.append(When(synonyms__icontains=text, then=Value(4)))
        if has_description:
            match |= Q(description__icontains=text)
        ranked = (
            queryset.filter(match)
            .annotate(_search_rank=Case(*ranks, default=Value(5)), _name_length=Length(name))
            .order_by("_search_rank", "_name_length", name)
        )
        ranked._conditions = (*self._conditions, ("search", (text,), {}))
        return ranked if limit is None else ranked[:limit]

    # --- write guards ---------------------------------------------------------------------
    def _check_writable(self, action: str) -> None:
        check_writable(self.db, f"{action} {self.model.__name__} records")

    def update(self, **kwargs: Any) -> int:
        """Bulk update (refused on read-only instances)."""
        self._check_writable("update")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        """Bulk delete (refused on read-only instances)."""
        self._check_writable("delete")
        return super().delete()

    def bulk_create(self, objs: Iterable[models.Model], *args: Any, **kwargs: Any) -> list:
        """Bulk insert (refused on read-only instances); fills ``created_by`` when empty."""
        self._check_writable("bulk-create")
        objs = list(objs)
        if has_field(self.model, "created_by"):
            user_id = None
            for obj in objs:
                if obj.created_by_id is None:
                    user_id = user_id or current_user_id(self.db)
                    obj.created_by_id = user_id
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(
        self, objs: Iterable[models.Model], fields: Any, *args: Any, **kwargs: Any
    ) -> int:
        """Bulk update of given records (refused on read-only instances)."""
        self._check_writable("bulk-update")
        return super().bulk_update(objs, fields, *args, **kwargs)


PROVENANCE_COLUMNS = ("created_at", "created_by_id", "run_id")


def _add_link_condition(where: WhereNode, condition: InLinkSubqueries) -> None:
    """AND ``condition`` into ``where``, into the link condition already there on the same table
    if there is one (e.g. ``collection.artifacts.filter(cell_types=...)``), so that the database
    sees all of them together and one can drive the others."""
    if where.connector == AND and not where.negated:
        for i, child in enumerate(where.children):
            if isinstance(child, InLinkSubqueries) and child.alias == condition.alias:
                where.children[i] = child.merged(condition)
                return
    where.add(condition, AND)


#: the column types of Django fields whose values need no inference (NULLs aside)
_FIELD_DTYPES = {
    "AutoField": "int64",
    "BigAutoField": "int64",
    "IntegerField": "int64",
    "BigIntegerField": "int64",
    "SmallIntegerField": "int64",
    "PositiveIntegerField": "int64",
    "PositiveBigIntegerField": "int64",
    "FloatField": "float64",
    "BooleanField": "bool",
    "CharField": "object",
    "TextField": "object",
    "DateTimeField": "datetime",
}


@functools.cache
def column_dtypes(model: type[models.Model]) -> tuple[str | None, ...]:
    """The column type of each column of :func:`table_columns` (None: pandas infers it)."""
    fields = {field.attname: field for field in model._meta.concrete_fields}
    return tuple(field_dtype(fields[name]) for name in table_columns(model))


def field_dtype(field: Any) -> str | None:
    """The column type of a Django field's values (None: unknown, pandas infers it)."""
    if field is None or not hasattr(field, "get_internal_type"):
        return None
    kind = field.get_internal_type()
    if kind == "ForeignKey":
        kind = field.target_field.get_internal_type()
    return _FIELD_DTYPES.get(kind)


def _column_array(values: Sequence[Any], dtype: str | None) -> Any:
    """``values`` as the array pandas would infer from them, built directly (``None``: the type
    is unknown). Integers with NULLs are floats with NaN and a column of NULLs holds objects, as
    pandas makes them."""
    import numpy as np
    import pandas as pd

    if dtype == "datetime":
        return pd.DatetimeIndex(values).array
    if dtype in ("object", "list") or (values and all(value is None for value in values)):
        array = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):  # lists stay lists (numpy would nest them)
            array[i] = value
        return array
    if dtype is None or None not in values:
        return None if dtype is None else np.array(values, dtype=dtype)
    if dtype == "int64" or dtype == "float64":
        return np.array([np.nan if v is None else v for v in values], dtype="float64")
    return None  # booleans with NULLs: pandas decides


def typed_frame(data: dict[str, tuple[Sequence[Any], str | None]], index: pd.Index) -> pd.DataFrame:
    """A DataFrame of ``data`` (column -> (values, column type)). With every column's array
    known, pandas is asked not to check and infer them again: that costs more than the rest
    of a small query. Otherwise pandas infers every column."""
    import pandas as pd

    arrays = [_column_array(values, dtype) for values, dtype in data.values()]
    columns = pd.Index(list(data), dtype=object)
    if all(array is not None for array in arrays):
        return _frame_of_arrays(arrays, columns, index)
    plain = {name: values for name, (values, _) in data.items()}
    return pd.DataFrame(plain, index=index, columns=columns)


def _frame_of_arrays(arrays: list[Any], columns: pd.Index, index: pd.Index) -> pd.DataFrame:
    """A DataFrame holding ``arrays`` as they are, one block per column: pandas merges blocks
    of one type ("consolidates") when an operation needs it, not here, where merging them
    took most of the frame's time (0.15 of 0.23 ms for a 21-column table)."""
    import pandas as pd

    try:
        from pandas.core.internals.managers import create_block_manager_from_column_arrays

        manager = create_block_manager_from_column_arrays(
            arrays, [columns, index], consolidate=False, refs=[None] * len(arrays)
        )
        return pd.DataFrame._from_mgr(manager, axes=manager.axes)
    except (ImportError, AttributeError, TypeError):  # another pandas: its public-ish way
        return pd.DataFrame._from_arrays(arrays, columns, index, verify_integrity=False)


def table_columns(model: type[models.Model]) -> list[str]:
    """Columns of ``to_dataframe``: id, uid, the registry's own fields, then provenance."""
    names = [f.attname for f in model._meta.concrete_fields]
    first = [n for n in ("id", "uid") if n in names]
    last = [n for n in PROVENANCE_COLUMNS if n in names]
    return first + [n for n in names if n not in first and n not in last] + last


def _sort_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


def _reaches_link_rows(model: type[models.Model], relation: str) -> bool:
    """``relation`` of ``model`` leads to the rows of a link table (``links_cell_type``)."""
    field = model._meta.get_field(relation)
    return field.one_to_many and getattr(field.related_model, "is_link_table", False)


RegistryManager = models.Manager.from_queryset(RegistryQuerySet, "RegistryManager")
