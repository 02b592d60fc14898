"""A seeded synthetic registry: the workload the registry is benchmarked and demonstrated on.

600 cell types, 300 tissues, 200 diseases, 30 assays, human and mouse, a ``SuspensionType``
ULabel type, and 1,000 ``.h5ad`` artifacts linked to them with the frequencies of issue 2
(each artifact: 6-10 cell types, each named one with p=0.3; 2 tissues, kidney with p=0.15;
1-2 diseases; 1 assay (10x 3' v2 25%, v3 35%); 1 organism; 1 suspension type; 10% "immune"
descriptions; sizes log-uniform 10 kB-10 GB). Named terms carry their real ontology ids; the
filler terms are synthetic. The plan is computed first (:func:`make_plan`), then written either
record by record (:func:`write_per_record`, the idiomatic way) or in bulk (:func:`write_bulk`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from curation import features as curated
from registry.databases import analyze
from registry.query.links import insert_links

NAMED_CELL_TYPES = {
    "B cell": "CL:0000236",
    "T cell": "CL:0000084",
    "dendritic cell": "CL:0000451",
    "neutrophil": "CL:0000775",
}
EXTRA_CELL_TYPES = {"microglial cell": "CL:0000129", "neuron": "CL:0000540"}
NAMED_TISSUES = {"kidney": "UBERON:0002113", "lung": "UBERON:0002048", "blood": "UBERON:0000178"}
EXTRA_TISSUES = {"brain": "UBERON:0000955"}
NAMED_DISEASES = {"normal": "PATO:0000461", "COVID-19": "MONDO:0100096"}
NAMED_ASSAYS = {"10x 3' v2": "EFO:0009899", "10x 3' v3": "EFO:0009922"}
ORGANISMS = {
    "human": ("NCBITaxon:9606", "homo_sapiens"),
    "mouse": ("NCBITaxon:10090", "mus_musculus"),
}
SUSPENSION_TYPES = ("cell", "nucleus")
USERS = ("sunnyosun", "falexwolf", "Koncopd", "curator")
#: the curated features the synthetic artifacts are labelled with
FEATURES = ("cell_type", "tissue", "disease", "assay", "organism", "suspension_type")
CENSUS_KEY = "cellxgene-census"
#: the study collection of seed 001 (Cell Genomics 2023), mirrored with its uid and two versions
STUDY_UID = "quQDnLsMLkP3JRsC8gp5"
STUDY_KEY = "Single-cell atlas of the human kidney (Cell Genomics 2023)"
STUDY_REFERENCE = "af893e86-8e9f-41f1-a474-ef05359b1fb7"
STUDY_DOI = "10.1016/j.xgen.2023.100298"
CENSUS_VERSIONS = ("2024-07-01", "2025-01-30")
KIDNEY_DATASET = "Mature kidney dataset: immune"


@dataclass
class ArtifactPlan:
    """One artifact to register and the positions of its labels in the term lists."""

    key: str
    description: str
    size: int
    n_observations: int
    user: int
    cell_types: list[int]
    tissues: list[int]
    diseases: list[int]
    assay: int
    organism: int
    suspension_type: int


@dataclass
class Plan:
    """Everything the synthetic registry contains, before it is written."""

    cell_types: list[tuple[str, str]]
    tissues: list[tuple[str, str]]
    diseases: list[tuple[str, str]]
    assays: list[tuple[str, str]]
    artifacts: list[ArtifactPlan] = field(default_factory=list)


def _terms(named: dict[str, str], total: int, prefix: str, noun: str) -> list[tuple[str, str]]:
    terms = list(named.items())
    i = 0
    while len(terms) < total:
        i += 1
        terms.append((f"{noun} {i:04d}", f"{prefix}:9{i:06d}"))
    return terms


def draw_assay(rng: random.Random, n_assays: int) -> int:
    """10x 3' v2 (25%) and v3 (35%) dominate, as in CELLxGENE; the rest share 40%."""
    draw = rng.random()
    if draw < 0.25:
        return 0
    if draw < 0.60:
        return 1
    return rng.randrange(2, n_assays)


