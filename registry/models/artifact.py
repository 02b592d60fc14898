"""Artifacts: datasets registered by reference (``storage.root`` + ``key``), with their labels."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

from django.db import connections, models

from registry import storage_roots
from registry.databases import check_writable, default_storage
from registry.describe import describe_artifact
from registry.errors import InvalidArtifactDataError
from registry.labels import ArtifactFeatures, ArtifactLabels
from registry.models.base import VersionedRecord, uid_field
from registry.models.links import LabelLink, LabelRelation, label_relations


class Artifact(VersionedRecord):
    """A dataset file or store: an ``.h5ad``, a TileDB-SOMA store, a table.

    Two ways in. By reference (curation, transfers): the bytes stay at ``storage.root/key``,
    nothing is copied. A lab's own data, ``Artifact(PATH | AnnData | DataFrame, key=...)`` then
    ``.save()``: the bytes are copied or uploaded into the instance's default storage at
    ``storage_key`` (``.cellregistry/<uid><suffix>``; ``key`` names them), or registered in
    place when PATH is inside a registered local storage. See :meth:`save`.
    """

    name_field: ClassVar[str] = "key"

    class OType(models.TextChoices):
        ANNDATA = "AnnData"
        TILEDBSOMA = "tiledbsoma"
        DATAFRAME = "DataFrame"

    uid = uid_field(20)
    key = models.CharField(max_length=1024, db_index=True, help_text="path inside the storage")
    storage = models.ForeignKey(
        "registry.Storage", on_delete=models.PROTECT, related_name="artifacts"
    )
    suffix = models.CharField(max_length=30, blank=True, default="", db_index=True)
    otype = models.CharField(max_length=30, choices=OType.choices, blank=True, default="")
    description = models.TextField(blank=True, default="")
    size = models.BigIntegerField(null=True, blank=True, db_index=True, help_text="bytes")
    hash = models.CharField(max_length=100, blank=True, default="", db_index=True)
    hash_type = models.CharField(
        max_length=30, blank=True, default="", help_text="e.g. md5, md5-n (S3 multipart ETag)"
    )
    n_observations = models.BigIntegerField(null=True, blank=True)
    reference = models.CharField(
        max_length=255,
        blank=True,
        default="",
        db_index=True,
        help_text="external id, e.g. the CELLxGENE dataset_id",
    )
    reference_type = models.CharField(max_length=64, blank=True, default="")
    reference_version = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="external version id, e.g. the CELLxGENE dataset_version_id",
    )
    storage_key = models.CharField(
        max_length=1024,
        blank=True,
        default="",
        help_text="where this instance wrote the bytes inside the storage (empty: at key)",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """``Artifact(PATH | AnnData | DataFrame, key=..., description=...)`` describes the data
        (size, hash, suffix, otype, n_observations) for :meth:`save`; any other call is
        Django's (which passes every field positionally when it reads a row)."""
        data = None
        if len(args) == 1:  # never from Django, which passes every field
            from registry.accessors.registration import data_kind

            data = args[0] if data_kind(args[0]) else None
        super().__init__(*(() if data is not None else args), **kwargs)
        self._staged: Any = None
        if data is not None:
            from registry.accessors import registration

            self._staged = registration.stage(data)
            staged = self._staged
            if self.key and not self.key.lower().endswith(staged.suffix):
                staged.discard()
                raise InvalidArtifactDataError(
                    f"Artifact key {self.key!r} does not end with the data's suffix "
                    f"{staged.suffix!r}: give a key ending in {staged.suffix!r}."
                )
            self.suffix = staged.suffix
            self.otype = self.otype or staged.otype
            self.size, self.hash, self.hash_type = staged.size, staged.hash, staged.hash_type
            self.n_observations = staged.n_observations

    @classmethod
    def from_anndata(cls, adata: Any, key: str | None = None, **kwargs: Any) -> Artifact:
        """An artifact of an in-memory AnnData (written as ``.h5ad`` on :meth:`save`)."""
        if type(adata).__name__ != "AnnData":
            raise InvalidArtifactDataError(f"from_anndata takes an AnnData, not {type(adata)}")
        return cls(adata, key=key or "", **kwargs)

    @classmethod
    def from_df(cls, df: Any, key: str | None = None, **kwargs: Any) -> Artifact:
        """An artifact of a pandas DataFrame (written as ``.parquet`` on :meth:`save`)."""
        if type(df).__name__ != "DataFrame":
            raise InvalidArtifactDataError(f"from_df takes a pandas DataFrame, not {type(df)}")
        return cls(df, key=key or "", **kwargs)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["storage", "key"],
                condition=models.Q(is_latest=True),
                name="artifact_latest_key_unique",
            )
        ]
        # counts by suffix and size, and a creator's large files, read from the index alone;
        # the newest store of a kind (ln.Cells' latest release) from the end of its index
        indexes = [
            models.Index(fields=["suffix", "size"], name="artifact_suffix_size"),
            models.Index(fields=["created_by", "size"], name="artifact_creator_size"),
            models.Index(fields=["otype", "version"], name="artifact_otype_version"),
        ]

    @classmethod
    def label_relations(cls) -> tuple[LabelRelation, ...]:
        """The relations to label registries (``cell_types``, ..., ``ulabels``): each registry
        declares its own, see :mod:`registry.models.links`."""
        return label_relations()

    @classmethod
    def link_table(cls, relation: str) -> type[LabelLink]:
        """The link table of a label relation (``"cell_types"`` -> ArtifactCellType)."""
        for found in label_relations():
            if found.name == relation:
                return found.through
        names = ", ".join(r.name for r in label_relations())
        raise LookupError(f"Artifact has no label relation {relation!r}; it has {names}.")

    def save(self, *args: Any, using: str | None = None, **kwargs: Any) -> Artifact:
        """Save and return the artifact; a key that is not a relative path inside the storage
        (``..`` or ``.`` segments, a leading ``/``, empty, backslashes, NUL bytes) is refused
        first, so nothing is written (see :func:`registry.accessors.base.check_key`).

        An artifact made from data (``Artifact(PATH | AnnData | DataFrame, ...)``):

        - the same content (hash and size) registered already: this artifact becomes that
          record, nothing is written;
        - PATH inside a registered local storage: registered in place, its key the path there;
        - else the bytes go into the instance's default storage (copied, or uploaded to S3 in
          8 MiB parts, streamed) at ``.cellregistry/<uid><suffix>``, then the record is saved;
          a failed write saves no record, a failed save removes the bytes again;
        - a key whose latest artifact has other content: this one is its new version
          (``revises`` it, and becomes the latest).

        Raises:
            InvalidKeyError: the key, what is wrong with it and what a key is.
            InvalidArtifactDataError: PATH is in a registered storage under another key.
        """
        # accessors.base is light (no boto3, h5py or anndata); imported here like the accessors
        from registry.accessors.base import check_key

        if getattr(self, "_staged", None) is not None:
            self._save_staged(self._write_alias(using), *args, **kwargs)
            return self
        storage_cached = type(self).storage.is_cached(self)  # naming the root costs no query
        check_key(self.key, self.storage.root if storage_cached else "")
        super().save(*args, using=using, **kwargs)
        return self

    def _save_staged(self, alias: str, *args: Any, **kwargs: Any) -> None:
        from registry.accessors import registration
        from registry.accessors.base import check_key

        check_writable(alias, "save Artifact")
        staged, manager = self._staged, type(self).objects.db_manager(alias)
        if self.key:
            check_key(self.key)
        try:
            same = manager.filter(hash=staged.hash, size=staged.size).order_by("-is_latest", "-id")
            existing = same.first()
            if existing is not None:
                print(
                    f"returning the existing artifact {existing.uid} ({existing.key}): same content"
                )
                self.__dict__.update(existing.__dict__)
                self._staged = None
                return
            place = None if staged.temporary else _storage_holding(staged.path, alias)
            if place is not None:
                storage, key = place
                if self.key and self.key != key:
                    raise InvalidArtifactDataError(
                        f"{staged.path} is inside storage {storage.root!r} at key {key!r}: it is "
                        f"registered where it is, under that key; drop key={self.key!r} or pass "
                        f"key={key!r}."
                    )
                self.storage, self.key, self.storage_key = storage, key, ""
            else:
                self.storage = default_storage(alias)
            if self.key and self.revises_id is None:
                self.revises = manager.filter(
                    storage=self.storage, key=self.key, is_latest=True
                ).first()
            if self.revises is not None:  # the uid names the bytes: fix it before writing them
                self.uid = self.revises.stem_uid + self.uid[self.STEM_LENGTH :]
            if place is None:
                self.storage_key = f"{registration.OWN_PREFIX}/{self.uid}{staged.suffix}"
                self.key = self.key or self.storage_key
                registration.place(self.storage, self.storage_key, staged)
            try:
                super().save(*args, using=alias, **kwargs)
            except BaseException:
                if self.storage_key:
                    registration.remove(self.storage, self.storage_key)
                raise
            self._staged = None
        finally:
            staged.discard()

    def delete(
        self, using: str | None = None, keep_parents: bool = False, storage: bool = False
    ) -> Any:
        """Delete the record; with ``storage=True`` also the bytes this instance wrote for it
        (at ``storage_key`` in its default storage). Bytes registered by reference, or written
        into another instance's storage (a transferred record), are never deleted: they belong
        to a storage this instance only reads."""
        alias = self._write_alias(using)
        owned = (self.storage, self.storage_key) if storage and self._owns_bytes(alias) else None
        if storage and owned is None:
            warnings.warn(
                f"Artifact {self.uid}: its bytes at {self.path} were registered by reference, "
                "not written by this instance into its default storage; they are left in place.",
                stacklevel=2,
            )
        result = super().delete(using=alias, keep_parents=keep_parents)
        if owned is not None:
            from registry.accessors import registration

            registration.remove(*owned)
        return result

    def _owns_bytes(self, alias: str) -> bool:
        """Whether this instance wrote the bytes: at ``storage_key`` in its default storage."""
        own_root = storage_roots.normalise_root(connections.settings[alias]["STORAGE"])
        return bool(self.storage_key) and self.storage.root == own_root

    @property
    def path(self) -> Path | str:
        """Where the bytes are: a local ``Path``, or an ``s3://`` URL string."""
        return storage_roots.join(self.storage.root, self.storage_key or self.key)

    # The accessors import boto3, h5py, anndata and tiledbsoma: ``registry.accessors`` is
    # imported on first use of an accessor (not a cycle workaround: it keeps the models light).

    def cache(self, verify: bool = False) -> Path:
        """A local path of the artifact's bytes: a local storage's own file, else a copy in
        ``$CELLREGISTRY_HOME/cache/<bucket>/<key>``, downloaded once (verified size and hash,
        atomic rename, one download across processes).

        A copy whose size and mtime still match what was recorded when it was verified is
        returned after one ``stat``; one that changed (or has no record) is hashed again and
        replaced by a fresh download if its hash differs. With ``verify=True`` the copy (or a
        local storage's own file) is hashed again in any case. See
        :func:`registry.accessors.cache.cache_artifact`.
        """
        from registry.accessors.cache import cache_artifact

        return cache_artifact(self, verify=verify)

    def load(self, **kwargs: Any) -> Any:
        """Cache and read the artifact into memory: ``AnnData`` for ``.h5ad``, a pandas
        DataFrame for ``.parquet``/``.csv``. ``kwargs`` go to the reader. SOMA stores: use
        ``open()``."""
        from registry.accessors import api

        return api.load(self, **kwargs)

    def open(self) -> Any:
        """Stream without downloading: an ``AnnDataAccessor`` for ``.h5ad`` (slice it, then
        ``to_memory()``), the opened TileDB-SOMA object for a ``tiledbsoma`` store. Both are
        context managers."""
        from registry.accessors import api

        return api.open_artifact(self)

    @property
    def labels(self) -> ArtifactLabels:
        """Link labels of any registry: ``artifact.labels.add(records, feature=...)``."""
        return ArtifactLabels(self)

    @property
    def features(self) -> ArtifactFeatures:
        """Labels by feature: ``.get_values()`` reads them, ``.add_values({...})`` links them."""
        return ArtifactFeatures(self)

    def describe(self, return_str: bool = False) -> str | None:
        """Print a readable tree: core fields, storage path, labels by feature, collections,
        provenance. With ``return_str=True`` the text is returned instead of printed."""
        text = describe_artifact(self)
        if return_str:
            return text
        print(text)
        return None

    def __str__(self) -> str:
        return self.key


def _storage_holding(path: Path, alias: str) -> tuple[Any, str] | None:
    """The registered local storage that ``path`` is inside, with its key there."""
    from registry.accessors.registration import key_inside
    from registry.models.storage import Storage

    for storage in Storage.objects.db_manager(alias).filter(type=Storage.Kind.LOCAL):
        key = key_inside(storage.root, path)
        if key is not None:
            return storage, key
    return None
