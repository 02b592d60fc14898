"""``curate_release``: mirror one Census release into the registry, resumably.

Steps, each recorded on the curation Run (``run.report["steps"]``) when done:

1. ``manifest`` — ``census_info/datasets`` of the release's SOMA store and one listing of
   ``h5ads/`` (unnamed files reported, missing files are problems of their dataset);
2. ``annotate`` — cell counts per dataset, feature and term from one chunked scan of the SOMA obs
   per organism (:mod:`curation.annotate`, on the local process pool or Ray); a dataset missing
   from the store is counted from its own h5ad's obs;
3. ``register`` — one Artifact per dataset with its links, one transaction per dataset
   (:mod:`curation.register`);
4. ``collections`` and ``soma`` — versioned collections and the SOMA store artifact
   (:mod:`curation.collections`);
5. ``verify`` — every artifact's counts equal the manifest, every dataset linked for the
   ontology features.

An interrupted run is resumed by the next run of the same release (datasets already registered
are skipped); a run of a release that was curated completely writes nothing.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from curation.annotate import DatasetCounts, count_obs, scan_store
from curation.collections import curate_collections, register_soma
from curation.executors import make_executor
from curation.features import FEATURES, NO_TERM, OBS_FEATURES, PRIMARY_COLUMN
from curation.manifest import DatasetRow, Manifest, ReleaseRoot, read_manifest
from curation.register import Problem, register_dataset, resolve_terms
from registry import storage_roots
from registry.accessors.backends import backend_for
from registry.models import Artifact, Run, Storage, Transform

TRANSFORM_KEY = "curate_release"
TRANSFORM_VERSION = "1"

ProgressFn = Callable[[str, int, int], None]


@dataclass
class CurationSummary:
    """What a curation run did."""

    release: str
    run_uid: str
    already_curated: bool = False
    dry_run: bool = False
    added: int = 0
    unchanged: int = 0
    links: Counter = field(default_factory=Counter)
    collections: dict[str, int] = field(default_factory=dict)
    soma_added: bool = False
    problems: list[dict] = field(default_factory=list)
    unlisted_files: list[str] = field(default_factory=list)


def release_storage(root: ReleaseRoot, using: str) -> Storage:
    """The Storage record of the release's bucket root (created on first use; the S3 endpoint
    is taken from ``AWS_ENDPOINT_URL`` then)."""
    defaults = {}
    if storage_roots.is_s3(root.storage_root):
        defaults["endpoint_url"] = os.environ.get("AWS_ENDPOINT_URL", "")
        defaults["region"] = os.environ.get("AWS_DEFAULT_REGION", "")
    storage, _ = Storage.objects.db_manager(using).get_or_create(
        root=root.storage_root.rstrip("/"), defaults=defaults
    )
    return storage


def _release_id(root: ReleaseRoot) -> str:
    return f"{root.storage_root.rstrip('/')}/{root.prefix}"


def _open_run(root: ReleaseRoot, params: dict, using: str) -> tuple[Run, bool]:
    """The run to continue (an interrupted one) or a new one; True if the release is done."""
    transform, _ = Transform.objects.db_manager(using).get_or_create(
        key=TRANSFORM_KEY,
        version=TRANSFORM_VERSION,
        defaults={"description": "Mirror a CELLxGENE Census release into the registry"},
    )
    runs = Run.objects.db_manager(using).filter(
        transform=transform, params__release=_release_id(root)
    )
    done = runs.filter(status=Run.Status.COMPLETED, report__partial=False).first()
    if done is not None:
        return done, True
    run = runs.filter(status=Run.Status.STARTED).order_by("-started_at").first()
    if run is None:
        run = Run(transform=transform, params=params, report={"steps": {}, "problems": []})
        run.save(using=using)
    return run, False


def _mark(run: Run, step: str, using: str, **facts: object) -> None:
    run.report.setdefault("steps", {})[step] = {"done": True, **facts}
    run.save(using=using, update_fields=["report"])


def curate_release(
    source: str,
    *,
    using: str = "default",
    workers: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
) -> CurationSummary:
    """Curate the release at ``source`` (``ROOT/cell-census/<tag>/``) into instance ``using``.

    Raises:
        ManifestError: ``source`` is not a readable release root.
        ExecutorError: an unknown executor, or Ray missing.
    """
    report = progress or (lambda step, done, total: None)
    root = ReleaseRoot.parse(source)
    with transaction.atomic(using=using) if dry_run else _nothing():
        summary = _curate(root, using, workers, executor, ray_address, limit, report)
        summary.dry_run = dry_run
        if dry_run:
            transaction.set_rollback(True, using=using)
    return summary


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _curate(
    root: ReleaseRoot,
    using: str,
    workers: int | None,
    executor: str,
    ray_address: str | None,
    limit: int | None,
    report: ProgressFn,
) -> CurationSummary:
    storage = release_storage(root, using)
    params = {"release": _release_id(root), "limit": limit, "executor": executor}
    run, finished = _open_run(root, params, using)
    summary = CurationSummary(release=_release_id(root), run_uid=run.uid)
    if finished:
        summary.already_curated = True
        summary.problems = run.report.get("problems", [])
        summary.unlisted_files = run.report.get("unlisted_files", [])
        return summary
    report("manifest", 0, 1)
    manifest = read_manifest(root, storage)
    rows = manifest.datasets[:limit] if limit else manifest.datasets
    problems = [
        Problem(d, "h5ad file missing: the manifest names it, h5ads/ has no such object")
        for d in manifest.missing
    ]
    summary.unlisted_files = manifest.unlisted
    _mark(run, "manifest", using, datasets=len(manifest.datasets), unlisted=manifest.unlisted)
    report("manifest", 1, 1)

    counts = _annotate(manifest, storage, rows, workers, executor, ray_address, problems, report)
    _mark(run, "annotate", using, datasets=len(counts))

    artifacts = _register(manifest, rows, counts, storage, run, using, summary, problems, report)
    _mark(run, "register", using, added=summary.added, unchanged=summary.unchanged)

    summary.collections = curate_collections(manifest, artifacts, run.pk, using)
    _mark(run, "collections", using, **summary.collections)
    summary.soma_added = register_soma(manifest, storage, run.pk, using)
    _mark(run, "soma", using, added=summary.soma_added)

    problems.extend(_verify(manifest, artifacts, counts, using))
    summary.problems = [p.as_dict() for p in problems]
    run.report.update(
        problems=summary.problems,
        unlisted_files=manifest.unlisted,
        partial=bool(limit and limit < len(manifest.datasets)),
        links=dict(summary.links),
    )
    _mark(run, "verify", using, problems=len(problems))
    run.status = Run.Status.COMPLETED
    run.finished_at = timezone.now()
    run.save(using=using, update_fields=["status", "finished_at", "report"])
    return summary


def _annotate(
    manifest: Manifest,
    storage: Storage,
    rows: list[DatasetRow],
    workers: int | None,
    executor: str,
    ray_address: str | None,
    problems: list[Problem],
    report: ProgressFn,
) -> dict[str, DatasetCounts]:
    """Counts of every dataset: the store scan, plus per-file obs reads where it lacks one."""
    backend = backend_for(storage)
    uri = backend.uri(manifest.root.soma_key)
    report("annotate", 0, 1)
    with make_executor(executor, workers=workers, ray_address=ray_address) as pool:
        counts = scan_store(uri, backend.tiledb_config(), pool)
    report("annotate", 1, 1)
    missing = {row.dataset_id for row in manifest.datasets if row.dataset_id in manifest.missing}
    for row in rows:
        if row.dataset_id in counts or row.dataset_id in missing:
            continue
        per_file = _count_file(manifest, row, storage, problems)
        if per_file is not None:
            counts[row.dataset_id] = per_file
    return counts


def _count_file(
    manifest: Manifest, row: DatasetRow, storage: Storage, problems: list[Problem]
) -> DatasetCounts | None:
    """Counts of a dataset the store lacks, from its h5ad's obs (streamed, not downloaded)."""
    probe = Artifact(
        key=manifest.root.h5ad_key(row.h5ad_path), storage=storage, suffix=".h5ad", otype="AnnData"
    )
    try:
        with probe.open() as adata:
            obs = adata.obs
            organism = str(adata.uns.get("organism_ontology_term_id", ""))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not fatal
        problems.append(Problem(row.dataset_id, f"h5ad unreadable: {exc}"))
        return None
    needed = [f.obs_column for f in OBS_FEATURES if f.in_h5ad]
    absent = [c for c in [*needed, PRIMARY_COLUMN] if c not in obs.columns]
    if PRIMARY_COLUMN in absent:
        problems.append(Problem(row.dataset_id, "obs column missing", PRIMARY_COLUMN))
        return None
    for column in absent:  # counted as "unknown": nothing is linked for that feature
        problems.append(Problem(row.dataset_id, "obs column missing", column))
        obs[column] = "unknown"
    return count_obs(obs, organism)


