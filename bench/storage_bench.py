"""Benchmark of the accessors over S3: streamed ``open()``, row subsets, and ``cache()``.

A moto S3 server is started on loopback, a CELLxGENE-like h5ad (sparse integer counts, ~22 obs
columns as in the CELLxGENE schema, a UMAP) is written and uploaded, and registered as an
Artifact of a throw-away embedded instance. Measured, through ``Artifact`` records:

(a) ``open()`` + reading ``.obs``: bytes transferred (target <= 15% of the file) and time;
(b) ``to_memory()`` of a 1% random subset of cells: bytes (target <= 20%) and time; the result is
    checked against the in-memory AnnData;
(c) ``cache()`` vs a plain ``boto3 client.download_file`` of the same object (interleaved, a
    fresh cache each time; target: ratio of the medians <= 2), the second ``cache()`` call and
    ``cache(verify=True)`` (re-hashing the copy);
(d) the h5ad header probe of curation (``registry.accessors.h5ad_header.probe_h5ad``): HDF5
    signature and obs index length by ranged reads; bytes (target <= 1% of the file) and
    requests.

(a), (b) and (d) run ``--stream-repeats`` times (default ``--repeats``), (c) ``--repeats`` times;
the bytes and requests must be the same in every repeat. Times are medians; ``stats`` holds n,
min, median, max, mean and the raw values.

Moto serves every GET, ranged or not, by reading the whole object (``FakeKey.value``) under a
per-key lock, so times of many small ranged reads are far slower than on S3; bytes and request
counts are the figures to compare. One JSON object goes to stdout and to ``--out`` (default
``bench/results/storage-<date>.json``), progress to stderr::

    .venv/bin/python bench/storage_bench.py --n-obs 100000 --n-vars 2000 --density 0.07
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

# Instances and the cache live under $CELLREGISTRY_HOME: a throw-away folder, set before registry
# is imported, so that the user's own instances and cache are never read or changed.
BENCH_HOME = common.isolate_home("storage-bench")
for _variable in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
    os.environ.pop(_variable, None)

import anndata as ad  # noqa: E402
import boto3  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import registry as ln  # noqa: E402

TARGETS = {
    "open_obs_fraction": 0.15,
    "subset_1pct_fraction": 0.20,
    "cache_vs_boto3_ratio": 2.0,
    "probe_fraction": 0.01,
}
BUCKET = "cellxgene-bench"


log = common.logger("storage-bench")


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


def read_once(artifact: Any, adata: ad.AnnData, rows: np.ndarray) -> dict[str, Any]:
    """One ``open()`` + ``.obs`` and one 1% subset to memory: seconds, bytes, requests."""
    from registry.accessors import s3

    requests = s3.request_count()
    start = time.perf_counter()
    backed = artifact.open()
    obs = backed.obs
    open_s = time.perf_counter() - start
    obs_bytes = backed.bytes_transferred
    obs_requests = s3.request_count() - requests
    assert len(obs) == adata.n_obs and list(obs.columns) == list(adata.obs.columns)

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
        "open_s": open_s,
        "obs_bytes": obs_bytes,
        "obs_requests": obs_requests,
        "subset_s": subset_s,
        "subset_bytes": subset_bytes,
        "subset_requests": subset_requests,
        "correct": correct,
    }


def measure_open(
    artifact: Any, adata: ad.AnnData, size: int, seed: int, repeats: int
) -> dict[str, Any]:
    """(a) open + obs and (b) a 1% subset to memory, ``repeats`` times: bytes and requests
    (the same every time) and seconds."""
    rows = np.sort(np.random.default_rng(seed).choice(adata.n_obs, adata.n_obs // 100, False))
    runs = []
    for i in range(repeats):
        runs.append(read_once(artifact, adata, rows))
        log(
            f"  read repeat {i + 1}: obs {runs[-1]['open_s']:.2f} s, subset "
            f"{runs[-1]['subset_s']:.2f} s"
        )
    obs_bytes = common.same_in_every_repeat("open() + .obs bytes", [r["obs_bytes"] for r in runs])
    subset_bytes = common.same_in_every_repeat("1% subset bytes", [r["subset_bytes"] for r in runs])
    open_s = common.summarize([r["open_s"] for r in runs])
    subset_s = common.summarize([r["subset_s"] for r in runs])
    return {
        "open_obs": {
            "bytes": obs_bytes,
            "fraction_of_file": round(obs_bytes / size, 4),
            "seconds": open_s["median"],
            "requests": common.same_in_every_repeat(
                "open() requests", [r["obs_requests"] for r in runs]
            ),
            "target_fraction": TARGETS["open_obs_fraction"],
            "meets_target": obs_bytes / size <= TARGETS["open_obs_fraction"],
            "stats": {"seconds": open_s},
        },
        "subset_1pct_to_memory": {
            "cells": len(rows),
            "bytes": subset_bytes,
            "fraction_of_file": round(subset_bytes / size, 4),
            "seconds": subset_s["median"],
            "requests": common.same_in_every_repeat(
                "subset requests", [r["subset_requests"] for r in runs]
            ),
            "equals_in_memory_slice": all(r["correct"] for r in runs),
            "target_fraction": TARGETS["subset_1pct_fraction"],
            "meets_target": subset_bytes / size <= TARGETS["subset_1pct_fraction"],
            "stats": {"seconds": subset_s},
        },
    }


def measure_cache(artifact: Any, key: str, size: int, repeats: int) -> dict[str, Any]:
    """(c) ``cache()`` vs ``download_file``, interleaved, fresh cache each time."""
    from registry.accessors import s3
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
    second_call = common.measure(artifact.cache, repeats)
    verify_requests = []

    def verify() -> None:
        requests = s3.request_count()
        artifact.cache(verify=True)
        verify_requests.append(s3.request_count() - requests)

    verify_call = common.measure(verify, repeats)
    ratio = statistics.median(cached) / statistics.median(plain)
    return {
        "repeats": repeats,
        "cache_seconds_median": round(statistics.median(cached), 3),
        "cache_mb_per_s": round(size / 1e6 / statistics.median(cached), 1),
        "boto3_download_file_seconds_median": round(statistics.median(plain), 3),
        "boto3_mb_per_s": round(size / 1e6 / statistics.median(plain), 1),
        "ratio_cache_over_boto3": round(ratio, 3),
        "includes": "HEAD + part-size HEAD + managed download + md5-n check + rename + record",
        "second_call_ms": second_call.median(1000),
        "verify_call_seconds": verify_call.median(),
        "verify_call_requests": common.same_in_every_repeat(
            "cache(verify=True) requests", verify_requests
        ),
        "target_ratio": TARGETS["cache_vs_boto3_ratio"],
        "meets_target": ratio <= TARGETS["cache_vs_boto3_ratio"],
        "stats": {
            "cache_seconds": common.summarize(cached),
            "boto3_download_file_seconds": common.summarize(plain),
            "second_call_ms": second_call.stats(1000),
            "verify_call_seconds": verify_call.stats(),
        },
    }


def measure_probe(artifact: Any, n_obs: int, size: int, repeats: int) -> dict[str, Any]:
    """(d) the header probe, ``repeats`` times, with the size known (as curation has it from
    the listing)."""
    from registry.accessors import s3
    from registry.accessors.h5ad_header import PROBE_BLOCK_SIZE, probe_h5ad

    http_requests = []

    def probe() -> Any:
        requests = s3.request_count()
        header = probe_h5ad(artifact.storage, artifact.key, size=size, expected_n_obs=n_obs)
        http_requests.append(s3.request_count() - requests)
        return header

    timing = common.measure(probe, repeats)
    header = timing.result
    return {
        "n_obs": header.n_obs,
        "n_obs_correct": header.n_obs == n_obs,
        "bytes": header.bytes_read,
        "fraction_of_file": round(header.fraction_read, 6),
        "requests": header.requests,
        "http_requests": common.same_in_every_repeat("header probe requests", http_requests),
        "without_known_size": "one more request (HEAD)",
        "block_size": PROBE_BLOCK_SIZE,
        "seconds": timing.median(),
        "target_fraction": TARGETS["probe_fraction"],
        "meets_target": header.fraction_read <= TARGETS["probe_fraction"],
        "stats": {"seconds": timing.stats()},
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
    parser.add_argument(
        "--stream-repeats",
        type=int,
        default=None,
        help="repeats of the streamed reads and the header probe (default: --repeats)",
    )
    parser.add_argument("--seed", type=int, default=0)
    common.add_out_argument(parser, "storage")
    args = parser.parse_args(argv)
    common.check_repeats(parser, args)
    if args.stream_repeats is None:
        args.stream_repeats = args.repeats
    if args.stream_repeats < 1:
        parser.error(f"--stream-repeats must be at least 1 (got {args.stream_repeats}).")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the JSON and write it to ``--out``; exit status 1 if a target
    is missed or a read returned other data than the file holds."""
    args = parse_args(argv)
    report = common.Report("storage", args.out)
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
        streamed = measure_open(artifact, adata, size, args.seed, args.stream_repeats)
        log("h5ad header probe")
        probe = measure_probe(artifact, adata.n_obs, size, args.stream_repeats)
        log("cache() vs boto3 download_file")
        cache = measure_cache(artifact, key, size, args.repeats)
        results = {
            "repeats": args.repeats,
            "stream_repeats": args.stream_repeats,
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
            "header_probe": probe,
        }
    finally:
        server.terminate()
        server.wait()
    final = report.finish(results)
    measured = ("open_obs", "subset_1pct_to_memory", "cache", "header_probe")
    ok = all(final[k]["meets_target"] for k in measured)
    correct = final["subset_1pct_to_memory"]["equals_in_memory_slice"]
    return 0 if ok and correct and final["header_probe"]["n_obs_correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