def make_plan(n_artifacts: int = 1000, seed: int = 0) -> Plan:
    """The seeded workload: terms and artifacts with their label positions."""
    rng = random.Random(seed)
    plan = Plan(
        cell_types=_terms({**NAMED_CELL_TYPES, **EXTRA_CELL_TYPES}, 600, "CL", "cell type"),
        tissues=_terms({**NAMED_TISSUES, **EXTRA_TISSUES}, 300, "UBERON", "tissue"),
        diseases=_terms(NAMED_DISEASES, 200, "MONDO", "disease"),
        assays=_terms(NAMED_ASSAYS, 30, "EFO", "assay"),
    )
    named_cells = range(len(NAMED_CELL_TYPES))
    other_cells = range(len(NAMED_CELL_TYPES), len(plan.cell_types))
    kidney = 0
    other_tissues = range(1, len(plan.tissues))
    for i in range(n_artifacts):
        cells = [c for c in named_cells if rng.random() < 0.3]
        wanted = rng.randint(6, 10)
        cells += rng.sample(other_cells, max(0, wanted - len(cells)))
        tissues = rng.sample(other_tissues, 2)
        if rng.random() < 0.15:
            tissues[0] = kidney
        immune = rng.random() < 0.10
        description = f"{'immune ' if immune else ''}dataset {i:04d} of synthetic study"
        if i == 0:
            description, tissues[0] = KIDNEY_DATASET, kidney
        plan.artifacts.append(
            ArtifactPlan(
                key=f"cell-census/{CENSUS_VERSIONS[-1]}/h5ads/{rng.getrandbits(64):016x}.h5ad",
                description=description,
                size=int(10 ** rng.uniform(4, 10)),
                n_observations=rng.randint(100, 200_000),
                user=rng.randrange(len(USERS)),
                cell_types=cells,
                tissues=tissues,
                diseases=rng.sample(range(len(plan.diseases)), rng.randint(1, 2)),
                assay=draw_assay(rng, len(plan.assays)),
                organism=0 if rng.random() < 0.8 else 1,
                suspension_type=0 if rng.random() < 0.7 else 1,
            )
        )
    return plan


@dataclass
class Vocabulary:
    """The written terms, users, features and storage an artifact plan refers to."""

    cell_types: list
    tissues: list
    diseases: list
    assays: list
    organisms: list
    suspension_types: list
    users: list
    features: dict
    storage: object


def _model(name: str) -> type:
    app = (
        "registry"
        if name in {"User", "Storage", "Feature", "ULabel", "Artifact", "Collection"}
        else "ontologies"
    )
    return apps.get_model(app, name)


def _bulk_terms(registry: str, terms: list[tuple[str, str]], using: str) -> list:
    model = _model(registry)
    model.objects.using(using).bulk_create([model(name=n, ontology_id=o) for n, o in terms])
    by_id = {
        r.ontology_id: r
        for r in model.objects.using(using).filter(ontology_id__in=[o for _, o in terms])
    }
    return [by_id[o] for _, o in terms]


