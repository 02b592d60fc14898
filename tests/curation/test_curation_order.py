"""Order does not matter (issue 9, point 9): curating three releases in any order, or two of them
at once on PostgreSQL, gives the registry of curating them in tag order — the same artifact
versions and ``is_latest``, the same collection versions and memberships — compared record by
record through :func:`registry_snapshot` (natural keys, no uids)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import registry as ln
from curation.steps import curate_release
from demo.census.release import build_release
from registry.models import Collection
from tests.conftest import on_postgres
from tests.curation.harness import (
    Runner,
    assert_same,
    assert_version_chains,
    blocked,
    registry_snapshot,
)

TAGS = ("2024-07-01", "2025-01-30", "2025-11-08")
N_DATASETS, CELLS = 30, 80


@pytest.fixture(scope="module")
def three_releases(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three consecutive demo releases: each keeps, revises, drops and adds datasets."""
    dest = tmp_path_factory.mktemp("three")
    previous = None
    for tag in TAGS:
        build_release(
            str(dest),
            tag,
            previous=previous,
            n_datasets=N_DATASETS,
            cells_per_dataset=CELLS,
            workers=1,
        )
        previous = tag
    return [dest / "cell-census" / tag for tag in TAGS]


def curate_in(db: ln.DB, releases: list[Path]) -> None:
    for release in releases:
        curate_release(f"{release}/", using=db.alias, workers=1)


def _versions(db: ln.DB) -> dict[str, list[str]]:
    """Collection reference -> its versions, oldest first."""
    versions: dict[str, list[str]] = {}
    for reference, version in (
        Collection.objects.db_manager(db.alias)
        .filter(reference_type="cellxgene_collection_id")
        .order_by("version")
        .values_list("reference", "version")
    ):
        versions.setdefault(reference, []).append(version)
    return versions


def test_any_order_gives_the_registry_of_tag_order(
    three_releases: list[Path], copies: Callable[[str], ln.DB]
) -> None:
    in_order, reversed_order, middle_first = copies("abc"), copies("cba"), copies("bac")
    a, b, c = three_releases
    curate_in(in_order, [a, b, c])
    curate_in(reversed_order, [c, b, a])
    curate_in(middle_first, [b, a, c])
    expected = registry_snapshot(in_order.alias)
    # the releases exercise what ordering can get wrong: collections that keep a version
    # across releases (no copy when unchanged) and collections that change
    versions = _versions(in_order)
    assert any(len(v) == 1 for v in versions.values())
    assert any(len(v) > 1 for v in versions.values())
    assert sum(len(v) for v in versions.values()) < len(TAGS) * len(versions)
    for db in (reversed_order, middle_first):
        assert_same(registry_snapshot(db.alias), expected)
        assert_version_chains(db.alias)
        assert _versions(db) == versions
    assert_version_chains(in_order.alias)


@pytest.mark.skipif(
    not on_postgres(), reason="concurrent writers need PostgreSQL (SQLite serialises writes)"
)
def test_two_releases_at_once_after_the_first(
    three_releases: list[Path], copies: Callable[[str], ln.DB], runner: Runner
) -> None:
    """B and C run at the same time after A; C's collections step waits inside a transaction
    until B holds a lock of its own (so both write versions of the same families at once)."""
    a, b, c = three_releases
    concurrent, in_order = copies("concurrent"), copies("in-order")
    curate_in(in_order, [a, b, c])
    curate_in(concurrent, [a])
    second = runner.start("concurrent", b, pause_at="step:register")
    third = runner.start("concurrent", c, pause_at="step:register")
    second.wait_for_pause()
    third.wait_for_pause()
    second.resume()
    third.resume()
    second.wait_until(lambda: blocked(concurrent) or second.process.poll() is not None, "a lock")
    for command in (second, third):
        command.finish()
    assert_same(registry_snapshot(concurrent.alias), registry_snapshot(in_order.alias))
    assert_version_chains(concurrent.alias)
