"""The Census API's queries on an opened store: ``get_anndata``, ``get_obs``, ``get_var``,
``get_presence_matrix``, with ``cellxgene_census``'s arguments, on TileDB-SOMA directly.

``census`` is what :func:`registry.census.open_soma` (or ``cellxgene_census.open_soma``)
returned. ``organism`` is a name (``"Homo sapiens"``) or an experiment name
(``"homo_sapiens"``). Value filters use the SOMA ``value_filter`` syntax
(``"tissue_general == 'lung' and is_primary_data == True"``). A bad organism, measurement, layer,
column or filter raises a :class:`~registry.errors.CensusQueryError` that names it and lists
what there is. Embeddings (``obs_embeddings``, ``var_embeddings``) live in the Census's
contributed stores, online: they are refused here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata
import pandas as pd
import tiledbsoma
from scipy import sparse

from registry.errors import CensusQueryError

#: what reading with a bad filter or column raises in tiledbsoma
_READ_ERRORS = (tiledbsoma.SOMAError, ValueError, KeyError, TypeError)


def experiment_name(organism: str) -> str:
    """``"Homo sapiens"`` -> ``"homo_sapiens"``."""
    return "_".join(organism.split()).lower()


def _listed(names: Any) -> str:
    return ", ".join(repr(n) for n in sorted(names)) or "none"


def get_experiment(census: Any, organism: str, modality: str = "census_data") -> Any:
    """The ``tiledbsoma.Experiment`` of an organism.

    Raises:
        CensusQueryError: no such modality or organism (the message lists those there are).
    """
    if modality not in census:
        raise CensusQueryError(
            f"The Census store has no {modality!r} collection (it has {_listed(census.keys())})."
        )
    experiments = census[modality]
    name = experiment_name(organism)
    if name not in experiments or experiments[name].soma_type != "SOMAExperiment":
        raise CensusQueryError(
            f"Unknown organism {organism!r}: {modality} has the experiments "
            f"{_listed(experiments.keys())} (give e.g. 'Homo sapiens' or 'homo_sapiens')."
        )
    return experiments[name]


def _measurement(experiment: Any, name: str) -> Any:
    if name not in experiment.ms:
        raise CensusQueryError(
            f"Unknown measurement {name!r}: the experiment has {_listed(experiment.ms.keys())}."
        )
    return experiment.ms[name]


def _check_columns(frame: Any, names: Sequence[str] | None, axis: str) -> None:
    if names is None:
        return
    missing = [n for n in names if n not in frame.schema.names]
    if missing:
        raise CensusQueryError(
            f"Unknown {axis} column(s) {_listed(missing)}: {axis} has "
            f"{_listed(frame.schema.names)}."
        )


def _coords(coords: Any) -> tuple:
    return (slice(None),) if coords is None else (coords,)


def _read(frame: Any, axis: str, value_filter: str | None, coords: Any, columns: Any) -> Any:
    _check_columns(frame, columns, axis)
    try:
        table = frame.read(coords=_coords(coords), column_names=columns, value_filter=value_filter)
        return table.concat().to_pandas()
    except _READ_ERRORS as exc:
        raise CensusQueryError(
            f"Cannot read {axis} with value_filter {value_filter!r} and coords {coords!r}: {exc}. "
            f"The {axis} columns are {_listed(frame.schema.names)}."
        ) from exc


def get_obs(
    census: Any,
    organism: str,
    *,
    value_filter: str | None = None,
    coords: Any = slice(None),
    column_names: Sequence[str] | None = None,
    modality: str = "census_data",
) -> pd.DataFrame:
    """The cell metadata (obs) of the cells that ``value_filter`` and ``coords`` select."""
    experiment = get_experiment(census, organism, modality)
    return _read(experiment.obs, "obs", value_filter, coords, column_names)


def get_var(
    census: Any,
    organism: str,
    *,
    value_filter: str | None = None,
    coords: Any = slice(None),
    column_names: Sequence[str] | None = None,
    modality: str = "census_data",
) -> pd.DataFrame:
    """The gene metadata (var of measurement ``RNA``) of the genes selected."""
    experiment = get_experiment(census, organism, modality)
    return _read(_measurement(experiment, "RNA").var, "var", value_filter, coords, column_names)


def get_presence_matrix(
    census: Any, organism: str, measurement_name: str = "RNA", modality: str = "census_data"
) -> sparse.csr_matrix:
    """Which dataset measured which gene: a CSR matrix, rows the datasets' ``soma_joinid``
    (``census_info/datasets``), columns the genes' ``soma_joinid`` (var)."""
    measurement = _measurement(get_experiment(census, organism, modality), measurement_name)
    if "feature_dataset_presence_matrix" not in measurement:
        raise CensusQueryError(
            f"Measurement {measurement_name!r} has no feature_dataset_presence_matrix."
        )
    presence = measurement["feature_dataset_presence_matrix"]
    return presence.read((slice(None),)).coos().concat().to_scipy().tocsr()


