"""``curate_release``: mirror one Census release into the registry, resumably.

Before anything is written, the arguments are checked, the release's manifest is read
(``census_info/datasets`` of its SOMA store and one listing of ``h5ads/``; a source that is not a
readable release root is an error) and the instance must hold the ontologies the links need.
Then the curation Run is opened — a new one, the interrupted run of the same release to resume,
or none at all when a completed run recorded the same manifest (its digest): the release is
curated already. A completed run whose manifest differs (a dataset added, revised or removed
since) does not count: the release is curated again, for the difference.

The run is the list :data:`STEPS`; each step records itself done on the Run (its facts and its
duration in ``run.report["steps"]``, what later steps need in ``run.outputs``), and a resumed run
skips the steps recorded done, reading their outputs back:

1. ``check_files`` — every dataset's h5ad header: HDF5, with as many cells as the manifest says
   (range requests; no file body is read). A dataset that fails is a problem, not registered.
2. ``annotate`` — cell counts per dataset, feature and term from one chunked scan of the SOMA obs
   (:mod:`curation.annotate`, on the local process pool or Ray); a dataset missing from the store
   is counted from its own h5ad's obs.
3. ``register`` — one Artifact per dataset with its links, one transaction per dataset; datasets
   the release no longer holds are removed (:mod:`curation.register`).
4. ``collections`` and ``soma`` — versioned collections and the SOMA store artifact
   (:mod:`curation.collections`).
5. ``cells`` — the release's cell-level summary (``ln.Cells``): cells per dataset and combination
   of obs labels, counted by the annotate step's scan (:mod:`curation.cells`) and kept in its
   output (compact: every string once), so a resumed run reads them back.
6. ``verify`` — every artifact's counts equal the manifest, every dataset linked for the required
   ontology features.

A run that fails or is interrupted is marked ``failed`` with the error; the next run of the same
release resumes it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from curation.annotate import Combinations, DatasetCounts, TermCount, count_obs, scan_store
from curation.cells import write_summary
from curation.collections import curate_collections, register_soma
from curation.executors import check_executor, make_executor
from curation.features import FEATURES, NO_TERM, OBS_FEATURES, PRIMARY_COLUMN
from curation.manifest import DatasetRow, Manifest, ReleaseRoot, read_manifest
from curation.register import (
    ADDED,
    REVISED,
    UNCHANGED,
    Problem,
    label_registry,
    register_dataset,
    release_artifacts,
    remove_dataset,
    resolve_terms,
)
from registry import storage_roots
from registry.accessors.backends import backend_for
from registry.accessors.h5ad_header import probe_h5ad
from registry.databases import instance_name
from registry.errors import RegistryError, StorageError
from registry.models import Artifact, Run, Storage, Transform
from registry.progress import StepProgress

TRANSFORM_KEY = "curate_release"
TRANSFORM_VERSION = "1"
#: threads reading h5ad headers at once (each read is a few small range requests)
HEADER_THREADS = 8


class CurationError(RegistryError, ValueError):
    """A curation that cannot start: bad arguments, or an instance without the ontologies."""


@dataclass
class CurationSummary:
    """What a curation run did."""

    release: str
    run_uid: str
    already_curated: bool = False
    dry_run: bool = False
    resumed: bool = False
    skipped_steps: list[str] = field(default_factory=list)
    changed_since: str = ""  # uid of the completed run of an earlier state of the release
    added: int = 0
    unchanged: int = 0
    revised: int = 0
    removed: int = 0
    links: Counter = field(default_factory=Counter)
    collections: dict[str, int] = field(default_factory=dict)
    soma_added: bool = False
    problems: list[dict] = field(default_factory=list)
    unlisted_files: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What the steps of one run share."""

    root: ReleaseRoot
    manifest: Manifest
    rows: list[DatasetRow]  # the datasets to curate (the first ``limit`` of the manifest)
    storage: Storage
    run: Run
    using: str
    workers: int | None
    executor: str
    ray_address: str | None
    progress: StepProgress
    summary: CurationSummary
    outputs: dict[str, dict] = field(default_factory=dict)  # step name -> its output
    #: the cell-level summary the annotate step counted (not kept on the Run)
    combinations: Combinations | None = None

    def problems_of(self, step: str) -> list[Problem]:
        """The problems a step recorded in its output."""
        return [Problem(**p) for p in self.outputs.get(step, {}).get("problems", [])]


@dataclass(frozen=True)
class Step:
    """One step of a run: ``run(context)`` returns its output (JSON), which is recorded on the
    Run; ``facts`` picks what goes into the run's report (the rest only into ``run.outputs``)."""

    name: str
    run: Callable[[Context], dict[str, Any]]
    facts: tuple[str, ...] = ()


