"""Writing terms into a registry, for every importer: create, update in place, deprecate.

:func:`import_terms` takes the terms of one ontology release and makes the registry agree with
them, in one transaction, with bulk statements only:

- new terms are created; existing ones (same ontology id) are updated in place when their name,
  synonyms, description or deprecation changed, so artifact links to them stay as they are;
- terms imported earlier from the same ontology that the release no longer has are marked
  deprecated (never deleted);
- parent links of the release's terms are added/removed to match, and the registry's closure
  table is rebuilt when the links changed.

Importing the same release again changes nothing. Everything skipped is counted in the
:class:`ImportReport`, with examples.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.apps import apps
from django.db import connections, models, transaction

from ontologies import hierarchy
from ontologies.errors import UnknownRegistryError
from ontologies.models import Source
from ontologies.models.base import SYNONYM_SEPARATOR
from registry.databases import analyze, check_writable
from registry.query import registry_name

BATCH = 2000
#: examples kept per kind of skipped item in a report
EXAMPLES = 5


@dataclass
class Term:
    """One term of an ontology release, as an importer read it."""

    ontology_id: str
    name: str
    synonyms: Sequence[str] = ()
    description: str = ""
    is_deprecated: bool = False
    replaced_by: str | None = None
    parents: Sequence[str] = ()
    #: registry-specific fields, e.g. ``{"scientific_name": "homo_sapiens"}`` for Organism
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceSpec:
    """The ontology release terms come from (becomes a :class:`Source` record)."""

    name: str
    version: str
    url: str = ""
    description: str = ""
    organism: str = ""


@dataclass
class ImportReport:
    """What an import did to one registry."""

    registry: str
    source: str
    version: str
    terms: int = 0
    created: int = 0
    updated: int = 0
    deprecated: int = 0
    replacements: int = 0
    parents_added: int = 0
    parents_removed: int = 0
    closure_rows: int | None = None
    seconds: float = 0.0
    #: what was left out or adapted, by kind -> (count, examples)
    notes: dict[str, tuple[int, list[str]]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether the import wrote anything."""
        return bool(
            self.created
            or self.updated
            or self.deprecated
            or self.replacements
            or self.parents_added
            or self.parents_removed
            or self.closure_rows is not None
        )

    def note(self, kind: str, examples: Sequence[str]) -> None:
        """Record items left out or adapted, of one kind (e.g. links to unknown terms)."""
        if examples:
            self.notes[kind] = (len(examples), list(examples[:EXAMPLES]))

    def summary(self) -> str:
        """One line (plus one per kind of note) for people."""
        counts = [
            (self.created, "new"),
            (self.updated, "updated"),
            (self.deprecated, "newly deprecated"),
            (self.replacements, "replacements set"),
        ]
        changes = [f"{n} {what}" for n, what in counts if n]
        if self.parents_added or self.parents_removed:
            changes.append(f"parent links +{self.parents_added}/-{self.parents_removed}")
        if self.closure_rows is not None:
            changes.append(f"closure rebuilt ({self.closure_rows} rows)")
        head = f"{self.registry} <- {self.source} {self.version}: {self.terms} terms"
        head += f": {', '.join(changes)}" if changes else ", unchanged"
        lines = [f"{head} [{self.seconds:.1f} s]"]
        for kind, (count, examples) in self.notes.items():
            lines.append(f"  {count} {kind}, e.g. {', '.join(examples)}")
        return "\n".join(lines)


class Progress(Protocol):
    """Where importers report progress (the command shows it as a progress bar)."""

    def begin(self, label: str, steps: int) -> None:
        """An import of ``steps`` steps began (e.g. ``CL -> CellType``)."""

    def step(self, description: str) -> None:
        """The next step of the current import began."""

    def finish(self, summary: str) -> None:
        """The current import ended."""


class NoProgress:
    """Progress that goes nowhere (library use, ``--quiet``)."""

    def begin(self, label: str, steps: int) -> None:
        """Ignore the start."""

    def step(self, description: str) -> None:
        """Ignore the step."""

    def finish(self, summary: str) -> None:
        """Ignore the end."""


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def join_synonyms(name: str, synonyms: Iterable[str]) -> str:
    """Synonyms as stored: distinct, without the name, ``|`` inside a synonym made ``/``."""
    clean = (s.replace(SYNONYM_SEPARATOR, "/").strip() for s in synonyms)
    return SYNONYM_SEPARATOR.join(dict.fromkeys(s for s in clean if s and s != name))


def id_map(
    model: type[models.Model], using: str, ontology_ids: Iterable[str], id_field: str
) -> dict[str, int]:
    """ontology id -> pk for the given ids that exist in the registry."""
    ids = sorted(set(ontology_ids))
    size = max(1, min(5000, (connections[using].features.max_query_params or 5000) - 10))
    manager = model.objects.db_manager(using).order_by()
    result: dict[str, int] = {}
    for chunk in _chunks(ids, size):
        result.update(manager.filter(**{f"{id_field}__in": chunk}).values_list(id_field, "pk"))
    return result


