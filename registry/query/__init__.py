"""The query layer of every registry, by concern:

- :mod:`registry.query.aliases`: the one table of LaminDB-compatible names, ``__`` path
  resolution and field checking;
- :mod:`registry.query.links`: all SQL over link tables (filters, includes, label reads, link
  inserts);
- :mod:`registry.query.lookup`: ``lookup()`` objects;
- :mod:`registry.query.queryset`: ``RegistryQuerySet`` and ``RegistryManager``.
"""

from registry.query.aliases import ALIASES, namespace_name, registry_name, resolve_path
from registry.query.lookup import Lookup, to_attribute_name
from registry.query.queryset import (
    RegistryManager,
    RegistryQuerySet,
    field_dtype,
    table_columns,
    typed_frame,
)

__all__ = [
    "ALIASES",
    "Lookup",
    "RegistryManager",
    "RegistryQuerySet",
    "namespace_name",
    "registry_name",
    "resolve_path",
    "field_dtype",
    "table_columns",
    "to_attribute_name",
    "typed_frame",
]
