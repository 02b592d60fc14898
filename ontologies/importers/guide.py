"""Import the ontologies of a CELLxGENE schema version from ``cellxgene-ontology-guide``, offline.

The guide ships, per ontology release, a zstd-compressed JSON map ``id -> {label, synonyms,
description, deprecated, replaced_by, ancestors: {id: distance}}``. Its ``ancestors`` are the
transitive closure over the full ontology, restricted to the ontology's own terms; so where an
intermediate term of another ontology was dropped, a term has no ancestor at distance 1. The
parent links stored here are therefore the distance-1 ancestors plus, for every ancestor not
reachable through them, the nearest such ancestor: their closure is exactly the guide's.

NCBITaxon (1.3 M taxa, 850 MB of JSON) is not parsed whole: only the organisms the schema
admits are picked out of the decompressed stream.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard
from cellxgene_ontology_guide._constants import DATA_ROOT, ONTOLOGY_FILENAME_SUFFIX
from cellxgene_ontology_guide.entities import Ontology
from cellxgene_ontology_guide.supported_versions import (
    CXGSchema,
    coerce_version,
    get_latest_schema_version,
    load_supported_versions,
)
from django.apps import apps

from ontologies.errors import OntologyFileError, UnknownRegistryError, UnknownSchemaVersionError
from ontologies.importers.common import (
    ImportReport,
    NoProgress,
    Progress,
    SourceSpec,
    Term,
    refresh_statistics,
)
from ontologies.importers.common import import_terms as write_terms
from registry import instances
from registry.query import registry_name

#: guide data is a map id -> metadata
GuideData = dict[str, dict[str, Any]]

#: organisms the CELLxGENE schema 7 admits (cellxgene-schema 7.1.2, schema_definition.yaml:
#: organism_ontology_term_id): these terms, and the descendants (strains, subspecies) of some
SCHEMA_ORGANISMS = (
    "NCBITaxon:9606",
    "NCBITaxon:10090",
    "NCBITaxon:7227",
    "NCBITaxon:7955",
    "NCBITaxon:6239",
    "NCBITaxon:9541",
    "NCBITaxon:9986",
    "NCBITaxon:9483",
    "NCBITaxon:9595",
    "NCBITaxon:9544",
    "NCBITaxon:9598",
    "NCBITaxon:9823",
    "NCBITaxon:30608",
    "NCBITaxon:10116",
)
SCHEMA_ORGANISMS_WITH_DESCENDANTS = (
    "NCBITaxon:9541",
    "NCBITaxon:9544",
    "NCBITaxon:10090",
    "NCBITaxon:9986",
    "NCBITaxon:9598",
    "NCBITaxon:10116",
    "NCBITaxon:9823",
)
#: Organism.name of the schema's species (LaminDB names organisms by their common name)
COMMON_NAMES = {
    "NCBITaxon:9606": "human",
    "NCBITaxon:10090": "mouse",
    "NCBITaxon:7227": "fruit fly",
    "NCBITaxon:7955": "zebrafish",
    "NCBITaxon:6239": "roundworm",
    "NCBITaxon:9541": "crab-eating macaque",
    "NCBITaxon:9986": "rabbit",
    "NCBITaxon:9483": "common marmoset",
    "NCBITaxon:9595": "western lowland gorilla",
    "NCBITaxon:9544": "rhesus macaque",
    "NCBITaxon:9598": "chimpanzee",
    "NCBITaxon:9823": "pig",
    "NCBITaxon:30608": "gray mouse lemur",
    "NCBITaxon:10116": "rat",
}
#: the term of PATO that the schema uses as the disease "normal"
NORMAL = "PATO:0000461"
#: decompressed bytes read at a time when scanning NCBITaxon
SCAN_CHUNK = 1 << 26


@dataclass(frozen=True)
class GuideUnit:
    """One ontology (or part of one) imported into one registry."""

    ontology: str  # name in the guide, e.g. "CL"
    registry: str  # e.g. "CellType"
    group: str  # the name --only selects it by
    only: tuple[str, ...] = ()  # import just these ids (and nothing else of the ontology)
    organisms: bool = False  # NCBITaxon: the schema's organisms only

    @property
    def label(self) -> str:
        """For progress and reports, e.g. ``CL -> CellType``."""
        part = f" ({', '.join(self.only)})" if self.only else ""
        return f"{self.ontology}{part} -> {self.registry}"


UNITS = (
    GuideUnit("CL", "CellType", "CL"),
    GuideUnit("UBERON", "Tissue", "UBERON"),
    GuideUnit("MONDO", "Disease", "MONDO"),
    GuideUnit("PATO", "Disease", "MONDO", only=(NORMAL,)),
    GuideUnit("EFO", "Assay", "EFO"),
    GuideUnit("HANCESTRO", "Ethnicity", "HANCESTRO"),
    GuideUnit("HsapDv", "DevelopmentalStage", "HsapDv"),
    GuideUnit("MmusDv", "DevelopmentalStage", "MmusDv"),
    GuideUnit("PATO", "Phenotype", "PATO"),
    GuideUnit("NCBITaxon", "Organism", "NCBITaxon", organisms=True),
)


def guide_version() -> str:
    """The installed cellxgene-ontology-guide version."""
    return importlib.metadata.version("cellxgene-ontology-guide")


def available_schema_versions() -> list[str]:
    """The CELLxGENE schema versions the installed guide ships, oldest first."""
    return sorted(load_supported_versions(), key=coerce_version)


def resolve_schema_version(version: str | None) -> str:
    """A schema version as the guide names it (``7.1`` -> ``7.1.0``); default: the newest.

    Raises:
        UnknownSchemaVersionError: the guide does not ship it; the message lists those it does.
    """
    known = available_schema_versions()
    if version is None:
        return get_latest_schema_version(known)
    try:
        resolved = str(coerce_version(str(version).strip()))
    except ValueError:
        resolved = None
    if resolved not in known:
        raise UnknownSchemaVersionError(
            f"CELLxGENE schema version {version!r} is not shipped by the installed "
            f"cellxgene-ontology-guide {guide_version()}. Available: {', '.join(known)} (newest: "
            f"{known[-1]}). Pass one of these with --schema-version, or install a "
            f"cellxgene-ontology-guide release that has {version!r}."
        )
    return resolved


def select_units(only: Iterable[str] | None) -> list[GuideUnit]:
    """The import units named by ``--only`` (ontology names like ``CL`` or registry names
    like ``CellType``, case-insensitive); all of them when ``only`` is empty.

    Raises:
        UnknownRegistryError: a name matches no ontology or registry; lists the valid names.
    """
    names = [n.strip() for n in only or () if n.strip()]
    if not names:
        return list(UNITS)
    selected: list[GuideUnit] = []
    for name in names:
        key = registry_name(name).casefold()
        matches = [u for u in UNITS if key in (u.group.casefold(), u.registry.casefold())]
        if not matches:
            groups = sorted({u.group for u in UNITS})
            registries = sorted({u.registry for u in UNITS})
            raise UnknownRegistryError(
                f"--only {name!r} names no ontology or registry of the CELLxGENE import. "
                f"Ontologies: {', '.join(groups)}; registries: {', '.join(registries)}. "
                f"(Genes are imported with --genes, other ontology files with --file.)"
            )
        selected += [u for u in matches if u not in selected]
    return [u for u in UNITS if u in selected]


def ontology_release(schema: CXGSchema, ontology: str) -> str:
    """The version of ``ontology`` a schema version uses (e.g. ``v2026-03-26`` for CL)."""
    return str(schema.supported_ontologies[ontology]["version"])


def data_path(ontology: str, release: str) -> Path:
    """The guide's data file of an ontology release."""
    return Path(DATA_ROOT) / f"{ontology}-ontology-{release}{ONTOLOGY_FILENAME_SUFFIX}"