def get_source(model: type[models.Model], using: str, spec: SourceSpec) -> Source:
    """The Source record of a release for a registry (created on first import)."""
    source, created = Source.objects.db_manager(using).get_or_create(
        entity=model.__name__,
        name=spec.name,
        version=spec.version,
        organism=spec.organism,
        defaults={"url": spec.url, "description": spec.description},
    )
    if not created and (source.url, source.description) != (spec.url, spec.description):
        source.url, source.description = spec.url, spec.description
        source.save(update_fields=["url", "description"])
    return source


def import_terms(
    model: type[models.Model],
    terms: Sequence[Term],
    spec: SourceSpec,
    using: str = "default",
    progress: Progress | None = None,
    origin: str = "",
) -> ImportReport:
    """Make ``model`` agree with one ontology release, in one transaction.

    Args:
        model: the registry (CellType, ...).
        terms: the release's terms (ids must carry a prefix the registry accepts).
        spec: the release (ontology name and version).
        using: database alias of the instance.
        progress: where to report steps.
        origin: where the terms come from (file, guide), for error messages.

    Raises:
        OntologyIdPrefixError: a term id has a prefix ``model`` does not accept.
        ReadOnlyInstanceError: the instance is read-only.
    """
    started = time.perf_counter()
    progress = progress or NoProgress()
    report = ImportReport(model.__name__, spec.name, spec.version, terms=len(terms))
    check_writable(using, f"import {spec.name} {spec.version} into {model.__name__}")
    model.check_ontology_ids(
        [t.ontology_id for t in terms], origin or f"{spec.name} {spec.version}"
    )
    with transaction.atomic(using=using):
        source = get_source(model, using, spec)
        progress.step("writing terms")
        ids = _write_terms(model, terms, source, using, report)
        progress.step("replacements and deprecations")
        _write_replacements(model, terms, ids, using, report)
        vanished = _deprecate_vanished(model, source, using, report)
        if hierarchy.has_hierarchy(model):
            progress.step("parent links")
            edges = _write_parents(model, terms, ids, vanished, using, report)
            progress.step("closure table")
            if report.parents_added or report.parents_removed or _closure_stale(model, using):
                report.closure_rows = hierarchy.rebuild_closure(model, using, edges)
    report.seconds = time.perf_counter() - started
    return report


def _row_fields(model: type[models.Model], terms: Sequence[Term]) -> list[str]:
    extra = sorted({k for t in terms for k in t.extra})
    return ["name", "synonyms", "description", "is_deprecated", *extra]


def _write_terms(
    model: type[models.Model],
    terms: Sequence[Term],
    source: Source,
    using: str,
    report: ImportReport,
) -> dict[str, int]:
    """Create new terms, update changed ones, point all at ``source``; return id -> pk."""
    fields = _row_fields(model, terms)
    manager = model.objects.db_manager(using)
    existing: dict[str, tuple] = {}
    size = max(1, min(5000, (connections[using].features.max_query_params or 5000) - 10))
    wanted = ["ontology_id", "pk", "source_id", *fields]
    for chunk in _chunks(sorted({t.ontology_id for t in terms}), size):
        for row in manager.order_by().filter(ontology_id__in=chunk).values_list(*wanted):
            existing[row[0]] = row
    new: list[models.Model] = []
    changed: list[models.Model] = []
    moved: list[int] = []
    seen: set[str] = set()
    for term in terms:
        if term.ontology_id in seen:
            continue
        seen.add(term.ontology_id)
        values = {
            "name": term.name,
            "synonyms": join_synonyms(term.name, term.synonyms),
            "description": term.description or "",
            "is_deprecated": term.is_deprecated,
            **term.extra,
        }
        row = existing.get(term.ontology_id)
        if row is None:
            new.append(model(ontology_id=term.ontology_id, source_id=source.pk, **values))
            continue
        if tuple(row[3:]) != tuple(values.get(f, "") for f in fields):
            changed.append(model(pk=row[1], **values))
        if row[2] != source.pk:
            moved.append(row[1])
    manager.bulk_create(new, batch_size=BATCH)
    if changed:
        manager.bulk_update(changed, fields, batch_size=500)
    for chunk in _chunks(moved, size):
        manager.filter(pk__in=chunk).update(source_id=source.pk)
    report.created, report.updated = len(new), len(changed)
    ids = {oid: row[1] for oid, row in existing.items()}
    if any(obj.pk is None for obj in new):
        ids.update(id_map(model, using, (o.ontology_id for o in new), "ontology_id"))
    else:
        ids.update({obj.ontology_id: obj.pk for obj in new})
    return ids


