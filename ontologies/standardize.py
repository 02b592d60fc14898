"""Mapping free-text values to the terms of a registry: ``standardize``, ``validate``,
``inspect``.

A value matches a term, in this order of preference: exactly on the field (the name, by
default); exactly on the id (``CL:0000084``); exactly on a synonym; then, unless
``case_sensitive``, on the name, id or a synonym ignoring case. When several terms match at the
same level, a current term wins over a deprecated one, then the older record (lower ``id``).

Many values against a registry of comparable size (10,000 values, CL) are matched in one pass
over the registry's names, ids and synonyms. Few values, or a large registry (genes), go through
indexed ``IN`` queries for the exact matches first; only the values left over cost that pass.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connections, models

SYNONYM_SEPARATOR = "|"
#: at most this many unknown values get close-match suggestions in ``inspect``
MAX_SUGGESTED = 100
#: match by one pass over the registry when it has at most SCAN_FACTOR x as many terms as there
#: are values (and there are at least SCAN_MIN_VALUES values); else by indexed IN queries
SCAN_FACTOR = 5
SCAN_MIN_VALUES = 50
#: fuzzy suggestions are computed against this many candidates sharing the most trigrams
CANDIDATES = 40

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


def _better(best: dict[Any, tuple[int, int]], key: Any, rank: tuple[int, int]) -> None:
    if key not in best or rank < best[key]:
        best[key] = rank


def _scan_is_cheaper(queryset: models.QuerySet, n_values: int) -> bool:
    """Whether reading the whole registry once beats indexed IN queries for ``n_values``."""
    return n_values >= SCAN_MIN_VALUES and queryset.count() <= SCAN_FACTOR * n_values


def match_values(
    queryset: models.QuerySet,
    values: list[str],
    field: str,
    case_sensitive: bool = False,
    synonyms: bool = True,
    returned: str | None = None,
) -> tuple[dict[str, Match], dict[int, Any]]:
    """The term each value maps to (values that map to none are left out).

    Many values against a small registry are matched in one pass over the registry; otherwise
    exact matches come from indexed ``IN`` queries and only the rest costs a pass.

    Args:
        queryset: the terms to match against (a registry, or a filtered part of it).
        values: distinct non-empty strings.
        field: the field compared first (e.g. ``name``).
        case_sensitive: only exact-case matches.
        synonyms: also match synonyms.
        returned: a field whose values to return for the matched terms.

    Returns:
        value -> match, and pk -> ``returned`` value of the matched terms.
    """
    model, using = queryset.model, queryset.db
    plain = queryset.order_by()
    id_field = getattr(model, "id_field", None)
    id_field = id_field if id_field and id_field != field else None
    synonyms = synonyms and _has_field(model, "synonyms")
    deprecated = "is_deprecated" if _has_field(model, "is_deprecated") else None
    scan = _Scan(field, id_field, deprecated, case_sensitive, synonyms, returned)
    if _scan_is_cheaper(plain, len(values)):
        found = scan.match(plain, values, first=EXACT)
        return found, scan.returned_for(found)
    found: dict[str, Match] = {}
    for column, level in [(field, EXACT)] + ([(id_field, BY_ID)] if id_field else []):
        best: dict[str, tuple[int, int]] = {}
        wanted = [column, "pk"] + ([deprecated] if deprecated else [])
        for chunk in _chunks([v for v in values if v not in found], using):
            for row in plain.filter(**{f"{column}__in": chunk}).values_list(*wanted):
                _better(best, row[0], (int(bool(row[2])) if deprecated else 0, row[1]))
        found.update({v: Match(rank[1], level) for v, rank in best.items()})
    left = [v for v in values if v not in found]
    if left and (synonyms or not case_sensitive):
        found.update(scan.match(plain, left, first=BY_SYNONYM))
    pks = [m.pk for m in found.values() if m.pk not in scan.returned]
    returned_values = scan.returned_for(found)
    if returned and pks:
        returned_values.update(field_values(queryset, pks, returned))
    return found, returned_values


class _Scan:
    """Matching by one pass over the registry: maps from names, ids and synonyms (exact and
    case-folded) to the best term, then a lookup per value, best level first."""

    def __init__(
        self,
        field: str,
        id_field: str | None,
        deprecated: str | None,
        case_sensitive: bool,
        synonyms: bool,
        returned: str | None,
    ) -> None:
        self.columns = ["pk", field] + [c for c in (id_field, deprecated, returned) if c]
        self.columns += ["synonyms"] if synonyms else []
        self.index = {name: i for i, name in enumerate(self.columns)}
        self.id_field, self.deprecated, self.return_field = id_field, deprecated, returned
        self.case_sensitive, self.synonyms = case_sensitive, synonyms
        self.returned: dict[int, Any] = {}

    def match(self, queryset: models.QuerySet, values: list[str], first: int) -> dict[str, Match]:
        maps: dict[int, dict[Any, tuple[int, int]]] = {level: {} for level in range(6)}
        fold = not self.case_sensitive
        index = self.index
        for row in queryset.values_list(*self.columns):
            rank = (int(bool(row[index[self.deprecated]])) if self.deprecated else 0, row[0])
            if self.return_field:
                self.returned[row[0]] = row[index[self.return_field]]
            name = row[1]
            term_id = row[index[self.id_field]] if self.id_field else None
            if first == EXACT:
                _better(maps[EXACT], name, rank)
                if term_id:
                    _better(maps[BY_ID], term_id, rank)
            if fold and isinstance(name, str) and name:
                _better(maps[BY_NAME_CASE], name.casefold(), rank)
            if fold and term_id:
                _better(maps[BY_ID_CASE], term_id.casefold(), rank)
            if self.synonyms and row[index["synonyms"]]:
                for synonym in row[index["synonyms"]].split(SYNONYM_SEPARATOR):
                    if synonym:
                        _better(maps[BY_SYNONYM], synonym, rank)
                        if fold:
                            _better(maps[BY_SYNONYM_CASE], synonym.casefold(), rank)
        found: dict[str, Match] = {}
        exact_levels = (EXACT, BY_ID, BY_SYNONYM)
        for value in values:
            folded = value.casefold()
            for level in range(first, 6):
                rank = maps[level].get(value if level in exact_levels else folded)
                if rank is not None:
                    found[value] = Match(rank[1], level)
                    break
        return found

    def returned_for(self, found: dict[str, Match]) -> dict[int, Any]:
        return {m.pk: self.returned[m.pk] for m in found.values() if m.pk in self.returned}


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
    matches, returned = match_values(
        queryset, distinct_texts(values), field, case_sensitive, synonyms, return_field
    )
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
    matches, names = match_values(queryset, texts, field, returned=field)
    exact = {v: m for v, m in matches.items() if m.level == EXACT}
    fixable = {v: m for v, m in matches.items() if m.level != EXACT}
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


def _trigrams(text: str) -> set[str]:
    padded = f"  {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def _suggestions(queryset: models.QuerySet, unknown: list[Any], field: str) -> dict[Any, list]:
    """Close ``field`` values for unknown values: candidates sharing the most (rarer) trigrams,
    then ranked by difflib's similarity."""
    choices: dict[str, str] = {}
    for value in queryset.order_by().values_list(field, flat=True):
        if _is_text(value):
            choices.setdefault(value.casefold(), value)
    folded = list(choices)
    postings: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(folded):
        for gram in _trigrams(text):
            postings[gram].append(i)
    common = max(50, len(folded) // 5)
    result = {}
    for value in unknown:
        text = str(value).casefold()
        shared: Counter[int] = Counter()
        grams = _trigrams(text)
        rare = [g for g in grams if len(postings.get(g, ())) <= common] or list(grams)
        for gram in rare:
            shared.update(postings.get(gram, ()))
        candidates = [folded[i] for i, _ in shared.most_common(CANDIDATES)]
        close = difflib.get_close_matches(text, candidates, n=3, cutoff=0.6)
        if close:
            result[value] = [choices[c] for c in close]
    return result
