"""``python manage.py demo``: builds the demo instance once, answers the example queries, reruns
idempotently, and never writes synthetic data into an instance that already holds records.

Each test runs manage.py in a subprocess with its own ``CELLREGISTRY_HOME`` and without
``DATABASE_URL`` (the demo instance is embedded: SQLite + a local folder).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"Instance '(?P<name>[^']+)': (?P<artifacts>[\d,]+) artifacts")


def child_env(home: Path) -> dict[str, str]:
    """The environment of a subprocess: a private home, SQLite, no preselected instance."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELLREGISTRY_INSTANCE"}
    }
    env["CELLREGISTRY_HOME"] = str(home)
    return env


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a manage.py command (or ``python -c CODE`` with ``-c``) against ``home``."""
    command = [sys.executable, *args] if args[0] == "-c" else [sys.executable, "manage.py", *args]
    return subprocess.run(
        command, cwd=REPO, env=child_env(home), capture_output=True, text=True, timeout=600
    )


def artifact_count(output: str) -> int:
    match = SUMMARY.search(output)
    assert match, f"no summary line in:\n{output}"
    return int(match["artifacts"].replace(",", ""))


@pytest.mark.skipif(
    "postgresql" in os.environ.get("DATABASE_URL", ""),
    reason="the demo runs on embedded SQLite instances: covered by the SQLite pass",
)
def test_demo_builds_answers_and_reruns_idempotently(tmp_path: Path) -> None:
    """The main job: synthetic registry, ontologies, two demo releases curated, the examples on
    both instances and the release diff; a second run only queries."""
    home = tmp_path / "home"
    first = run(home, "demo")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "Instance 'demo'" in out and "built in" in out
    assert artifact_count(out) >= 1000
    # the cross-dataset query: a non-empty table of immune datasets by sunnyosun
    assert re.search(r"immune dataset \d{4} of synthetic study .* sunnyosun", out)
    # describe() of the kidney dataset: its tree with labels and collections
    assert "description: Mature kidney dataset: immune" in out
    assert "├── Labels" in out and "Tissue: kidney" in out
    assert "cellxgene-census (2025-01-30)" in out
    # the five-relation collection query answers with rows, and both census versions are listed
    collection_part = out.split("Query within a collection")[1].split("Versions of a collection")[0]
    assert re.search(r"\d+ rows", collection_part), collection_part
    versions_part = out.split("Versions of a collection")[1]
    assert "2024-07-01" in versions_part and "2025-01-30" in versions_part
    assert (home / "demo" / "registry.sqlite3").exists()
    assert 'default = "demo"' in (home / "instances.toml").read_text()
    # the curated demo releases, in their own embedded instance
    assert "Instance 'demo-census': demo releases 2025-07-01, 2025-11-08 curated" in out
    curated = out.split("Curated release: query across datasets")[1].split("Curated release:")[0]
    assert "Mature kidney dataset: immune" in curated and "1 rows" in curated
    assert "kidney (500 cells)" in out or "Tissue: kidney (" in out
    assert "Curated release: stream a slice" in out and "AnnData object" in out
    diff = out.split("Release diff 2025-07-01 -> 2025-11-08")[-1]
    assert "added" in diff.lower() and "removed" in diff.lower() and "revised" in diff.lower()
    assert (home / "demo-census" / "census-bucket" / "cell-census" / "2025-11-08").is_dir()

    second = run(home, "demo", "--quiet")
    assert second.returncode == 0, second.stderr
    assert "reused" in second.stdout
    assert artifact_count(second.stdout) == artifact_count(out)
    lines = second.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("Instance 'demo-census'"), lines


def test_demo_refuses_an_instance_with_other_records(tmp_path: Path) -> None:
    home = tmp_path / "home"
    setup = 'import registry as ln; ln.init("lab"); ln.ULabel(name="mine").save()'
    made = run(home, "-c", setup)
    assert made.returncode == 0, made.stderr
    refused = run(home, "demo", "--instance", "lab")
    assert refused.returncode != 0
    assert "already holds records" in refused.stderr and "ULabel" in refused.stderr
    check = run(home, "-c", 'import registry as ln; ln.connect("lab"); print(ln.Artifact.count())')
    assert check.stdout.strip() == "0", check.stderr
