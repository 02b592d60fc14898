"""The growth benchmark (``bench/registry_growth_bench.py``) on a tiny workload, run as a user
runs it: its JSON has every figure and the rows each query returned at both sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(tmp_path: Path, *args: str) -> dict:
    """The bench run as a user runs it (one timed run, no warm-up, its own home): its JSON."""
    out = tmp_path / "growth.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "registry_growth_bench.py"),
        *args,
        *("--repeats", "1", "--warmups", "0", "--out", str(out)),
    ]
    env = {**os.environ, "CELLREGISTRY_HOME": str(tmp_path / "home")}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.mark.skipif(
    "postgresql" in os.environ.get("DATABASE_URL", ""),
    reason="the bench makes its own SQLite instances: runs in the SQLite pass",
)
def test_without_warmups_the_rows_come_from_the_timed_runs(tmp_path: Path) -> None:
    figures = run_bench(tmp_path, "--backends", "sqlite", "--releases", "2", "--per-release", "40")
    figures = figures["sqlite"]["figures"]
    assert set(figures) >= {"seed_query_ms", "five_relation_ms", "count_join_ms"}
    for key, figure in figures.items():
        assert figure["grown_ms"]["n"] == 1, key
        assert figure["rows"]["base"] is not None and figure["rows"]["grown"] is not None, key


@pytest.mark.skipif(
    "postgresql" not in os.environ.get("DATABASE_URL", ""),
    reason="needs the PostgreSQL server of the PostgreSQL pass",
)
def test_the_postgresql_databases_go_with_the_bench(tmp_path: Path) -> None:
    import psycopg

    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    name = f"growth_bench_test_{os.getpid()}"
    result = run_bench(
        tmp_path,
        *("--backends", "postgresql", "--pg-url", f"{server}/{name}"),
        *("--releases", "1", "--per-release", "20"),
    )
    assert result["postgresql"]["figures"]
    with psycopg.connect(f"{server}/postgres") as admin:
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{name}%"]
        ).fetchall()
    assert left == []
