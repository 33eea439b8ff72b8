"""Fit a :class:`~ihc_score.score.cell_types.CellTypeModel` to cells whose types are known.

Scikit-learn's multinomial logistic regression on standardised features,
each type weighted by the inverse of its share (a rare type is not drowned
by the common one); the fitted weights go into the model file, and
prediction needs NumPy only (:func:`ihc_score.score.cell_types.predict_cell_types`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ihc_score.score.cell_types import CELL_TYPES, OWN_FEATURES, CellTypeModel

__all__ = ["fit_cell_types", "match_points", "MIN_CELLS_PER_TYPE", "stain_independence", "MAX_STAIN_GAP"]

#: Fewest labelled cells of a type that a model is fitted for.
MIN_CELLS_PER_TYPE = 20
#: Largest difference, between the DAB classes of the cells labelled tumour, in the share typed tumour
#: before a model is said to choose its cells by their stain (0-1; a share of 0.05 moves an H-score
#: of a half-positive region by about 2-5 points).
MAX_STAIN_GAP = 0.10
#: Fewest labelled tumour cells of a class for its share to be compared.
_MIN_CELLS_PER_CLASS = 20


def stain_independence(truth: np.ndarray, predicted: np.ndarray, dab_class: np.ndarray) -> dict[str, Any]:
    """Of the cells labelled tumour, the share typed tumour in each DAB class, and the largest gap between them.

    A cell-type step must not choose the cells a score counts by their
    stain; one that keeps fewer strongly stained tumour cells than unstained
    ones lowers every positive score. Only classes with at least 20
    labelled tumour cells are compared.

    Parameters
    ----------
    truth, predicted : array of str
        Each labelled cell's type and the type a model gave it (ideally one
        not fitted on that cell).
    dab_class : array of int
        Each cell's class (0, 1+, 2+, 3+ as 0-3) under the scoring model.

    Returns
    -------
    dict
        ``kept_by_class`` ({"0": share, "1+": share, ...}, 0-1, with ``cells_by_class``),
        ``gap`` (largest minus smallest share, None with fewer than two classes)
        and ``stain_dependent`` (``gap > MAX_STAIN_GAP``).
    """
    tumour = np.asarray(truth) == "tumour"
    kept = np.asarray(predicted)[tumour] == "tumour"
    classes = np.asarray(dab_class)[tumour]
    names = ("0", "1+", "2+", "3+")
    shares = {names[k]: round(float(kept[classes == k].mean()), 3) for k in range(4)
              if np.sum(classes == k) >= _MIN_CELLS_PER_CLASS}
    cells = {names[k]: int(np.sum(classes == k)) for k in range(4) if np.any(classes == k)}
    gap = round(max(shares.values()) - min(shares.values()), 3) if len(shares) > 1 else None
    return {"kept_by_class": shares, "cells_by_class": cells, "gap": gap,
            "stain_dependent": bool(gap is not None and gap > MAX_STAIN_GAP)}


def match_points(points_xy: np.ndarray, cells_xy: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs (point index, cell index) within ``radius``, the closest pairs first.

    Greedy by distance rather than an optimal assignment, so that a slide of
    a million cells is matched in one sort; points and cells in the same
    units (e.g. um).
    """
    from scipy.spatial import cKDTree

    none = (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp))
    if len(points_xy) == 0 or len(cells_xy) == 0:
        return none
    pairs = cKDTree(points_xy).sparse_distance_matrix(cKDTree(cells_xy), radius, output_type="coo_matrix")
    order = np.argsort(pairs.data, kind="stable")
    used_point = np.zeros(len(points_xy), bool)
    used_cell = np.zeros(len(cells_xy), bool)
    out_p, out_c = [], []
    for p, c in zip(pairs.row[order], pairs.col[order]):
        if not used_point[p] and not used_cell[c]:
            used_point[p] = used_cell[c] = True
            out_p.append(p)
            out_c.append(c)
    return np.asarray(out_p, dtype=np.intp), np.asarray(out_c, dtype=np.intp)


def fit_cell_types(
    features: np.ndarray, labels: np.ndarray, *, model_id: str, neighbourhood_um: float,
    regularization: float = 1.0, info: dict[str, Any] | None = None, own: tuple[str, ...] = OWN_FEATURES,
) -> CellTypeModel:
    """A cell-type model fitted to ``features`` (:func:`~ihc_score.score.cell_types.cell_type_features`).

    Parameters
    ----------
    features : ndarray, (n, n_features)
    labels : sequence of str
        Each cell's type, one of :data:`~ihc_score.score.cell_types.CELL_TYPES`.
    model_id : str
    neighbourhood_um : float
        The radius the features were computed with.
    regularization : float
        Inverse L2 strength (scikit-learn's ``C``).
    info : dict, optional
        Written into the model; the cell count of each type is added.
    own : tuple of str
        The cell's own features ``features`` was computed from (``own`` of
        :func:`~ihc_score.score.cell_types.cell_type_features`).

    Raises
    ------
    ValueError
        An unknown type, fewer than two types, or a type with fewer than
        :data:`MIN_CELLS_PER_TYPE` cells.
    """
    from sklearn.linear_model import LogisticRegression  # only when fitting: scoring never needs it

    labels = np.asarray(labels, dtype=str)
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} feature rows for {len(labels)} labels")
    unknown = sorted(set(labels) - set(CELL_TYPES))
    if unknown:
        raise ValueError(f"unknown cell types {unknown}: use {list(CELL_TYPES)}")
    types = tuple(t for t in CELL_TYPES if t in set(labels))
    counts = {t: int(np.sum(labels == t)) for t in types}
    few = [f"{t} ({c})" for t, c in counts.items() if c < MIN_CELLS_PER_TYPE]
    if len(types) < 2 or few:
        raise ValueError(f"need at least 2 types with {MIN_CELLS_PER_TYPE} labelled cells each; "
                         f"have {counts}" + (f", too few: {', '.join(few)}" if few else ""))
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    fit = LogisticRegression(C=regularization, class_weight="balanced", max_iter=5000)
    fit.fit((x - mean) / scale, np.array([types.index(t) for t in labels]))
    coef, intercept = fit.coef_, fit.intercept_
    if len(types) == 2:  # scikit-learn keeps one row for two classes: the second type's logit against 0
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    return CellTypeModel(
        id=model_id, types=types, mean=tuple(mean.tolist()), scale=tuple(scale.tolist()),
        coef=tuple(tuple(r) for r in coef.tolist()), intercept=tuple(intercept.tolist()),
        neighbourhood_um=neighbourhood_um, info={**(info or {}), "cells_per_type": counts}, features=own,
    )
