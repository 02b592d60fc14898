"""Ancestors and descendants of ontology terms, answered by the database.

Two ways, both one SQL subquery usable inside any filter:

- ``closure``: the registry's closure table (:mod:`ontologies.models.closure`) holds every
  (ancestor, descendant) pair, so the answer is one range scan of an index. The table is written
  by the importers (:func:`rebuild_closure`) and kept current when parents are added or removed
  through the ORM (:func:`connect_signals`).
- ``cte``: a recursive common table expression walks the ``parents`` link table; nothing to
  maintain, but one index lookup per level and term.

``bench/ontology_bench.py`` measures both; :data:`DEFAULT_METHOD` is the faster one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connections, models
from django.db.models.expressions import RawSQL
from django.db.models.signals import m2m_changed

from ontologies.errors import HierarchyCycleError
from registry.databases import check_writable

CLOSURE = "closure"
CTE = "cte"
METHODS = (CLOSURE, CTE)
#: the method ``descendants()``/``ancestors()`` use unless told otherwise (see bench/RESULTS.md)
DEFAULT_METHOD = CLOSURE
#: rows per INSERT batch when a closure table is written on SQLite
INSERT_BATCH = 50_000

#: child id -> {ancestor id: depth}
Closure = dict[int, dict[int, int]]


@dataclass(frozen=True)
class ParentLinks:
    """The ``parents`` link table of a registry: table and the child/parent columns."""

    through: type[models.Model]
    table: str
    child: str
    parent: str


def parent_links(model: type[models.Model]) -> ParentLinks:
    """Where the parent links of ``model`` are stored."""
    field = model._meta.get_field("parents")
    through = field.remote_field.through
    return ParentLinks(
        through, through._meta.db_table, field.m2m_column_name(), field.m2m_reverse_name()
    )


def closure_model(model: type[models.Model]) -> type[models.Model]:
    """The closure table of a registry (``CellType`` -> ``CellTypeClosure``)."""
    return model._meta.apps.get_model(model._meta.app_label, f"{model.__name__}Closure")


def has_hierarchy(model: type[models.Model]) -> bool:
    """Whether ``model`` is a registry with parents (and hence a closure table)."""
    return any(f.name == "parents" for f in model._meta.get_fields())


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------
def related_ids_sql(
    model: type[models.Model],
    using: str,
    seeds: tuple[str, list[Any]] | int,
    direction: str,
    include_self: bool = False,
    method: str | None = None,
) -> tuple[str, list[Any]]:
    """SQL selecting the ids of the descendants (or ancestors) of the seed terms.

    Args:
        model: the registry.
        using: database alias (for quoting).
        seeds: a SELECT of term ids and its parameters, or the id of one term.
        direction: ``"descendants"`` or ``"ancestors"``.
        include_self: add the seed terms themselves.
        method: ``"closure"`` or ``"cte"``; default :data:`DEFAULT_METHOD`.
    """
    method = method or DEFAULT_METHOD
    if method not in METHODS:
        raise ValueError(f"Unknown hierarchy method {method!r}; use one of {', '.join(METHODS)}.")
    if direction not in ("descendants", "ancestors"):
        raise ValueError(f"direction must be 'descendants' or 'ancestors', not {direction!r}")
    quote = connections[using].ops.quote_name
    if isinstance(seeds, int):  # one term: a plain parameter, no subquery to plan
        seed_sql, seed_params, seed_rows = "%s", [seeds], "SELECT %s"
    else:
        seed_sql, seed_params = seeds
        seed_rows = f"SELECT * FROM ({seed_sql}) seeds"
    down = direction == "descendants"
    if method == CLOSURE:
        table = closure_model(model)
        ancestor = quote(table._meta.get_field("ancestor").column)
        descendant = quote(table._meta.get_field("descendant").column)
        source, target = (ancestor, descendant) if down else (descendant, ancestor)
        sql = f"SELECT {target} FROM {quote(table._meta.db_table)} WHERE {source} IN ({seed_sql})"
    else:
        links = parent_links(model)
        child, parent = quote(links.child), quote(links.parent)
        source, target = (parent, child) if down else (child, parent)
        table = quote(links.table)
        sql = (
            f"WITH RECURSIVE related_terms(term_id) AS ("
            f"SELECT {target} FROM {table} WHERE {source} IN ({seed_sql}) "
            f"UNION SELECT l.{target} FROM {table} l "
            f"JOIN related_terms r ON l.{source} = r.term_id"
            f") SELECT term_id FROM related_terms"
        )
    params = list(seed_params)
    if include_self:  # UNION ALL: a key twice changes nothing where the keys are used (IN)
        sql = f"{sql} UNION ALL {seed_rows}"
        params += list(seed_params)
    return sql, params


def related(
    terms: models.QuerySet | models.Model,
    direction: str,
    include_self: bool = False,
    method: str | None = None,
) -> models.QuerySet:
    """All terms related to ``terms`` (a queryset, or one term), as a queryset of the registry.

    The terms are selected by one subquery (``id IN (...)``), so the result can be filtered
    further and used inside other filters.
    """
    if isinstance(terms, models.Model):
        model, using = type(terms), terms._state.db or "default"
        if terms.pk is None:
            raise ValueError(
                f"{model.__name__} {terms} is not saved yet: save it before asking for its "
                f"{direction}."
            )
        seeds: tuple[str, list[Any]] | int = terms.pk
    else:
        model, using = terms.model, terms.db
        seeds = terms.order_by().values("pk").query.get_compiler(using=using).as_sql()
    if not has_hierarchy(model):
        raise TypeError(
            f"{model.__name__} has no hierarchy (no parents): {direction}() works on the "
            f"ontology registries only."
        )
    sql, params = related_ids_sql(model, using, seeds, direction, include_self, method)
    found = model.objects.db_manager(using).all()
    # Django's deferred filter (as its related managers use it): the condition joins the query
    # when the query is first needed, which putting the keys' SQL in a question never does
    found._deferred_filter = (False, (), {"pk__in": RawSQL(sql, params)})
    # the keys' SQL alone, for a filter on them (ln.Cells); a refined clone no longer has it
    found.ids_sql = (sql, tuple(params))
    return found


# ---------------------------------------------------------------------------------------------
# The closure table: computed from the parent links, written in bulk
# ---------------------------------------------------------------------------------------------
def compute_closure(edges: Iterable[tuple[int, int]]) -> Closure:
    """Every ancestor of every term, with the length of the shortest path to it.

    Args:
        edges: (child id, parent id) pairs.

    Returns:
        child id -> {ancestor id: depth}; terms without parents are left out.

    Raises:
        HierarchyCycleError: the links contain a cycle (a term would be its own ancestor).
    """
    parents: dict[int, list[int]] = defaultdict(list)
    for child, parent in edges:
        parents[child].append(parent)
    done: Closure = {}
    for start in list(parents):
        if start in done:
            continue
        stack = [(start, iter(parents[start]))]
        on_path = {start}
        while stack:
            node, pending = stack[-1]
            for parent in pending:
                if parent in on_path:
                    path = [n for n, _ in stack]
                    raise CycleFound(path[path.index(parent) :] + [parent])
                if parent in parents and parent not in done:
                    stack.append((parent, iter(parents[parent])))
                    on_path.add(parent)
                    break
            else:
                stack.pop()
                on_path.discard(node)
                done[node] = _merge_ancestors(parents[node], done)
    return done


class CycleFound(HierarchyCycleError):
    """A cycle among term ids (``cycle`` lists them, each a child of the next)."""

    def __init__(self, cycle: list[int], labels: list[str] | None = None) -> None:
        self.cycle = cycle
        shown = " -> ".join(labels or [str(pk) for pk in cycle])
        super().__init__(
            f"The parent links contain a cycle ({shown}, each a child of the next): a term "
            f"cannot be its own ancestor. Remove one of these links."
        )


def _merge_ancestors(direct: list[int], done: Closure) -> dict[int, int]:
    ancestors = dict.fromkeys(direct, 1)
    for parent in direct:
        for ancestor, depth in done.get(parent, {}).items():
            if ancestors.get(ancestor, depth + 2) > depth + 1:
                ancestors[ancestor] = depth + 1
    return ancestors


def read_edges(model: type[models.Model], using: str) -> list[tuple[int, int]]:
    """All (child id, parent id) links of a registry."""
    links = parent_links(model)
    return list(
        links.through.objects.using(using).values_list(links.child, links.parent).order_by()
    )


def rebuild_closure(
    model: type[models.Model], using: str, edges: Iterable[tuple[int, int]] | None = None
) -> int:
    """Recompute the closure table of a registry from its parent links and replace it.

    Args:
        model: the registry.
        using: database alias.
        edges: the current links if the caller has them (saves reading them).

    Returns:
        The number of closure rows written.

    Raises:
        ReadOnlyInstanceError: the instance is read-only (checked before anything is read).
    """
    _check_closure_writable(model, using, "rebuild")
    try:
        closure = compute_closure(read_edges(model, using) if edges is None else edges)
    except CycleFound as cycle:
        terms = dict(
            model.objects.db_manager(using)
            .filter(pk__in=cycle.cycle)
            .values_list("pk", "ontology_id")
        )
        labels = [f"{model.__name__} {terms.get(pk) or pk}" for pk in cycle.cycle]
        raise CycleFound(cycle.cycle, labels) from None
    return write_closure(model, using, closure)


def write_closure(model: type[models.Model], using: str, closure: Closure) -> int:
    """Replace the closure table of a registry (COPY on PostgreSQL, batched INSERT on SQLite).

    Raises:
        ReadOnlyInstanceError: the instance is read-only.
    """
    _check_closure_writable(model, using, "replace")
    table = closure_model(model)
    connection = connections[using]
    quote = connection.ops.quote_name
    name = quote(table._meta.db_table)
    columns = ", ".join(
        quote(table._meta.get_field(f).column) for f in ("ancestor", "descendant", "depth")
    )
    rows = [(a, d, depth) for d, ancestors in closure.items() for a, depth in ancestors.items()]
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {name}")
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            insert = f"INSERT INTO {name} ({columns}) VALUES (%s, %s, %s)"
            for start in range(0, len(rows), INSERT_BATCH):
                cursor.executemany(insert, rows[start : start + INSERT_BATCH])
    return len(rows)


def _check_closure_writable(model: type[models.Model], using: str, verb: str) -> None:
    check_writable(using, f"{verb} the closure table of {model.__name__}")


def closure_size(model: type[models.Model], using: str) -> int:
    """The number of rows in the closure table of a registry."""
    return closure_model(model).objects.using(using).count()


# ---------------------------------------------------------------------------------------------
# Keeping the closure current when parents change through the ORM
# ---------------------------------------------------------------------------------------------
def _add_link_sql(model: type[models.Model], vendor: str, quote: Any) -> str:
    table = closure_model(model)
    name = quote(table._meta.db_table)
    anc, desc = (quote(table._meta.get_field(f).column) for f in ("ancestor", "descendant"))
    smaller = "MIN" if vendor == "sqlite" else "LEAST"
    return (
        f"INSERT INTO {name} ({anc}, {desc}, depth) "
        f"SELECT a.term_id, d.term_id, MIN(a.depth + d.depth + 1) FROM "
        f"(SELECT %s AS term_id, 0 AS depth UNION ALL "
        f"SELECT {anc}, depth FROM {name} WHERE {desc} = %s) a, "
        f"(SELECT %s AS term_id, 0 AS depth UNION ALL "
        f"SELECT {desc}, depth FROM {name} WHERE {anc} = %s) d "
        f"WHERE a.term_id <> d.term_id GROUP BY a.term_id, d.term_id "
        f"ON CONFLICT ({anc}, {desc}) DO UPDATE SET depth = {smaller}({name}.depth, excluded.depth)"
    )


def add_links(model: type[models.Model], using: str, links: Iterable[tuple[int, int]]) -> None:
    """Add (child id, parent id) links to the closure table, one upsert per link.

    Raises:
        ReadOnlyInstanceError: the instance is read-only.
    """
    _check_closure_writable(model, using, "add links to")
    connection = connections[using]
    sql = _add_link_sql(model, connection.vendor, connection.ops.quote_name)
    with connection.cursor() as cursor:
        for child, parent in links:
            cursor.execute(sql, [parent, parent, child, child])


def _links_of(instance: Any, pk_set: Iterable[int], reverse: bool) -> list[tuple[int, int]]:
    # forward (term.parents.add(p)): instance is the child; reverse (p.children.add(c)): parent
    return [(pk, instance.pk) if reverse else (instance.pk, pk) for pk in pk_set]


def _on_parents_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    model = kwargs["model"]
    using = kwargs["using"]
    if action == "pre_add":
        links = _links_of(instance, kwargs["pk_set"] or (), kwargs["reverse"])
        table = closure_model(model).objects.using(using)
        for child, parent in links:
            if child == parent or table.filter(ancestor_id=child, descendant_id=parent).exists():
                names = dict(
                    model.objects.db_manager(using)
                    .filter(pk__in=[child, parent])
                    .values_list("pk", "ontology_id")
                )
                raise HierarchyCycleError(
                    f"Linking {model.__name__} {names.get(child) or child} under "
                    f"{names.get(parent) or parent} would make a cycle: the latter is already "
                    f"below the former. Remove the link that closes the loop first."
                )
    elif action == "post_add":
        add_links(model, using, _links_of(instance, kwargs["pk_set"] or (), kwargs["reverse"]))
    elif action in ("post_remove", "post_clear"):
        rebuild_closure(model, using)


def connect_signals(models_with_parents: Iterable[type[models.Model]]) -> None:
    """Keep the closure tables current when ``parents``/``children`` change through the ORM.

    Importers write link tables in bulk (no signals) and rebuild the closure themselves.
    """
    for model in models_with_parents:
        m2m_changed.connect(
            _on_parents_changed,
            sender=parent_links(model).through,
            dispatch_uid=f"ontologies.closure.{model.__name__}",
        )
