"""``ln.Cells``: questions about cells answered from the cell-level summary
(:class:`ontologies.models.cells.Cells`), and the cells themselves read from the release's SOMA
store.

::

    t_cells = ln.bionty.CellType.get(name="T cell").descendants(include_self=True)
    cells = ln.Cells.filter(cell_type__in=t_cells, tissue__name="lung", is_primary_data=True)
    cells.count()                               # cells (the sum of n_cells), not rows
    cells.summarize(by=["dataset", "disease"])  # DataFrame of n_cells
    cells.artifacts()                           # the datasets holding them
    cells.estimate(genes=2000)                  # rows, non-zeros and bytes as CSR
    cells.to_anndata()                          # exactly these cells, from the SOMA store

A selection belongs to one release: ``filter(release="2025-11-08")`` names it (a tag, or the
release's SOMA artifact); without it, the answers are those of the latest curated release (the
newest tag with a summary). Iterating the queryset itself gives summary rows of every release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import connections, models
from django.db.models import Exists, OuterRef, Q, Subquery, Sum
from django.db.models.constants import LOOKUP_SEP
from django.db.models.expressions import RawSQL

from ontologies.cells_sql import conditions_sql, plain_query, question_sql
from registry.databases import fetch_prepared
from registry.errors import QueryError, RegistryError, UnknownFieldError
from registry.query import RegistryQuerySet, field_dtype, resolve_path, typed_frame
from registry.query.input_checks import check_condition_values

if TYPE_CHECKING:
    import anndata
    import pandas as pd

#: ``summarize(by=...)`` names a dataset by its CELLxGENE dataset_id
DATASET = "dataset"
DATASET_PATH = "artifact__reference"
#: the SQL of the newest curated SOMA store, by (database vendor, tag or None)
_LATEST_STORE_SQL: dict[tuple[str, str | None], tuple[str, tuple]] = {}
#: the obs filter of an empty selection
NOTHING = "soma_joinid < 0"
#: bytes per stored value of a CSR matrix in memory: float32 data + int32 column index
CSR_VALUE_BYTES = 8
#: bytes per row pointer (int64)
CSR_INDPTR_BYTES = 8


class ReleaseError(RegistryError, LookupError):
    """No curated release, or not the one named."""


class CellsSelectionError(QueryError):
    """A selection the SOMA store cannot be asked for (several organisms, an OR across fields)."""


class CellsQuerySet(RegistryQuerySet):
    """Summary rows of a selection of cells; see the module docstring."""

    _release: Any = None  # a tag or SOMA artifact named with filter(release=...)
    _resolved_release: int | None = None  # the pk of its SOMA store, once looked up
    #: ``filter`` keyword conditions not given to Django's query yet: conditions a question's
    #: direct SQL takes (:func:`~ontologies.cells_sql.question_sql` reads them from
    #: ``_conditions``) wait until the query itself is needed, which a question never needs
    _pending: tuple[dict[str, Any], ...] = ()

    def _clone(self) -> CellsQuerySet:
        pending, self._pending = self._pending, ()
        try:  # Django's clone copies the query: the conditions waiting stay waiting
            clone = super()._clone()
        finally:
            self._pending = pending
        clone._release = self._release
        clone._pending = pending
        return clone

    @property
    def query(self) -> Any:
        """Django's query, with the conditions still waiting given to it first."""
        if self._pending:
            pending, self._pending = self._pending, ()
            postgresql = connections[self.db].vendor == "postgresql"
            for kwargs in pending:
                self._query = self._filtered(
                    False, (), _terms_as_arrays(kwargs) if postgresql else kwargs
                )._query
        return models.QuerySet.query.fget(self)

    @query.setter
    def query(self, value: Any) -> None:
        self._pending = ()
        models.QuerySet.query.fset(self, value)

    def _filter_or_exclude(self, negate: bool, args: tuple, kwargs: dict) -> CellsQuerySet:
        if "release" in kwargs:
            kwargs = dict(kwargs)
            release = kwargs.pop("release")
            if negate:
                raise QueryError("Cells.exclude(release=...) is not supported: name one release.")
            clone = self._clone()
            clone._release = release
            return clone._filter_or_exclude(negate, args, kwargs) if args or kwargs else clone
        if not negate and not args and kwargs and self._can_wait(kwargs):
            check_condition_values(self.model.__name__, (), kwargs, connections[self.db].vendor)
            clone = self._chain()
            clone._conditions = (*self._conditions, ("filter", (), kwargs))
            clone._pending = (*self._pending, kwargs)
            return clone
        if connections[self.db].vendor == "postgresql":
            kwargs = _terms_as_arrays(kwargs)
        return super()._filter_or_exclude(negate, args, kwargs)

    def _can_wait(self, kwargs: dict[str, Any]) -> bool:
        """The conditions can wait (:attr:`_pending`): the direct SQL takes every one of them
        (so they name fields Django knows, with values it takes: nothing to report later that
        ``filter`` reports now), and the query has nothing the direct SQL would not take."""
        return (
            self._deferred_filter is None
            and self._result_cache is None
            and plain_query(self._query)
            and conditions_sql(self.model, kwargs, self.db) is not None
        )

    # --- the release ----------------------------------------------------------------------
    def release_artifact(self) -> models.Model:
        """The SOMA store artifact of the selection's release (named, or the latest).

        Raises:
            ReleaseError: no release has a cell summary, or the named one has none.
        """
        from registry.models import Artifact

        return Artifact.objects.db_manager(self.db).get(pk=self._release_pk())

    def _release_pk(self) -> int:
        """The primary key of :meth:`release_artifact`, in one query (kept by this selection:
        its questions all ask about the same release)."""
        from registry.models import Artifact

        if self._resolved_release is not None:
            return self._resolved_release
        stores = Artifact.objects.db_manager(self.db).filter(otype=Artifact.OType.TILEDBSOMA)
        summarized = self.model.objects.db_manager(self.db)
        if isinstance(self._release, Artifact):
            if not summarized.filter(release_id=self._release.pk).exists():
                raise ReleaseError(
                    f"Artifact {self._release.uid} ({self._release.key}) has no cell summary: it "
                    f"is not a curated release's SOMA store. {_curated_tags(stores, summarized)}"
                )
            self._resolved_release = self._release.pk
            return self._resolved_release
        sql, params = self._latest_store_sql()
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, params)
            found = [row[0] for row in cursor.fetchall()]
        if found:
            self._resolved_release = found[0]
            return self._resolved_release
        if self._release is not None:
            raise ReleaseError(
                f"No curated release {self._release!r} with a cell summary. "
                f"{_curated_tags(stores, summarized)}"
            )
        raise ReleaseError(
            "No curated release has a cell summary yet: curate one first "
            "(python manage.py curate_release ROOT/cell-census/<tag>)."
        )

    def _latest_store_sql(self) -> tuple[str, tuple]:
        """SQL selecting the primary key of the newest SOMA store (of the named tag) that has
        summary rows: a first row looked up per store, one index probe each (an ``EXISTS``
        PostgreSQL would plan as a scan of the summary). Compiled once per database kind."""
        from registry.models import Artifact

        key = (connections[self.db].vendor, None if self._release is None else str(self._release))
        if key not in _LATEST_STORE_SQL:
            summarized = self.model.objects.db_manager(self.db)
            first_row = summarized.filter(release_id=OuterRef("pk")).order_by().values("pk")[:1]
            stores = Artifact.objects.db_manager(self.db).filter(otype=Artifact.OType.TILEDBSOMA)
            stores = stores.alias(first_row=Subquery(first_row)).filter(first_row__isnull=False)
            if self._release is not None:
                stores = stores.filter(version=str(self._release))
            newest = stores.order_by("-version", "-id").values("pk")[:1]
            sql, params = newest.query.get_compiler(using=self.db).as_sql()
            _LATEST_STORE_SQL[key] = (sql, tuple(params))
        return _LATEST_STORE_SQL[key]

    def _selected(self, check_release: bool = True) -> CellsQuerySet:
        """This selection within its release (plain rows, no release left to resolve).

        Args:
            check_release: look the release up first (raising :class:`ReleaseError` when there
                is none); without, the release is a subquery of the question itself, and a
                question that finds no rows calls :meth:`_release_pk` for the error.
        """
        if check_release or self._resolved_release is not None or self._release_is_artifact():
            release: Any = self._release_pk()
        else:
            release = RawSQL(*self._latest_store_sql())
        return super()._filter_or_exclude(False, (), {"release_id": release})

    def _release_is_artifact(self) -> bool:
        from registry.models import Artifact

        return isinstance(self._release, Artifact)

    # --- questions ------------------------------------------------------------------------
    def _release_sql(self) -> tuple[str, list[Any]]:
        """SQL of the selection's release key, as :meth:`_selected` puts it in a question."""
        if self._resolved_release is not None or self._release_is_artifact():
            return "%s", [self._release_pk()]
        sql, params = self._latest_store_sql()
        return f"({sql})", list(params)

    def _answered(self, paths: list[str]) -> list[tuple] | None:
        """The rows of :func:`~ontologies.cells_sql.question_sql` (groups, then cells), or
        None when the ORM is to compose the question."""
        built = question_sql(self, self._release_sql(), paths)
        if built is None:
            return None
        return fetch_prepared(self.db, *built)

    def count(self) -> int:  # type: ignore[override]
        """Cells of the selection: the sum of ``n_cells`` over its rows (0 when none match)."""
        answered = self._answered([])
        if answered is not None:
            total = answered[0][0]
        else:
            selected = self._selected(check_release=False)
            total = selected.aggregate(total=Sum("n_cells"))["total"]
        if total is None:
            self._release_pk()  # no release at all is an error, not zero cells
        return int(total or 0)

    def n_rows(self) -> int:
        """Summary rows of the selection (in its release): combinations, not cells."""
        return self._selected().order_by().values("id").aggregate(n=models.Count("id"))["n"]

    def summarize(self, by: list[str] | str = DATASET) -> pd.DataFrame:
        """Cells per group: one row per value (combination) of the ``by`` fields.

        Args:
            by: ``"dataset"`` (the CELLxGENE dataset_id), ``"release"`` (its tag), a field of
                the summary (``"disease"``, ``"is_primary_data"``; an ontology field shows the
                term's name) or a ``__`` path (``"disease__ontology_id"``).

        Returns:
            A DataFrame with one column per ``by`` entry and ``n_cells``, most cells first.

        Raises:
            UnknownFieldError: a ``by`` entry names no field; the message lists them.
        """
        import pandas as pd

        names = [by] if isinstance(by, str) else list(by)
        if not names:
            raise QueryError("summarize(by=[...]) needs at least one field, e.g. by=['dataset'].")
        paths = [self._group_path(name) for name in names]
        rows = self._answered(paths)
        if rows is None:
            selected = self._selected(check_release=False)
            grouped = selected.values_list(*paths).annotate(n=Sum("n_cells"))
            rows = list(grouped.order_by("-n", *paths))  # most cells first, ties by the groups
        if not rows:
            self._release_pk()  # no release at all is an error, not an empty table
        columns = list(zip(*rows, strict=True)) if rows else [()] * (len(names) + 1)
        # each column typed from its field (pandas infers the same type, more slowly)
        data = {
            name: (columns[i], field_dtype(resolve_path(self.model, path)[2]))
            for i, (name, path) in enumerate(zip(names, paths, strict=True))
        }
        data["n_cells"] = (columns[-1], "int64")
        return typed_frame(data, pd.RangeIndex(len(rows)))

    def _group_path(self, name: str) -> str:
        if name == DATASET:
            return DATASET_PATH
        if name == "release":
            return "release__version"
        try:
            path, _, field = resolve_path(self.model, name)
        except UnknownFieldError as exc:
            raise UnknownFieldError(
                f"Cannot summarize by {name!r}: {exc} Group by 'dataset', 'release' or a field: "
                f"{', '.join(self.fields())}."
            ) from None
        if field is not None and field.is_relation and path.split(LOOKUP_SEP)[-1] == field.name:
            return f"{path}__{getattr(field.related_model, 'name_field', 'name')}"
        return path

    @classmethod
    def fields(cls) -> list[str]:
        """The label fields of a selection (what ``filter`` and ``summarize`` take)."""
        from ontologies.models.cells import TERM_FIELDS, VALUE_FIELDS

        return [*TERM_FIELDS, *VALUE_FIELDS, "is_primary_data", "artifact", "n_cells"]

    def artifacts(self) -> models.QuerySet:
        """The datasets holding the selected cells (an Artifact queryset)."""
        from registry.models import Artifact

        ids = self._selected().values("artifact_id")
        return Artifact.objects.db_manager(self.db).filter(pk__in=ids)

    def estimate(self, genes: int | None = None) -> dict[str, int | float]:
        """What :meth:`to_anndata` would hold, without reading a cell.

        Args:
            genes: columns asked for (default: every gene of the store's experiment).

        Returns:
            ``n_obs`` (cells), ``n_vars``, ``density`` (the store's non-zeros per cell and
            gene), ``nnz`` (expected non-zeros) and ``bytes`` (a float32 CSR matrix in memory).
        """
        n_obs = self.count()
        with self._open_store() as census:
            experiment = census["census_data"][self._organism_name(census)]
            matrix = experiment.ms["RNA"].X["raw"]
            n_cells_store = experiment.obs.count
            n_vars_store = experiment.ms["RNA"].var.count
            nnz_store = matrix.nnz
        n_vars = n_vars_store if genes is None else int(genes)
        density = nnz_store / (n_cells_store * n_vars_store) if n_cells_store else 0.0
        nnz = round(n_obs * n_vars * density)
        return {
            "n_obs": n_obs,
            "n_vars": n_vars,
            "density": density,
            "nnz": nnz,
            "bytes": nnz * CSR_VALUE_BYTES + (n_obs + 1) * CSR_INDPTR_BYTES,
        }

    # --- the cells themselves -------------------------------------------------------------
    def obs_value_filter(self) -> str:
        """The SOMA obs ``value_filter`` selecting exactly these cells in the release's store.

        It names the datasets, ``is_primary_data`` when the selection has one value, and for
        every field the filter constrains the term ids (or values) the selection has.

        Raises:
            CellsSelectionError: a constrained field takes no term in some selected rows (e.g.
                ``disease__isnull=True``): the store cannot be asked for that.
        """
        from ontologies.models.cells import TERM_FIELDS, VALUE_FIELDS

        selected = self._selected()
        datasets = sorted(set(selected.values_list(DATASET_PATH, flat=True)))
        if not datasets:
            return NOTHING
        conditions = [f"dataset_id in {_listed(datasets)}"]
        primary = set(selected.values_list("is_primary_data", flat=True).distinct())
        if len(primary) == 1:
            conditions.append(f"is_primary_data == {primary.pop()}")
        for name in self._constrained_fields():
            if name in TERM_FIELDS and name != "organism":
                values = set(selected.values_list(f"{name}__ontology_id", flat=True).distinct())
                column = f"{name}_ontology_term_id"
            elif name in VALUE_FIELDS:
                values = set(selected.values_list(name, flat=True).distinct())
                column = name
            else:
                continue
            if None in values:
                raise CellsSelectionError(
                    f"The selection holds cells without a {name} term (unknown, na or several "
                    f"terms): to_anndata cannot ask the SOMA store for them. Filter {name} by "
                    "terms, or leave it out of the filter."
                )
            conditions.append(f"{column} in {_listed(sorted(values))}")
        return " and ".join(conditions)

    def _constrained_fields(self) -> list[str]:
        """The summary fields named in the conditions of this selection."""
        names: list[str] = []

        def visit(key: str) -> None:
            path = resolve_path(self.model, key)[0]
            name = self.model._meta.get_field(path.split(LOOKUP_SEP)[0]).name  # cell_type_id
            if name not in names:
                names.append(name)

        def walk(q: Q) -> None:
            for child in q.children:
                if isinstance(child, Q):
                    walk(child)
                else:
                    visit(child[0])

        for _, args, kwargs in self._conditions:
            for key in kwargs:
                visit(key)
            for arg in args:
                if isinstance(arg, Q):
                    walk(arg)
        return names

    def to_anndata(
        self,
        var_value_filter: str | None = None,
        obs_column_names: list[str] | None = None,
        X_name: str = "raw",  # noqa: N803 - the Census API's name
    ) -> anndata.AnnData:
        """The selected cells as an AnnData, read from the release's SOMA store.

        Args:
            var_value_filter: a SOMA value filter on the genes (``"feature_id in [...]"``).
            obs_column_names: obs columns to read (default: all of them).
            X_name: the X layer.

        Returns:
            An AnnData with exactly :meth:`count` cells.

        Raises:
            CellsSelectionError: the selection spans several organisms, or it is not a
                conjunction of field conditions (the store returned another number of cells).
        """
        import anndata

        expected = self.count()
        value_filter = self.obs_value_filter()
        with self._open_store() as census:
            experiment = census["census_data"][self._organism_name(census)]
            obs = _read_frame(experiment.obs, value_filter, obs_column_names)
            rna = experiment.ms["RNA"]
            var = _read_frame(rna.var, var_value_filter, None)
            matrix = _read_rows(rna.X[X_name], obs["soma_joinid"].to_numpy(), var)
        obs.index = obs["soma_joinid"].astype(str).to_numpy()
        var.index = var["soma_joinid"].astype(str).to_numpy()
        adata = anndata.AnnData(X=matrix, obs=obs, var=var)
        if adata.n_obs != expected:
            raise CellsSelectionError(
                f"The SOMA store returned {adata.n_obs} cells for the selection, the summary "
                f"counts {expected}: the selection is not a conjunction of conditions on its "
                f"fields (e.g. an OR across fields). Obs filter: {value_filter}"
            )
        return adata

    def _open_store(self) -> Any:
        return self.release_artifact().open()

    def _organism_name(self, census: Any) -> str:
        """The experiment of the selection's organism (its name under census_data)."""
        organisms = set(self._selected().values_list("organism__ontology_id", flat=True).distinct())
        if len(organisms) > 1:
            named = ", ".join(sorted(map(str, organisms)))
            raise CellsSelectionError(
                f"The selection spans {len(organisms)} organisms ({named}): filter one, e.g. "
                "organism__name='human'."
            )
        table = census["census_info"]["organisms"].read().concat().to_pandas()
        by_id = dict(zip(table["organism_ontology_term_id"], table["organism"], strict=True))
        if not organisms:
            return str(table["organism"].iloc[0])
        organism = organisms.pop()
        if organism not in by_id:
            raise CellsSelectionError(f"The release's SOMA store has no experiment of {organism}.")
        return str(by_id[organism])


