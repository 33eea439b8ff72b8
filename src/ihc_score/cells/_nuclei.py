"""Stage helpers of nucleus detection (:func:`ihc_score.cells.detect.detect_nuclei`).

Smoothing, foreground with small holes filled, maxima of the smoothed
channel, the merge of maxima that mark one nucleus, the split of touching
nuclei (a fast stand-in for a marker-controlled watershed) and the final
trim and renumbering, each a pure function over arrays in pixel units. The
steps, conventions and references are described in
:mod:`ihc_score.cells.detect`, which turns the physical parameters into
pixels and runs these in order.
"""

from __future__ import annotations

import cv2
import numpy as np

from ihc_score.cells._blob_split import Markers, nearest_seed, split_blobs, split_in_groups

__all__ = [
    "_SPLIT_MIN_DISTANCE_UM",
    "_CORE_FRACTION",
    "_EDGE_FRACTION",
    "_HOLE_FRACTION",
    "_disk",
    "_smooth",
    "_fill_small_holes",
    "_foreground",
    "_maxima",
    "_partition",
    "_partition_box",
    "_block_max",
    "_trim",
]

#: Two maxima of the smoothed image closer than this (um) mark one nucleus.
_SPLIT_MIN_DISTANCE_UM = 3.0
#: A marker's core: pixels reaching this fraction of the marker's value.
_CORE_FRACTION = 0.5
#: Two markers of a blob are one nucleus when the straight segment between
#: them stays at or above this fraction of the lower one's peak and the
#: level set there is convex along it (:data:`_MERGE_CONVEXITY`). Chromatin
#: puts several maxima more than 3 um apart in a large nucleus, but the
#: valleys between them are shallow: on the synthetic slides of 11 and 15 um
#: nuclei (``benchmarks/geometry_sweep.py``), between two maxima of one
#: nucleus the smoothed stain stays above 0.81 of the lower peak (0.89 for
#: 95 % of them), so at 0.7 the nucleus is one piece. At the half maximum
#: the blur fills in the waist between two touching nuclei; at 0.7 it shows.
#: Chosen on that sweep: 0.6-0.8 bring the 11 and 15 um nuclei within 3 %
#: of the count but 0.8 (15 um: +4 %); 0.7 is the middle.
_MERGE_LEVEL = 0.7
#: A convex piece of a level set is at least as wide, on either side of a
#: segment in it, as the straight line between its widths at the segment's
#: ends; one narrower than this fraction of that line has a waist, the cut
#: between two nuclei. Below 1 for rounding (half a pixel of the 4-px
#: half-width of a small nucleus) and uneven outlines; two 8 um nuclei 7 um
#: apart, their discs overlapping by 1 um, come to 0.75. On the sweep, 0.8-0.9
#: bring 11 um nuclei within 3 % of the count, 15 um ones but 0.9 (+6 %).
_MERGE_CONVEXITY = 0.85
#: A nucleus ends where the smoothed channel falls below this fraction of
#: its peak (about the half maximum; 0.45 makes up for the curvature of a
#: smoothed round edge), so its area does not grow with its stain intensity.
_EDGE_FRACTION = 0.45
#: Holes in the foreground smaller than this fraction of ``max_area_um2`` are
#: filled (pale nuclear centres, vesicular chromatin).
_HOLE_FRACTION = 0.25
#: Margin (px) of the box around the foreground that :func:`_partition`
#: works in, and the largest fraction of the image the box may cover for
#: the box to be used.
_BOX_MARGIN_PX = 32
_BOX_MAX_FRACTION = 0.8


