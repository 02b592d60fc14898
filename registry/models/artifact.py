"""Artifacts: datasets registered by reference (``storage.root`` + ``key``), with their labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from django.db import models

from registry import storage_roots
from registry.describe import describe_artifact
from registry.labels import ArtifactFeatures, ArtifactLabels
from registry.models.base import VersionedRecord, uid_field
from registry.models.links import LabelLink, LabelRelation, label_relations


class Artifact(VersionedRecord):
    """A dataset file or store: an ``.h5ad``, a TileDB-SOMA store, a table.

    Nothing is copied on registration: the bytes stay at ``storage.root/key``.
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save; a key that is not a relative path inside the storage (``..`` or ``.``
        segments, a leading ``/``, empty, backslashes, NUL bytes) is refused first, so nothing
        is written (see :func:`registry.accessors.base.check_key`, the one rule for keys).

        Raises:
            InvalidKeyError: the key, what is wrong with it and what a key is.
        """
        # accessors.base is light (no boto3, h5py or anndata); imported here like the accessors
        from registry.accessors.base import check_key

        storage_cached = type(self).storage.is_cached(self)  # naming the root costs no query
        check_key(self.key, self.storage.root if storage_cached else "")
        super().save(*args, **kwargs)

    @property
    def path(self) -> Path | str:
        """Where the bytes are: a local ``Path``, or an ``s3://`` URL string."""
        return storage_roots.join(self.storage.root, self.key)

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
