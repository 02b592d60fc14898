"""Accessors of artifacts: ``cache()``, ``load()``, ``open()``, over storage backends.

``Artifact.cache/load/open`` delegate here. The modules, bottom-up:

- ``base``: the backend interface (``ObjectInfo``, ``Backend``, ``StorageLike``,
  ``ArtifactLike``); ``local`` and ``s3``: the backends (``s3.request_count()`` counts requests);
  ``backends``: ``backend_for(storage)`` and ``tiledb_config(storage)``;
  ``storages``: ``storage_for_root(root)``.
- ``remote_file``: a seekable file over ranged reads, with a block cache and a byte counter.
- ``hashing``, ``cache_records`` and ``cache``: verified, locked, atomic downloads into
  ``$CELLREGISTRY_HOME/cache`` (``cache.cache_artifact``), with a record of what was verified of
  each copy, so that a copy changed on disk is hashed again and repaired.
- ``h5ad_header``: ``probe_h5ad``, the HDF5 signature and obs index length of an h5ad by a few
  small ranged reads (curation's integrity check of a dataset file).
- ``rows`` and ``h5ad``: ``AnnDataAccessor``, reading only the selected rows of an h5ad file.
- ``api``: ``load`` and ``open_artifact``, by format (h5ad, tables, tiledbsoma).

This package file imports nothing: the modules import boto3 (backends), h5py and anndata
(``rows``, ``h5ad``, ``h5ad_header``, ``api``) and tiledbsoma (``api``), and are imported on
first use of an accessor, so that ``import registry`` stays light and ``cache()`` does not load
anndata. ``Artifact.save()`` imports ``base`` (the key rule) and ``Artifact(x)``
``registration`` (what data is), which need none of them.
"""