def read_ontology(ontology: str, release: str) -> GuideData:
    """The guide's data of one ontology release (whole ontologies; not NCBITaxon)."""
    path = data_path(ontology, release)
    try:
        with path.open("rb") as handle:
            return json.loads(zstandard.ZstdDecompressor().stream_reader(handle).read())
    except (OSError, ValueError, zstandard.ZstdError) as exc:
        raise OntologyFileError(
            f"Cannot read {ontology} {release} of cellxgene-ontology-guide from {path}: {exc}. "
            f"Reinstall cellxgene-ontology-guide {guide_version()}."
        ) from exc


def read_taxa(release: str, terms: Iterable[str], with_descendants: Iterable[str]) -> GuideData:
    """The entries of NCBITaxon ``release`` for ``terms`` and all descendants of
    ``with_descendants``.

    Picking them out of 850 MB of JSON takes seconds, so the result is kept in
    ``$CELLREGISTRY_HOME/cache/cellxgene-ontology-guide/`` (the guide's files never change for
    a guide version), and re-imports read a few kilobytes.
    """
    wanted, roots = set(terms), set(with_descendants)
    key = hashlib.sha256(" ".join(sorted(wanted) + ["/"] + sorted(roots)).encode()).hexdigest()
    path = data_path("NCBITaxon", release)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise OntologyFileError(
            f"NCBITaxon {release} of cellxgene-ontology-guide is missing ({path}): {exc}. "
            f"Reinstall cellxgene-ontology-guide {guide_version()}."
        ) from exc
    folder = instances.home() / "cache" / "cellxgene-ontology-guide"
    cached = folder / f"{guide_version()}-NCBITaxon-{release}-{size}-{key[:16]}.json"
    try:
        return json.loads(cached.read_text())
    except (OSError, ValueError):
        pass  # not cached yet (or damaged): scan
    found = _scan_taxa(path, release, wanted, roots)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False) as handle:
            json.dump(found, handle)
        os.replace(handle.name, cached)
    except OSError as exc:  # the import goes on; the next one scans again
        warnings.warn(f"Cannot cache the NCBITaxon organisms in {folder}: {exc}", stacklevel=2)
    return found