def _column_names(
    column_names: dict | None, obs: Sequence[str] | None, var: Sequence[str] | None
) -> tuple[Sequence[str] | None, Sequence[str] | None]:
    if column_names is None:
        return obs, var
    if obs is not None or var is not None:
        raise CensusQueryError(
            "Give column_names (deprecated) or obs_column_names/var_column_names, not both."
        )
    return column_names.get("obs"), column_names.get("var")


def get_anndata(
    census: Any,
    organism: str,
    measurement_name: str = "RNA",
    X_name: str = "raw",  # noqa: N803 - the Census API's name
    X_layers: Sequence[str] | None = (),  # noqa: N803
    obsm_layers: Sequence[str] | None = (),
    obsp_layers: Sequence[str] | None = (),
    varm_layers: Sequence[str] | None = (),
    varp_layers: Sequence[str] | None = (),
    obs_value_filter: str | None = None,
    obs_coords: Any = None,
    var_value_filter: str | None = None,
    var_coords: Any = None,
    column_names: dict | None = None,
    obs_embeddings: Sequence[str] | None = (),
    var_embeddings: Sequence[str] | None = (),
    obs_column_names: Sequence[str] | None = None,
    var_column_names: Sequence[str] | None = None,
    modality: str = "census_data",
) -> anndata.AnnData:
    """The selected cells and genes as an AnnData: X from layer ``X_name`` (more layers with
    ``X_layers``), obs and var with the given columns (all by default)."""
    if obs_embeddings or var_embeddings:
        raise CensusQueryError(
            f"Embeddings ({_listed([*(obs_embeddings or ()), *(var_embeddings or ())])}) are not "
            "available offline: they live in the Census's contributed stores. Drop "
            "obs_embeddings/var_embeddings, or read an obsm layer of the store with obsm_layers."
        )
    experiment = get_experiment(census, organism, modality)
    measurement = _measurement(experiment, measurement_name)
    layers = list(measurement.X.keys())
    for layer in [X_name, *(X_layers or ())]:
        if layer not in layers:
            raise CensusQueryError(
                f"Unknown X layer {layer!r} of measurement {measurement_name!r}: it has "
                f"{_listed(layers)}."
            )
    obs_columns, var_columns = _column_names(column_names, obs_column_names, var_column_names)
    _check_columns(experiment.obs, obs_columns, "obs")
    _check_columns(measurement.var, var_columns, "var")
    try:
        with experiment.axis_query(
            measurement_name,
            obs_query=tiledbsoma.AxisQuery(
                value_filter=obs_value_filter, coords=_coords(obs_coords)
            ),
            var_query=tiledbsoma.AxisQuery(
                value_filter=var_value_filter, coords=_coords(var_coords)
            ),
        ) as query:
            return query.to_anndata(
                X_name=X_name,
                column_names={"obs": obs_columns, "var": var_columns},
                X_layers=X_layers or (),
                obsm_layers=obsm_layers or (),
                obsp_layers=obsp_layers or (),
                varm_layers=varm_layers or (),
                varp_layers=varp_layers or (),
            )
    except _READ_ERRORS as exc:
        raise CensusQueryError(
            f"Cannot query {organism!r} with obs_value_filter {obs_value_filter!r} and "
            f"var_value_filter {var_value_filter!r}: {exc}. The obs columns are "
            f"{_listed(experiment.obs.schema.names)}; the var columns "
            f"{_listed(measurement.var.schema.names)}."
        ) from exc
