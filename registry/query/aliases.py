"""LaminDB-compatible names and ``__`` path resolution: the one table of aliases, and the check
of every filter, order and include path against the registries (with suggestions)."""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Q
from django.db.models.constants import LOOKUP_SEP

from registry.errors import UnknownFieldError

#: LaminDB-compatible names. This is the only place aliases are defined.
ALIASES: dict[str, dict[str, str]] = {
    # attribute of a DB handle -> attribute it stands for
    "namespaces": {"bionty": "ontologies"},
    # registry class name -> registry
    "registries": {"ExperimentalFactor": "Assay"},
    # field name valid on every registry that has the target -> field
    "*": {
        "experimental_factors": "assays",
        "experimental_factor": "assay",
        "links_assay": "links_experimental_factor",
    },
    # per-registry field aliases (a link table's label column also answers to the link's
    # ``label_name``: ``links_cell_type__cell_type``)
    "Collection": {"name": "key"},
    "ArtifactAssay": {"assay": "label"},
}


def registry_name(name: str) -> str:
    """The registry a (possibly LaminDB-style) registry name refers to."""
    return ALIASES["registries"].get(name, name)


def namespace_name(name: str) -> str:
    """The namespace a (possibly LaminDB-style) namespace name refers to."""
    return ALIASES["namespaces"].get(name, name)


def _field_alias(model: type[models.Model], name: str) -> str:
    per_model = ALIASES.get(model.__name__, {})
    if name in per_model:
        return per_model[name]
    target = ALIASES["*"].get(name)
    if target is not None and has_field(model, target):
        return target
    if name != "label" and name == getattr(model, "label_name", None):
        return "label"
    return name


def has_field(model: type[models.Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def field_names(model: type[models.Model]) -> list[str]:
    """Every name a filter may start with on ``model`` (fields, relations, aliases)."""
    names = {f.name for f in model._meta.get_fields() if not f.name.endswith("+")}
    names |= {alias for alias, target in ALIASES["*"].items() if has_field(model, target)}
    names |= set(ALIASES.get(model.__name__, {}))
    names |= {getattr(model, "label_name", "label")}
    return sorted(names | {"pk"})


def _unknown_field(model: type[models.Model], name: str, path: str) -> UnknownFieldError:
    choices = field_names(model)
    close = difflib.get_close_matches(name, choices, n=4, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownFieldError(
        f"{model.__name__} has no field {name!r} (in {path!r}).{hint} "
        f"Fields of {model.__name__}: {', '.join(choices)}."
    )


class ResolvedPath(NamedTuple):
    """A checked ``__`` path: what to hand to Django, and what it reaches."""

    path: str
    many: bool  # crosses a many-valued relation
    field: Any  # the last field named (None for "pk" or an annotation)


def resolve_path(model: type[models.Model], path: str) -> ResolvedPath:
    """Check a ``__`` path against the registries and translate aliases.

    Returns:
        The path to hand to Django, whether it crosses a many-valued relation, the last field.

    Raises:
        UnknownFieldError: a segment names no field; the message lists close names.
    """
    parts = path.split(LOOKUP_SEP)
    current: type[models.Model] = model
    many = False
    field: Any = None
    for i, part in enumerate(parts):
        if part == "pk" and field is None:
            break
        name = _field_alias(current, part)
        try:
            field = current._meta.get_field(name)
        except FieldDoesNotExist:
            if i > 0 and part in _lookups_of(field):
                break  # e.g. cell_types__in: a lookup on the related key
            raise _unknown_field(current, part, path) from None
        parts[i] = name
        if not field.is_relation:
            break  # the rest are lookups/transforms of a plain column
        many = many or field.many_to_many or field.one_to_many
        current = field.related_model
    return ResolvedPath(LOOKUP_SEP.join(parts), many, field)


def _lookups_of(field: Any) -> set[str]:
    if field is None:
        return set()
    target = field.target_field if hasattr(field, "target_field") else field
    return set(target.get_lookups()) | set(field.get_lookups())  # a relation's own too


def rewrite_q(model: type[models.Model], q: Q) -> tuple[Q, bool]:
    """Translate aliases inside a Q object; report whether it crosses a many-valued relation."""
    rewritten = Q()
    rewritten.connector, rewritten.negated = q.connector, q.negated
    many = False
    for child in q.children:
        if isinstance(child, Q):
            sub, sub_many = rewrite_q(model, child)
        else:
            key, value = child
            key, sub_many, _ = resolve_path(model, key)
            sub = (key, value)
        rewritten.children.append(sub)
        many = many or sub_many
    return rewritten, many