# --- checks before anything is written ----------------------------------------------------------


def check_arguments(workers: int | None, limit: int | None, executor: str) -> None:
    """Refuse arguments that cannot work, before anything is read or written.

    Raises:
        CurationError, ExecutorError: naming the argument and what it accepts.
    """
    if workers is not None and workers < 1:
        raise CurationError(f"--workers must be at least 1 (got {workers}).")
    if limit is not None and limit < 1:
        raise CurationError(f"--limit must be at least 1 (got {limit}); omit it for all datasets.")
    check_executor(executor)


def check_ontologies(using: str) -> None:
    """Refuse an instance that lacks the terms of a required ontology feature: its datasets
    would land unlabelled.

    Raises:
        CurationError: naming the empty registries and the command that loads them.
    """
    empty = sorted(
        {
            spec.registry
            for spec in FEATURES
            if spec.is_ontology
            and spec.required
            and not label_registry(spec).objects.db_manager(using).exists()
        }
    )
    if empty:
        name = instance_name(using)
        raise CurationError(
            f"Instance {name!r} has no {', '.join(empty)} terms, so curate_release could not "
            f"link any dataset to them. Load the ontologies first: python manage.py "
            f"load_ontologies --instance {name}"
        )


def source_storage(root: ReleaseRoot) -> Storage:
    """The (unsaved) Storage of the release's bucket root; the S3 endpoint and region come from
    ``AWS_ENDPOINT_URL`` and ``AWS_DEFAULT_REGION``."""
    storage = Storage(root=root.storage_root)
    if storage_roots.is_s3(root.storage_root):
        storage.endpoint_url = os.environ.get("AWS_ENDPOINT_URL", "")
        storage.region = os.environ.get("AWS_DEFAULT_REGION", "")
    return storage


def release_storage(root: ReleaseRoot, using: str) -> Storage:
    """The Storage record of the release's bucket root (created on first use)."""
    unsaved = source_storage(root)
    storage, _ = Storage.objects.db_manager(using).get_or_create(
        root=unsaved.root,
        defaults={"endpoint_url": unsaved.endpoint_url, "region": unsaved.region},
    )
    return storage


# --- the run ---------------------------------------------------------------------------------


def _open_run(
    root: ReleaseRoot, manifest: Manifest, limit: int | None, executor: str, using: str
) -> tuple[Run, str, str]:
    """The run to write to, and what it is: ``"done"`` (a completed run of this very manifest:
    nothing to do), ``"resumed"`` (an unfinished run of the release) or ``"new"``; and the uid of
    a completed run of an earlier state of the release, if any."""
    transform, _ = Transform.objects.db_manager(using).get_or_create(
        key=TRANSFORM_KEY,
        version=TRANSFORM_VERSION,
        defaults={"description": "Mirror a CELLxGENE Census release into the registry"},
    )
    params = {"release": root.source, "limit": limit, "executor": executor}
    params["digest"] = manifest.digest
    runs = Run.objects.db_manager(using).filter(transform=transform, params__release=root.source)
    completed = (
        runs.filter(status=Run.Status.COMPLETED, report__partial=False)
        .order_by("-finished_at", "-id")
        .first()
    )
    if completed is not None and completed.params.get("digest") == manifest.digest:
        return completed, "done", ""
    changed_since = completed.uid if completed is not None else ""
    run = runs.exclude(status=Run.Status.COMPLETED).order_by("-started_at", "-id").first()
    if run is None:
        run = Run(transform=transform, params=params, report={"steps": {}, "problems": []})
        run.save(using=using)
        return run, "new", changed_since
    if run.params.get("digest") != manifest.digest or run.params.get("limit") != limit:
        run.report, run.outputs = {"steps": {}, "problems": []}, {}  # made for other input
    run.params, run.status, run.finished_at = params, Run.Status.STARTED, None
    run.report.pop("error", None)
    run.save(using=using)
    return run, "resumed", changed_since


def _mark(run: Run, step: str, using: str, output: dict | None = None, **facts: Any) -> None:
    """Record ``step`` done on the run: its facts in the report, its output for a resumed run."""
    run.report.setdefault("steps", {})[step] = {"done": True, **facts}
    run.outputs[step] = output or {}
    run.save(using=using, update_fields=["report", "outputs"])


