"""Errors raised to users. Each names the thing at fault and what to do about it."""

from __future__ import annotations

from django.core.exceptions import FieldError, MultipleObjectsReturned, ObjectDoesNotExist


class RegistryError(Exception):
    """Base class of every cellregistry error."""


class InstanceNotFoundError(RegistryError, LookupError):
    """An instance name that is not configured."""


class InvalidDatabaseURLError(RegistryError, ValueError):
    """A database URL that cannot be used."""


class InstanceConnectionError(RegistryError, ConnectionError):
    """The database of an instance cannot be reached."""


class ReadOnlyInstanceError(RegistryError, PermissionError):
    """A write was attempted on a read-only instance."""


class UnknownFieldError(RegistryError, FieldError):
    """A filter, order or include names a field the registry does not have."""


class NoRecordError(RegistryError, ObjectDoesNotExist):
    """``one()`` found nothing."""


class MultipleRecordsError(RegistryError, MultipleObjectsReturned):
    """``one()`` or ``one_or_none()`` found more than one record."""
