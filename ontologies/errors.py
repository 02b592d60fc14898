"""Errors of the ontology registries and their importers. Each names the thing at fault (file,
registry, ontology id, version) and what to do about it."""

from __future__ import annotations

from registry.errors import RegistryError


class OntologyError(RegistryError):
    """Base class of the errors of the ontologies app."""


class UnknownSchemaVersionError(OntologyError, ValueError):
    """A CELLxGENE schema version the installed cellxgene-ontology-guide does not ship."""


class UnknownRegistryError(OntologyError, LookupError):
    """A registry or ontology name that does not exist."""


class OntologyIdPrefixError(OntologyError, ValueError):
    """An ontology id whose prefix the registry does not accept (e.g. UBERON into CellType)."""


class OntologyFileError(OntologyError, ValueError):
    """An ontology file that is missing, unreadable or malformed."""


class HierarchyCycleError(OntologyError, ValueError):
    """Parent links that form a cycle, so that no ancestor closure exists."""


class GeneListError(OntologyError, FileNotFoundError):
    """The GENCODE gene lists cannot be found or read."""
