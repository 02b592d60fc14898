"""Artifacts: datasets registered by reference (``storage.root`` + ``key``), with their labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from django.db import models

from registry.describe import describe_artifact
from registry.labels import ArtifactFeatures, ArtifactLabels
from registry.models.base import VersionedRecord, uid_field


def _labels(target: str, through: str) -> models.ManyToManyField:
    return models.ManyToManyField(
        target, through=through, through_fields=("artifact", "label"), related_name="artifacts"
    )


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

    cell_types = _labels("ontologies.CellType", "registry.ArtifactCellType")
    tissues = _labels("ontologies.Tissue", "registry.ArtifactTissue")
    diseases = _labels("ontologies.Disease", "registry.ArtifactDisease")
    assays = _labels("ontologies.Assay", "registry.ArtifactAssay")
    organisms = _labels("ontologies.Organism", "registry.ArtifactOrganism")
    developmental_stages = _labels(
        "ontologies.DevelopmentalStage", "registry.ArtifactDevelopmentalStage"
    )
    ethnicities = _labels("ontologies.Ethnicity", "registry.ArtifactEthnicity")
    phenotypes = _labels("ontologies.Phenotype", "registry.ArtifactPhenotype")
    ulabels = _labels("registry.ULabel", "registry.ArtifactULabel")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["storage", "key"],
                condition=models.Q(is_latest=True),
                name="artifact_latest_key_unique",
            )
        ]

    @classmethod
    def label_fields(cls) -> list[models.ManyToManyField]:
        """The many-to-many relations to label registries, in declaration order."""
        return [
            f
            for f in cls._meta.many_to_many
            if getattr(f.remote_field.through, "is_link_table", False)
        ]

    @property
    def path(self) -> Path | str:
        """Where the bytes are: a local ``Path``, or an ``s3://`` URL string."""
        root = self.storage.root
        if root.startswith("s3://"):
            return f"{root.rstrip('/')}/{self.key}"
        return Path(root) / self.key

    # The accessors import boto3, h5py, anndata and tiledbsoma: ``registry.accessors`` is
    # imported on first use of an accessor (not a cycle workaround: it keeps the models light).

    def cache(self) -> Path:
        """A local path of the artifact's bytes: a local storage's own file, else a copy in
        ``$CELLREGISTRY_HOME/cache/<bucket>/<key>``, downloaded once (verified size and hash,
        atomic rename, one download across processes)."""
        from registry.accessors.cache import cache_artifact

        return cache_artifact(self)

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
