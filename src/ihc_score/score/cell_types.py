"""Cell types from nucleus morphology and neighbourhood: tumour cells apart from immune and other cells.

S100A9 is abundant in neutrophils and monocytes / macrophages, and the call
is about the tumour cells, so each detected cell gets a type from what the
image shows of it without its DAB (a score must not decide which cells it
counts by their stain): its nucleus (area, hematoxylin density and texture,
elongation, roughness), its cell-to-nucleus area ratio, and the mean of
each of these over its neighbours within ``neighbourhood_um`` together with
how many neighbours it has (QuPath's smoothed features: tumour cells sit
among tumour cells). A :class:`CellTypeModel` is a multinomial logistic
regression on standardised features, stored as JSON (``ihc-score-cell-
types/1``) and applied here with NumPy; :mod:`ihc_score.score.cell_type_fit`
fits one. Pure functions over a :class:`~ihc_score.cells.CellTable`
(analysis px, ``mpp_um`` um per px).

Limits: small-cell carcinoma nuclei (8 +- 1.5 um) overlap lymphocytes in
size, and a strongly DAB-stained nucleus reads as denser hematoxylin than
its chromatin holds (DAB leaks into it, above all where the stain reaches
the sensor's floor), so its density and texture features shift with the
stain; :data:`SHAPE_FEATURES` hold none of them, and
:func:`~ihc_score.score.cell_type_fit.stain_independence` measures what a
model does with the rest.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ihc_score.cells import CellTable

__all__ = [
    "CELL_TYPES",
    "NON_TUMOUR_TYPES",
    "PACKAGED_CELL_TYPES_PATH",
    "CellTypeParams",
    "OWN_FEATURES",
    "SHAPE_FEATURES",
    "FEATURE_SETS",
    "CELL_TYPE_SCHEMA",
    "CellTypeModel",
    "cell_type_features",
    "predict_cell_types",
    "load_cell_type_model",
    "resolve_cell_type_model",
    "cell_type_model_json",
    "stain_check_warning",
]

#: Every type a cell can have; a model predicts a subset of them.
CELL_TYPES: tuple[str, ...] = ("tumour", "lymphocyte", "neutrophil", "macrophage", "other")
#: Features of a cell itself; each also enters as the mean over its neighbours (``nb_`` prefix).
OWN_FEATURES: tuple[str, ...] = (
    "log_nucleus_area_um2", "hematoxylin_od_mean", "hematoxylin_od_sd", "nucleus_elongation", "nucleus_roughness",
    "log_cell_to_nucleus_area",
)
#: The features that hold no stain intensity: nucleus size and shape only. A strongly DAB-stained nucleus
#: reads as dense hematoxylin (DAB leaks into it, most where the stain saturates the sensor), and a cell's
#: stained body reaches as far as its DAB does, so the other features choose cells partly by their stain.
SHAPE_FEATURES: tuple[str, ...] = ("log_nucleus_area_um2", "nucleus_elongation", "nucleus_roughness")
#: Named sets of own features a model can be fitted on (``ihc-score train-cells --features``).
FEATURE_SETS: dict[str, tuple[str, ...]] = {"all": OWN_FEATURES, "shape": SHAPE_FEATURES}
CELL_TYPE_SCHEMA = "ihc-score-cell-types/1"
#: Where the packaged models are.
_PACKAGED = Path(__file__).resolve().parents[1] / "models"
#: The packaged cell-type model (``benchmarks/cell_types.py --write``).
PACKAGED_CELL_TYPES_PATH = _PACKAGED / "cell-types.json"
#: The types other than tumour: those a metastasis's outputs count apart.
NON_TUMOUR_TYPES: tuple[str, ...] = tuple(t for t in CELL_TYPES if t != "tumour")


@dataclass(frozen=True)
class CellTypeParams:
    """The cell-type step of a scoring model: which model types the cells, and which types are scored.

    Parameters
    ----------
    model : str
        Cell-type model file (:data:`CELL_TYPE_SCHEMA`), relative to the
        scoring model's folder or absolute; empty: no cell-type step, every
        cell is scored.
    sha256 : str
        sha256 of that file, required with it (a changed file is refused, not used).
    scored : tuple of str
        Types whose cells a region's score counts; the others are counted apart.
    max_left_out_fraction : float
        A region whose left-out cells exceed this share of its cells says so
        in its call reason (0-1].
    """

    model: str = ""
    sha256: str = ""
    scored: tuple[str, ...] = ("tumour",)
    max_left_out_fraction: float = 0.5

    def __post_init__(self) -> None:
        scored = tuple(self.scored)
        object.__setattr__(self, "scored", scored)
        if not scored or any(t not in CELL_TYPES for t in scored):
            raise ValueError(f"scored must name one or more of {CELL_TYPES}, got {self.scored!r}")
        if not 0.0 < self.max_left_out_fraction <= 1.0:
            raise ValueError(f"max_left_out_fraction must be in (0, 1], got {self.max_left_out_fraction!r}")


def _feature_names(own: tuple[str, ...] = OWN_FEATURES) -> tuple[str, ...]:
    return own + tuple(f"nb_{f}" for f in own) + ("log1p_neighbours",)


def _ordered_subset(own: tuple[str, ...]) -> bool:
    """Whether ``own`` is one or more of :data:`OWN_FEATURES`, each once and in their order."""
    return bool(own) and own == tuple(f for f in OWN_FEATURES if f in own)


def _own_of(names: tuple[str, ...]) -> tuple[str, ...] | None:
    """The own features a full feature list is made of, or None when it is not one :func:`_feature_names` makes."""
    own = tuple(n for n in names if n in OWN_FEATURES)
    return own if _ordered_subset(own) and _feature_names(own) == tuple(names) else None


@dataclass(frozen=True)
class CellTypeModel:
    """A multinomial logistic regression from cell features to cell types.

    Parameters
    ----------
    id : str
        Name of the model.
    types : tuple of str
        The types it predicts (each in :data:`CELL_TYPES`), in the order of ``coef`` rows.
    mean, scale : tuple of float
        Standardisation of each feature (:func:`cell_type_features` order): ``z = (x - mean) / scale``.
    coef : tuple of tuple of float
        (n_types, n_features) weights on ``z``.
    intercept : tuple of float
        (n_types,) biases.
    neighbourhood_um : float
        Radius of the neighbourhood features, um.
    info : dict
        What it was trained on and how well it did (kept as written, not used to predict).
    features : tuple of str
        The cell's own features it uses, a subset of :data:`OWN_FEATURES` in
        their order; each also enters as its neighbours' mean, and the
        number of neighbours is always last.
    """

    id: str
    types: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[tuple[float, ...], ...]
    intercept: tuple[float, ...]
    neighbourhood_um: float = 30.0
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    features: tuple[str, ...] = OWN_FEATURES

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        if not _ordered_subset(self.features):
            raise ValueError(f"features must be one or more of {OWN_FEATURES}, in that order, got {self.features!r}")
        n_f = len(_feature_names(self.features))
        unknown = [t for t in self.types if t not in CELL_TYPES]
        if unknown or len(set(self.types)) != len(self.types) or len(self.types) < 2:
            raise ValueError(f"types must be 2 or more distinct names of {CELL_TYPES}, got {self.types!r}")
        if len(self.mean) != n_f or len(self.scale) != n_f or any(not s > 0 for s in self.scale):
            raise ValueError(f"mean and scale must hold {n_f} values, scale > 0")
        if len(self.coef) != len(self.types) or any(len(row) != n_f for row in self.coef):
            raise ValueError(f"coef must be {len(self.types)} rows of {n_f} weights")
        if len(self.intercept) != len(self.types):
            raise ValueError(f"intercept must hold {len(self.types)} values")
        if not all(math.isfinite(v) for row in (self.mean, self.scale, self.intercept, *self.coef) for v in row):
            raise ValueError("cell-type model weights must be finite numbers")
        if not 0.0 < self.neighbourhood_um <= 200.0:
            raise ValueError(f"neighbourhood_um must be in (0, 200] um, got {self.neighbourhood_um!r}")


def cell_type_features(
    cells: CellTable, *, mpp_um: float, neighbourhood_um: float, own: tuple[str, ...] = OWN_FEATURES
) -> np.ndarray:
    """Features of each cell (columns named by ``_feature_names(own)``), float64 (n, 2 * len(own) + 1).

    A cell's neighbours are the other cells whose nuclei lie within
    ``neighbourhood_um`` of its own; a cell without any takes its own
    values as their mean. A cell lacking a value (no cytoplasm, no
    nucleus pixels) gets the column's median, so that one NaN never
    decides a type.
    """
    n = len(cells)
    columns = {
        "log_nucleus_area_um2": lambda: np.log(np.maximum(cells.nucleus_area_um2, 1e-3)),
        "hematoxylin_od_mean": lambda: cells.hematoxylin_od_mean,
        "hematoxylin_od_sd": lambda: cells.hematoxylin_od_sd,
        "nucleus_elongation": lambda: cells.nucleus_elongation,
        "nucleus_roughness": lambda: cells.nucleus_roughness,
        "log_cell_to_nucleus_area": lambda: np.log(
            np.maximum(cells.cell_area_um2, 1e-3) / np.maximum(cells.nucleus_area_um2, 1e-3)),
    }
    values = np.column_stack([columns[f]() for f in own]).astype(np.float64) if n else np.zeros((0, len(own)))
    bad = ~np.isfinite(values)
    if bad.any():
        with np.errstate(all="ignore"):
            median = np.nan_to_num(np.nanmedian(np.where(bad, np.nan, values), axis=0))
        values = np.where(bad, median, values)
    from scipy.sparse import csr_matrix  # here, not at import: every worker imports this module, few type cells
    from scipy.spatial import cKDTree

    xy = np.column_stack([cells.a_x, cells.a_y]).astype(np.float64) * mpp_um
    pairs = cKDTree(xy).query_pairs(neighbourhood_um, output_type="ndarray") if n > 1 else np.zeros((0, 2), int)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    adjacency = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        neighbours = np.where(degree[:, None] > 0, (adjacency @ values) / degree[:, None], values)
    return np.column_stack([values, neighbours, np.log1p(degree)])


def predict_cell_types(model: CellTypeModel, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's most probable type and that probability.

    Returns
    -------
    type_index : ndarray of int8
        Index into :data:`CELL_TYPES` (not into ``model.types``).
    probability : ndarray of float32
        The winning type's probability (0-1).
    """
    if len(features) == 0:
        return np.zeros(0, np.int8), np.zeros(0, np.float32)
    z = (features - np.asarray(model.mean)) / np.asarray(model.scale)
    logits = z @ np.asarray(model.coef).T + np.asarray(model.intercept)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    best = p.argmax(axis=1)
    to_global = np.array([CELL_TYPES.index(t) for t in model.types], dtype=np.int8)
    return to_global[best], p[np.arange(len(p)), best].astype(np.float32)


