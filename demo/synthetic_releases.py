"""The synthetic registry grown over many Census releases: the workload of the growth benchmark.

:mod:`demo.synthetic` writes one release of 1,000 artifacts. This module writes ``n_releases``
releases of LTS shape (default ten of 1,845 datasets: 18,450 artifacts) over the same vocabulary
(600 cell types, 300 tissues, 200 diseases, 30 assays, two organisms, two suspension types).
Each release keeps 95% of the datasets of the one before it, each as a **new version** of its
artifact (``revises``, same uid stem, ``is_latest`` on the newest), and adds new datasets for the
rest. Every dataset has ~30 counted label links (cell types: 20-26, each of the four named ones
with p=0.3; two tissues, kidney with p=0.15; one or two diseases; one assay, organism and
suspension type), so ten releases hold ~550,000 links, as ten real LTS releases would. Each
release is a version of the ``cellxgene-census`` collection holding its artifacts; the first
dataset is the guide's "Mature kidney dataset: immune", in every release, and the seed's study
collection holds its versions.

The labels of each dataset follow the frequencies of :mod:`demo.synthetic`, so the queries of
``bench/registry_bench.py`` select the same share of artifacts at any size.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from demo import synthetic
from registry.databases import analyze
from registry.models.base import random_uid
from registry.query.links import insert_links

#: the releases of the growth workload, oldest first (ten tags, the last one the newest)
RELEASE_TAGS = tuple(f"{2016 + i}-01-30" for i in range(10))
#: datasets per release (the LTS release of 2025)
DATASETS_PER_RELEASE = 1845
#: share of the datasets of a release that the next one keeps (as new versions)
KEPT = 0.95


@dataclass
class Dataset(synthetic.ArtifactPlan):
    """One dataset across releases: its labels (positions in the term lists) and its uid stem,
    shared by its artifact in every release."""

    stem: str = ""


@dataclass
class ReleasesPlan:
    """The vocabulary (as :func:`demo.synthetic.make_plan` makes it) and each release's datasets."""

    terms: synthetic.Plan
    datasets: list[Dataset] = field(default_factory=list)
    releases: list[tuple[str, list[int]]] = field(default_factory=list)  # (tag, dataset indexes)

    @property
    def n_artifacts(self) -> int:
        return sum(len(members) for _, members in self.releases)


def _dataset(rng: random.Random, index: int, terms: synthetic.Plan) -> Dataset:
    named = range(len(synthetic.NAMED_CELL_TYPES))
    others = range(len(synthetic.NAMED_CELL_TYPES), len(terms.cell_types))
    cells = [c for c in named if rng.random() < 0.3]
    cells += rng.sample(others, rng.randint(20, 26) - len(cells))
    tissues = rng.sample(range(1, len(terms.tissues)), 2)
    if rng.random() < 0.15:
        tissues[0] = 0  # kidney
    immune = rng.random() < 0.10
    description = f"{'immune ' if immune else ''}dataset {index:05d} of synthetic study"
    if index == 0:
        description, tissues[0] = synthetic.KIDNEY_DATASET, 0
    return Dataset(
        stem=random_uid(16),
        key="",
        description=description,
        size=int(10 ** rng.uniform(4, 10)),
        n_observations=rng.randint(100, 200_000),
        user=rng.randrange(len(synthetic.USERS)),
        cell_types=cells,
        tissues=tissues,
        diseases=rng.sample(range(len(terms.diseases)), rng.randint(1, 2)),
        assay=synthetic.draw_assay(rng, len(terms.assays)),
        organism=0 if rng.random() < 0.8 else 1,
        suspension_type=0 if rng.random() < 0.7 else 1,
    )


def make_plan(
    n_releases: int = len(RELEASE_TAGS), per_release: int = DATASETS_PER_RELEASE, seed: int = 0
) -> ReleasesPlan:
    """The seeded growth workload: ``n_releases`` releases of ``per_release`` datasets."""
    if not 1 <= n_releases <= len(RELEASE_TAGS):
        raise ValueError(f"n_releases must be 1..{len(RELEASE_TAGS)} (got {n_releases})")
    rng = random.Random(seed)
    plan = ReleasesPlan(terms=synthetic.make_plan(0, seed))
    members: list[int] = []
    for tag in RELEASE_TAGS[-n_releases:]:
        kept = [0] + [d for d in members[1:] if rng.random() < KEPT] if members else []
        while len(kept) < per_release:
            kept.append(len(plan.datasets))
            plan.datasets.append(_dataset(rng, len(plan.datasets), plan.terms))
        members = kept
        plan.releases.append((tag, list(members)))
    return plan