def write_vocabulary(
    plan: Plan, using: str = "default", storage_root: str = "s3://cellxgene-data-public"
) -> Vocabulary:
    """Write the terms, users, features, suspension types and the storage (bulk)."""
    user_model, feature_model, ulabel_model = _model("User"), _model("Feature"), _model("ULabel")
    organism_model = _model("Organism")
    with transaction.atomic(using=using):
        users = [user_model.objects.db_manager(using).get_or_create(handle=h)[0] for h in USERS]
        organisms = []
        for name, (ontology_id, scientific) in ORGANISMS.items():
            organisms.append(
                organism_model.objects.db_manager(using).create(
                    name=name, ontology_id=ontology_id, scientific_name=scientific
                )
            )
        suspension_type = ulabel_model.objects.db_manager(using).create(
            name="SuspensionType", is_type=True
        )
        suspension_types = [
            ulabel_model.objects.db_manager(using).create(name=n, type=suspension_type)
            for n in SUSPENSION_TYPES
        ]
        features = {
            name: feature_model.objects.db_manager(using).create(
                name=name, dtype=curated.BY_NAME[name].dtype
            )
            for name in FEATURES
        }
        storage = (
            _model("Storage").objects.db_manager(using).create(root=storage_root, anonymous=True)
        )
        return Vocabulary(
            cell_types=_bulk_terms("CellType", plan.cell_types, using),
            tissues=_bulk_terms("Tissue", plan.tissues, using),
            diseases=_bulk_terms("Disease", plan.diseases, using),
            assays=_bulk_terms("Assay", plan.assays, using),
            organisms=organisms,
            suspension_types=suspension_types,
            users=users,
            features=features,
            storage=storage,
        )


def label_sets(spec: ArtifactPlan, vocab: Vocabulary) -> list[tuple[str, str, list]]:
    """(relation, feature, records) for every label relation of an artifact."""
    records = {
        "cell_type": [vocab.cell_types[i] for i in spec.cell_types],
        "tissue": [vocab.tissues[i] for i in spec.tissues],
        "disease": [vocab.diseases[i] for i in spec.diseases],
        "assay": [vocab.assays[spec.assay]],
        "organism": [vocab.organisms[spec.organism]],
        "suspension_type": [vocab.suspension_types[spec.suspension_type]],
    }
    return [(curated.BY_NAME[name].relation, name, records[name]) for name in FEATURES]


def new_artifact(spec: ArtifactPlan, vocab: Vocabulary, index: int, **fields: Any):  # noqa: ANN201
    """The unsaved ``Artifact`` of ``spec``, the ``index``-th of its release (its hash and
    creation time); ``fields`` replace or add Artifact fields (e.g. ``key``, ``version``,
    ``revises``)."""
    return _model("Artifact")(
        **{
            "key": spec.key,
            "storage": vocab.storage,
            "suffix": ".h5ad",
            "otype": "AnnData",
            "description": spec.description,
            "size": spec.size,
            "hash": f"{index:032x}",
            "hash_type": "md5",
            "n_observations": spec.n_observations,
            "version": CENSUS_VERSIONS[-1],
            "created_by": vocab.users[spec.user],
            "created_at": timezone.now() - timedelta(minutes=index),
            **fields,
        }
    )


def write_per_record(
    plan: Plan,
    vocab: Vocabulary,
    using: str = "default",
    progress: Callable[[], None] | None = None,
    via: str = "features",
) -> list:
    """Register and link each artifact the idiomatic way, one at a time.

    ``via="features"``: ``artifact.save()`` then ``artifact.features.add_values({...})`` (one
    transaction for all labels). ``via="m2m"``: ``artifact.save()`` then Django's
    ``artifact.cell_types.add(..., through_defaults=...)`` per relation.
    """
    artifacts = []
    for index, spec in enumerate(plan.artifacts):
        artifact = new_artifact(spec, vocab, index)
        artifact.save(using=using)
        labels = label_sets(spec, vocab)
        if via == "features":
            artifact.features.add_values({feature: records for _, feature, records in labels})
        else:
            for relation, feature, records in labels:
                getattr(artifact, relation).add(
                    *records, through_defaults={"feature": vocab.features[feature]}
                )
        artifacts.append(artifact)
        if progress:
            progress()
    return artifacts


def _link_rows(artifacts: list, plan: Plan, vocab: Vocabulary) -> dict[str, list[tuple]]:
    rows: dict[str, list[tuple]] = {}
    for artifact, spec in zip(artifacts, plan.artifacts, strict=True):
        for relation, feature, records in label_sets(spec, vocab):
            feature_id = vocab.features[feature].pk
            rows.setdefault(relation, []).extend(
                (artifact.pk, record.pk, feature_id, None, None) for record in records
            )
    return rows