def _scan_taxa(path: Path, release: str, wanted: set[str], roots: set[str]) -> GuideData:
    """Pick entries out of the decompressed NCBITaxon stream, chunk by chunk."""
    numbers = b"|".join(re.escape(t.split(":")[1].encode()) for t in wanted | roots)
    # "NCBITaxon:N":{ opens the entry of N; "NCBITaxon:N":<digit> is N among some entry's
    # ancestors (entries are {"ancestors": {...}, ...}, ancestors first)
    pattern = re.compile(rb'"NCBITaxon:(' + numbers + rb')":([{0-9])')
    found: GuideData = {}
    try:
        for block in _entry_blocks(path):
            for match in pattern.finditer(block):
                number, kind = match.group(1).decode(), match.group(2)
                if kind == b"{" and f"NCBITaxon:{number}" in wanted:
                    key, start = f"NCBITaxon:{number}", match.end() - 1
                elif kind != b"{" and f"NCBITaxon:{number}" in roots:
                    start = block.rfind(b'{"ancestors":', 0, match.start())
                    key = block[block.rfind(b'"', 0, start - 2) + 1 : start - 2].decode()
                else:
                    continue
                if key not in found:
                    found[key] = _decode_entry(block, start)
    except (OSError, ValueError, zstandard.ZstdError) as exc:
        raise OntologyFileError(
            f"Cannot read NCBITaxon {release} of cellxgene-ontology-guide from {path}: {exc}. "
            f"Reinstall cellxgene-ontology-guide {guide_version()}."
        ) from exc
    return found


def _entry_blocks(path: Path) -> Iterator[bytes]:
    """The decompressed JSON in pieces that each end at the end of a top-level entry."""
    carry = b""
    with path.open("rb") as handle:
        reader = zstandard.ZstdDecompressor().stream_reader(handle)
        while chunk := reader.read(SCAN_CHUNK):
            data = carry + chunk
            cut = data.rfind(b'},"NCBITaxon:') + 1  # entries end with "}" before the next key
            if cut == 0:
                carry = data
                continue
            yield data[:cut]
            carry = data[cut:]
    if carry:
        yield carry


def _decode_entry(block: bytes, start: int) -> dict[str, Any]:
    end = block.find(b'},"NCBITaxon:', start)
    text = block[start : (end + 1 if end != -1 else len(block))].decode()
    entry, _ = json.JSONDecoder().raw_decode(text)
    return entry