def _disk(radius_px: float) -> np.ndarray:
    r = max(1, int(round(radius_px)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _smooth(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing (OpenCV kernel, replicated border); identity for sigma 0."""
    if sigma_px <= 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigma_px, borderType=cv2.BORDER_REPLICATE)


def _fill_small_holes(mask: np.ndarray, max_hole_px: float) -> np.ndarray:
    """Fill background components smaller than ``max_hole_px`` not touching the border.

    Works in the box around the foreground widened by one pixel: outside it
    the background reaches the image border, so a component that touches
    the box's edge touches the border, and the others (the holes) lie whole
    inside the box. Components are 4-connected.
    """
    from . import _detection_kernels  # on first use: see ihc_score.cells._kernels
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return mask
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1 = max(0, int(rows[0]) - 1), min(h, int(rows[-1]) + 2)
    x0, x1 = max(0, int(cols[0]) - 1), min(w, int(cols[-1]) + 2)
    box = mask[y0:y1, x0:x1]
    # The box's background framed by more background: one flood from the
    # corner takes every component that touches the box's edge, and leaves
    # the holes, a few pixels, to be measured one by one.
    holes = cv2.copyMakeBorder(np.ascontiguousarray(~box).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    cv2.floodFill(holes, None, (0, 0), 0, flags=4)
    fill = np.zeros(box.shape, dtype=bool)
    if not _detection_kernels.fill_holes(holes[1:-1, 1:-1], fill, max_hole_px):
        return mask
    filled = mask.copy()
    filled[y0:y1, x0:x1] |= fill
    return filled


def _foreground(image: np.ndarray, threshold_od: float, max_hole_px: float) -> np.ndarray:
    """Pixels above ``threshold_od``, small holes filled (bool, shape of ``image``)."""
    return _fill_small_holes(image > threshold_od, max_hole_px)


def _maxima(mask: np.ndarray, score: np.ndarray, min_distance_px: float) -> np.ndarray:
    """Foreground pixels where ``score`` reaches the maximum of its disk (bool).

    Same as ``(score >= cv2.dilate(score, disk)) & mask`` (outside the image
    ignored): a pixel must first be a maximum of the disk's central 3 x 3
    pixels, and only those few candidates are compared with the rest of
    the disk, nearest pixels first, until one is higher.
    """
    from . import _detection_kernels  # on first use: see ihc_score.cells._kernels
    kernel = _disk(min_distance_px)
    r = kernel.shape[0] // 2
    inner = np.ascontiguousarray(kernel[r - 1 : r + 2, r - 1 : r + 2])
    local = score >= cv2.dilate(score, inner, borderType=cv2.BORDER_CONSTANT, borderValue=-np.inf)
    cand = np.flatnonzero(local & mask)
    peaks = np.zeros(mask.shape, dtype=bool)
    if cand.size == 0:
        return peaks
    dy, dx = np.nonzero(kernel)
    dy, dx = dy - r, dx - r
    order = np.lexsort((dx, dy, dy * dy + dx * dx))[1:]  # nearest first; the centre (distance 0) left out
    found = _detection_kernels.disk_maxima(cand, score, dy[order].astype(np.intp), dx[order].astype(np.intp))
    peaks.ravel()[cand[found]] = True
    return peaks


def _partition(
    mask: np.ndarray, score: np.ndarray, peaks: np.ndarray, core_fraction: float
) -> tuple[np.ndarray, int]:
    """Label the foreground, one object per nucleus marked by maxima of ``score``.

    Markers are the 8-connected groups of ``peaks`` (maxima of ``score``,
    plateaus merged). Each marker grows into its core, the pixels around it
    where ``score`` reaches ``core_fraction`` of the marker's value, and
    every foreground pixel then goes to the nearest core: a fast stand-in
    for a marker-controlled watershed that cuts touching nuclei along the
    valley between their cores. The nearest marker and core are looked up
    at half resolution (see :func:`_partition_box`). A blob never takes
    pixels from another blob, and a blob with one marker is one nucleus.
    Markers whose nearest pixels touch are one nucleus, their cores one
    object, when the segment between them stays in one convex piece of the
    level set at ``_MERGE_LEVEL`` of the lower peak (``_MERGE_CONVEXITY``):
    the maxima that chromatin makes in a large nucleus, not two nuclei with
    a valley or a waist between them. Each pair is decided on its own
    segment and the foreground pixels around it, within the segment's length.

    Only the box around the foreground, widened by ``_BOX_MARGIN_PX``, is
    processed when it is clearly smaller than the image. The result is the
    same as on the whole image: every marker, core and blob lies in the
    box (and so does every pixel the merge of markers looks at, all on the
    foreground); a path of the distance transforms that leaves the box costs at
    least twice the margin, more than the distance of any foreground pixel
    to its marker and core (checked, else the whole image is processed);
    and the box starts on even rows and columns, so the blobs (OpenCV's
    connected components, numbered by 2 x 2 blocks) and the markers
    (numbered the same way) come in the same order. On a sparse foreground
    (the second search's) the blobs to split are split in a box per group
    of them, with the same result
    (:func:`ihc_score.cells._blob_split.split_in_groups`).

    Returns
    -------
    labels : ndarray, int32, shape of ``mask``
        0 off the foreground and on foreground pixels left unlabelled, else
        1..n_labels - 1.
    n_labels : int
        One more than the largest possible label.
    """
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return np.zeros(mask.shape, dtype=np.int32), 1
    cols = np.flatnonzero(mask.any(axis=0))
    m = _BOX_MARGIN_PX
    y0, x0 = max(0, int(rows[0]) - m) & ~1, max(0, int(cols[0]) - m) & ~1
    y1, x1 = min(h, int(rows[-1]) + m + 1), min(w, int(cols[-1]) + m + 1)
    if (y1 - y0) * (x1 - x0) < _BOX_MAX_FRACTION * h * w:
        box = (slice(y0, y1), slice(x0, x1))
        box_labels, n_labels, fits = _partition_box(
            np.ascontiguousarray(mask[box]),
            np.ascontiguousarray(score[box]),
            np.ascontiguousarray(peaks[box]),
            core_fraction,
            2.0 * m - 1.0,
        )
        if fits:
            labels = np.zeros(mask.shape, dtype=np.int32)
            labels[box] = box_labels
            return labels, n_labels
    labels, n_labels, _ = _partition_box(mask, score, peaks, core_fraction, np.inf)
    return labels, n_labels


def _partition_box(
    mask: np.ndarray, score: np.ndarray, peaks: np.ndarray, core_fraction: float, max_dist_px: float
) -> tuple[np.ndarray, int, bool]:
    """:func:`_partition` on one contiguous image.

    The last item is False (and the labels are not finished) when a
    foreground pixel lies ``max_dist_px`` or more from its nearest peak or
    core.
    """
    from . import _detection_kernels  # on first use: see ihc_score.cells._kernels
    n_comp, comp = cv2.connectedComponents(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    peak_idx = np.flatnonzero(peaks)
    n_mark = 0
    if n_comp > 1 and peak_idx.size:
        n_mark, peak_marker = _detection_kernels.marker_labels(peak_idx, mask.shape[1])
    if n_mark <= 2:  # one nucleus a blob
        return comp, max(n_comp, 1), True
    # A blob with one marker is that nucleus; a blob without a marker of its
    # own (a maximum dominated from across a narrow gap) is one nucleus; only
    # the pixels of blobs with several markers are split between them. These
    # rules look only at the blob, so the result does not depend on how far
    # the image extends beyond it.
    marker_comp = np.zeros(n_mark, dtype=np.int32)
    marker_comp[peak_marker] = comp.ravel()[peak_idx]
    n_markers = np.bincount(marker_comp[1:], minlength=n_comp)
    n_markers[0] = 0  # the background is not a blob
    comp_label = np.arange(n_comp, dtype=np.int32) + np.int32(n_mark - 1)
    single = np.flatnonzero(n_markers[marker_comp[1:]] == 1) + 1
    comp_label[marker_comp[single]] = single
    n_labels = n_mark + n_comp - 1
    if n_markers.max() < 2:
        comp_label[0] = 0
        return np.take(comp_label, comp), n_labels, True
    peak_value = np.zeros(n_mark, dtype=np.float32)
    _detection_kernels.scatter_max(peak_value, peak_marker, score.ravel()[peak_idx])
    # The nearest marker and the nearest core are looked up at half
    # resolution (the distance transforms with labels are the costliest step
    # of detection): 2 x 2 blocks on even rows and columns, each holding the
    # largest label in it. A pixel's nearest marker or core is then off by
    # at most a pixel, which moves the cut between two nuclei by as much.
    # Only the markers and cores of blobs being split take part.
    splits = n_markers[marker_comp[peak_marker]] >= 2
    at = np.concatenate(([0], peak_idx[np.unique(peak_marker, return_index=True)[1]]))  # each marker's first pixel
    markers = Markers(comp_label, n_markers, marker_comp, peak_value, at, peak_idx[splits], peak_marker[splits])
    labels = split_in_groups(comp, mask, score, markers, core_fraction, _BOX_MARGIN_PX, _MERGE_LEVEL,
                             _MERGE_CONVEXITY)
    if labels is None:
        labels = split_blobs(comp, score, mask, markers, core_fraction, max_dist_px, _MERGE_LEVEL, _MERGE_CONVEXITY)
    return (labels, n_labels, True) if labels is not None else (np.zeros(mask.shape, dtype=np.int32), n_labels, False)


def _block_max(labels: np.ndarray) -> np.ndarray:
    """Largest value of each 2 x 2 block (even rows and columns) of a non-negative int32 image, zero-padded."""
    from . import _detection_kernels  # on first use: see ihc_score.cells._kernels
    return _detection_kernels.block_max(labels)


def _trim(labels: np.ndarray, n_labels: int, image: np.ndarray, min_area_px: float, max_area_px: float) -> np.ndarray:
    """Cut each object at ``_EDGE_FRACTION`` of its peak, drop it outside the area limits, number 1..n.

    ``labels`` (int32, from :func:`_partition`) is relabelled in place and
    returned; the numbering keeps the order of the labels given.
    """
    from . import _trim_kernels  # on first use: see ihc_score.cells._kernels
    if not labels.flags.c_contiguous:
        raise ValueError("labels must be C-contiguous: they are relabelled in place")
    _trim_kernels.trim_labels(labels, n_labels, image, np.float32(_EDGE_FRACTION), min_area_px, max_area_px)
    return labels


def _grow(labels: np.ndarray, radius_px: float) -> np.ndarray:
    """Each pixel within ``radius_px`` of a labelled object goes to the nearest one (new int32 image).

    Objects keep their own pixels. Euclidean distance, 5x5 chamfer, looked up on 2 x 2 blocks (edges within
    about a pixel of the exact ones); see :func:`ihc_score.cells.detect.expand_cells`.
    """
    from . import _detection_kernels  # on first use: see ihc_score.cells._kernels
    inside = labels != 0
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
    dist, near, seeds = nearest_seed(half)
    grown = _detection_kernels.grow_labels(box, near, dist, seeds, np.float32((radius_px - 1.0) / 2.0))
    if box.shape == labels.shape:
        return grown
    cells = np.zeros_like(labels)
    cells[y0:y1, x0:x1] = grown
    return cells