def _fail(run: Run, error: BaseException, using: str) -> None:
    """Mark the run failed with the error (best effort: never hides the error itself)."""
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C, or SIGTERM (see the command)
        message = f"interrupted ({str(error) or 'SIGINT'})"
    else:
        message = f"{type(error).__name__}: {error}"
    run.status = Run.Status.FAILED
    run.finished_at = timezone.now()
    run.report["error"] = message
    # the database may be what failed: the error itself is raised by the caller in any case
    with contextlib.suppress(Exception):
        run.save(using=using, update_fields=["status", "finished_at", "report"])


def curate_release(
    source: str | os.PathLike,
    *,
    using: str = "default",
    workers: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    progress: StepProgress | None = None,
) -> CurationSummary:
    """Curate the release at ``source`` (``ROOT/cell-census/<tag>/``) into instance ``using``.

    Raises:
        ManifestError: ``source`` is not a readable release root (nothing was written).
        CurationError: bad arguments, or an instance without ontologies (nothing was written).
        ExecutorError: an unknown executor, or Ray missing (nothing was written).
    """
    report = progress or (lambda step, done, total: None)
    check_arguments(workers, limit, executor)
    root = ReleaseRoot.parse(source)
    report("manifest", 0, 1)
    manifest = read_manifest(root, source_storage(root))
    report("manifest", 1, 1)
    check_ontologies(using)
    with transaction.atomic(using=using) if dry_run else _nothing():
        summary = _curate(root, manifest, using, workers, executor, ray_address, limit, report)
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
    manifest: Manifest,
    using: str,
    workers: int | None,
    executor: str,
    ray_address: str | None,
    limit: int | None,
    progress: StepProgress,
) -> CurationSummary:
    storage = release_storage(root, using)
    run, state, changed_since = _open_run(root, manifest, limit, executor, using)
    summary = CurationSummary(release=root.source, run_uid=run.uid, changed_since=changed_since)
    summary.unlisted_files = manifest.unlisted
    if state == "done":
        summary.already_curated = True
        summary.problems = run.report.get("problems", [])
        return summary
    summary.resumed = state == "resumed"
    rows = manifest.datasets[:limit] if limit else manifest.datasets
    context = Context(
        root, manifest, rows, storage, run, using, workers, executor, ray_address, progress, summary
    )
    done = run.report.get("steps", {})
    try:
        for step in STEPS:
            if done.get(step.name, {}).get("done"):
                context.outputs[step.name] = run.outputs.get(step.name, {})
                summary.skipped_steps.append(step.name)
                continue
            started = time.perf_counter()
            output = step.run(context)
            seconds = round(time.perf_counter() - started, 3)
            context.outputs[step.name] = output
            facts = {k: output[k] for k in step.facts}
            _mark(run, step.name, using, output, seconds=seconds, **facts)
    except BaseException as error:
        _fail(run, error, using)
        raise
    problems = [p for step in STEPS for p in context.problems_of(step.name)]
    summary.problems = [p.as_dict() for p in problems]
    run.report.update(
        problems=summary.problems,
        unlisted_files=manifest.unlisted,
        partial=bool(limit and limit < len(manifest.datasets)),
        links=dict(summary.links),
    )
    run.status = Run.Status.COMPLETED
    run.finished_at = timezone.now()
    run.save(using=using, update_fields=["status", "finished_at", "report"])
    return summary


# --- the steps -------------------------------------------------------------------------------


def _with_files(context: Context) -> list[DatasetRow]:
    """The datasets to curate whose h5ad the listing has."""
    return [row for row in context.rows if row.h5ad_path in context.manifest.files]


def check_files(context: Context) -> dict[str, Any]:
    """Every dataset's h5ad header: an HDF5 file whose obs has the manifest's cell count.

    Reads only the file's signature and the length of its obs index (range requests), with a
    few files at a time. A file that fails is a problem of its dataset, which is not registered.
    """
    manifest = context.manifest
    problems = [
        Problem(d, "h5ad file missing: the manifest names it, h5ads/ has no such object")
        for d in manifest.missing
    ]
    rows = _with_files(context)
    context.progress("check_files", 0, len(rows))

    def check(row: DatasetRow) -> Problem | None:
        try:
            probe_h5ad(
                context.storage,
                manifest.root.h5ad_key(row.h5ad_path),
                size=manifest.files[row.h5ad_path].size,
                expected_n_obs=row.n_cells,
                expected_from="the manifest (dataset_total_cell_count)",
            )
        except StorageError as exc:
            return Problem(row.dataset_id, f"h5ad not registered: {exc}")
        return None

    bad: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=HEADER_THREADS) as threads:
        for done, problem in enumerate(threads.map(check, rows), start=1):
            if problem is not None:
                problems.append(problem)
                bad[problem.dataset_id] = problem.reason
            context.progress("check_files", done, len(rows))
    return {
        "checked": len(rows),
        "bad": bad,
        "problems": [p.as_dict() for p in problems],
    }