def _register(
    manifest: Manifest,
    rows: list[DatasetRow],
    counts: dict[str, DatasetCounts],
    storage: Storage,
    run: Run,
    using: str,
    summary: CurationSummary,
    problems: list[Problem],
    report: ProgressFn,
) -> dict[str, Artifact]:
    """Register every dataset with a file and counts; this release's artifacts by dataset id."""
    todo = [r for r in rows if r.dataset_id in counts and r.h5ad_path in manifest.files]
    vocab = resolve_terms((counts[r.dataset_id] for r in todo), using)
    artifacts: dict[str, Artifact] = {}
    report("register", 0, len(todo))
    for done, row in enumerate(todo, start=1):
        artifact, found = register_dataset(
            manifest, row, counts[row.dataset_id], vocab, storage, run.pk, using
        )
        if artifact is None:
            summary.unchanged += 1
        else:
            summary.added += 1
            for spec in FEATURES:
                summary.links[spec.name] += len(counts[row.dataset_id].get(spec.name, {}))
        problems.extend(found)
        report("register", done, len(todo))
    keys = [manifest.root.h5ad_key(r.h5ad_path) for r in todo]
    for artifact in Artifact.objects.db_manager(using).filter(
        storage=storage, key__in=keys, version=manifest.root.tag
    ):
        artifacts[artifact.reference] = artifact
    return artifacts


