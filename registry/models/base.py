"""What every record shares: a global ``uid``, provenance fields, write guards, query shortcuts.

``uid`` is random base62 of a fixed length per registry (ontology terms derive theirs from the
ontology id, so the same term has the same uid in every instance). ``uid`` is what transfers
between instances match on; ``id`` is local to a database.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Iterable
from typing import Any, ClassVar

from django.db import models, router, transaction
from django.utils import timezone

from registry.databases import check_writable, current_user_id
from registry.query import RegistryManager

BASE62 = string.digits + string.ascii_letters


def random_uid(length: int) -> str:
    """A random base62 string (cryptographic RNG, so concurrent writers never collide)."""
    return "".join(secrets.choice(BASE62) for _ in range(length))


def hashed_uid(text: str, length: int) -> str:
    """A deterministic base62 uid derived from ``text`` (e.g. an ontology id)."""
    number = int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 62)
        chars.append(BASE62[rest])
    return "".join(chars)


class UidGenerator:
    """A picklable default callable producing random uids of one length (for migrations)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self) -> str:
        return random_uid(self.length)

    def deconstruct(self) -> tuple[str, tuple[int], dict]:
        return ("registry.models.base.UidGenerator", (self.length,), {})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UidGenerator) and other.length == self.length

    def __hash__(self) -> int:
        return hash(self.length)


def uid_field(length: int) -> models.CharField:
    """The ``uid`` column of a registry: unique, indexed, fixed length."""
    return models.CharField(
        max_length=length, unique=True, default=UidGenerator(length), editable=False
    )


# The query methods that registries expose on the class itself (``ln.Artifact.filter(...)``),
# delegating to the manager. Written once here, for every registry.
CLASS_QUERY_METHODS = (
    "filter",
    "exclude",
    "get",
    "one",
    "one_or_none",
    "first",
    "order_by",
    "count",
    "to_dataframe",
    "lookup",
    "search",
    "using",
)


class Record(models.Model):
    """Abstract base of every registry: write guards and class-level query shortcuts."""

    objects = RegistryManager()

    #: field shown by ``lookup()`` and ``search()`` unless told otherwise
    name_field: ClassVar[str] = "name"

    class Meta:
        abstract = True

    def _write_alias(self, using: str | None) -> str:
        return using or self._state.db or router.db_for_write(type(self), instance=self)

    def save(self, *args: Any, using: str | None = None, **kwargs: Any) -> None:
        """Save, refusing read-only instances and filling ``created_by`` with the current user."""
        alias = self._write_alias(using)
        check_writable(alias, f"save {type(self).__name__}")
        if hasattr(self, "created_by_id") and self.created_by_id is None:
            self.created_by_id = current_user_id(alias)
        super().save(*args, using=alias, **kwargs)

    def delete(self, using: str | None = None, keep_parents: bool = False) -> Any:
        """Delete, refusing read-only instances."""
        alias = self._write_alias(using)
        check_writable(alias, f"delete {type(self).__name__} {self.pk}")
        return super().delete(using=alias, keep_parents=keep_parents)

    def __str__(self) -> str:
        value = getattr(self, self.name_field, None)
        return str(value) if value is not None else f"{type(self).__name__} {self.pk}"


