"""Cell bodies found from the image, against cells drawn pixel by pixel.

Each field is a grid of round cells drawn in OD units (hematoxylin, DAB,
residual), with the nucleus, cytoplasm and the gap between cells chosen per
test; a cell's truth is the mean DAB of the pixels drawn as that cell.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ihc_score.cells import DetectionParams, detect_cells, stained_bodies
from ihc_score.cells import _body_kernels as K
from ihc_score.cells._nuclei import _block_max
from ihc_score.cells.body import _holes_filled_and_joined
from ihc_score.score import classify

MPP = 0.5
THRESHOLDS = (0.2, 0.4, 0.6)
STAINED = DetectionParams()
EXPANSION = DetectionParams(cell_body="expansion")


def _field(nucleus_um: float, cytoplasm_um: float, gap_um: float, pattern: str, dab: float, n: int = 6,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deconvolved field (H, W, 3), drawn cell labels and each cell's drawn mean DAB.

    ``pattern``: "both" (nucleus and cytoplasm at ``dab``), "cytoplasm"
    (negative nucleus), "membrane" (a 1 um ring at 3 x ``dab``, the rest of
    the cytoplasm at 0.03). Nuclei at 0.45 hematoxylin OD, cytoplasm 0.04,
    gaps glass (0); Gaussian noise of 0.01 OD.
    """
    pitch = nucleus_um + 2 * cytoplasm_um + gap_um
    size = int(np.ceil((n * pitch + 10) / MPP))
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) * MPP
    hema, dab_od = np.zeros((size, size), np.float32), np.zeros((size, size), np.float32)
    drawn = np.zeros((size, size), np.int32)
    for k in range(n * n):
        r = np.hypot(xx - (5 + (k % n + 0.5) * pitch), yy - (5 + (k // n + 0.5) * pitch))
        body, nucleus = r <= nucleus_um / 2 + cytoplasm_um, r <= nucleus_um / 2
        drawn[body] = k + 1
        hema[nucleus], hema[body & ~nucleus] = 0.45, 0.04
        if pattern == "both":
            dab_od[body] = dab
        elif pattern == "cytoplasm":
            dab_od[body & ~nucleus] = dab
        else:
            ring = body & (r > nucleus_um / 2 + cytoplasm_um - 1.0)
            dab_od[ring], dab_od[body & ~ring & ~nucleus] = 3 * dab, 0.03
    rng = np.random.default_rng(seed)
    image = np.dstack([hema, dab_od, np.zeros_like(hema)]) + rng.normal(0, 0.01, (size, size, 3)).astype(np.float32)
    truth = np.bincount(drawn.ravel(), weights=dab_od.ravel())[1:] / np.bincount(drawn.ravel())[1:]
    return image, drawn, truth


def _matched(table, drawn: np.ndarray) -> np.ndarray:
    """Drawn cell (0-based) under each detected centroid."""
    return drawn[np.round(table.a_y).astype(int), np.round(table.a_x).astype(int)] - 1


@pytest.mark.parametrize("pattern", ["both", "cytoplasm", "membrane"])
@pytest.mark.parametrize("nucleus_um, cytoplasm_um, gap_um",
                         [(7.0, 3.0, 1.5), (6.0, 1.0, 0.0), (9.0, 6.0, 3.0), (12.0, 8.0, 6.0)])
def test_cell_mean_follows_the_drawn_body(pattern: str, nucleus_um: float, cytoplasm_um: float, gap_um: float):
    image, drawn, truth = _field(nucleus_um, cytoplasm_um, gap_um, pattern, dab=0.5)
    table, _, _ = detect_cells(image, mpp_um=MPP, params=STAINED)
    which = _matched(table, drawn)
    assert len(table) == len(truth) and np.all(which >= 0) and len(set(which)) == len(truth)
    # within 10 % of the drawn mean on every setting; the thin cytoplasm with touching cells is the hardest
    np.testing.assert_allclose(table.dab_cell_mean, truth[which], rtol=0.10, atol=0.01)


def test_a_fixed_ring_misses_thin_cytoplasm_that_the_stained_body_follows():
    """The failure the stained body removes: a 5 um ring around a cell of 3 um cytoplasm takes in the glass."""
    image, drawn, truth = _field(7.0, 3.0, 1.5, "both", dab=0.5)
    fixed, _, _ = detect_cells(image, mpp_um=MPP, params=EXPANSION)
    body, _, _ = detect_cells(image, mpp_um=MPP, params=STAINED)
    true_classes = classify(truth, THRESHOLDS)
    assert np.all(true_classes == 2)
    assert np.mean(classify(fixed.dab_cell_mean, THRESHOLDS) == 2) < 0.1        # graded 1+
    assert np.mean(classify(body.dab_cell_mean, THRESHOLDS) == 2) == 1.0
    area = np.pi * 6.5**2
    assert np.median(body.cell_area_um2) == pytest.approx(area, rel=0.1)
    assert np.median(fixed.cell_area_um2) > 1.3 * area


@pytest.mark.parametrize("pattern, dab, expected", [("both", 0.3, 1), ("cytoplasm", 0.6, 2), ("membrane", 0.65, 2)])
def test_each_staining_pattern_gets_the_class_of_the_drawn_cell(pattern: str, dab: float, expected: int):
    image, drawn, truth = _field(8.0, 4.0, 2.0, pattern, dab=dab, seed=1)
    assert np.all(classify(truth, THRESHOLDS) == expected)
    table, _, _ = detect_cells(image, mpp_um=MPP, params=STAINED)
    assert np.all(classify(table.dab_cell_mean, THRESHOLDS) == expected)


def test_bodies_hold_their_nuclei_do_not_overlap_and_stay_within_reach():
    image, _, _ = _field(7.0, 8.0, 0.0, "both", dab=0.4)
    table, nuclei, cells = detect_cells(image, mpp_um=MPP, params=STAINED)
    inside = nuclei > 0
    assert np.array_equal(cells[inside], nuclei[inside])
    reach_px = STAINED.body_max_um / MPP
    for label in range(1, len(table) + 1):
        own = (nuclei != label).astype(np.uint8)
        dist = cv2.distanceTransform(own, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        assert dist[cells == label].max() <= reach_px + 1.0


def test_stained_debris_cut_off_from_the_cell_is_left_out():
    """A brown speck 2 um beyond a cell's edge, across glass, is within reach but not part of the cell."""
    image, drawn, truth = _field(7.0, 3.0, 20.0, "both", dab=0.3, n=1)
    cy = cx = int(round((5 + (7.0 + 6.0 + 20.0) / 2) / MPP))
    edge = int(round((3.5 + 3.0 + 2.0) / MPP))
    image[cy - 2:cy + 3, cx + edge:cx + edge + 4, 1] = 1.2
    table, nuclei, cells = detect_cells(image, mpp_um=MPP, params=STAINED)
    assert len(table) == 1
    assert not cells[cy - 2:cy + 3, cx + edge:cx + edge + 4].any()
    assert table.dab_cell_mean[0] == pytest.approx(truth[0], rel=0.1)


def test_no_nuclei_give_no_cells_and_shapes_must_agree():
    empty = np.zeros((40, 40), np.int32)
    assert not stained_bodies(empty, np.ones((40, 40), np.float32), mpp_um=MPP).any()
    with pytest.raises(ValueError, match="same shape"):
        stained_bodies(empty, np.ones((40, 41), np.float32), mpp_um=MPP)


def test_params_refuse_an_unknown_body_and_a_zero_rise():
    with pytest.raises(ValueError, match="cell_body"):
        DetectionParams(cell_body="ring")
    with pytest.raises(ValueError, match="body_min_od"):
        DetectionParams(body_min_od=0.0)


# --- the compiled loops against plain NumPy / scikit-image formulations ------------------------------


def _bodies_reference(candidates: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """``_holes_filled_and_joined`` spelled out with OpenCV and scikit-image: fill the holes one label alone borders, keep the
    4-connected pieces of each label that hold a nucleus pixel."""
    from skimage.measure import label

    n, holes = cv2.connectedComponents((candidates == 0).view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    filled = candidates.copy()
    padded = np.pad(candidates, 1, constant_values=-1)  # the image edge borders every hole that touches it
    hole_pad = np.pad(holes, 1)
    for k in range(1, n):
        ring = cv2.dilate((hole_pad == k).view(np.uint8), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8))
        around = set(np.unique(padded[(ring == 1) & (hole_pad != k)]).tolist()) - {0}
        if len(around) == 1 and -1 not in around:
            filled[holes == k] = around.pop()
    pieces = label(filled, background=0, connectivity=1)
    keep = np.isin(pieces, np.unique(pieces[nuclei != 0]))
    return np.where(keep & (filled != 0), filled, 0)


def test_holes_of_one_label_only_are_filled():
    labels = np.zeros((10, 12), np.int32)
    labels[1:8, 1:6] = 1
    labels[2:4, 2:4] = 0          # hole of 1 alone: filled
    labels[1:8, 6:11] = 2
    labels[5, 5] = 0              # notch between 1 and 2: bordered by both, kept empty
    labels[2:4, 7:9] = 0          # hole of 2 alone: filled
    labels[8:10, 0:3] = 3         # touching the image edge: the glass around it stays
    nuclei = np.zeros_like(labels)
    nuclei[6, 2], nuclei[6, 9], nuclei[9, 1] = 1, 2, 3
    out = _holes_filled_and_joined(labels, nuclei)
    assert np.all(out[2:4, 2:4] == 1) and np.all(out[2:4, 7:9] == 2)
    assert out[5, 5] == 0 and out[0, 0] == 0 and out[9, 5] == 0
    assert (out != labels).sum() == 8
    np.testing.assert_array_equal(out, _bodies_reference(labels, nuclei))


def test_a_ring_around_a_pale_interior_is_joined_to_its_nucleus_through_the_hole():
    labels = np.zeros((11, 11), np.int32)
    labels[1:10, 1:10] = 4
    labels[2:9, 2:9] = 0          # the pale interior: not a candidate
    labels[5, 5] = 4              # the nucleus inside
    nuclei = np.zeros_like(labels)
    nuclei[5, 5] = 4
    out = _holes_filled_and_joined(labels, nuclei)
    assert np.all(out[1:10, 1:10] == 4) and out[0].sum() == 0


@pytest.mark.parametrize("seed", [3, 7, 11])
def test_bodies_equal_hole_filling_then_component_labelling(seed: int):
    """Random cells (each pixel to its nearest of 12 seeds) with random gaps: holes, channels and cut-off bits."""
    rng = np.random.default_rng(seed)
    h, w = 80, 90
    seeds = np.stack([rng.integers(3, h - 3, 12), rng.integers(3, w - 3, 12)], axis=1)
    free = np.ones((h, w), np.uint8)
    free[seeds[:, 0], seeds[:, 1]] = 0
    _, near = cv2.distanceTransformWithLabels(free, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    candidates = near.astype(np.int32)                     # labels 1..12 by raster order of the seeds
    gaps = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.2)
    candidates[gaps < np.quantile(gaps, 0.3)] = 0
    nuclei = np.zeros_like(candidates)
    for y, x in seeds:
        nuclei[y, x] = candidates[y, x] = near[y, x]
    want = _bodies_reference(candidates, nuclei)
    assert ((want != 0) & (candidates == 0)).sum() > 5      # holes filled
    assert ((want == 0) & (candidates != 0)).sum() > 5      # bits cut off from their nucleus dropped
    np.testing.assert_array_equal(_holes_filled_and_joined(candidates, nuclei), want)


def test_stained_candidates_equal_the_numpy_rule():
    rng = np.random.default_rng(4)
    image = rng.random((31, 40), dtype=np.float32)                       # an odd height: the last block is half
    background, plateau = (rng.random((16, 20), dtype=np.float32) for _ in range(2))
    reach = rng.integers(0, 5, (31, 40)).astype(np.int32)
    nuclei = np.where(rng.random((31, 40)) < 0.1, reach, 0).astype(np.int32)
    lo, cap = np.float32(0.05), np.float32(0.1)
    b = np.minimum(np.kron(background, np.ones((2, 2), np.float32))[:31, :40], cap)
    top = np.kron(plateau, np.ones((2, 2), np.float32))[:31, :40]
    stained = image >= b + np.maximum(lo, np.float32(0.5) * (top - b))
    expected = np.where(stained | (nuclei != 0), reach, 0)
    candidates, half, half_nuclei = K.stained_candidates(image, background, plateau, reach, nuclei, lo, cap)
    np.testing.assert_array_equal(candidates, expected)
    np.testing.assert_array_equal(half, _block_max(expected))
    np.testing.assert_array_equal(half_nuclei, _block_max(nuclei))


def test_bodies_from_blocks_keep_full_resolution_edges_and_fill_whole_block_holes():
    candidates = np.zeros((12, 12), np.int32)
    candidates[1:11, 1:11] = 5            # a ring of cell 5 around a pale interior
    candidates[4:8, 4:8] = 0              # the interior: whole 2 x 2 blocks, filled
    candidates[1, 5] = 0                  # a pale pixel on the cell's edge (a block beside it is glass): stays out
    candidates[8, 2] = 0                  # a pale pixel whose block and the four beside it are the cell's: filled
    candidates[0, 9:12] = 7               # a stray bit of cell 7 cut off from its nucleus: dropped
    nuclei = np.zeros_like(candidates)
    nuclei[1, 1] = 5
    half = _block_max(candidates)
    out = K.from_half(candidates, nuclei, half, _holes_filled_and_joined(half, _block_max(nuclei)))
    assert np.all(out[4:8, 4:8] == 5) and out[1, 5] == 0 and out[8, 2] == 5
    assert np.all(out[0] == 0) and np.all(out[11] == 0) and out[1, 1] == 5
    assert (out == 5).sum() == 100 - 1
