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
   Two neighbouring markers are one nucleus (the maxima that chromatin
   makes in a large nucleus) when the segment between them stays at >= 70 %
   of the lower peak and that level set shows no waist along it (a convex
   piece: its width on either side never falls below 85 % of the straight
   line between its widths at the two markers); a valley or a waist keeps
   two touching nuclei apart. This stands in for the h-maxima (dynamics)
   of a priority flood, with the waist test because the 1.5 um blur leaves
   nuclei that touch almost no valley. Each marker grows into its core
   (pixels at >= half its peak), and each foreground pixel goes to the
   nearest core, so touching nuclei are cut along the valley between them
   (a fast stand-in for the marker-controlled watershed: two labelled
   distance transforms, at half resolution, instead of a priority flood).
   A blob with a single marker is one nucleus.
4. Each nucleus ends where the smoothed channel falls below 45 % of its own
   peak (about the half maximum), so its area follows the stained nucleus
   and not how far the blur of a dark nucleus reaches above the threshold.
5. Nuclei outside ``min_area_um2`` .. ``max_area_um2`` are dropped.
6. With ``faint_pass`` (off in :class:`DetectionParams`, on in the shipped
   model): next to a dark nucleus a pale one holds no maximum of its own
   (the slope of the dark one's blurred edge is steeper than its bump)
   and is lost to the dark one's object. The found nuclei, widened by ``faint_exclusion_um``, are set to 0 before
   smoothing (so their blurred edges go too) and steps 2-5 run again; a
   new nucleus must peak at ``faint_min_peak_od``, at least
   ``faint_min_peak_distance_um`` from the widened nuclei, fill
   ``faint_min_fill`` of its moments' ellipse and, given the stains, be
   made of them (``faint_max_glass_fraction``,
   ``faint_min_hematoxylin_share``).

:func:`ihc_score.cells.body.stained_bodies` then grows each nucleus over its
own stained cytoplasm (``cell_body="stained"``, default), or
:func:`expand_cells` gives every pixel within ``cell_expansion_um`` of a
nucleus to the nearest nucleus (``"expansion"``, QuPath's cells), and
:func:`measure_cells` measures all cells at once in one pass.

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

import cv2
import numpy as np

from ihc_score.cells._background import _subtract_background, _surely_empty
from ihc_score.cells._faint import _faint_nuclei
from ihc_score.cells._nuclei import (
    _CORE_FRACTION,
    _HOLE_FRACTION,
    _SPLIT_MIN_DISTANCE_UM,
    _foreground,
    _grow,
    _maxima,
    _partition,
    _smooth,
    _trim,
)
from ihc_score.cells.body import stained_bodies
from ihc_score.cells.detection_params import Channel, DetectionParams, tile_margin_um
from ihc_score.cells.measure import CellTable, _check_mpp, measure_cells

__all__ = [
    "DetectionParams",
    "detection_image",
    "detect_nuclei",
    "second_search",
    "expand_cells",
    "detect_cells",
    "tile_margin_um",
]


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


def detect_nuclei(image_od: np.ndarray, *, mpp_um: float, params: DetectionParams = DetectionParams(),
                  deconvolved: np.ndarray | None = None) -> np.ndarray:
    """Find nuclei on an OD image.

    Parameters
    ----------
    image_od : ndarray, float, shape (H, W)
        Hematoxylin OD, or the channel chosen by ``params.channel`` (see
        :func:`detection_image`), base-10 OD units.
    mpp_um : float
        Pixel size (um per pixel).
    params : DetectionParams
    deconvolved : ndarray, float, shape (H, W, 3), optional
        Hematoxylin, DAB, residual OD of the same pixels: with it the second
        search (``params.faint_pass``) keeps only nuclei made of stain
        (``faint_max_glass_fraction``, ``faint_min_hematoxylin_share``);
        without it those two tests are skipped.

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
    raw = _subtract_background(image, params.background_radius_um / mpp_um)
    image = _smooth(raw, params.sigma_um / mpp_um)
    px_area_um2 = mpp_um * mpp_um
    mask = _foreground(image, params.threshold_od, _HOLE_FRACTION * params.max_area_um2 / px_area_um2)
    score = image
    if params.split_by_shape:
        score = image * cv2.distanceTransform(mask.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    peaks = _maxima(mask, score, _SPLIT_MIN_DISTANCE_UM / mpp_um)
    labels, n_labels = _partition(mask, score, peaks, _CORE_FRACTION)
    labels = _trim(labels, n_labels, image, params.min_area_um2 / px_area_um2, params.max_area_um2 / px_area_um2)
    if params.faint_pass:
        labels = second_search(labels, raw, mpp_um=mpp_um, params=params, deconvolved=deconvolved)
    return labels


def second_search(labels: np.ndarray, raw: np.ndarray, *, mpp_um: float, params: DetectionParams,
                  deconvolved: np.ndarray | None = None) -> np.ndarray:
    """Step 6 of :func:`detect_nuclei`: ``labels`` with the faint nuclei beside darker ones added.

    ``raw`` is the detection channel after background subtraction, before
    smoothing; the physical parameters are turned into pixels here.
    """
    px_area_um2 = mpp_um * mpp_um
    return _faint_nuclei(
        labels, raw, sigma_px=params.sigma_um / mpp_um, exclusion_px=params.faint_exclusion_um / mpp_um,
        threshold_od=params.threshold_od, max_hole_px=_HOLE_FRACTION * params.max_area_um2 / px_area_um2,
        min_distance_px=_SPLIT_MIN_DISTANCE_UM / mpp_um, min_area_px=params.min_area_um2 / px_area_um2,
        max_area_px=params.max_area_um2 / px_area_um2, min_peak_od=params.faint_min_peak_od,
        min_fill=params.faint_min_fill, min_peak_distance_px=params.faint_min_peak_distance_um / mpp_um,
        stains=deconvolved, max_glass_fraction=params.faint_max_glass_fraction,
        min_hematoxylin_share=params.faint_min_hematoxylin_share,
    )


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
    _check_mpp(mpp_um)
    return _grow(np.ascontiguousarray(nuclei, dtype=np.int32), params.cell_expansion_um / mpp_um)


def detect_cells(
    deconvolved: np.ndarray,
    *,
    mpp_um: float,
    params: DetectionParams = DetectionParams(),
) -> tuple[CellTable, np.ndarray, np.ndarray]:
    """Detect nuclei, find their cells (``params.cell_body``) and measure them on one deconvolved image.

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
    nuclei = detect_nuclei(image, mpp_um=mpp_um, params=params, deconvolved=deconvolved)
    if params.cell_body == "stained":
        stain = image if params.channel == "hematoxylin_dab" else detection_image(deconvolved, "hematoxylin_dab")
        cells = stained_bodies(nuclei, stain, mpp_um=mpp_um, params=params)
    else:
        cells = expand_cells(nuclei, mpp_um=mpp_um, params=params)
    table = measure_cells(nuclei, cells, deconvolved[..., 0], deconvolved[..., 1], mpp_um=mpp_um)
    return table, nuclei, cells
