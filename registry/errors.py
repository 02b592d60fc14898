"""Errors raised to users. Each names the thing at fault and what to do about it."""

from __future__ import annotations

from django.core.exceptions import FieldError, MultipleObjectsReturned, ObjectDoesNotExist


class RegistryError(Exception):
    """Base class of every cellregistry error."""


class InstanceNotFoundError(RegistryError, LookupError):
    """An instance name that is not configured."""


class InvalidDatabaseURLError(RegistryError, ValueError):
    """A database URL that cannot be used."""


class InvalidInstanceNameError(RegistryError, ValueError):
    """An instance name with characters that names of files and config keys cannot take."""


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


# --- storage and accessors (cache, load, open) ------------------------------------------------


class StorageError(RegistryError):
    """Reading an artifact's bytes from its storage failed."""


class UnknownStorageError(StorageError, ValueError):
    """A storage root this installation cannot read (unsupported scheme, relative or missing
    local folder)."""


class StorageNotFoundError(StorageError, LookupError):
    """No Storage record has the given root."""


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """The artifact's object is not in its storage (HTTP 404, missing file)."""


class StorageAccessDeniedError(StorageError, PermissionError):
    """The storage refused access to the artifact's object (HTTP 403, bad credentials)."""


class StorageUnreachableError(StorageError, ConnectionError):
    """The storage endpoint cannot be reached."""


class VerificationError(StorageError):
    """A downloaded copy does not match what the artifact records; the copy was deleted."""


class SizeMismatchError(VerificationError):
    """The object's size differs from the artifact's size."""


class HashMismatchError(VerificationError):
    """The downloaded bytes do not hash to the artifact's (or the object's) hash."""


class CorruptFileError(StorageError):
    """The artifact's file cannot be read as its format (truncated or damaged)."""


class UnsupportedAccessError(StorageError, TypeError):
    """The accessor does not apply to this kind of artifact (e.g. ``load()`` on a SOMA store)."""


class InvalidKeyError(StorageError, ValueError):
    """An artifact key that is not a relative path inside its storage (``..`` or ``.``
    segments, a leading ``/``, empty segments, backslashes, NUL bytes, or no key at all):
    refused by ``Artifact.save()`` and by every accessor."""


class InvalidArtifactDataError(RegistryError, ValueError):
    """What ``Artifact(data, ...)`` was given cannot be registered (a folder, a missing file, an
    S3 URL, an object that is not an AnnData or DataFrame), or its key does not fit."""


class NotHDF5Error(CorruptFileError):
    """An ``.h5ad`` whose first bytes are not the HDF5 signature."""


class ObsCountMismatchError(CorruptFileError):
    """An ``.h5ad`` whose obs index length differs from the cell count it should have."""


# --- databases behind the commands, and query input (manage.py checks, queries) ---------------


class InstanceDatabaseMissingError(InstanceConnectionError):
    """The database of an instance does not exist (a PostgreSQL database the server lacks, a
    SQLite file that is not there)."""


class InstanceNotMigratedError(RegistryError):
    """The database of an instance lacks tables or migrations: ``manage.py migrate`` fixes it."""


class DatabaseFailureError(RegistryError):
    """The database of an instance failed in a way none of the other errors describes."""


class QueryError(RegistryError, ValueError):
    """A query that cannot run as given: a value the database cannot take (a NUL character, a
    regular expression that does not compile, a search text too long), a ``get`` that names no
    record, or a database refusing the query's values."""


# --- Census releases (ln.census) --------------------------------------------------------------


class CensusError(RegistryError):
    """A Census release cannot be opened or queried as asked."""


class CensusVersionError(CensusError, ValueError):
    """A Census version (tag or alias) that the registry or the release directory does not
    know."""


class CensusVersionRetractedError(CensusVersionError):
    """A retracted Census version was asked for."""


class CensusDirectoryNotFoundError(CensusError, LookupError):
    """A bucket without a release directory (``cell-census/release.json``)."""


class CensusQueryError(CensusError, ValueError):
    """A Census query with an unknown organism, measurement, layer, column or filter."""
