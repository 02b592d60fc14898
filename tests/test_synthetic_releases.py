"""The growth workload of ``bench/registry_growth_bench.py``: releases of versioned artifacts."""

from __future__ import annotations

import pytest

import registry as ln
from demo import synthetic, synthetic_releases
from registry.models import Artifact


@pytest.fixture
def grown(fresh: ln.DB) -> synthetic_releases.ReleasesPlan:
    plan = synthetic_releases.make_plan(n_releases=3, per_release=40, seed=1)
    synthetic_releases.write(plan, using=fresh.alias)
    return plan


def test_each_release_keeps_most_datasets_as_new_versions(
    fresh: ln.DB, grown: synthetic_releases.ReleasesPlan
) -> None:
    tags = [tag for tag, _ in grown.releases]
    assert tags == list(synthetic_releases.RELEASE_TAGS[-3:])
    assert fresh.Artifact.filter(suffix=".h5ad").count() == grown.n_artifacts == 120
    # one latest version per dataset (a dataset a release dropped keeps its last version)
    assert fresh.Artifact.filter(is_latest=True).count() == len(grown.datasets) > 40
    for (_, before), (_, after) in zip(grown.releases, grown.releases[1:], strict=False):
        kept = set(before) & set(after)
        assert 0.8 * len(before) <= len(kept) < len(before)
    # a dataset of all releases: three versions, one stem, chained by revises, newest latest
    kidney = fresh.Artifact.get(description=synthetic.KIDNEY_DATASET)
    assert kidney.is_latest and kidney.version == tags[-1]
    versions = list(kidney.versions)
    assert [v.version for v in versions] == tags
    assert versions[2].revises_id == versions[1].pk and versions[1].revises_id == versions[0].pk
    assert fresh.Artifact.get(description=synthetic.KIDNEY_DATASET, version=tags[0]).pk == (
        versions[0].pk
    )


def test_links_carry_counts_and_collections_hold_each_release(
    fresh: ln.DB, grown: synthetic_releases.ReleasesPlan
) -> None:
    for tag, members in grown.releases:
        census = fresh.Collection.get(key=synthetic.CENSUS_KEY, version=tag)
        assert census.artifacts.count() == len(members)
    links = fresh.Artifact.filter(links_cell_type__n_cells__gt=0).count()
    assert links == grown.n_artifacts
    per_artifact = [
        len(d.cell_types) for _, m in grown.releases for d in map(grown.datasets.__getitem__, m)
    ]
    cell_type_links = Artifact.link_table("cell_types").objects.using(fresh.alias).count()
    assert cell_type_links == sum(per_artifact)
    assert all(20 <= n <= 26 for n in per_artifact)


def test_release_count_is_checked() -> None:
    with pytest.raises(ValueError, match="n_releases must be 1..10"):
        synthetic_releases.make_plan(n_releases=11)
