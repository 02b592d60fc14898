"""``python manage.py demo``: two runs started together build the demo instance once and agree,
the examples answer on the curated releases, a rerun only queries, an instance holding other
records is refused, a read-only one is only queried, and ``--synthetic`` builds the benchmark
workload into an instance of its own.

The full build is shared with ``tests/test_readme.py`` (see ``tests/demo_runs.py``). Every
manage.py run is a subprocess with its own ``CELLREGISTRY_HOME`` and without ``DATABASE_URL``;
the PostgreSQL pass adds a demo on a PostgreSQL instance.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.demo_runs import WAITING, ConcurrentDemo, run, shared_demo, sqlite_pass_only, summary

RELEASES = ("2024-07-01", "2025-01-30")
#: what the demo instance holds: 60 + 61 dataset artifacts, 2 SOMA stores
ARTIFACTS, COLLECTIONS = "123", "30"
DIFF = "Release diff 2024-07-01 -> 2025-01-30: 3 added, 2 removed, 6 revised, 52 unchanged"
on_postgres = "postgresql" in os.environ.get("DATABASE_URL", "")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> ConcurrentDemo:
    return shared_demo(tmp_path_factory.getbasetemp())


def section(output: str, title: str) -> str:
    """The part of the demo's output under the example titled ``title``."""
    assert title in output, f"no example {title!r} in:\n{output}"
    return re.split(r"\n─+ [^\n]* ─+\n", output.split(title, 1)[1], maxsplit=1)[0]


@sqlite_pass_only
def test_two_demos_started_together_build_once_and_agree(demo: ConcurrentDemo) -> None:
    for process in (demo.builder, demo.waiter):
        assert process.returncode == 0, process.stderr
        assert "Traceback" not in process.stderr, process.stderr
    assert WAITING not in demo.builder.stderr
    lock = demo.home.resolve() / "demo.lock"
    assert f"{WAITING} in {demo.home.resolve()} (lock file {lock}): waiting for it" in (
        demo.waiter.stderr.replace("\n", " ")
    )
    built, waited = summary(demo.builder.stdout), summary(demo.waiter.stdout)
    assert built["how"].startswith("built in") and waited["how"] == "reused"
    for key in ("name", "what", "artifacts", "collections", "database"):
        assert built[key] == waited[key], key
    assert (
        built["name"] == "demo" and built["what"] == f"demo releases {', '.join(RELEASES)} curated"
    )
    assert (built["artifacts"], built["collections"]) == (ARTIFACTS, COLLECTIONS)
    assert built["database"] == f"sqlite:///{demo.home.resolve() / 'demo' / 'registry.sqlite3'}"
    config = demo.config  # as the two runs left it, whatever ran on the home since
    assert 'default = "demo"' in config and 'description = "The demo of `manage.py demo`' in config
    bucket = demo.home.resolve() / "demo" / "census-bucket" / "cell-census"
    listed = sorted(p.name for p in bucket.iterdir() if not p.name.startswith("."))
    assert listed == [*RELEASES, "release.json"]  # the Census release directory beside them


@sqlite_pass_only
def test_the_demo_says_what_it_builds(demo: ConcurrentDemo) -> None:
    out, bucket = demo.builder.stdout, demo.home.resolve() / "demo" / "census-bucket"
    assert "Importing the CELLxGENE ontologies" in out
    for tag in RELEASES:
        assert f"Building demo release {tag} in {bucket} ..." in out
    assert f"Curated {bucket}/cell-census/2024-07-01/: 60 datasets registered." in out
    assert f"Curated {bucket}/cell-census/2025-01-30/: 61 datasets registered." in out
    assert "Importing" not in demo.waiter.stdout and "Curated" not in demo.waiter.stdout


@sqlite_pass_only
def test_the_examples_answer_on_the_curated_releases(demo: ConcurrentDemo) -> None:
    out = demo.builder.stdout
    across = section(out, "Query across datasets")
    assert "3 rows" in across and "Mature kidney dataset: immune" in across
    described = section(out, "Inspect a dataset")
    assert "Tissue: kidney (929 cells)" in described and "B cell (570 cells)" in described
    h5ad = f"{demo.home.resolve()}/demo/census-bucket/cell-census/2025-01-30/h5ads/"
    assert f"path: {h5ad}" in described.replace("\n", "")
    assert "n_obs × n_vars = 277 ×" in section(out, "Cache and load it, then slice in memory")
    assert "n_obs × n_vars = 147 ×" in section(out, "Stream a slice")
    study = section(out, "The guide's study collection, by uid, and its versions")
    assert "quQDnLsMLkP3JRsC8gp5" in study and "2 rows" in study
    census = section(out, "Query within the Census collection")
    assert "1 rows" in census and "Mature" in census
    soma = section(out, "Slice the release's TileDB-SOMA store")
    assert re.search(r"neutrophil / kidney\s+184", soma) and "dendritic cell / kidney" in soma
    assert DIFF in out


@sqlite_pass_only
def test_a_rerun_only_queries(demo: ConcurrentDemo) -> None:
    again = run(demo.home, "demo", "--quiet")
    assert again.returncode == 0, again.stderr
    lines = again.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    rerun = summary(lines[0])
    assert rerun["how"] == "reused" and rerun["artifacts"] == ARTIFACTS