def _verify(
    manifest: Manifest,
    artifacts: dict[str, Artifact],
    counts: dict[str, DatasetCounts],
    using: str,
) -> list[Problem]:
    """Counts equal the manifest; every artifact linked for the required ontology features
    (unless all its cells say ``unknown``/``na`` there)."""
    problems = []
    expected = {row.dataset_id: row.n_cells for row in manifest.datasets}
    by_id = {a.pk: a for a in artifacts.values()}
    for spec in FEATURES:
        if not spec.required:
            continue
        name, through = spec.name, Artifact.link_table(spec.relation)
        sums = dict(
            through.objects.db_manager(using)
            .filter(artifact_id__in=by_id, feature__name=name)
            .values_list("artifact_id")
            .annotate(total=Sum("n_cells"))
        )
        for pk, artifact in by_id.items():
            total = sums.get(pk)
            values = set(counts.get(artifact.reference, {}).get(name, {})) - NO_TERM
            if total is None and values:
                problems.append(Problem(artifact.reference, "not linked", name, tuple(values)))
            elif name == "cell_type" and (total or 0) != expected[artifact.reference]:
                problems.append(
                    Problem(
                        artifact.reference,
                        f"cell counts {total} differ from the manifest's "
                        f"{expected[artifact.reference]}",
                        name,
                    )
                )
    return problems