def _write_replacements(
    model: type[models.Model],
    terms: Sequence[Term],
    ids: dict[str, int],
    using: str,
    report: ImportReport,
) -> None:
    """Point deprecated terms at their replacement (when the registry has it)."""
    targets = {t.replaced_by for t in terms if t.replaced_by and t.replaced_by not in ids}
    known = {**ids, **id_map(model, using, targets, "ontology_id")} if targets else ids
    manager = model.objects.db_manager(using)
    current = dict(
        manager.order_by().filter(replaced_by__isnull=False).values_list("pk", "replaced_by_id")
    )
    changed: list[models.Model] = []
    missing: list[str] = []
    for term in terms:
        pk = ids[term.ontology_id]
        target = known.get(term.replaced_by) if term.replaced_by else None
        if term.replaced_by and target is None:
            missing.append(f"{term.ontology_id} -> {term.replaced_by}")
        if current.get(pk) != target:
            changed.append(model(pk=pk, replaced_by_id=target))
    if changed:
        manager.bulk_update(changed, ["replaced_by"], batch_size=1000)
    report.replacements = len(changed)
    report.note(f"replacements not in {model.__name__} (skipped, left empty)", missing)


def _deprecate_vanished(
    model: type[models.Model], source: Source, using: str, report: ImportReport
) -> list[int]:
    """Mark deprecated the terms of an earlier release of this ontology that this one lacks."""
    earlier = (
        model.objects.db_manager(using)
        .filter(
            source__entity=source.entity,
            source__name=source.name,
            source__organism=source.organism,
        )
        .exclude(source_id=source.pk)
    )
    vanished = list(earlier.values_list("pk", flat=True))
    report.deprecated = earlier.filter(is_deprecated=False).update(is_deprecated=True)
    return vanished


def _write_parents(
    model: type[models.Model],
    terms: Sequence[Term],
    ids: dict[str, int],
    vanished: list[int],
    using: str,
    report: ImportReport,
) -> list[tuple[int, int]]:
    """Make the parent links of the release's (and vanished) terms match; return all links."""
    links = hierarchy.parent_links(model)
    wanted_ids = {p for t in terms for p in t.parents if p not in ids}
    known = {**ids, **id_map(model, using, wanted_ids, "ontology_id")} if wanted_ids else ids
    desired: set[tuple[int, int]] = set()
    missing: list[str] = []
    for term in terms:
        child = ids[term.ontology_id]
        for parent_id in term.parents:
            parent = known.get(parent_id)
            if parent is None:
                missing.append(f"{term.ontology_id} -> {parent_id}")
            elif parent != child:
                desired.add((child, parent))
    report.note(f"parent links to terms not in {model.__name__} (skipped)", missing)
    scope = set(ids.values()) | set(vanished)
    through = links.through.objects.using(using)
    rows = list(through.order_by().values_list("pk", links.child, links.parent))
    current = {(child, parent): pk for pk, child, parent in rows if child in scope}
    remove = [pk for pair, pk in current.items() if pair not in desired]
    add = [pair for pair in desired if pair not in current]
    for chunk in _chunks(remove, 5000):
        through.filter(pk__in=chunk).delete()
    through.bulk_create(
        [links.through(**{links.child: c, links.parent: p}) for c, p in add], batch_size=5000
    )
    report.parents_added, report.parents_removed = len(add), len(remove)
    kept = [(c, p) for _, c, p in rows if c not in scope]
    return kept + sorted(desired)


def _closure_stale(model: type[models.Model], using: str) -> bool:
    """Whether the closure table cannot match the links (cheap check: empty vs. links)."""
    links = hierarchy.parent_links(model)
    has_links = links.through.objects.using(using).exists()
    return has_links != hierarchy.closure_model(model).objects.using(using).exists()


def refresh_statistics(using: str, registries: Iterable[type[models.Model]]) -> None:
    """Fresh planner statistics after bulk writes into ``registries``.

    On PostgreSQL outside a transaction the registries' tables (terms, parent links, closure)
    are vacuumed too: that sets their visibility map, so closure lookups become index-only
    scans. Elsewhere the whole database is analyzed (``ANALYZE``).
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        analyze(using)
        return
    tables: set[str] = set()
    for model in registries:
        tables.add(model._meta.db_table)
        if hierarchy.has_hierarchy(model):
            tables.add(hierarchy.parent_links(model).table)
            tables.add(hierarchy.closure_model(model)._meta.db_table)
    with connection.cursor() as cursor:
        for table in sorted(tables):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")


def ontology_registries() -> dict[str, type[models.Model]]:
    """The registries ontology terms can be imported into, by name (CellType, Tissue, ...)."""
    return {
        model.__name__: model
        for model in apps.get_app_config("ontologies").get_models()
        if hierarchy.has_hierarchy(model)
    }


def resolve_registry(name: str) -> type[models.Model]:
    """The ontology registry called ``name`` (LaminDB names such as ExperimentalFactor work).

    Raises:
        UnknownRegistryError: no such registry; the message lists the registries.
    """
    registries = ontology_registries()
    model = registries.get(registry_name(name)) or next(
        (m for n, m in registries.items() if n.casefold() == name.casefold()), None
    )
    if model is None:
        raise UnknownRegistryError(
            f"There is no ontology registry {name!r}. Registries: {', '.join(sorted(registries))} "
            f"(LaminDB's ExperimentalFactor is Assay)."
        )
    return model