class InArray(models.Lookup):
    """``<foreign key> = ANY(ARRAY(<subquery>))`` (PostgreSQL): the subquery runs once, before
    the query, and its keys are one index condition, where PostgreSQL would plan ``IN
    (<subquery>)`` as a semi-join rerun for every row (86 ms instead of 0.9 for "T cell or any
    subtype, in lung" at LTS scale). Listing the keys first costs a round trip and a long query
    to parse."""

    lookup_name = "in_array"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY(ARRAY{rhs})", [*lhs_params, *rhs_params]


models.ForeignKey.register_lookup(InArray)


def _terms_as_arrays(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``cell_type__in=<a queryset of terms>`` as ``cell_type__in_array`` (:class:`InArray`),
    for PostgreSQL. (SQLite runs the ``IN`` subquery once by itself.)"""
    arrays = {}
    for key, value in kwargs.items():
        if (
            key.endswith("__in")
            and isinstance(value, models.QuerySet)
            and not value.query.values_select
        ):
            ids_sql = getattr(value, "ids_sql", None)  # descendants(): the keys' SQL itself
            keys = RawSQL(*ids_sql) if ids_sql else value.order_by().values("pk")
            key, value = f"{key[: -len('__in')]}__in_array", keys
        arrays[key] = value
    return arrays


#: X is read in groups of rows within spans of this many joinids (a TileDB read of points far
#: apart reads the tiles between them too; a span per read keeps reads to the tiles needed)
ROW_SPAN = 2048


def _read_frame(frame: Any, value_filter: str | None, columns: list[str] | None) -> pd.DataFrame:
    """Rows of a SOMA dataframe matching ``value_filter`` (with soma_joinid), by joinid."""
    if columns is not None and "soma_joinid" not in columns:
        columns = ["soma_joinid", *columns]
    table = frame.read(value_filter=value_filter, column_names=columns).concat()
    return table.to_pandas().sort_values("soma_joinid", ignore_index=True)


def _read_rows(matrix: Any, rows: Any, var: pd.DataFrame) -> Any:
    """The CSR matrix of ``rows`` (sorted joinids) x the genes of ``var``, read span by span:
    consecutive rows within :data:`ROW_SPAN` of each other go into one read."""
    import numpy as np
    import pyarrow as pa
    import scipy.sparse

    columns = var["soma_joinid"].to_numpy()
    shape = (len(rows), len(columns))
    if not len(rows) or not len(columns):
        return scipy.sparse.csr_matrix(shape, dtype=np.float32)
    every_gene = len(columns) == matrix.shape[1]
    starts = np.flatnonzero(np.diff(rows // ROW_SPAN, prepend=-2) > 1)  # new span groups
    ends = [*starts[1:], len(rows)]
    parts = []
    for start, end in zip(starts.tolist(), ends, strict=True):
        coords = (
            (pa.array(rows[start:end]),)
            if every_gene
            else (pa.array(rows[start:end]), pa.array(columns))
        )
        parts.extend(matrix.read(coords=coords).tables())
    table = pa.concat_tables(parts)
    i = np.searchsorted(rows, table.column("soma_dim_0").to_numpy())
    j = np.searchsorted(columns, table.column("soma_dim_1").to_numpy())
    data = table.column("soma_data").to_numpy()
    return scipy.sparse.csr_matrix((data, (i, j)), shape=shape)


def _listed(values: list[Any]) -> str:
    return "[" + ", ".join(repr(str(v)) for v in values) + "]"


def _curated_tags(stores: models.QuerySet, summarized: models.QuerySet) -> str:
    curated = stores.filter(Exists(summarized.filter(release_id=OuterRef("pk"))))
    tags = list(curated.order_by("version").values_list("version", flat=True))
    if not tags:
        return "No release has a cell summary yet: curate one first."
    return f"Releases with a cell summary: {', '.join(tags)}."


CellsManager = models.Manager.from_queryset(CellsQuerySet, "CellsManager")
#: the methods of a selection that ``Cells`` also offers on the class (``ln.Cells.summarize()``)
CELLS_METHODS = (
    "n_rows",
    "summarize",
    "artifacts",
    "estimate",
    "to_anndata",
    "obs_value_filter",
    "release_artifact",
)