def annotate(context: Context) -> dict[str, Any]:
    """Counts of every dataset: the store scan, plus per-file obs reads where it lacks one; the
    cell-level summary is counted in the same pass (kept on the context for the cells step)."""
    counts, combinations, problems = _count_release(context, "annotate")
    context.combinations = combinations
    wanted = {row.dataset_id for row in context.rows}
    return {
        "combinations": _combinations_json(combinations),
        "datasets": len(counts),
        "counts": {d: _counts_json(c) for d, c in counts.items() if d in wanted},
        "problems": [p.as_dict() for p in problems],
    }


def _count_release(
    context: Context, step: str
) -> tuple[dict[str, DatasetCounts], Combinations, list[Problem]]:
    """The counts and combinations of every dataset (one scan of the store's obs, plus the obs of
    each dataset it lacks), and the datasets that could not be counted."""
    manifest, storage = context.manifest, context.storage
    backend = backend_for(storage)
    uri = backend.uri(manifest.root.soma_key)
    context.progress(step, 0, 1)
    combinations: Combinations = {}
    pool = make_executor(context.executor, workers=context.workers, ray_address=context.ray_address)
    with pool:
        counts = scan_store(
            uri,
            backend.tiledb_config(),
            pool,
            progress=lambda done, total: context.progress(step, done, total),
            combinations=combinations,
        )
    problems: list[Problem] = []
    bad = context.outputs["check_files"]["bad"]
    for row in _with_files(context):
        if row.dataset_id in counts or row.dataset_id in bad:
            continue
        per_file = _count_file(manifest, row, storage, problems, combinations)
        if per_file is not None:
            counts[row.dataset_id] = per_file
    return counts, combinations, problems


def _combinations_json(combinations: Combinations) -> dict[str, list]:
    """The combinations, compact for the Run: every string once, rows of indexes and counts."""
    strings: dict[str, int] = {}
    rows = []
    for (dataset_id, primary, *values), n in combinations.items():
        keys = [strings.setdefault(v, len(strings)) for v in (dataset_id, *values)]
        rows.append([*keys, int(primary), n])
    return {"strings": list(strings), "rows": rows}


def _combinations_of(context: Context) -> Combinations | None:
    """The annotate step's combinations (read back from its output when the run resumed)."""
    if context.combinations is not None:
        return context.combinations
    stored = context.outputs["annotate"].get("combinations")
    if stored is None:  # a run begun before the annotate step recorded them
        return None
    strings = stored["strings"]
    return {
        (strings[dataset], bool(primary), *(strings[v] for v in values)): n
        for dataset, *values, primary, n in stored["rows"]
    }


def _counts_json(counts: DatasetCounts) -> dict[str, dict[str, list[int]]]:
    return {
        feature: {value: [c.n_cells, c.n_primary_cells] for value, c in values.items()}
        for feature, values in counts.items()
    }


def _counts_of(context: Context) -> dict[str, DatasetCounts]:
    """The annotate step's counts (read back from its output)."""
    return {
        dataset_id: {
            feature: {value: TermCount(n, p) for value, (n, p) in values.items()}
            for feature, values in by_feature.items()
        }
        for dataset_id, by_feature in context.outputs["annotate"]["counts"].items()
    }


def _count_file(
    manifest: Manifest,
    row: DatasetRow,
    storage: Storage,
    problems: list[Problem],
    combinations: Combinations,
) -> DatasetCounts | None:
    """Counts of a dataset the store lacks, from its h5ad's obs (streamed, not downloaded); its
    combinations are added to ``combinations``."""
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
    own: Combinations = {}
    counts = count_obs(obs, organism, own)
    for (_, *rest), n in own.items():
        combinations[(row.dataset_id, *rest)] = n
    return counts


