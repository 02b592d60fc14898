"""Mapping free-text values to the terms of a registry: ``standardize``, ``validate``,
``inspect``.

A value matches a term, in this order of preference: exactly on the field (the name, by
default); exactly on the id (``CL:0000084``); exactly on a synonym; then, unless
``case_sensitive``, on the name, id or a synonym ignoring case. When several terms match at the
same level, a current term wins over a deprecated one, then the older record (lower ``id``).

Exact matches are indexed ``IN`` queries; only values left over after them cost a scan of the
registry's names and synonyms, so large registries (genes) stay fast for clean input.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connections, models

SYNONYM_SEPARATOR = "|"
#: at most this many unknown values get close-match suggestions in ``inspect`` (each costs a
#: fuzzy comparison with every name of the registry)
MAX_SUGGESTED = 100

# how a value matched, best first
EXACT, BY_ID, BY_SYNONYM, BY_NAME_CASE, BY_ID_CASE, BY_SYNONYM_CASE = range(6)


@dataclass(frozen=True)
class Match:
    """The term a value maps to and how it was found (one of the levels above)."""

    pk: int
    level: int


@dataclass
class InspectResult:
    """What ``inspect`` found out about a list of values.

    Attributes:
        registry: the registry inspected.
        field: the field the values were compared with.
        validated: values found exactly in ``field``.
        non_validated: all other values.
        synonyms_mapper: non-validated values that map to a term via its id, a synonym or a
            different case -> the term's ``field`` value (what ``standardize`` returns).
        suggestions: unknown values -> close ``field`` values (for the first
            :data:`MAX_SUGGESTED` unknown values).
        deprecated: validated values whose term is deprecated -> the ``field`` value of its
            replacement (``None`` when the ontology names none).
    """

    registry: str
    field: str
    validated: list[Any]
    non_validated: list[Any]
    synonyms_mapper: dict[Any, Any] = field(default_factory=dict)
    suggestions: dict[Any, list[str]] = field(default_factory=dict)
    deprecated: dict[Any, Any] = field(default_factory=dict)

    @property
    def unknown(self) -> list[Any]:
        """Values that match no term at all."""
        return [v for v in self.non_validated if v not in self.synonyms_mapper]

    @property
    def frac_validated(self) -> float:
        """The share of distinct values that validated."""
        total = len(self.validated) + len(self.non_validated)
        return len(self.validated) / total if total else 1.0

    def __str__(self) -> str:
        lines = [
            f"{len(self.validated)} of {len(self.validated) + len(self.non_validated)} distinct "
            f"values are valid {self.registry}.{self.field} values."
        ]
        if self.synonyms_mapper:
            shown = ", ".join(f"{k!r} -> {v!r}" for k, v in list(self.synonyms_mapper.items())[:10])
            lines.append(f"{len(self.synonyms_mapper)} can be fixed with standardize(): {shown}")
        for value in self.unknown[:10]:
            close = self.suggestions.get(value)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            lines.append(f"unknown: {value!r}{hint}")
        if len(self.unknown) > 10:
            lines.append(f"... and {len(self.unknown) - 10} more unknown values")
        for value, replacement in list(self.deprecated.items())[:10]:
            by = f", replaced by {replacement!r}" if replacement else ""
            lines.append(f"deprecated: {value!r}{by}")
        return "\n".join(lines)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def distinct_texts(values: Iterable[Any]) -> list[str]:
    """The distinct non-empty strings among ``values``, in first-seen order."""
    return list(dict.fromkeys(v for v in values if _is_text(v)))


def _chunks(items: list[Any], using: str) -> Iterable[list[Any]]:
    size = max(1, min(5000, (connections[using].features.max_query_params or 5000) - 10))
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _has_field(model: type[models.Model], name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def _better(best: dict[str, tuple[int, int]], key: str, rank: tuple[int, int]) -> None:
    if key not in best or rank < best[key]:
        best[key] = rank


def match_values(
    queryset: models.QuerySet,
    values: list[str],
    field: str,
    case_sensitive: bool = False,
    synonyms: bool = True,
) -> dict[str, Match]:
    """The term each value maps to (values that map to none are left out).

    Args:
        queryset: the terms to match against (a registry, or a filtered part of it).
        values: distinct non-empty strings.
        field: the field compared first (e.g. ``name``).
        case_sensitive: only exact-case matches.
        synonyms: also match synonyms.
    """
    model, using = queryset.model, queryset.db
    id_field = getattr(model, "id_field", None)
    deprecated = "is_deprecated" if _has_field(model, "is_deprecated") else None
    plain = queryset.order_by()
    found: dict[str, Match] = {}
    steps = [(field, EXACT)]
    if id_field and id_field != field:
        steps.append((id_field, BY_ID))
    for column, level in steps:
        left = [v for v in values if v not in found]
        best: dict[str, tuple[int, int]] = {}
        wanted = [column, "pk"] + ([deprecated] if deprecated else [])
        for chunk in _chunks(left, using):
            for row in plain.filter(**{f"{column}__in": chunk}).values_list(*wanted):
                _better(best, row[0], (int(bool(row[2])) if deprecated else 0, row[1]))
        found.update({v: Match(rank[1], level) for v, rank in best.items()})
    left = [v for v in values if v not in found]
    if left and (synonyms or not case_sensitive):
        found.update(
            _match_by_scan(
                plain,
                left,
                field,
                id_field,
                deprecated,
                case_sensitive,
                synonyms and _has_field(model, "synonyms"),
            )
        )
    return found


def _match_by_scan(
    queryset: models.QuerySet,
    values: list[str],
    field: str,
    id_field: str | None,
    deprecated: str | None,
    case_sensitive: bool,
    synonyms: bool,
) -> dict[str, Match]:
    """Synonym and case-insensitive matches, from one pass over the registry."""
    columns = ["pk", field] + ([id_field] if id_field and id_field != field else [])
    columns += (["synonyms"] if synonyms else []) + ([deprecated] if deprecated else [])
    index = {name: i for i, name in enumerate(columns)}
    maps: dict[int, dict[str, tuple[int, int]]] = {
        BY_SYNONYM: {},
        BY_NAME_CASE: {},
        BY_ID_CASE: {},
        BY_SYNONYM_CASE: {},
    }
    for row in queryset.values_list(*columns):
        rank = (int(bool(row[index[deprecated]])) if deprecated else 0, row[0])
        if not case_sensitive:
            if row[1]:
                _better(maps[BY_NAME_CASE], str(row[1]).casefold(), rank)
            if id_field in index and row[index[id_field]]:
                _better(maps[BY_ID_CASE], row[index[id_field]].casefold(), rank)
        if synonyms and row[index["synonyms"]]:
            for synonym in row[index["synonyms"]].split(SYNONYM_SEPARATOR):
                if synonym:
                    _better(maps[BY_SYNONYM], synonym, rank)
                    if not case_sensitive:
                        _better(maps[BY_SYNONYM_CASE], synonym.casefold(), rank)
    found: dict[str, Match] = {}
    for value in values:
        folded = value.casefold()
        for level in (BY_SYNONYM, BY_NAME_CASE, BY_ID_CASE, BY_SYNONYM_CASE):
            key = value if level == BY_SYNONYM else folded
            rank = maps[level].get(key)
            if rank is not None:
                found[value] = Match(rank[1], level)
                break
    return found


def field_values(queryset: models.QuerySet, pks: Iterable[int], field: str) -> dict[int, Any]:
    """pk -> value of ``field`` for the given terms."""
    result: dict[int, Any] = {}
    plain = queryset.model.objects.db_manager(queryset.db).order_by()
    for chunk in _chunks(sorted(set(pks)), queryset.db):
        result.update(plain.filter(pk__in=chunk).values_list("pk", field))
    return result


def standardize(
    queryset: models.QuerySet,
    values: Iterable[Any],
    field: str,
    return_field: str,
    case_sensitive: bool = False,
    synonyms: bool = True,
) -> list[Any]:
    """Each value replaced by the ``return_field`` value of the term it maps to; values that
    map to no term come back unchanged."""
    values = list(values)
    matches = match_values(queryset, distinct_texts(values), field, case_sensitive, synonyms)
    returned = field_values(queryset, (m.pk for m in matches.values()), return_field)
    return [returned[matches[v].pk] if _is_text(v) and v in matches else v for v in values]


def validate(queryset: models.QuerySet, values: Iterable[Any], field: str) -> np.ndarray:
    """For each value, whether it is exactly a ``field`` value of a term (no synonyms, case)."""
    values = list(values)
    present: set[Any] = set()
    plain = queryset.order_by()
    for chunk in _chunks(distinct_texts(values), queryset.db):
        present.update(plain.filter(**{f"{field}__in": chunk}).values_list(field, flat=True))
    return np.array([_is_text(v) and v in present for v in values], dtype=bool)


def inspect(queryset: models.QuerySet, values: Iterable[Any], field: str) -> InspectResult:
    """Which values are valid, which can be fixed via synonyms/ids/case, which are unknown
    (with close suggestions), and which valid ones are deprecated terms."""
    model = queryset.model
    values = list(values)
    texts = distinct_texts(values)
    others = list(dict.fromkeys(v for v in values if not _is_text(v) and not _is_missing(v)))
    matches = match_values(queryset, texts, field)
    exact = {v: m for v, m in matches.items() if m.level == EXACT}
    fixable = {v: m for v, m in matches.items() if m.level != EXACT}
    names = field_values(queryset, (m.pk for m in fixable.values()), field)
    result = InspectResult(
        registry=model.__name__,
        field=field,
        validated=[v for v in texts if v in exact],
        non_validated=[v for v in texts if v not in exact] + others,
        synonyms_mapper={v: names[m.pk] for v, m in fixable.items()},
    )
    if _has_field(model, "is_deprecated"):
        result.deprecated = _deprecated(queryset, exact, field)
    unknown = result.unknown[:MAX_SUGGESTED]
    if unknown:
        result.suggestions = _suggestions(queryset, unknown, field)
    return result


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _deprecated(queryset: models.QuerySet, exact: dict[str, Match], field: str) -> dict[str, Any]:
    if not exact:
        return {}
    by_pk = {m.pk: v for v, m in exact.items()}
    rows: list[tuple[int, Any]] = []
    plain = queryset.model.objects.db_manager(queryset.db).order_by()
    has_replacement = _has_field(queryset.model, "replaced_by")
    wanted = ["pk", f"replaced_by__{field}"] if has_replacement else ["pk", "pk"]
    for chunk in _chunks(list(by_pk), queryset.db):
        rows += plain.filter(pk__in=chunk, is_deprecated=True).values_list(*wanted)
    return {by_pk[pk]: (replacement if has_replacement else None) for pk, replacement in rows}


def _suggestions(queryset: models.QuerySet, unknown: list[Any], field: str) -> dict[Any, list]:
    choices = {}
    for value in queryset.order_by().values_list(field, flat=True):
        if _is_text(value):
            choices.setdefault(value.casefold(), value)
    folded = list(choices)
    result = {}
    for value in unknown:
        text = str(value).casefold()
        close = difflib.get_close_matches(text, folded, n=3, cutoff=0.6)
        if close:
            result[value] = [choices[c] for c in close]
    return result
