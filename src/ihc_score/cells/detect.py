"""Nucleus detection, cell expansion and per-cell measurements.

The reference is QuPath's watershed cell detection [1]_: background
subtraction, Gaussian smoothing, an optical-density threshold, splitting of
touching nuclei from markers, nucleus area limits, and cells grown from their
nuclei by a fixed distance without overlapping their neighbours. Every size
is given in micrometres (``_um``) or square micrometres (``_um2``) and turned
into pixels at the point of use from the pixel size ``mpp_um`` of the image
given, so one set of parameters gives the same cells at any pixel size.

Steps of :func:`detect_nuclei`
------------------------------
1. Background: the grey opening of the channel by a ball of
   ``background_radius_um`` is subtracted (QuPath uses opening by
   reconstruction; a plain opening, like ImageJ's rolling ball, is used
   here because it is local and fast). It is estimated at half resolution
   by an octagon, then widened by 2 px and capped by the image, which
   removes a structure wider than the ball whole.
2. Gaussian smoothing (``sigma_um``) and the threshold ``threshold_od``
   give the foreground; small holes in it are filled.
3. Markers: maxima of the smoothed channel within 3 um (plateaus merged).
   Each marker grows into its core (pixels at >= half its peak), and each
   foreground pixel goes to the nearest core, so touching nuclei are cut
   along the valley between them (a fast stand-in for the marker-controlled
   watershed: two labelled distance transforms, at half resolution, instead
   of a priority flood). A blob with a single marker is one nucleus.
4. Each nucleus ends where the smoothed channel falls below 45 % of its own
   peak (about the half maximum), so its area follows the stained nucleus
   and not how far the blur of a dark nucleus reaches above the threshold.
5. Nuclei outside ``min_area_um2`` .. ``max_area_um2`` are dropped.

:func:`expand_cells` then gives every pixel within ``cell_expansion_um`` of
a nucleus to the nearest nucleus, and :func:`measure_cells` measures all
cells at once with ``np.bincount`` and ``np.maximum.at``.

Conventions
-----------
* Inputs are stain concentrations in base-10 OD units against the slide's
  background (:func:`ihc_score.stain.deconvolution.deconvolve`), float32, shape (H, W).
* Label images are int32, 0 = background, objects numbered 1..n; a cell has
  the number of its nucleus.
* Coordinates are (x, y) = (column, row) in the pixel frame of the image
  given (analysis pixels, ``a_`` prefix), pixel centres at integers.

References
----------
.. [1] P. Bankhead et al., "QuPath: Open source software for digital
   pathology image analysis", Sci. Rep. 7, 16878 (2017);
   ``qupath.imagej.detect.cells.WatershedCellDetection``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ihc_score.cells._background import _subtract_background, _surely_empty
from ihc_score.cells._nuclei import (
    _CORE_FRACTION,
    _HOLE_FRACTION,
    _SPLIT_MIN_DISTANCE_UM,
    _block_max,
    _foreground,
    _maxima,
    _nearest_seed,
    _partition,
    _smooth,
    _trim,
)
from ihc_score.cells.measure import CellTable, _check_mpp, measure_cells
from ihc_score.checks import require_range

__all__ = [
    "DetectionParams",
    "detection_image",
    "detect_nuclei",
    "expand_cells",
    "detect_cells",
    "tile_margin_um",
]

Channel = Literal["hematoxylin", "hematoxylin_dab"]


@dataclass(frozen=True)
class DetectionParams:
    """Parameters of nucleus and cell detection (physical units).

    Defaults are QuPath's watershed cell detection defaults except where a
    measurement on the Ki67 images with ground truth chose otherwise
    (``benchmarks/ki67_accuracy.py``: deepliif bladder and lung, a breast
    field, two glioma fields, all at 0.5 um/px, one nucleus DAB cut-off of
    0.2 OD for all, stains estimated per image; "F1" is the mean
    detection F1 over the five images, "max diff" the largest
    percent-positive error in points). The changed ones say so.

    Parameters
    ----------
    channel : {"hematoxylin", "hematoxylin_dab"}
        Image the nuclei are found on. ``"hematoxylin"`` (default, as
        QuPath) is the hematoxylin OD; ``"hematoxylin_dab"`` is the sum of
        the hematoxylin and DAB OD channels. The sum finds more of the
        dark-brown Ki67-positive nuclei (recall of truth-positive nuclei
        0.82-0.90 vs 0.66-0.87 over a grid of thresholds 0.05-0.1, sigma
        1-1.5 um, split on/off) but pushes percent positive up (max diff
        7.1-13.9 points over that grid vs 4.7-10.6; with the other defaults
        F1 0.71 / max diff 8.6 vs 0.75 / 5.0): positive nuclei keep enough
        hematoxylin to be found on that channel alone, while the sum also
        picks up brown cytoplasm and debris. For S100A9, a cytoplasmic and
        nuclear marker, the sum is worse still: on a 512 x 512 um field of
        the project's synthetic S100A9 slides (946 cells, cell DAB mean
        graded 0.2 / 0.4 / 0.6) hematoxylin gave recall 1.00, precision
        0.96, class agreement 0.999 and the exact H-score (92, strong
        preset 171); the sum made "nuclei" of brown cytoplasm (precision
        0.82 / 0.67) and raised the H-score to 105 / 187. Use the sum only
        for a nuclear marker so strong that positive nuclei show no
        hematoxylin.
    background_radius_um : float
        Radius (um) of the grey opening that estimates the local background
        (QuPath: opening by reconstruction), subtracted before thresholding;
        0 disables it.
    sigma_um : float
        Gaussian smoothing sigma (um).
    threshold_od : float
        Threshold (OD) on the smoothed, background-subtracted channel.
        Default 0.07, below QuPath's 0.1: pale negative nuclei (glioma
        fields with a background near 208/255) reach only 0.07-0.1 OD; with
        0.1 they are missed and percent positive came out 10.6 points too
        high in one field (F1 0.69); 0.07 gives F1 0.75 and max diff 5.0,
        0.05 F1 0.74 and max diff 5.7.
    min_area_um2, max_area_um2 : float
        Nuclei outside these areas (um^2) are dropped.
    split_by_shape : bool
        Touching nuclei are always split at the valleys between maxima of
        the smoothed channel (QuPath's intensity watershed). With this
        option the maxima are taken on the smoothed channel times the
        distance to the background, which also splits blobs that narrow.
        Default False (QuPath: True): it lowered F1 (0.72 vs 0.75) and the
        recall of positive nuclei (0.66 vs 0.81).
    cell_expansion_um : float
        Distance (um) by which a cell extends beyond its nucleus; cells
        never overlap (each pixel goes to the nearest nucleus).
    """

    channel: Channel = "hematoxylin"
    background_radius_um: float = 8.0
    sigma_um: float = 1.5
    threshold_od: float = 0.07
    min_area_um2: float = 10.0
    max_area_um2: float = 400.0
    split_by_shape: bool = False
    cell_expansion_um: float = 5.0

    def __post_init__(self) -> None:
        if self.channel not in ("hematoxylin", "hematoxylin_dab"):
            raise ValueError(f"channel must be 'hematoxylin' or 'hematoxylin_dab', got {self.channel!r}")
        for name in ("background_radius_um", "sigma_um", "cell_expansion_um", "min_area_um2"):
            require_range(name, getattr(self, name), low=0.0)
        require_range("threshold_od", self.threshold_od, low=0.0, low_open=True)
        if not np.isfinite(self.max_area_um2) or self.max_area_um2 <= self.min_area_um2:
            raise ValueError(f"max_area_um2 must be > min_area_um2, got {self.max_area_um2!r} <= {self.min_area_um2!r}")


def tile_margin_um(params: DetectionParams = DetectionParams()) -> float:
    """Context (um) a tile needs on every side for its core cells to be exact.

    A cell whose nucleus centroid lies in a tile's core is detected and
    measured exactly as in the whole image when the tile extends this far
    beyond the core on every side: the reach of the background opening
    (2 radii), of the Gaussian (4 sigma, OpenCV's kernel), of marker
    finding, the largest nucleus (diameter of a disk of ``max_area_um2``,
    doubled for elongated nuclei) and the cell expansion.

    Parameters
    ----------
    params : DetectionParams

    Returns
    -------
    float
        Margin in um (75 um with the defaults).
    """
    nucleus_um = 2.0 * 2.0 * float(np.sqrt(params.max_area_um2 / np.pi))
    return (
        2.0 * params.background_radius_um
        + 4.0 * params.sigma_um
        + _SPLIT_MIN_DISTANCE_UM
        + nucleus_um
        + params.cell_expansion_um
    )


def detection_image(deconvolved: np.ndarray, channel: Channel = "hematoxylin") -> np.ndarray:
    """The single-channel OD image nuclei are found on.

    Parameters
    ----------
    deconvolved : ndarray, float32, shape (H, W, 3)
        Hematoxylin, DAB, residual OD (:func:`ihc_score.stain.deconvolution.deconvolve`).
    channel : {"hematoxylin", "hematoxylin_dab"}
        See :class:`DetectionParams`.

    Returns
    -------
    ndarray, float32, shape (H, W)
    """
    if deconvolved.ndim != 3 or deconvolved.shape[2] < 2:
        raise ValueError(f"deconvolved must have shape (H, W, 3), got {deconvolved.shape}")
    if channel == "hematoxylin":
        return np.ascontiguousarray(deconvolved[..., 0], dtype=np.float32)
    if channel == "hematoxylin_dab":
        return np.add(deconvolved[..., 0], deconvolved[..., 1], dtype=np.float32)
    raise ValueError(f"channel must be 'hematoxylin' or 'hematoxylin_dab', got {channel!r}")


def detect_nuclei(image_od: np.ndarray, *, mpp_um: float, params: DetectionParams = DetectionParams()) -> np.ndarray:
    """Find nuclei on an OD image.

    Parameters
    ----------
    image_od : ndarray, float, shape (H, W)
        Hematoxylin OD, or the channel chosen by ``params.channel`` (see
        :func:`detection_image`), base-10 OD units.
    mpp_um : float
        Pixel size (um per pixel).
    params : DetectionParams

    Returns
    -------
    ndarray, int32, shape (H, W)
        Nucleus labels, 0 = background, 1..n (numbered by the raster order
        of their markers; deterministic for a given image).
    """
    _check_mpp(mpp_um)
    if image_od.ndim != 2:
        raise ValueError(f"image_od must be two-dimensional, got shape {image_od.shape}")
    image = np.ascontiguousarray(image_od, dtype=np.float32)
    if _surely_empty(image, params.background_radius_um / mpp_um, params.threshold_od):
        return np.zeros(image.shape, dtype=np.int32)
    image = _subtract_background(image, params.background_radius_um / mpp_um)
    image = _smooth(image, params.sigma_um / mpp_um)
    px_area_um2 = mpp_um * mpp_um
    mask = _foreground(image, params.threshold_od, _HOLE_FRACTION * params.max_area_um2 / px_area_um2)
    score = image
    if params.split_by_shape:
        score = image * cv2.distanceTransform(mask.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    peaks = _maxima(mask, score, _SPLIT_MIN_DISTANCE_UM / mpp_um)
    labels, n_labels = _partition(mask, score, peaks, _CORE_FRACTION)
    return _trim(labels, n_labels, image, params.min_area_um2 / px_area_um2, params.max_area_um2 / px_area_um2)


def expand_cells(nuclei: np.ndarray, *, mpp_um: float, params: DetectionParams = DetectionParams()) -> np.ndarray:
    """Grow each nucleus by ``params.cell_expansion_um`` into a cell.

    Each pixel within the distance of a nucleus goes to the nearest nucleus
    (Euclidean, 5x5 chamfer approximation, looked up on 2 x 2 blocks: edges
    within about a pixel of the exact ones), so cells never overlap, and a
    cell always contains its whole nucleus.

    Parameters
    ----------
    nuclei : ndarray, int32, shape (H, W)
        Nucleus labels from :func:`detect_nuclei`.
    mpp_um : float
        Pixel size (um per pixel).
    params : DetectionParams

    Returns
    -------
    ndarray, int32, shape (H, W)
        Cell labels, same numbers as the nuclei.
    """
    from . import _detection_kernels  # on first use: see ihc_score.cells._kernels
    _check_mpp(mpp_um)
    labels = np.ascontiguousarray(nuclei, dtype=np.int32)
    inside = labels != 0
    radius_px = params.cell_expansion_um / mpp_um
    if radius_px <= 0 or not inside.any():
        return labels.copy()
    # Only the box around the nuclei, widened by more than the radius, can
    # hold cell pixels. A path of the distance transform that leaves the box
    # costs more than the radius, so inside it every pixel within the radius
    # gets the same distance and the same nucleus as on the whole image.
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    pad = int(np.ceil(radius_px)) + 4
    y0, y1 = max(0, rows[0] - pad) & ~1, min(labels.shape[0], rows[-1] + pad + 1)
    x0, x1 = max(0, cols[0] - pad) & ~1, min(labels.shape[1], cols[-1] + pad + 1)
    box = labels[y0:y1, x0:x1]
    # The nearest nucleus is looked up at half resolution, on 2 x 2 blocks
    # holding their largest label (on even rows and columns, so a tile of
    # even origin matches the whole image): a quarter of the pixels for the
    # costliest step. A block with any nucleus pixel counts whole, which
    # widens the nuclei by up to a pixel: the distance is cut one pixel
    # short to make up for it. A cell's outer edge and the cut between two
    # cells move by about a pixel; the nuclei keep their own pixels.
    half = _block_max(box)
    dist, near, seeds = _nearest_seed(half)
    grown = _detection_kernels.grow_labels(box, near, dist, seeds, np.float32((radius_px - 1.0) / 2.0))
    if box.shape == labels.shape:
        return grown
    cells = np.zeros_like(labels)
    cells[y0:y1, x0:x1] = grown
    return cells


def detect_cells(
    deconvolved: np.ndarray,
    *,
    mpp_um: float,
    params: DetectionParams = DetectionParams(),
) -> tuple[CellTable, np.ndarray, np.ndarray]:
    """Detect nuclei, grow cells and measure them on one deconvolved image.

    Parameters
    ----------
    deconvolved : ndarray, float32, shape (H, W, 3)
        Hematoxylin, DAB, residual OD (:func:`ihc_score.stain.deconvolution.deconvolve`).
    mpp_um : float
        Pixel size (um per pixel), normally the analysis pixel size.
    params : DetectionParams

    Returns
    -------
    table : CellTable
        One row per cell, in label order.
    nuclei, cells : ndarray, int32, shape (H, W)
        Label images; row ``i`` of the table is label ``i + 1``.
    """
    image = detection_image(deconvolved, params.channel)
    nuclei = detect_nuclei(image, mpp_um=mpp_um, params=params)
    cells = expand_cells(nuclei, mpp_um=mpp_um, params=params)
    table = measure_cells(nuclei, cells, deconvolved[..., 0], deconvolved[..., 1], mpp_um=mpp_um)
    return table, nuclei, cells
