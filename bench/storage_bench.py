"""Benchmark of the accessors over S3: streamed ``open()``, row subsets, and ``cache()``.

A moto S3 server is started on loopback, a CELLxGENE-like h5ad (sparse integer counts, ~22 obs
columns as in the CELLxGENE schema, a UMAP) is written and uploaded, and registered as an
Artifact of a throw-away embedded instance. Measured, through ``Artifact`` records:

(a) ``open()`` + reading ``.obs``: bytes transferred (target <= 15% of the file) and time;
(b) ``to_memory()`` of a 1% random subset of cells: bytes (target <= 20%) and time; the result is
    checked against the in-memory AnnData;
(c) ``cache()`` vs a plain ``boto3 client.download_file`` of the same object (median of
    ``--repeats``, interleaved; target ratio <= 2).

Moto serves every GET, ranged or not, by reading the whole object (``FakeKey.value``) under a
per-key lock, so times of many small ranged reads are far slower than on S3; bytes and request
counts are the figures to compare. One JSON object goes to stdout, progress to stderr::

    /tmp/venv0/bin/python bench/storage_bench.py --n-obs 100000 --n-vars 2000 --density 0.07
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# Instances and the cache live under $CELLREGISTRY_HOME: a throw-away folder, set before registry
# is imported, so that the user's own instances and cache are never read or changed.
BENCH_HOME = Path(tempfile.mkdtemp(prefix="cellregistry-storage-bench-"))
os.environ["CELLREGISTRY_HOME"] = str(BENCH_HOME)
for _variable in ("CELLREGISTRY_INSTANCE", "DATABASE_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
    os.environ.pop(_variable, None)

import importlib.metadata  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402

import anndata as ad  # noqa: E402
import boto3  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import registry as ln  # noqa: E402

TARGETS = {"open_obs_fraction": 0.15, "subset_1pct_fraction": 0.20, "cache_vs_boto3_ratio": 2.0}
BUCKET = "cellxgene-bench"


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def start_moto() -> tuple[str, subprocess.Popen]:
    """A moto server on a free loopback port (``moto_server`` next to this Python)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    executable = Path(sys.executable).parent / "moto_server"
    command = (
        [str(executable)] if executable.exists() else [sys.executable, "-m", "moto.server"]
    ) + ["-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2):
                return url, process
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto server did not start")


def make_dataset(n_obs: int, n_vars: int, density: float, seed: int) -> ad.AnnData:
    """A CELLxGENE-like dataset: raw integer counts (CSR float32) and the schema's obs columns."""
    rng = np.random.default_rng(seed)

    def cat(prefix: str, n_categories: int, skew: float = 1.2) -> pd.Categorical:
        weights = 1 / np.arange(1, n_categories + 1) ** skew
        values = rng.choice(n_categories, n_obs, p=weights / weights.sum())
        return pd.Categorical.from_codes(values, [f"{prefix} {i}" for i in range(n_categories)])

    cell_type = cat("cell type", 60)
    obs = pd.DataFrame(
        {
            "assay_ontology_term_id": cat("EFO:00", 6),
            "cell_type_ontology_term_id": pd.Categorical.from_codes(
                cell_type.codes, [f"CL:{i:07d}" for i in range(60)]
            ),
            "development_stage_ontology_term_id": cat("HsapDv:", 40),
            "disease_ontology_term_id": cat("MONDO:", 12),
            "self_reported_ethnicity_ontology_term_id": cat("HANCESTRO:", 10),
            "organism_ontology_term_id": cat("NCBITaxon:", 1),
            "sex_ontology_term_id": cat("PATO:", 3),
            "tissue_ontology_term_id": cat("UBERON:", 20),
            "is_primary_data": rng.random(n_obs) < 0.8,
            "donor_id": cat("donor", 300, skew=0.5),
            "suspension_type": cat("suspension", 2),
            "tissue_type": cat("tissue type", 2),
            "cell_type": cell_type,
            "assay": cat("assay", 6),
            "disease": cat("disease", 12),
            "organism": cat("organism", 1),
            "sex": cat("sex", 3),
            "tissue": cat("tissue", 20),
            "self_reported_ethnicity": cat("ethnicity", 10),
            "development_stage": cat("stage", 40),
            "observation_joinid": [f"{i:x}".rjust(10, "j") for i in rng.permutation(n_obs)],
            "nCount_RNA": rng.integers(500, 20000, n_obs).astype(np.float32),
        },
        index=[f"{''.join(rng.choice(list('ACGT'), 16))}-{i}" for i in range(n_obs)],
    )
    var = pd.DataFrame(
        {
            "feature_name": [f"GENE{i}" for i in range(n_vars)],
            "feature_reference": pd.Categorical(["NCBITaxon:9606"] * n_vars),
            "feature_biotype": pd.Categorical(["gene"] * n_vars),
            "feature_length": rng.integers(200, 5000, n_vars),
        },
        index=[f"ENSG{i:011d}" for i in range(n_vars)],
    )
    X = sp.random(n_obs, n_vars, density=density, format="csr", dtype=np.float32, rng=rng)
    X.data[:] = rng.integers(1, 100, X.nnz)
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.obsm["X_umap"] = rng.normal(size=(n_obs, 2)).astype(np.float32)
    adata.uns["title"] = "storage benchmark"
    return adata


def measure_open(artifact: Any, adata: ad.AnnData, size: int, seed: int) -> dict[str, Any]:
    """(a) open + obs and (b) a 1% subset to memory, with bytes and requests."""
    from registry.accessors import s3

    requests = s3.request_count()
    start = time.perf_counter()
    backed = artifact.open()
    obs = backed.obs
    open_s = time.perf_counter() - start
    obs_bytes = backed.bytes_transferred
    obs_requests = s3.request_count() - requests
    assert len(obs) == adata.n_obs and list(obs.columns) == list(adata.obs.columns)

    rows = np.sort(np.random.default_rng(seed).choice(adata.n_obs, adata.n_obs // 100, False))
    requests = s3.request_count()
    start = time.perf_counter()
    subset = backed[rows].to_memory()
    subset_s = time.perf_counter() - start
    subset_bytes = backed.bytes_transferred - obs_bytes
    subset_requests = s3.request_count() - requests
    backed.close()
    expected = adata[rows]
    correct = bool(
        (subset.X != expected.X).nnz == 0
        and subset.obs.index.equals(expected.obs.index)
        and np.array_equal(subset.obsm["X_umap"], expected.obsm["X_umap"])
    )
    return {
        "open_obs": {
            "bytes": obs_bytes,
            "fraction_of_file": round(obs_bytes / size, 4),
            "seconds": round(open_s, 3),
            "requests": obs_requests,
            "target_fraction": TARGETS["open_obs_fraction"],
            "meets_target": obs_bytes / size <= TARGETS["open_obs_fraction"],
        },
        "subset_1pct_to_memory": {
            "cells": len(rows),
            "bytes": subset_bytes,
            "fraction_of_file": round(subset_bytes / size, 4),
            "seconds": round(subset_s, 3),
            "requests": subset_requests,
            "equals_in_memory_slice": correct,
            "target_fraction": TARGETS["subset_1pct_fraction"],
            "meets_target": subset_bytes / size <= TARGETS["subset_1pct_fraction"],
        },
    }


def measure_cache(artifact: Any, key: str, size: int, repeats: int) -> dict[str, Any]:
    """(c) ``cache()`` vs ``download_file``, interleaved, fresh cache each time."""
    from registry.accessors.cache import cache_root

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    scratch = BENCH_HOME / "baseline"
    scratch.mkdir(exist_ok=True)
    plain, cached = [], []
    for i in range(repeats):
        target = scratch / f"copy-{i}.h5ad"
        start = time.perf_counter()
        client.download_file(BUCKET, key, str(target))
        plain.append(time.perf_counter() - start)
        target.unlink()
        shutil.rmtree(cache_root(), ignore_errors=True)
        start = time.perf_counter()
        path = artifact.cache()
        cached.append(time.perf_counter() - start)
        assert path.stat().st_size == size
        log(f"  cache repeat {i + 1}: boto3 {plain[-1]:.2f} s, cache() {cached[-1]:.2f} s")
    start = time.perf_counter()
    artifact.cache()
    second_call = time.perf_counter() - start
    ratio = statistics.median(cached) / statistics.median(plain)
    return {
        "repeats": repeats,
        "cache_seconds_median": round(statistics.median(cached), 3),
        "cache_mb_per_s": round(size / 1e6 / statistics.median(cached), 1),
        "boto3_download_file_seconds_median": round(statistics.median(plain), 3),
        "boto3_mb_per_s": round(size / 1e6 / statistics.median(plain), 1),
        "ratio_cache_over_boto3": round(ratio, 3),
        "includes": "HEAD + part-size HEAD + managed download + md5-n verification + rename",
        "second_call_ms": round(second_call * 1000, 3),
        "target_ratio": TARGETS["cache_vs_boto3_ratio"],
        "meets_target": ratio <= TARGETS["cache_vs_boto3_ratio"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; see ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-obs", type=int, default=100_000, help="cells")
    parser.add_argument("--n-vars", type=int, default=2_000, help="genes")
    parser.add_argument(
        "--density", type=float, default=0.07, help="fraction of nonzeros in X (140 genes per cell)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="cache() timings (median)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the JSON."""
    args = parse_args(argv)
    url, server = start_moto()
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        log(f"moto at {url}; writing the dataset")
        adata = make_dataset(args.n_obs, args.n_vars, args.density, args.seed)
        path = BENCH_HOME / "dataset.h5ad"
        adata.write_h5ad(path)
        size = path.stat().st_size
        key = "cell-census/bench/h5ads/dataset.h5ad"
        client = boto3.client("s3", endpoint_url=url)
        client.create_bucket(Bucket=BUCKET)
        client.upload_file(str(path), BUCKET, key)
        log(f"uploaded {size / 1e6:.1f} MB")

        ln.init("storagebench", storage=str(BENCH_HOME / "local-storage"))
        from registry.accessors.backends import backend_for

        storage = ln.Storage.objects.create(root=f"s3://{BUCKET}")
        info = backend_for(storage).stat(key)
        artifact = ln.Artifact.objects.create(
            key=key,
            storage=storage,
            suffix=".h5ad",
            otype="AnnData",
            size=info.size,
            hash=info.hash,
            hash_type=info.hash_type,
            n_observations=adata.n_obs,
        )
        log("open() + obs, 1% subset")
        streamed = measure_open(artifact, adata, size, args.seed)
        log("cache() vs boto3 download_file")
        cache = measure_cache(artifact, key, size, args.repeats)
        report = {
            "benchmark": "cellregistry bench/storage_bench.py",
            "command": " ".join([sys.executable, *sys.argv]),
            "file": {
                "n_obs": adata.n_obs,
                "n_vars": adata.n_vars,
                "nnz": int(adata.X.nnz),
                "obs_columns": adata.obs.shape[1],
                "size_bytes": size,
                "etag_type": info.hash_type,
                "s3": "moto server on loopback",
            },
            **streamed,
            "cache": cache,
            "environment": {
                "python": platform.python_version(),
                "anndata": importlib.metadata.version("anndata"),
                "boto3": boto3.__version__,
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
            },
        }
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(BENCH_HOME, ignore_errors=True)
    print(json.dumps(report, indent=2))
    ok = all(report[k]["meets_target"] for k in ("open_obs", "subset_1pct_to_memory", "cache"))
    return 0 if ok and report["subset_1pct_to_memory"]["equals_in_memory_slice"] else 1


if __name__ == "__main__":
    sys.exit(main())