def class_query_method(name: str) -> classmethod:
    """A classmethod that runs the manager's method ``name`` (``Artifact.filter(...)``)."""

    def method(cls: type[Record], *args: Any, **kwargs: Any) -> Any:
        return getattr(cls.objects, name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"``{name}`` on all records of the registry (see RegistryQuerySet.{name})."
    return classmethod(method)


for _name in CLASS_QUERY_METHODS:
    setattr(Record, _name, class_query_method(_name))


class TracedRecord(Record):
    """A record with provenance: when, by whom and in which run it was created."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    created_by = models.ForeignKey(
        "registry.User",
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
    )
    run = models.ForeignKey(
        "registry.Run", on_delete=models.SET_NULL, related_name="+", null=True, blank=True
    )

    class Meta:
        abstract = True


class VersionedRecord(TracedRecord):
    """A record with versions: all versions share the first 16 characters of ``uid``.

    A new version is made with ``revises=<previous record>``: it takes the previous record's uid
    stem, and becomes the latest (``is_latest`` moves on save).
    """

    STEM_LENGTH: ClassVar[int] = 16

    version = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    is_latest = models.BooleanField(default=True, db_index=True)
    revises = models.ForeignKey(
        "self", on_delete=models.SET_NULL, related_name="+", null=True, blank=True
    )

    class Meta:
        abstract = True

    @property
    def stem_uid(self) -> str:
        """The part of ``uid`` shared by all versions."""
        return self.uid[: self.STEM_LENGTH]

    @property
    def versions(self) -> models.QuerySet:
        """All versions of this record (including itself), oldest first."""
        manager = type(self).objects.db_manager(self._state.db or "default")
        return manager.filter(uid__startswith=self.stem_uid).order_by("created_at", "id")

    def save(self, *args: Any, using: str | None = None, **kwargs: Any) -> None:
        """Save; a new record that revises another joins its version family and becomes latest.

        A record read from another instance (``ln.DB(name)``) and saved without ``using`` is
        transferred into the default instance (:mod:`registry.transfer`): afterwards this
        object is the default instance's record. ``save(using=...)`` writes where it says."""
        from registry.transfer import is_from_another_instance, transfer

        if is_from_another_instance(self, using):
            self.__dict__.update(transfer(self).__dict__)
            return
        alias = self._write_alias(using)
        if not (self._state.adding and self.revises_id is not None):
            super().save(*args, using=alias, **kwargs)
            return
        previous = type(self).objects.db_manager(alias).get(pk=self.revises_id)
        if not self.uid.startswith(previous.stem_uid):  # kept when the caller set it already
            self.uid = previous.stem_uid + random_uid(len(self.uid) - self.STEM_LENGTH)
        with transaction.atomic(using=alias):
            if self.is_latest:
                type(self).objects.db_manager(alias).filter(
                    uid__startswith=self.stem_uid, is_latest=True
                ).update(is_latest=False)
            super().save(*args, using=alias, **kwargs)


def save_version(record: VersionedRecord, family: Iterable[VersionedRecord], using: str) -> None:
    """Save ``record`` (``version`` set, e.g. a release tag) as a version of ``family`` (e.g. the
    artifacts of the same dataset), whatever order the versions arrive in: it revises the newest
    older version; it is the latest unless a newer version exists, in which case that one now
    revises it. Versions compare as strings (release tags sort by date)."""
    family = [f for f in family if f.version and f.pk != record.pk]
    older = [f for f in family if f.version < record.version]
    newer = sorted((f for f in family if f.version > record.version), key=lambda f: f.version)
    if older:
        record.revises = max(older, key=lambda f: f.version)
    elif newer:  # join the family of the newer versions
        record.uid = newer[0].stem_uid + record.uid[record.STEM_LENGTH :]
    record.is_latest = not newer
    record.save(using=using)
    if newer and (newer[0].revises_id is None or newer[0].revises.version < record.version):
        type(record).objects.db_manager(using).filter(pk=newer[0].pk).update(revises=record)


def delete_version(record: VersionedRecord, using: str) -> None:
    """Delete one version of a family and mend the family: the versions that revised it now
    revise what it revised, and if it was the latest, the newest remaining version becomes the
    latest. Call inside a transaction (with the family's lock held where writers compete)."""
    manager = type(record).objects.db_manager(using)
    manager.filter(revises=record).update(revises=record.revises_id)
    was_latest = record.is_latest
    stem = record.stem_uid
    record.delete(using=using)
    if was_latest:
        newest = manager.filter(uid__startswith=stem).order_by("-version", "-id").first()
        if newest is not None:
            manager.filter(pk=newest.pk).update(is_latest=True)
