"""Fixtures of the ontology tests: the real Cell Ontology in the test database, fresh instances,
and the committed fixture files.

The default test database holds the synthetic registry (600 cell types, 34 with real CL ids and
artifact links). ``real_cl`` imports the real CL over it for one test module, in a transaction
rolled back afterwards; importer tests that need an empty registry use ``fresh``
(``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from ontologies.importers.common import ImportReport
from ontologies.importers.guide import import_guide

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MMUSDV_OBO = FIXTURES / "mmusdv.obo"
GENE_LISTS = FIXTURES / "gencode"


@pytest.fixture(scope="module")
def real_cl(django_db_setup: None, django_db_blocker: Any) -> Iterator[list[ImportReport]]:
    """CL of the newest schema imported into the test database for the module, then undone."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield import_guide(only=["CL"])
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


def only_changes(reports: list[ImportReport]) -> list[str]:
    """Summaries of the reports that changed something (empty for a no-op import)."""
    return [r.summary() for r in reports if r.changed]
