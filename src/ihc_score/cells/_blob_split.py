"""The split of blobs that hold several markers (:func:`ihc_score.cells._nuclei._partition_box`, its last steps).

Each pixel of such a blob goes to its nearest marker's core, or to the
nearest core, looked up at half resolution with distance transforms. On
the whole image those transforms cost as much for one small blob as for
hundreds: where the blobs to split are few and far apart (the second
search for faint nuclei finds a few blobs across a whole tile), each group
of them is split in its own box instead, with the same result. Pure
functions over arrays in pixel units.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Markers", "nearest_seed", "split_blobs", "split_in_groups"]

#: Up to how many blobs to split are grouped into boxes (the grouping compares every pair of them).
_MAX_GROUPED_BLOBS = 256
#: Blobs are grouped only on a foreground of at most this fraction of the image (their boxes are found from
#: its pixels' coordinates), and the boxes are used when together they cover at most ``_MAX_GROUPED_FRACTION``.
_MAX_FOREGROUND_FRACTION = 0.05
_MAX_GROUPED_FRACTION = 0.4


@dataclass(frozen=True)
class Markers:
    """The blobs and markers of one image, as :func:`ihc_score.cells._nuclei._partition_box` numbers them.

    ``comp_label`` (int32) is each blob's label (blob 0: 0), ``n_markers``
    its number of markers; ``marker_comp`` (int32) each marker's blob,
    ``peak_value`` (float32) its peak score and ``at`` (int64) the raster
    index of its first pixel, with marker 0 in front. ``peak_idx`` (raster
    indices, increasing) are the peak pixels of the blobs to split and
    ``peak_marker`` (int32) their markers.
    """

    comp_label: np.ndarray
    n_markers: np.ndarray
    marker_comp: np.ndarray
    peak_value: np.ndarray
    at: np.ndarray
    peak_idx: np.ndarray
    peak_marker: np.ndarray


def nearest_seed(half: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance to the nearest seed pixel of ``half`` (int32, 0 = none) and which seed it is.

    Returns the distance (float32, OpenCV's 5 x 5 chamfer), the label of
    the nearest seed pixel (1-based, in the raster order of the seed
    pixels) and the seeds' values in that order with 0 in front, so that
    ``seeds[near]`` is each pixel's nearest seed value.
    """
    free = (half == 0).view(np.uint8)
    dist, near = cv2.distanceTransformWithLabels(free, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    return dist, near, np.concatenate([np.zeros(1, dtype=np.int32), half[half != 0]])


def split_blobs(
    comp: np.ndarray, score: np.ndarray, mask: np.ndarray, markers: Markers, core_fraction: float,
    max_dist_px: float, merge_level: float, merge_convexity: float,
) -> np.ndarray | None:
    """Labels of every blob of ``comp`` (int32, 0 = none): its label, or in a blob to split each pixel's marker.

    ``markers.peak_idx`` and ``markers.at`` are raster indices of this
    image. None when a pixel to split lies ``max_dist_px`` (full-resolution
    px) or more from its nearest marker or core.
    """
    from . import _detection_kernels  # on first use: see ihc_score.cells._kernels
    h, w = mask.shape
    half_shape = ((h + 1) // 2, (w + 1) // 2)
    row, col = np.divmod(markers.peak_idx, w)
    marker_half = np.zeros(half_shape, dtype=np.int32)
    _detection_kernels.scatter_max(marker_half.ravel(), (row // 2) * half_shape[1] + col // 2, markers.peak_marker)
    dist, near, seeds = nearest_seed(marker_half)
    labels = np.zeros(mask.shape, dtype=np.int32)
    core_half = np.zeros(half_shape, dtype=np.int32)
    blocks = np.zeros(half_shape, dtype=np.uint8)
    merged = _detection_kernels.blob_markers(
        comp, markers.comp_label, markers.n_markers, near, seeds, score, markers.peak_value,
        np.float32(core_fraction), labels, core_half, blocks, mask, markers.at, merge_level, merge_convexity,
    )
    if max_dist_px < np.inf and 2.0 * cv2.minMaxLoc(dist, mask=blocks)[1] + 2.0 >= max_dist_px:
        return None
    dist, near, seeds = nearest_seed(core_half)
    if max_dist_px < np.inf and 2.0 * cv2.minMaxLoc(dist, mask=blocks)[1] + 2.0 >= max_dist_px:
        return None
    _detection_kernels.split_labels(comp, markers.n_markers, near, merged[seeds], markers.marker_comp, labels, merged)
    return labels


def _groups(boxes: np.ndarray) -> np.ndarray:
    """Which group each box (rows ``y0, y1, x0, x1``, ends exclusive) is in: boxes that overlap, directly or in a chain.

    Each group is numbered by its first box.
    """
    y0, y1, x0, x1 = boxes.T
    touch = (y0[:, None] < y1[None, :]) & (y0[None, :] < y1[:, None])
    touch &= (x0[:, None] < x1[None, :]) & (x0[None, :] < x1[:, None])
    group = np.arange(len(boxes))
    while True:  # each box takes the smallest group among the boxes it overlaps, until none changes
        new = np.where(touch, group[None, :], len(boxes)).min(axis=1)
        if np.array_equal(new, group):
            return group
        group = new


def _blob_boxes(comp: np.ndarray, xy: np.ndarray, blobs: np.ndarray, n_comp: int) -> np.ndarray:
    """Bounding box of each blob of ``blobs`` (of ``n_comp``): rows ``y0, y1, x0, x1``, ends exclusive (int64).

    ``xy`` (int64, columns x, y) are the foreground pixels of ``comp``.
    """
    rank = np.full(n_comp, -1, dtype=np.int64)
    rank[blobs] = np.arange(blobs.size)
    which = rank[comp[xy[:, 1], xy[:, 0]]]
    keep = which >= 0
    low = np.full((blobs.size, 2), np.iinfo(np.int64).max)
    high = np.full((blobs.size, 2), -1)
    np.minimum.at(low, which[keep], xy[keep])
    np.maximum.at(high, which[keep], xy[keep])
    return np.column_stack([low[:, 1], high[:, 1] + 1, low[:, 0], high[:, 0] + 1])


def split_in_groups(
    comp: np.ndarray, mask: np.ndarray, score: np.ndarray, markers: Markers, core_fraction: float, margin_px: int,
    merge_level: float, merge_convexity: float,
) -> np.ndarray | None:
    """:func:`split_blobs` in one box per group of blobs to split, or None where that gains nothing or cannot be used.

    On a sparse foreground (``mask``, the blobs of ``comp``), every blob to
    split is widened by ``margin_px`` on each side; widened boxes that overlap
    make a group, split in the box around it, starting on even rows and
    columns, with the group's blobs only. The labels are those of
    :func:`split_blobs` on the whole image: two blobs of different groups
    lie more than twice the margin apart, so no marker or core of another
    group is the nearest to a pixel that has one within the margin
    (checked, as in :func:`ihc_score.cells._nuclei._partition`, else None),
    and a path of the distance transforms that leaves a box is longer than
    that; the blobs and markers keep their numbers, and the merge of two
    markers looks only at their own blob.
    """
    blobs = np.flatnonzero(markers.n_markers >= 2)
    h, w = comp.shape
    if (blobs.size == 0 or blobs.size > _MAX_GROUPED_BLOBS
            or cv2.countNonZero(mask.view(np.uint8)) > _MAX_FOREGROUND_FRACTION * h * w):
        return None
    xy = cv2.findNonZero(mask.view(np.uint8)).reshape(-1, 2).astype(np.int64)
    widened = _blob_boxes(comp, xy, blobs, len(markers.comp_label)) + np.array([-1, 1, -1, 1]) * margin_px
    group = _groups(widened)
    boxes = []
    for g in np.unique(group):
        y0, y1, x0, x1 = widened[group == g].T
        boxes.append((max(0, int(y0.min())) & ~1, min(h, int(y1.max())), max(0, int(x0.min())) & ~1,
                      min(w, int(x1.max())), blobs[group == g]))
    if sum((b[1] - b[0]) * (b[3] - b[2]) for b in boxes) > _MAX_GROUPED_FRACTION * h * w:
        return None
    labels = np.zeros(comp.shape, dtype=np.int32)
    labels[xy[:, 1], xy[:, 0]] = markers.comp_label[comp[xy[:, 1], xy[:, 0]]]  # the split blobs' are replaced
    peak_blob = comp.ravel()[markers.peak_idx]
    in_group = np.zeros(len(markers.comp_label), dtype=bool)
    for y0, y1, x0, x1, members in boxes:
        in_group[:] = False
        in_group[members] = True
        sub = comp[y0:y1, x0:x1]
        own = in_group[sub]
        pick = in_group[peak_blob]
        row, col = np.divmod(markers.peak_idx[pick], w)
        bw = x1 - x0
        at = (markers.at // w - y0) * bw + markers.at % w - x0  # read only for this group's markers
        local = Markers(markers.comp_label, markers.n_markers, markers.marker_comp, markers.peak_value, at,
                        (row - y0) * bw + col - x0, markers.peak_marker[pick])
        box_labels = split_blobs(np.where(own, sub, 0), np.ascontiguousarray(score[y0:y1, x0:x1]), own, local,
                                 core_fraction, 2.0 * margin_px - 1.0, merge_level, merge_convexity)
        if box_labels is None:
            return None
        labels[y0:y1, x0:x1][own] = box_labels[own]
    return labels