def register(context: Context) -> dict[str, Any]:
    """Register every dataset with a sound file and counts; remove the artifacts of datasets the
    release no longer holds."""
    manifest, using, summary = context.manifest, context.using, context.summary
    counts = _counts_of(context)
    bad = context.outputs["check_files"]["bad"]
    todo = [r for r in _with_files(context) if r.dataset_id in counts and r.dataset_id not in bad]
    vocab = resolve_terms((counts[r.dataset_id] for r in todo), using)
    problems: list[Problem] = []
    outcomes: Counter = Counter()
    context.progress("register", 0, len(todo))
    for done, row in enumerate(todo, start=1):
        _, outcome, found = register_dataset(
            manifest, row, counts[row.dataset_id], vocab, context.storage, context.run.pk, using
        )
        outcomes[outcome] += 1
        if outcome != UNCHANGED:
            for spec in FEATURES:
                summary.links[spec.name] += len(counts[row.dataset_id].get(spec.name, {}))
        problems.extend(found)
        context.progress("register", done, len(todo))
    listed = {row.dataset_id for row in manifest.datasets}
    for artifact in release_artifacts(manifest, context.storage, using).exclude(
        reference__in=listed
    ):
        remove_dataset(artifact, using)
        outcomes["removed"] += 1
    summary.added, summary.unchanged = outcomes[ADDED], outcomes[UNCHANGED]
    summary.revised, summary.removed = outcomes[REVISED], outcomes["removed"]
    return {
        "added": outcomes[ADDED],
        "unchanged": outcomes[UNCHANGED],
        "revised": outcomes[REVISED],
        "removed": outcomes["removed"],
        "problems": [p.as_dict() for p in problems],
    }


def _release_artifacts(context: Context) -> dict[str, Artifact]:
    """This release's registered dataset artifacts by dataset id."""
    artifacts = release_artifacts(context.manifest, context.storage, context.using)
    return {artifact.reference: artifact for artifact in artifacts}


def collections(context: Context) -> dict[str, Any]:
    """Versioned CELLxGENE collections and the release collection."""
    artifacts = _release_artifacts(context)
    stats = curate_collections(context.manifest, artifacts, context.run.pk, context.using)
    context.summary.collections = stats
    return stats


def soma(context: Context) -> dict[str, Any]:
    """The release's SOMA store as an artifact."""
    written = register_soma(context.manifest, context.storage, context.run.pk, context.using)
    context.summary.soma_added = written
    return {"written": written}


def cells(context: Context) -> dict[str, Any]:
    """The release's cell-level summary: one row per dataset and combination of obs labels."""
    combinations = _combinations_of(context)
    if combinations is None:  # recorded by an older annotate step: count them again
        _, combinations, _ = _count_release(context, "cells")
    release = _release_store(context)
    artifacts = {d: a.pk for d, a in _release_artifacts(context).items()}
    vocab = resolve_terms(_counts_of(context).values(), context.using)
    context.progress("cells", 0, 1)
    rows = write_summary(release, artifacts, combinations, vocab, context.using)
    context.progress("cells", 1, 1)
    return {"rows": rows}


def _release_store(context: Context) -> Artifact:
    """The release's SOMA store artifact (registered by the soma step)."""
    root = context.manifest.root
    return Artifact.objects.db_manager(context.using).get(
        storage=context.storage, key=root.soma_key, version=root.tag
    )


def verify(context: Context) -> dict[str, Any]:
    """Counts equal the manifest; every artifact linked for the required ontology features
    (unless all its cells say ``unknown``/``na`` there)."""
    using = context.using
    counts = context.outputs["annotate"]["counts"]
    artifacts = _release_artifacts(context)
    problems = []
    expected = {row.dataset_id: row.n_cells for row in context.manifest.datasets}
    by_id = {a.pk: a for a in artifacts.values() if a.reference in expected}
    for spec in FEATURES:
        if not spec.required:
            continue
        sums = dict(
            Artifact.link_table(spec.relation)
            .objects.db_manager(using)
            .filter(artifact_id__in=by_id, feature__name=spec.name)
            .values_list("artifact_id")
            .annotate(total=Sum("n_cells"))
        )
        for pk, artifact in by_id.items():
            total = sums.get(pk)
            values = set(counts.get(artifact.reference, {}).get(spec.name, {})) - NO_TERM
            if total is None and values:
                problems.append(
                    Problem(artifact.reference, "not linked", spec.name, tuple(sorted(values)))
                )
            elif spec.name == "cell_type" and (total or 0) != expected[artifact.reference]:
                problems.append(
                    Problem(
                        artifact.reference,
                        f"cell counts {total} differ from the manifest's "
                        f"{expected[artifact.reference]}",
                        spec.name,
                    )
                )
    return {"artifacts": len(by_id), "problems": [p.as_dict() for p in problems]}


#: the steps of a run, in order
STEPS: tuple[Step, ...] = (
    Step("check_files", check_files, ("checked",)),
    Step("annotate", annotate, ("datasets",)),
    Step("register", register, ("added", "unchanged", "revised", "removed")),
    Step("collections", collections, ("created", "revised", "unchanged", "removed")),
    Step("soma", soma, ("written",)),
    Step("cells", cells, ("rows",)),
    Step("verify", verify, ("artifacts",)),
)
