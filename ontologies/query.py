"""The query surface of the ontology registries: the registry QuerySet plus curation helpers
(``standardize``, ``validate``, ``inspect``) and, for registries with parents, the hierarchy
(``descendants``, ``ancestors``), all computed in the database.

``TermQuerySet`` serves every registry of terms (Gene too); ``OntologyQuerySet`` adds the
hierarchy for the registries with a parent DAG.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from django.db import models

from ontologies import hierarchy
from ontologies import standardize as curation
from ontologies.standardize import InspectResult
from registry.query import RegistryQuerySet, resolve_path


class TermQuerySet(RegistryQuerySet):
    """Registry QuerySet with curation helpers; see :mod:`ontologies.standardize`."""

    def _field(self, field: str | None) -> str:
        return resolve_path(self.model, field or self.model.name_field)[0]

    def standardize(
        self,
        values: Iterable[Any] | str,
        field: str | None = None,
        return_field: str | None = None,
        case_sensitive: bool = False,
        synonyms: bool = True,
    ) -> list[Any] | Any:
        """Map values to the canonical ``return_field`` value of their term.

        ``CellType.standardize(["T lymphocyte", "t cell", "CL:0000084"])`` gives
        ``["T cell", "T cell", "T cell"]``; values matching no term come back unchanged.

        Args:
            values: one value or a list of values.
            field: the field values are compared with first (default: the name).
            return_field: the field returned (default: ``field``), e.g. ``"ontology_id"``.
            case_sensitive: only match with the same case.
            synonyms: also match synonyms.

        Returns:
            A list in the order of ``values`` (one value when one value was given).
        """
        field = self._field(field)
        return_field = self._field(return_field or field)
        single = isinstance(values, str)
        result = curation.standardize(
            self, [values] if single else values, field, return_field, case_sensitive, synonyms
        )
        return result[0] if single else result

    def validate(self, values: Iterable[Any] | str, field: str | None = None) -> np.ndarray:
        """Whether each value is exactly a ``field`` value (default: name) of a term."""
        values = [values] if isinstance(values, str) else values
        return curation.validate(self, values, self._field(field))

    def inspect(self, values: Iterable[Any] | str, field: str | None = None) -> InspectResult:
        """Valid values, values fixable via ids/synonyms/case, unknown values with suggestions,
        and deprecated terms among the valid ones (see :class:`InspectResult`)."""
        values = [values] if isinstance(values, str) else values
        return curation.inspect(self, values, self._field(field))


class OntologyQuerySet(TermQuerySet):
    """Term QuerySet with the hierarchy: ``descendants()`` and ``ancestors()`` of its terms."""

    def descendants(self, include_self: bool = False, method: str | None = None) -> Any:
        """All terms below the terms of this query, as a queryset computed in SQL.

        Args:
            include_self: include the terms of this query.
            method: ``"closure"`` or ``"cte"`` (default: :data:`hierarchy.DEFAULT_METHOD`).
        """
        return hierarchy.related(self, "descendants", include_self, method)

    def ancestors(self, include_self: bool = False, method: str | None = None) -> Any:
        """All terms above the terms of this query; see :meth:`descendants`."""
        return hierarchy.related(self, "ancestors", include_self, method)


TermManager = models.Manager.from_queryset(TermQuerySet, "TermManager")
OntologyManager = models.Manager.from_queryset(OntologyQuerySet, "OntologyManager")
