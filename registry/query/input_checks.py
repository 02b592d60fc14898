"""Query values checked before they reach the database, so that a value no database can take
fails with a message naming the registry and the condition instead of a driver error:

- text with a NUL character (``\\x00``): PostgreSQL cannot hold one in a text value, so no
  record could ever match; SQLite would take it, and is refused the same way so that a query
  means the same on both;
- a ``__regex`` / ``__iregex`` pattern that does not compile, on SQLite, where Python's ``re``
  runs the match (SQLite only says "user-defined function raised exception"). PostgreSQL
  compiles its own, slightly different, regular expressions: its error is translated when the
  query runs (:mod:`registry.query.queryset`);
- a ``search()`` text longer than :data:`MAX_SEARCH_LENGTH`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

from django.db import models
from django.db.models import Q

from registry.errors import QueryError

#: the longest ``search()`` text, in characters. A search looks for a name, a synonym or a
#: phrase of a description, which are far shorter. The limit also keeps the LIKE patterns the
#: search builds below SQLite's 50,000-byte pattern limit (SQLITE_MAX_LIKE_PATTERN_LENGTH):
#: 1,000 characters take at most 4,000 bytes in UTF-8, 8,000 when every one is escaped.
MAX_SEARCH_LENGTH = 1000
REGEX_LOOKUPS = ("__regex", "__iregex")
#: longest value shown in a message
SHOWN_LENGTH = 60


def shown(value: Any) -> str:
    """A value as a message shows it, cut to :data:`SHOWN_LENGTH` characters. Never runs a
    query: querysets and records are named, not printed (their ``repr`` would query)."""
    if isinstance(value, models.QuerySet):
        text = f"<{value.model.__name__} query>"
    elif isinstance(value, models.Model):
        text = f"<{type(value).__name__} id={value.pk}>"
    elif isinstance(value, Q):
        inner = f" {value.connector} ".join(_shown_child(child) for child in value.children)
        text = f"{'~' if value.negated else ''}Q({inner})"
    elif isinstance(value, list | tuple | set | frozenset):
        first = ", ".join(shown(item) for item in itertools.islice(value, 3))
        more = f", ... ({len(value)} in all)" if len(value) > 3 else ""
        text = f"[{first}{more}]"
    else:
        text = repr(value)
    return text if len(text) <= SHOWN_LENGTH else f"{text[: SHOWN_LENGTH - 3]}..."


def _shown_child(child: Any) -> str:
    if isinstance(child, tuple) and len(child) == 2:
        return f"{child[0]}={shown(child[1])}"
    return shown(child)


def describe_conditions(args: tuple, kwargs: dict[str, Any]) -> str:
    """Conditions as they were written (``name='B cell', size__gt=1000``), long values cut."""
    parts = [shown(arg) for arg in args]
    parts += [f"{key}={shown(value)}" for key, value in kwargs.items()]
    return ", ".join(parts) or "(no conditions)"


def conditions(args: tuple, kwargs: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(path, value) of every keyword condition, also those inside (nested) ``Q`` objects."""
    for arg in args:
        if isinstance(arg, Q):
            yield from _q_conditions(arg)
    yield from kwargs.items()


def _q_conditions(q: Q) -> Iterator[tuple[str, Any]]:
    for child in q.children:
        if isinstance(child, Q):
            yield from _q_conditions(child)
        elif isinstance(child, tuple) and len(child) == 2:
            yield child


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _texts(item)


def _nul_error(what: str, text: str) -> QueryError:
    return QueryError(
        f"{what} {shown(text)} contains a NUL character (\\x00), which database text "
        "cannot hold: remove it from the value."
    )


def check_condition_values(registry: str, args: tuple, kwargs: dict[str, Any], vendor: str) -> None:
    """Refuse values of filter/exclude/get conditions that the database cannot take.

    Args:
        registry: the registry's name, for messages.
        args, kwargs: the conditions as passed.
        vendor: the database's vendor (``sqlite``, ``postgresql``).

    Raises:
        QueryError: a text value with a NUL character; on SQLite, a regular expression that
            does not compile. The message names the registry, the condition and the fix.
    """
    for path, value in conditions(args, kwargs):
        for text in _texts(value):
            if "\x00" in text:  # the message is made only when needed: filters are hot
                raise _nul_error(f"{registry} condition {path}: the value", text)
        if vendor == "sqlite" and path.endswith(REGEX_LOOKUPS) and isinstance(value, str):
            try:
                re.compile(value)
            except re.error as exc:
                raise QueryError(
                    f"{registry} condition {path}={shown(value)} is not a valid regular "
                    f"expression: {exc}. Correct the pattern (Python's re syntax on SQLite)."
                ) from None


def check_search_text(registry: str, text: str) -> None:
    """Refuse a ``search()`` text the database cannot take or that cannot be a useful search.

    Raises:
        QueryError: a NUL character, or more than :data:`MAX_SEARCH_LENGTH` characters.
    """
    if "\x00" in text:
        raise _nul_error(f"{registry}.search() text", text)
    if len(text) > MAX_SEARCH_LENGTH:
        raise QueryError(
            f"{registry}.search() text of {len(text):,} characters is longer than the "
            f"{MAX_SEARCH_LENGTH:,} a search takes ({shown(text)}): search for a name, a synonym "
            "or a short phrase."
        )
