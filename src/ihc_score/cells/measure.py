"""Per-cell measurements: the :class:`CellTable` and :func:`measure_cells`.

:func:`measure_cells` measures the nucleus, cytoplasm (cell minus nucleus)
and whole cell of every labelled cell in one pass over the pixels
(:func:`ihc_score.cells._kernels.label_stats`), from the nucleus and cell label images of
:func:`ihc_score.cells.detect.detect_nuclei` and :func:`ihc_score.cells.detect.expand_cells`
and the stain OD channels of :func:`ihc_score.stain.deconvolution.deconvolve`. Both names
are offered by :mod:`ihc_score.cells`.

Conventions
-----------
* Label images are int32, 0 = background, objects numbered 1..n; a cell has
  the number of its nucleus.
* Coordinates are (x, y) = (column, row) in the pixel frame of the image
  given (analysis pixels, ``a_`` prefix), pixel centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = [
    "CellTable",
    "measure_cells",
]


_COLUMNS = (
    "a_x",
    "a_y",
    "nucleus_area_um2",
    "cell_area_um2",
    "hematoxylin_od_mean",
    "hematoxylin_od_sd",
    "nucleus_elongation",
    "nucleus_roughness",
    "dab_nucleus_mean",
    "dab_nucleus_max",
    "dab_cytoplasm_mean",
    "dab_cytoplasm_max",
    "dab_cell_mean",
    "dab_cell_max",
)


@dataclass(frozen=True)
class CellTable:
    """Per-cell measurements, columnar: float32 arrays of equal length.

    Attributes
    ----------
    a_x, a_y : ndarray
        Nucleus centroid (column, row) in pixels of the image measured.
    nucleus_area_um2, cell_area_um2 : ndarray
        Areas (um^2); the cell includes its nucleus.
    hematoxylin_od_mean, hematoxylin_od_sd : ndarray
        Mean and standard deviation of hematoxylin OD over the nucleus (the
        SD as texture: chromatin clumps, a lymphocyte's dense nucleus).
    nucleus_elongation : ndarray
        Ratio of the nucleus's long to short axis (>= 1), from its second
        moments with each pixel a unit square.
    nucleus_roughness : ndarray
        Edge pixels (a 4-neighbour outside the nucleus) over the perimeter
        of a disc of the same area: about 0.9-1 for a round nucleus, more
        for a lobed or ragged one.
    dab_nucleus_mean, dab_nucleus_max : ndarray
        DAB OD mean and max over the nucleus.
    dab_cytoplasm_mean, dab_cytoplasm_max : ndarray
        DAB OD over the cell minus its nucleus; NaN for a cell without
        cytoplasm pixels (a nucleus walled in by its neighbours).
    dab_cell_mean, dab_cell_max : ndarray
        DAB OD over the whole cell.
    """

    a_x: np.ndarray
    a_y: np.ndarray
    nucleus_area_um2: np.ndarray
    cell_area_um2: np.ndarray
    hematoxylin_od_mean: np.ndarray
    hematoxylin_od_sd: np.ndarray
    nucleus_elongation: np.ndarray
    nucleus_roughness: np.ndarray
    dab_nucleus_mean: np.ndarray
    dab_nucleus_max: np.ndarray
    dab_cytoplasm_mean: np.ndarray
    dab_cytoplasm_max: np.ndarray
    dab_cell_mean: np.ndarray
    dab_cell_max: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for f in fields(self):
            col = np.asarray(getattr(self, f.name), dtype=np.float32)
            if col.ndim != 1:
                raise ValueError(f"{f.name} must be one-dimensional, got shape {col.shape}")
            if n is None:
                n = len(col)
            elif len(col) != n:
                raise ValueError(f"{f.name} has {len(col)} rows, expected {n}")
            object.__setattr__(self, f.name, col)

    def __len__(self) -> int:
        return len(self.a_x)

    def take(self, index: np.ndarray) -> CellTable:
        """Rows selected by an integer index or a boolean mask."""
        return CellTable(**{name: getattr(self, name)[index] for name in _COLUMNS})

    @classmethod
    def concat(cls, tables: list[CellTable] | tuple[CellTable, ...]) -> CellTable:
        """Rows of several tables, in order."""
        if not tables:
            return cls.empty()
        return cls(**{name: np.concatenate([getattr(t, name) for t in tables]) for name in _COLUMNS})

    @classmethod
    def empty(cls) -> CellTable:
        """A table without rows."""
        return cls(**{name: np.zeros(0, dtype=np.float32) for name in _COLUMNS})


def _elongation(var_x: np.ndarray, var_y: np.ndarray, cov_xy: np.ndarray) -> np.ndarray:
    """Long over short axis from second central moments (px^2); each pixel a unit square adds 1/12 to both."""
    half_sum = 0.5 * (var_x + var_y) + 1.0 / 12.0
    root = np.sqrt(0.25 * (var_x - var_y) ** 2 + cov_xy * cov_xy)
    return np.sqrt((half_sum + root) / np.maximum(half_sum - root, 1e-6))


def _check_mpp(mpp_um: float) -> None:
    if not np.isfinite(mpp_um) or mpp_um <= 0:
        raise ValueError(f"mpp_um must be a positive pixel size in um, got {mpp_um!r}")


def measure_cells(
    nuclei: np.ndarray,
    cells: np.ndarray,
    hematoxylin_od: np.ndarray,
    dab_od: np.ndarray,
    *,
    mpp_um: float,
) -> CellTable:
    """Per-cell measurements of nucleus, cytoplasm and whole cell.

    Parameters
    ----------
    nuclei, cells : ndarray, int32, shape (H, W)
        Labels from :func:`ihc_score.cells.detect.detect_nuclei` and :func:`ihc_score.cells.detect.expand_cells` (a cell
        contains its nucleus; labels 1..n).
    hematoxylin_od, dab_od : ndarray, float, shape (H, W)
        Stain OD channels.
    mpp_um : float
        Pixel size (um per pixel).

    Returns
    -------
    CellTable
        One row per label 1..n, in label order. Cytoplasm = cell minus
        nucleus.
    """
    from . import _kernels  # on first use: see its docstring
    _check_mpp(mpp_um)
    shape = nuclei.shape
    if cells.shape != shape or hematoxylin_od.shape != shape or dab_od.shape != shape:
        raise ValueError("nuclei, cells, hematoxylin_od and dab_od must have the same shape")
    nuc = np.ascontiguousarray(nuclei, dtype=np.int32).ravel()
    cel = np.ascontiguousarray(cells, dtype=np.int32).ravel()
    n = int(max(nuc.max(initial=0), cel.max(initial=0)))
    if n == 0:
        return CellTable.empty()
    # One pass over the pixels; reshape, not ravel: a channel of an
    # (H, W, 3) array is viewed, not copied.
    area_n, area_c, sum_x, sum_y, sum_h, sum_dn, sum_dc, max_n, max_c, sum_hh, sum_xx, sum_yy, sum_xy, edge = (
        a[1:] for a in _kernels.label_stats(nuc, cel, hematoxylin_od.reshape(-1), dab_od.reshape(-1), shape[1], n)
    )
    area_cyto = area_c - area_n
    with np.errstate(invalid="ignore", divide="ignore"):
        nan_n = np.where(area_n > 0, 1.0, np.nan)
        mean_x, mean_y, mean_h = sum_x / area_n, sum_y / area_n, sum_h / area_n
        table = CellTable(
            a_x=mean_x,
            a_y=mean_y,
            nucleus_area_um2=area_n * mpp_um * mpp_um,
            cell_area_um2=area_c * mpp_um * mpp_um,
            hematoxylin_od_mean=mean_h,
            hematoxylin_od_sd=np.sqrt(np.maximum(sum_hh / area_n - mean_h * mean_h, 0.0)),
            nucleus_elongation=_elongation(sum_xx / area_n - mean_x * mean_x, sum_yy / area_n - mean_y * mean_y,
                                           sum_xy / area_n - mean_x * mean_y),
            nucleus_roughness=edge / (2.0 * np.sqrt(np.pi * area_n)),
            dab_nucleus_mean=sum_dn / area_n,
            dab_nucleus_max=np.where(area_n > 0, max_n, np.nan),
            dab_cytoplasm_mean=np.where(area_cyto > 0, (sum_dc - sum_dn) / area_cyto, np.nan),
            dab_cytoplasm_max=np.where(area_cyto > 0, max_c, np.nan),
            dab_cell_mean=sum_dc / area_c,
            dab_cell_max=np.maximum(max_n, max_c) * nan_n,
        )
    return table