def cell_type_model_json(model: CellTypeModel) -> str:
    """The model as its JSON file's text (sorted keys, newline at the end)."""
    data = {
        "schema": CELL_TYPE_SCHEMA, "id": model.id, "types": list(model.types),
        "features": list(_feature_names(model.features)),
        "neighbourhood_um": model.neighbourhood_um,
        "standardize": {"mean": list(model.mean), "scale": list(model.scale)},
        "logistic": {"coef": [list(r) for r in model.coef], "intercept": list(model.intercept)},
        "info": model.info,
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def load_cell_type_model(path: Path, sha256: str | None = None) -> CellTypeModel:
    """Read a cell-type model file, checking its schema, features and (when given) its sha256.

    Raises
    ------
    ValueError
        With a one-line reason: unreadable, another schema, other features, a sha256 that differs.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except (OSError, ValueError) as e:
        raise ValueError(f"cell-type model {path}: cannot be read as JSON ({e})") from None
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise ValueError(f"cell-type model {path}: sha256 differs from the one the scoring model names; "
                         "retrain or update the reference")
    if not isinstance(data, dict) or data.get("schema") != CELL_TYPE_SCHEMA:
        raise ValueError(f"cell-type model {path}: schema must be {CELL_TYPE_SCHEMA!r}")
    own = _own_of(tuple(data.get("features", ())))
    if own is None:
        raise ValueError(f"cell-type model {path}: features must be some of {list(OWN_FEATURES)} in that order, "
                         "then each with 'nb_' before it, then 'log1p_neighbours'")
    try:
        return CellTypeModel(
            id=str(data["id"]), types=tuple(data["types"]), mean=tuple(data["standardize"]["mean"]),
            scale=tuple(data["standardize"]["scale"]), coef=tuple(tuple(r) for r in data["logistic"]["coef"]),
            intercept=tuple(data["logistic"]["intercept"]), neighbourhood_um=float(data["neighbourhood_um"]),
            info=dict(data.get("info", {})), features=own,
        )
    except (KeyError, TypeError) as e:
        raise ValueError(f"cell-type model {path}: missing or malformed entry {e}") from None


def resolve_cell_type_model(folder: Path, params: CellTypeParams, *, margin_um: float) -> CellTypeModel | None:
    """The model ``params.model`` names, checked against the scoring model; None without one.

    A relative path is looked for in ``folder`` (the scoring model's), then
    among the packaged models; the sha256 makes sure it is the file named.

    Raises
    ------
    ValueError
        Naming the ``cell_types`` key at fault: no sha256, an unreadable or
        changed file, a scored type the model never predicts, or tile margins
        (``margin_um``, um) narrower than its neighbourhood.
    """
    if not params.model:
        return None
    if len(params.sha256) != 64:
        raise ValueError(f"'cell_types.sha256' must be the 64 hex digits of {params.model}")
    path = Path(folder) / params.model
    if not path.is_file() and (_PACKAGED / params.model).is_file():
        path = _PACKAGED / params.model  # a model derived elsewhere from the packaged one still finds its file
    try:
        typer = load_cell_type_model(path, params.sha256)
    except ValueError as err:
        raise ValueError(f"'cell_types.model': {err}") from None
    missing = [t for t in params.scored if t not in typer.types]
    if missing:
        raise ValueError(f"'cell_types.scored' names {missing}, which {params.model} never predicts")
    if margin_um < typer.neighbourhood_um:
        raise ValueError(f"'analysis.margin_um' ({margin_um:g}) must be at least the cell-type neighbourhood "
                         f"({typer.neighbourhood_um:g} um), or tile edges would change the types")
    return typer


def stain_check_warning(typer: CellTypeModel | None) -> str | None:
    """One line when a cell-type model's own stain check found that it chooses cells by their stain; else None.

    Reads what :func:`ihc_score.run.train_cell_types` (``info["stain"]``) and
    ``benchmarks/cell_types.py --write`` (``info["stain_check"]``, per data
    set) record of :func:`~ihc_score.score.cell_type_fit.stain_independence`.
    """
    if typer is None:
        return None
    checks = [("its labelled cells", typer.info.get("stain"))]
    per_set = typer.info.get("stain_check")
    if isinstance(per_set, dict):
        checks += list(per_set.items())
    found = [(name, c) for name, c in checks if isinstance(c, dict) and c.get("stain_dependent")]
    if not found:
        return None
    gap = max(float(c.get("gap") or 0.0) for _, c in found)
    return (f"cell-type model {typer.id}: its stain check found that the share of tumour cells it keeps differs by up "
            f"to {gap:.0%} between DAB classes ({', '.join(name for name, _ in found)}), so it chooses cells partly "
            "by their stain and can lower positive scores (README, 'The stain check')")