def _links(dataset: Dataset, vocab: synthetic.Vocabulary) -> dict[str, tuple[str, list]]:
    """relation -> (feature, label records) of one dataset."""
    return {
        relation: (feature, records)
        for relation, feature, records in synthetic.label_sets(dataset, vocab)
    }


def write(
    plan: ReleasesPlan,
    using: str = "default",
    progress: Callable[[str], None] | None = None,
) -> synthetic.Vocabulary:
    """Write the vocabulary, every release's artifacts (versions of the datasets they keep),
    their counted links and the ``cellxgene-census`` collection versions, in bulk."""
    artifact_model = apps.get_model("registry", "Artifact")
    collection_model = apps.get_model("registry", "Collection")
    member_model = apps.get_model("registry", "CollectionArtifact")
    vocab = synthetic.write_vocabulary(plan.terms, using)
    latest_of: dict[int, object] = {}  # dataset -> its artifact in the release before
    census = None
    now = timezone.now()
    kidney_versions = []
    for r, (tag, members) in enumerate(plan.releases):
        with transaction.atomic(using=using):
            artifacts = []
            for position, d in enumerate(members):
                dataset = plan.datasets[d]
                artifacts.append(
                    synthetic.new_artifact(
                        dataset,
                        vocab,
                        position,
                        uid=dataset.stem + random_uid(4),
                        key=f"cell-census/{tag}/h5ads/{dataset.stem}.h5ad",
                        hash=f"{r:04x}{d:028x}",
                        version=tag,
                        is_latest=True,
                        revises=latest_of.get(d),
                        created_at=now - timedelta(days=len(plan.releases) - r, minutes=position),
                    )
                )
            artifacts = artifact_model.objects.using(using).bulk_create(artifacts, batch_size=2000)
            superseded = [latest_of[d].pk for d in members if d in latest_of]
            for start in range(0, len(superseded), 5000):
                artifact_model.objects.using(using).filter(
                    pk__in=superseded[start : start + 5000]
                ).update(is_latest=False)
            rows: dict[str, list[tuple]] = {}
            for artifact, d in zip(artifacts, members, strict=True):
                latest_of[d] = artifact
                for relation, (feature, records) in _links(plan.datasets[d], vocab).items():
                    feature_id = vocab.features[feature].pk
                    cells = artifact.n_observations // len(records)
                    rows.setdefault(relation, []).extend(
                        (artifact.pk, record.pk, feature_id, cells, cells // 2)
                        for record in records
                    )
            for relation, link_rows in rows.items():
                insert_links(artifact_model.link_table(relation), link_rows, using)
            census = collection_model.objects.db_manager(using).create(
                key=synthetic.CENSUS_KEY,
                version=tag,
                description="Census LTS",
                revises=census,
            )
            member_model.objects.using(using).bulk_create(
                [
                    member_model(collection=census, artifact=a, order=i)
                    for i, a in enumerate(artifacts)
                ],
                batch_size=5000,
            )
            kidney_versions.append(artifacts[0])
        if progress:
            progress(f"release {tag}: {len(artifacts)} artifacts")
    _write_study(kidney_versions, using)
    analyze(using)
    return vocab


def _write_study(kidney_versions: list, using: str) -> None:
    """The seed's study collection, whose versions hold the kidney dataset's versions."""
    collection_model = apps.get_model("registry", "Collection")
    member_model = apps.get_model("registry", "CollectionArtifact")
    fields = {
        "key": synthetic.STUDY_KEY,
        "reference": synthetic.STUDY_REFERENCE,
        "reference_type": "cellxgene_collection_id",
        "doi": synthetic.STUDY_DOI,
    }
    manager = collection_model.objects.db_manager(using)
    first = manager.create(uid=synthetic.STUDY_UID[:16] + "0000", version="1", **fields)
    latest = manager.create(version="2", revises=first, **fields)
    latest.uid = synthetic.STUDY_UID
    latest.save(using=using, update_fields=["uid"])
    member_model.objects.using(using).bulk_create(
        [
            member_model(collection=first, artifact=kidney_versions[0], order=0),
            member_model(collection=latest, artifact=kidney_versions[-1], order=0),
        ]
    )
