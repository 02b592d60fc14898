"""``lookup()``: attribute access to records by name (``cell_types.dendritic_cell``)."""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def to_attribute_name(value: str) -> str:
    """A Python-attribute-safe name for a label: ``10x 3' v2`` -> ``ln_10x_3_v2``.

    Lower-cased; runs of other characters become one ``_``; a leading digit gets the prefix
    ``ln_``; Python keywords get a trailing ``_``.
    """
    name = _NON_WORD.sub("_", str(value).replace("'", "")).strip("_").lower()
    if not name:
        return "ln_"
    if name[0].isdigit():
        name = f"ln_{name}"
    if keyword.iskeyword(name):
        name += "_"
    return name


class Lookup:
    """Attribute access to records by name: ``cell_types.dendritic_cell``.

    Keys are made with :func:`to_attribute_name`. When two values map to the same key, the record
    with the lower ``id`` keeps the plain key and later ones get ``_2``, ``_3``, ... in ``id``
    order, so the mapping is deterministic. ``lookup["dendritic cell"]`` looks up by the original
    value as well. Records are read from the database when a name is first used, and then kept.
    """

    def __init__(
        self,
        registry: str,
        field: str,
        pairs: Iterable[tuple[str, Any]],
        make: Callable[[Any], Any] | None = None,
        make_all: Callable[[list[Any]], dict[Any, Any]] | None = None,
    ) -> None:
        self._registry = registry
        self._field = field
        self._make = make  # stored key -> returned item, called on first use
        self._make_all = make_all  # the same for many keys at once
        self._items: dict[str, Any] = {}
        self._made: dict[str, Any] = {}
        self._by_value: dict[str, str] = {}
        for value, item in pairs:
            if value is None or value == "":
                continue
            base = key = to_attribute_name(value)
            n = 2
            while key in self._items:
                key = f"{base}_{n}"
                n += 1
            self._items[key] = item
            self._by_value.setdefault(str(value), key)

    def _get(self, key: str) -> Any:
        if self._make is None:
            return self._items[key]
        if key not in self._made:
            self._made[key] = self._make(self._items[key])
        return self._made[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._get(name)
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=4)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise AttributeError(
                f"No {self._registry} with {self._field} matching {name!r}.{hint}"
            ) from None

    def __getitem__(self, key: str) -> Any:
        if key in self._by_value:
            return self._get(self._by_value[key])
        return getattr(self, key)

    def __dir__(self) -> list[str]:
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def dict(self) -> dict[str, Any]:
        """The attribute names and what they return."""
        if self._make_all is not None:
            made = self._make_all(list(self._items.values()))
            self._made.update({key: made[item] for key, item in self._items.items()})
        return {key: self._get(key) for key in self._items}

    def __repr__(self) -> str:
        shown = ", ".join(list(self._items)[:8])
        more = f", ... ({len(self._items)} in all)" if len(self._items) > 8 else ""
        return f"Lookup of {self._registry}.{self._field}: {shown}{more}"
