"""Import an OBO or OWL file through ``pronto`` into a chosen registry.

So that a lab can load an ontology release the guide does not ship (a newer HP, an older
MmusDv, ...). Terms are read the way the guide reads them: EXACT synonyms, the definition as
description, ``is_obsolete``/``replaced_by``, and parents along ``is_a`` and ``part_of``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import pronto

from ontologies.errors import OntologyError, OntologyFileError, OntologyIdPrefixError
from ontologies.importers.common import (
    ImportReport,
    NoProgress,
    Progress,
    SourceSpec,
    Term,
    import_terms,
    refresh_statistics,
    resolve_registry,
)
from ontologies.models.base import id_prefix

#: relations followed to parents by default (as in the guide's data)
DEFAULT_RELATIONS = ("is_a", "part_of")
#: relation ids that mean part_of
PART_OF = {"part_of", "BFO:0000050"}
#: synonym scopes kept by default (as in the guide's data)
DEFAULT_SCOPES = ("EXACT",)


def load_file(path: str | Path) -> tuple[pronto.Ontology, list[str]]:
    """Parse an ontology file; return it and the warnings pronto gave.

    Raises:
        OntologyFileError: the file is missing, not a file, or not valid OBO/OWL (with the line
            pronto reports, when it reports one).
    """
    path = Path(path)
    if not path.exists():
        raise OntologyFileError(
            f"Ontology file {path} does not exist (looked in {path.resolve().parent}). "
            f"Check the path given to --file."
        )
    if not path.is_file():
        raise OntologyFileError(f"{path} is not a file. Give the path of an .obo or .owl file.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ontology = pronto.Ontology(str(path))
        except SyntaxError as exc:
            where = f", line {exc.lineno}" if exc.lineno else ""
            text = f" ({exc.text.strip()!r})" if exc.text else ""
            raise OntologyFileError(
                f"{path}{where}: {exc.msg}{text}. The file is not valid OBO; fix that line or "
                f"export the ontology again."
            ) from exc
        except (ValueError, OSError, UnicodeError) as exc:
            raise OntologyFileError(
                f"Cannot read {path} as an ontology: {exc}. pronto reads OBO and OWL "
                f"(RDF/XML) files; check that the file is one of those and not truncated."
            ) from exc
        except Exception as exc:  # XML and parser errors of pronto's backends vary
            raise OntologyFileError(
                f"Cannot parse {path}: {type(exc).__name__}: {exc}. Check that it is a "
                f"complete OBO or OWL (RDF/XML) file."
            ) from exc
    return ontology, [str(w.message) for w in caught]


def file_terms(
    ontology: pronto.Ontology,
    relations: Sequence[str] = DEFAULT_RELATIONS,
    scopes: Sequence[str] = DEFAULT_SCOPES,
) -> list[Term]:
    """The terms of a parsed ontology (terms without a ``PREFIX:`` id are left out)."""
    follow_part_of = "part_of" in relations
    follow_is_a = "is_a" in relations
    terms: list[Term] = []
    for term in ontology.terms():
        if not id_prefix(term.id):
            continue
        parents: list[str] = []
        if follow_is_a:
            parents += [p.id for p in term.superclasses(distance=1, with_self=False)]
        if follow_part_of:
            for relation, targets in term.relationships.items():
                if relation.id in PART_OF or relation.name == "part of":
                    parents += [t.id for t in targets]
        replaced = sorted(t.id for t in term.replaced_by)
        parents.sort()
        terms.append(
            Term(
                ontology_id=term.id,
                name=term.name or term.id,
                # pronto gives a set: sorted, so that re-imports compare equal
                synonyms=sorted(s.description for s in term.synonyms if s.scope in scopes),
                description=str(term.definition or ""),
                is_deprecated=bool(term.obsolete),
                replaced_by=replaced[0] if replaced else None,
                parents=list(dict.fromkeys(parents)),
            )
        )
    return terms


def import_file(
    path: str | Path,
    registry: str,
    source_name: str,
    source_version: str | None = None,
    using: str = "default",
    prefixes: Iterable[str] | None = None,
    relations: Sequence[str] = DEFAULT_RELATIONS,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the terms of an OBO/OWL file into ``registry`` as release ``source_name``
    ``source_version`` (see :func:`ontologies.importers.common.import_terms`).

    Args:
        path: the file.
        registry: registry name, e.g. ``"Phenotype"``.
        source_name: the ontology's short name, e.g. ``"hp"``.
        source_version: the release; default: the file's ``data-version``.
        using: database alias of the instance.
        prefixes: import only terms with these id prefixes (default: all terms; then every
            term must have a prefix the registry accepts).
        relations: relations followed to parents (``is_a``, ``part_of``).
        progress: where to report progress.

    Raises:
        UnknownRegistryError, OntologyFileError, OntologyIdPrefixError: with what to do.
    """
    model = resolve_registry(registry)
    unknown = sorted(set(relations) - set(DEFAULT_RELATIONS))
    if unknown:
        raise OntologyError(
            f"Cannot follow the relation(s) {', '.join(unknown)} to parents in {path}; "
            f"choose from {', '.join(DEFAULT_RELATIONS)}."
        )
    progress = progress or NoProgress()
    path = Path(path)
    progress.begin(f"{path.name} -> {model.__name__}", steps=5)
    progress.step(f"parsing {path.name}")
    ontology, pronto_warnings = load_file(path)
    version = source_version or ontology.metadata.data_version
    if not version:
        raise OntologyFileError(
            f"{path} has no data-version header; pass the release with --source-version."
        )
    terms = file_terms(ontology, relations)
    if not terms:
        raise OntologyFileError(f"{path} holds no terms with PREFIX:LOCAL ids; nothing to import.")
    left_out: list[str] = []
    if prefixes:
        wanted = set(prefixes)
        unaccepted = sorted(wanted - set(model.ontology_prefixes))
        if unaccepted:
            raise OntologyIdPrefixError(
                f"{model.__name__} does not accept ids with the prefix(es) "
                f"{', '.join(unaccepted)}; it accepts {', '.join(model.ontology_prefixes)}. "
                f"Choose another registry or other --prefixes."
            )
        left_out = [t.ontology_id for t in terms if id_prefix(t.ontology_id) not in wanted]
        terms = [t for t in terms if id_prefix(t.ontology_id) in wanted]
    else:
        try:
            model.check_ontology_ids([t.ontology_id for t in terms], str(path))
        except OntologyIdPrefixError as exc:
            raise OntologyIdPrefixError(
                f"{exc} To import only the terms of some prefixes, pass --prefixes "
                f"(e.g. --prefixes {','.join(model.ontology_prefixes)})."
            ) from exc
    spec = SourceSpec(
        name=source_name,
        version=str(version),
        url=str(path.resolve()),
        description=f"{ontology.metadata.ontology or source_name} from the file {path.name}",
    )
    report = import_terms(model, terms, spec, using, progress, origin=str(path))
    report.note("terms with other prefixes (left out by --prefixes)", left_out)
    report.note("pronto warnings", pronto_warnings)
    if report.changed:
        refresh_statistics(using, [model])
    progress.finish(report.summary())
    return report