def write_bulk(plan: Plan, vocab: Vocabulary, using: str = "default") -> list:
    """Register all artifacts with one ``bulk_create`` and link them with multi-row INSERTs, in one
    transaction."""
    artifact_model = _model("Artifact")
    with transaction.atomic(using=using):
        artifacts = artifact_model.objects.using(using).bulk_create(
            [new_artifact(spec, vocab, i) for i, spec in enumerate(plan.artifacts)]
        )
        for relation, rows in _link_rows(artifacts, plan, vocab).items():
            insert_links(artifact_model.link_table(relation), rows, using)
    analyze(using)
    return artifacts


def write_collections(artifacts: list, using: str = "default") -> list:
    """The ``cellxgene-census`` collection in two versions, the seed's study collection in two
    versions (the latest with uid ``STUDY_UID``), ten small study collections, and the release's
    SOMA store artifact."""
    collection_model = _model("Collection")
    link_model = apps.get_model("registry", "CollectionArtifact")
    manager = collection_model.objects.db_manager(using)
    with transaction.atomic(using=using):
        old = manager.create(key=CENSUS_KEY, version=CENSUS_VERSIONS[0], description="Census LTS")
        new = manager.create(
            key=CENSUS_KEY, version=CENSUS_VERSIONS[1], description="Census LTS", revises=old
        )
        rows = [link_model(collection=new, artifact=a, order=i) for i, a in enumerate(artifacts)]
        half = artifacts[: len(artifacts) // 2]
        rows += [link_model(collection=old, artifact=a, order=i) for i, a in enumerate(half)]
        study_fields = {
            "key": STUDY_KEY,
            "reference": STUDY_REFERENCE,
            "reference_type": "cellxgene_collection_id",
            "doi": STUDY_DOI,
        }
        first = manager.create(uid=STUDY_UID[:16] + "0000", version="1", **study_fields)
        latest = manager.create(version="2", revises=first, **study_fields)
        latest.uid = STUDY_UID
        latest.save(using=using, update_fields=["uid"])
        rows += [link_model(collection=first, artifact=artifacts[0], order=0)]
        members = artifacts[:3]
        rows += [link_model(collection=latest, artifact=a, order=i) for i, a in enumerate(members)]
        studies = []
        for s in range(min(10, len(artifacts))):
            study = manager.create(
                key=f"Synthetic study {s:02d}",
                reference=f"synthetic-{s:02d}",
                reference_type="cellxgene_collection_id",
            )
            members = artifacts[s::10]
            rows += [
                link_model(collection=study, artifact=a, order=i) for i, a in enumerate(members)
            ]
            studies.append(study)
        link_model.objects.using(using).bulk_create(rows, batch_size=5000)
        first_artifact = artifacts[0]
        _model("Artifact").objects.db_manager(using).create(
            key=f"cell-census/{CENSUS_VERSIONS[-1]}/soma",
            storage_id=first_artifact.storage_id,
            otype="tiledbsoma",
            description=f"CELLxGENE Census {CENSUS_VERSIONS[-1]} (TileDB-SOMA)",
            n_observations=sum(a.n_observations or 0 for a in artifacts),
            version=CENSUS_VERSIONS[-1],
        )
    return [old, new, first, latest, *studies]


def build(
    n_artifacts: int = 1000, seed: int = 0, using: str = "default", bulk: bool = True
) -> Plan:
    """Write the whole synthetic registry into the instance behind ``using``."""
    plan = make_plan(n_artifacts, seed)
    vocab = write_vocabulary(plan, using)
    artifacts = write_bulk(plan, vocab, using) if bulk else write_per_record(plan, vocab, using)
    write_collections(artifacts, using)
    return plan