@sqlite_pass_only
def test_a_read_only_instance_holding_the_demo_is_only_queried(demo: ConcurrentDemo) -> None:
    code = (
        "import registry as ln; demo = ln.DB('demo'); "
        "ln.init('demo-ro', db=demo.config.db, read_only=True, make_default=False)"
    )
    made = run(demo.home, "-c", code)
    assert made.returncode == 0, made.stderr
    queried = run(demo.home, "demo", "--instance", "demo-ro")
    assert queried.returncode == 0, queried.stderr
    found = summary(queried.stdout)
    assert (found["name"], found["how"], found["artifacts"]) == ("demo-ro", "reused", ARTIFACTS)
    assert DIFF in queried.stdout


@sqlite_pass_only
def test_demo_refuses_an_instance_with_other_records(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = run(home, "-c", 'import registry as ln; ln.init("lab"); ln.ULabel(name="mine").save()')
    assert made.returncode == 0, made.stderr
    refused = run(home, "demo", "--instance", "lab")
    assert refused.returncode == 1
    assert (
        "Instance 'lab' already holds records (ULabel), so the demo cannot be added "
        "to it. Run the demo on a fresh instance: unset CELLREGISTRY_INSTANCE and run `python "
        "manage.py demo` (instance 'demo'), or pass `--instance NEW_NAME`."
    ) in refused.stderr.replace("\n", " ")
    roots = (
        'import registry as ln; ln.connect("lab"); '
        'print(*ln.Storage.filter().values_list("root", flat=True))'
    )
    check = run(home, "-c", roots)
    assert check.stdout.split() == [str(home.resolve() / "lab" / "storage")], check.stderr
    assert not (home / "lab" / "census-bucket").exists()


@sqlite_pass_only
def test_demo_refuses_a_read_only_instance_without_the_demo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = run(home, "-c", 'import registry as ln; ln.init("mirror", read_only=True)')
    assert made.returncode == 0, made.stderr
    refused = run(home, "demo", "--instance", "mirror")
    assert refused.returncode == 1
    assert (
        "Instance 'mirror' is read-only and does not hold the demo: nothing to demo. Run the "
        "demo on a writable instance, e.g. the default 'demo': `python manage.py demo`."
    ) in refused.stderr.replace("\n", " ")


@sqlite_pass_only
def test_synthetic_benchmark_is_an_instance_of_its_own(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run(home, "demo", "--synthetic", "--artifacts", "30", "--quiet")
    assert first.returncode == 0, first.stderr
    built = summary(first.stdout)
    assert (built["name"], built["what"]) == ("synthetic-benchmark", "synthetic benchmark registry")
    assert built["artifacts"] == "31" and built["how"].startswith("built in")  # 30 + a SOMA store
    config = (home / "instances.toml").read_text()
    assert '[instances."synthetic-benchmark"]' in config
    assert 'description = "Benchmark workload (`manage.py demo --synthetic`' in config
    assert "default =" not in config and '[instances."demo"]' not in config
    again = run(home, "demo", "--synthetic", "--quiet")
    assert again.returncode == 0, again.stderr
    assert summary(again.stdout)["how"] == "reused"


@sqlite_pass_only
def test_synthetic_needs_an_artifact(tmp_path: Path) -> None:
    refused = run(tmp_path / "home", "demo", "--synthetic", "--artifacts", "0")
    assert refused.returncode == 1
    assert "--artifacts must be at least 1 (the synthetic plan needs one)." in refused.stderr


@pytest.mark.skipif(not on_postgres, reason="the PostgreSQL pass runs the demo on PostgreSQL")
def test_demo_on_a_postgresql_instance(tmp_path: Path, pg_database: str) -> None:
    home = tmp_path / "home"
    code = f'import registry as ln; ln.init("pgdemo", db="{pg_database}", make_default=False)'
    made = run(home, "-c", code)
    assert made.returncode == 0, made.stderr
    first = run(home, "demo", "--instance", "pgdemo", "--quiet")
    assert first.returncode == 0, first.stderr
    built = summary(first.stdout)
    assert (built["name"], built["artifacts"], built["collections"]) == (
        "pgdemo",
        ARTIFACTS,
        COLLECTIONS,
    )
    assert built["how"].startswith("built in") and built["database"] == pg_database
    again = run(home, "demo", "--instance", "pgdemo")
    assert again.returncode == 0, again.stderr
    assert summary(again.stdout)["how"] == "reused"
    assert "quQDnLsMLkP3JRsC8gp5" in again.stdout and DIFF in again.stdout


GUIDE_ON_THE_DEMO = """
import tests.registry.test_seed_queries as seed
seed.CONNECT = 'import registry as ln\\ndb = ln.DB("demo")\\n'
namespace = seed._run(seed.SEED_001)
results = namespace["_results"]
artifact, study, census = namespace["artifact"], results[4], results[7]
print("dataset", artifact.description, artifact.version, artifact.is_latest)
print("study", study.uid, study.version, len(results[5]))
print("census", census.key, census.version)
"""


@sqlite_pass_only
def test_the_guides_dataset_steps_run_on_two_curated_releases(demo: ConcurrentDemo) -> None:
    """The LaminDB guide's code cells, unchanged but for the connect line, on the demo instance
    where every dataset has a version per release: ``get()`` gives the latest version."""
    ran = run(demo.home, "-c", GUIDE_ON_THE_DEMO)
    assert ran.returncode == 0, ran.stderr
    assert "dataset Mature kidney dataset: immune 2025-01-30 True" in ran.stdout
    assert "study quQDnLsMLkP3JRsC8gp5 2025-01-30 2" in ran.stdout  # two versions
    assert "census cellxgene-census 2025-01-30" in ran.stdout
