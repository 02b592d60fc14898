"""``manage.py load_ontologies``: options, progress output, --quiet, and its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import registry as ln
from ontologies.errors import UnknownSchemaVersionError
from tests.demo_runs import child_env
from tests.ontologies.conftest import GENE_LISTS, MMUSDV_OBO

ROOT = Path(__file__).resolve().parents[2]


def test_guide_import_with_progress_then_quietly(
    fresh: ln.DB, capsys: pytest.CaptureFixture
) -> None:
    call_command("load_ontologies", only="HsapDv,MmusDv", schema_version="7.1")
    err = capsys.readouterr().err
    assert "HsapDv -> DevelopmentalStage" in err and "MmusDv -> DevelopmentalStage" in err
    assert "DevelopmentalStage <- hsapdv 2025-01-23: 260 terms: 260 new" in err
    assert "2 import(s), 2 changed the registries" in err
    assert fresh.ontologies.DevelopmentalStage.count() == 438
    call_command("load_ontologies", only="HsapDv,MmusDv", quiet=True)
    assert capsys.readouterr().err == ""


def test_gene_import_through_the_command(fresh: ln.DB, capsys: pytest.CaptureFixture) -> None:
    call_command("load_ontologies", only="NCBITaxon", quiet=True)
    call_command("load_ontologies", genes=True, gene_organisms="mouse", genes_from=str(GENE_LISTS))
    assert "Gene <- gencode M37 (mouse): 104 terms: 104 new" in capsys.readouterr().err
    assert fresh.ontologies.Gene.filter(organism__name="mouse").count() == 104


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"file": "x.obo"}, "--file needs --registry and --source-name"),
        ({"file": "x.obo", "registry": "CellType", "only": "CL"}, "do not apply to --file"),
        ({"registry": "CellType"}, "--registry only apply together with --file"),
        ({"genes": True, "only": "CL"}, "do not apply to --genes"),
        ({"genes_from": "x.whl"}, "only apply with --genes"),
        ({"file": str(MMUSDV_OBO), "genes": True}, "run them one at a time"),
    ],
)
def test_option_mistakes_are_explained(options: dict, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("load_ontologies", **options)


def test_an_unknown_schema_version_fails_before_touching_the_database() -> None:
    with pytest.raises(UnknownSchemaVersionError, match="Available: 7.0.0, 7.1.0"):
        call_command("load_ontologies", schema_version="8.0.0")


def test_manage_py_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "load_ontologies", "--schema-version", "5.0.0"],
        cwd=ROOT,
        env=child_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: CELLxGENE schema version '5.0.0' is not shipped")
    assert "Traceback" not in done.stderr