def derive_parents(data: GuideData, ids: Iterable[str]) -> dict[str, list[str]]:
    """Parent links whose closure is the guide's ancestor data, within ``ids``.

    The distance-1 ancestors, then (nearest first) every ancestor not yet reachable.
    """
    selected = set(ids)
    ancestors = {
        term: {a: d for a, d in data[term].get("ancestors", {}).items() if a in selected}
        for term in selected
    }
    parents: dict[str, list[str]] = {}
    for term, own in ancestors.items():
        direct = [a for a, d in own.items() if d == 1]
        covered = set(direct)
        for parent in direct:
            covered.update(ancestors[parent])
        if len(covered) < len(own):
            for ancestor in sorted(own, key=own.__getitem__):
                if ancestor not in covered:
                    direct.append(ancestor)
                    covered.add(ancestor)
                    covered.update(ancestors[ancestor])
        parents[term] = direct
    return parents


def unit_terms(unit: GuideUnit, data: GuideData) -> tuple[list[Term], list[str]]:
    """The terms of one unit, and the ids of the terms without a label (named by their id)."""
    ids = [i for i in unit.only if i in data] if unit.only else list(data)
    parents = derive_parents(data, ids)
    terms: list[Term] = []
    unlabeled: list[str] = []
    for term_id in ids:
        entry = data[term_id]
        label = entry.get("label") or ""
        if not label:
            unlabeled.append(term_id)
        synonyms = list(entry.get("synonyms") or ())
        extra: dict[str, Any] = {}
        name = label or term_id
        if unit.organisms:
            name = COMMON_NAMES.get(term_id, label or term_id)
            synonyms = [label, *synonyms] if label and label != name else synonyms
            extra["scientific_name"] = "_".join(label.lower().split())
        terms.append(
            Term(
                ontology_id=term_id,
                name=name,
                synonyms=synonyms,
                description=entry.get("description") or "",
                is_deprecated=bool(entry.get("deprecated")),
                replaced_by=entry.get("replaced_by") or None,
                parents=parents[term_id],
                extra=extra,
            )
        )
    return terms, unlabeled


def _source_version(release: str) -> str:
    return release[1:] if release[:1] == "v" and release[1:2].isdigit() else release


def import_guide(
    schema_version: str | None = None,
    only: Iterable[str] | None = None,
    using: str = "default",
    progress: Progress | None = None,
) -> list[ImportReport]:
    """Import the ontologies of a CELLxGENE schema version into the registries.

    Each unit (e.g. CL -> CellType) is imported in its own transaction; see
    :func:`ontologies.importers.common.import_terms` for what an import does.

    Args:
        schema_version: e.g. ``"7.1.0"``; default: the newest the guide ships.
        only: ontology or registry names (``["CL", "UBERON"]``); default: all.
        using: database alias of the instance.
        progress: where to report progress.

    Returns:
        One report per unit, in import order.
    """
    version = resolve_schema_version(schema_version)
    units = select_units(only)
    progress = progress or NoProgress()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old schema versions warn
        schema = CXGSchema(version)
    cache: dict[str, GuideData] = {}
    reports: list[ImportReport] = []
    for unit in units:
        progress.begin(unit.label, steps=5)
        release = ontology_release(schema, unit.ontology)
        progress.step(f"reading {unit.ontology} {release}")
        if unit.organisms:
            data = read_taxa(release, SCHEMA_ORGANISMS, SCHEMA_ORGANISMS_WITH_DESCENDANTS)
        else:
            if unit.ontology not in cache:
                cache[unit.ontology] = read_ontology(unit.ontology, release)
            data = cache[unit.ontology]
        terms, unlabeled = unit_terms(unit, data)
        spec = SourceSpec(
            name=Ontology[unit.ontology].value,
            version=_source_version(release),
            url=schema.get_ontology_download_url(Ontology[unit.ontology]),
            description=(
                f"{unit.ontology} {release} as shipped by cellxgene-ontology-guide "
                f"{guide_version()} for CELLxGENE schema {version}"
            ),
        )
        model = apps.get_model("ontologies", unit.registry)
        origin = f"cellxgene-ontology-guide {unit.ontology} {release}"
        report = write_terms(model, terms, spec, using, progress, origin)
        report.note("terms without a label (deprecated; named by their id)", unlabeled)
        progress.finish(report.summary())
        reports.append(report)
    changed = {r.registry for r in reports if r.changed}
    if changed:
        refresh_statistics(using, [apps.get_model("ontologies", name) for name in changed])
    return reports
