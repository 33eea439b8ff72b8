"""Tests of nucleus detection, cell expansion and measurement."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ihc_score.cells import (
    CellTable,
    DetectionParams,
    detect_cells,
    detect_nuclei,
    detection_image,
    expand_cells,
    measure_cells,
    tile_margin_um,
)
from ihc_score.stain import deconvolution as stain
from ihc_score.stain import estimate as stain_estimate

MPP = 0.5
NUCLEUS_R_UM = 4.0
DISC_AREA_UM2 = np.pi * NUCLEUS_R_UM**2


def _draw(size_um: float, mpp_um: float, objects: list[tuple]) -> np.ndarray:
    """Deconvolved image (H, W, 3) of discs / rings in OD units.

    ``objects``: ("disc", x_um, y_um, r_um, h_od, dab_od) or
    ("ring", x_um, y_um, r_in_um, r_out_um, dab_od). Overlapping discs take
    the maximum, so a touching pair is flat, not brighter where it meets.
    """
    n = int(round(size_um / mpp_um))
    yy, xx = (np.mgrid[0:n, 0:n] + 0.5) * mpp_um
    out = np.zeros((n, n, 3), dtype=np.float32)
    for obj in objects:
        kind, x, y = obj[0], obj[1], obj[2]
        dist = np.hypot(xx - x, yy - y)
        if kind == "disc":
            inside = dist <= obj[3]
            out[..., 0] = np.where(inside, np.maximum(out[..., 0], obj[4]), out[..., 0])
            out[..., 1] = np.where(inside, np.maximum(out[..., 1], obj[5]), out[..., 1])
        else:
            inside = (dist >= obj[3]) & (dist <= obj[4])
            out[..., 1] = np.where(inside, np.maximum(out[..., 1], obj[5]), out[..., 1])
    return out


#: Six isolated nuclei with DAB 0 .. 0.75, a touching pair, a speck (3 um^2)
#: and a blob (531 um^2) that the area limits drop.
ISOLATED = [(20.0 + 30.0 * i, 20.0, 0.15 * i) for i in range(6)]
SCENE = (
    [("disc", x, y, NUCLEUS_R_UM, 0.5, dab) for x, y, dab in ISOLATED]
    + [("disc", 30.0, 60.0, NUCLEUS_R_UM, 0.5, 0.4), ("disc", 37.0, 60.0, NUCLEUS_R_UM, 0.5, 0.0)]
    + [("disc", 90.0, 60.0, 1.0, 0.6, 0.0), ("disc", 140.0, 70.0, 13.0, 0.5, 0.0)]
)
SIZE_UM = 180.0
#: The scene's nuclei have no cytoplasm drawn: its cells are QuPath's fixed expansion.
EXPANSION = DetectionParams(cell_body="expansion")


@pytest.fixture(scope="module")
def scene() -> tuple[CellTable, np.ndarray, np.ndarray]:
    return detect_cells(_draw(SIZE_UM, MPP, SCENE), mpp_um=MPP, params=EXPANSION)


def _nearest(table: CellTable, x_um: float, y_um: float, mpp_um: float = MPP) -> int:
    d = np.hypot((table.a_x + 0.5) * mpp_um - x_um, (table.a_y + 0.5) * mpp_um - y_um)
    i = int(np.argmin(d))
    assert d[i] < 1.5, f"no cell within 1.5 um of ({x_um}, {y_um})"
    return i


def test_count_excludes_speck_and_blob(scene):
    table, nuclei, _ = scene
    assert len(table) == 8
    assert nuclei.max() == 8
    for x, y in [(90.0, 60.0), (140.0, 70.0)]:
        assert np.hypot((table.a_x + 0.5) * MPP - x, (table.a_y + 0.5) * MPP - y).min() > 5


def test_touching_pair_is_split(scene):
    table, _, _ = scene
    left, right = _nearest(table, 30.0, 60.0), _nearest(table, 37.0, 60.0)
    assert left != right
    # The cut runs through the neck: each half holds about half the union.
    assert table.nucleus_area_um2[left] == pytest.approx(table.nucleus_area_um2[right], rel=0.15)
    assert table.dab_nucleus_mean[left] > 0.3 > 0.1 > table.dab_nucleus_mean[right]


def test_areas_within_ten_percent(scene):
    table, _, _ = scene
    for x, y, _dab in ISOLATED:
        i = _nearest(table, x, y)
        assert table.nucleus_area_um2[i] == pytest.approx(DISC_AREA_UM2, rel=0.10)
        cell_um2 = np.pi * (NUCLEUS_R_UM + DetectionParams().cell_expansion_um) ** 2
        assert table.cell_area_um2[i] == pytest.approx(cell_um2, rel=0.10)


def test_dab_means_match_drawn_values(scene):
    table, _, _ = scene
    for x, y, dab in ISOLATED:
        i = _nearest(table, x, y)
        assert table.dab_nucleus_mean[i] == pytest.approx(dab, abs=0.02 + 0.05 * dab)
        assert table.dab_nucleus_max[i] == pytest.approx(dab, abs=1e-6)
        assert table.hematoxylin_od_mean[i] == pytest.approx(0.5, abs=0.03)
        assert table.dab_cytoplasm_mean[i] == pytest.approx(0.0, abs=0.02 + 0.05 * dab)


def test_cytoplasm_ring_is_told_from_nucleus():
    image = _draw(
        60.0,
        MPP,
        [("disc", 30.0, 30.0, NUCLEUS_R_UM, 0.5, 0.0), ("ring", 30.0, 30.0, NUCLEUS_R_UM + 0.5, 8.5, 0.5)],
    )
    table, _, _ = detect_cells(image, mpp_um=MPP)
    assert len(table) == 1
    assert table.dab_nucleus_mean[0] < 0.03
    assert table.dab_cytoplasm_mean[0] > 0.4
    assert table.dab_cytoplasm_max[0] == pytest.approx(0.5)
    assert table.dab_nucleus_mean[0] < table.dab_cell_mean[0] < table.dab_cytoplasm_mean[0]
    assert table.dab_cell_max[0] == pytest.approx(0.5)


def test_cells_contain_their_nuclei_and_do_not_reach_beyond_expansion(scene):
    _, nuclei, cells = scene
    inside = nuclei > 0
    assert np.array_equal(cells[inside], nuclei[inside])
    # Every cell pixel lies within the expansion distance of its own nucleus.
    radius_px = DetectionParams().cell_expansion_um / MPP
    for label in np.unique(nuclei[inside]):
        own = (nuclei == label).astype(np.uint8)
        dist = cv2.distanceTransform(1 - own, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        assert dist[cells == label].max() <= radius_px + 1.0


def test_pair_cells_share_no_pixel_and_cover_their_union(scene):
    table, nuclei, cells = scene
    left, right = _nearest(table, 30.0, 60.0) + 1, _nearest(table, 37.0, 60.0) + 1
    union = np.isin(cells, [left, right]).sum() * MPP * MPP
    assert table.cell_area_um2[left - 1] + table.cell_area_um2[right - 1] == pytest.approx(union)
    # The union is smaller than two free cells: the neighbours do not overlap.
    free = np.pi * (NUCLEUS_R_UM + 5.0) ** 2
    assert union < 2 * free * 0.9


@pytest.mark.parametrize("mpp_um", [0.25, 0.5])
def test_pixel_size_does_not_change_the_result(mpp_um):
    table, _, _ = detect_cells(_draw(SIZE_UM, mpp_um, SCENE), mpp_um=mpp_um)
    assert len(table) == 8
    for x, y, dab in ISOLATED:
        i = _nearest(table, x, y, mpp_um)
        assert table.nucleus_area_um2[i] == pytest.approx(DISC_AREA_UM2, rel=0.10)
        assert table.dab_nucleus_mean[i] == pytest.approx(dab, abs=0.02 + 0.05 * dab)


def test_measure_cells_golden_values():
    nuclei = np.zeros((4, 6), dtype=np.int32)
    nuclei[1, 1:3] = 1  # two pixels at (1,1) (2,1)
    nuclei[2, 4] = 2  # one pixel at (4,2)
    cells = nuclei.copy()
    cells[0, 1:3] = 1
    cells[2, 5] = 2
    cells[3, 5] = 2
    h = np.full((4, 6), 0.3, dtype=np.float32)
    h[1, 1] = 0.5
    dab = np.zeros((4, 6), dtype=np.float32)
    dab[1, 1], dab[1, 2] = 0.2, 0.4
    dab[0, 1], dab[0, 2] = 0.6, 1.0
    dab[2, 4], dab[2, 5], dab[3, 5] = 0.1, 0.3, 0.5
    t = measure_cells(nuclei, cells, h, dab, mpp_um=2.0)
    assert len(t) == 2
    np.testing.assert_allclose(t.a_x, [1.5, 4.0])
    np.testing.assert_allclose(t.a_y, [1.0, 2.0])
    np.testing.assert_allclose(t.nucleus_area_um2, [8.0, 4.0])
    np.testing.assert_allclose(t.cell_area_um2, [16.0, 12.0])
    np.testing.assert_allclose(t.hematoxylin_od_mean, [0.4, 0.3], rtol=1e-6)
    np.testing.assert_allclose(t.dab_nucleus_mean, [0.3, 0.1], rtol=1e-6)
    np.testing.assert_allclose(t.dab_nucleus_max, [0.4, 0.1], rtol=1e-6)
    np.testing.assert_allclose(t.dab_cytoplasm_mean, [0.8, 0.4], rtol=1e-6)
    np.testing.assert_allclose(t.dab_cytoplasm_max, [1.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(t.dab_cell_mean, [0.55, 0.3], rtol=1e-6)
    np.testing.assert_allclose(t.dab_cell_max, [1.0, 0.5], rtol=1e-6)
    assert all(getattr(t, name).dtype == np.float32 for name in ("a_x", "dab_cell_max"))


def test_cell_without_cytoplasm_gives_nan_not_zero():
    nuclei = np.array([[1, 2]], dtype=np.int32)
    dab = np.array([[0.5, 0.1]], dtype=np.float32)
    t = measure_cells(nuclei, nuclei.copy(), dab, dab, mpp_um=1.0)
    assert np.isnan(t.dab_cytoplasm_mean).all() and np.isnan(t.dab_cytoplasm_max).all()
    np.testing.assert_allclose(t.dab_cell_max, [0.5, 0.1])


def test_empty_image_gives_empty_table():
    table, nuclei, cells = detect_cells(np.zeros((64, 64, 3), dtype=np.float32), mpp_um=MPP)
    assert len(table) == 0 and nuclei.max() == 0 and cells.max() == 0


def test_table_take_concat_empty():
    table, _, _ = detect_cells(_draw(SIZE_UM, MPP, SCENE), mpp_um=MPP)
    first = table.take(np.array([0, 1]))
    rest = table.take(np.arange(len(table)) >= 2)
    both = CellTable.concat([first, rest])
    assert len(both) == len(table)
    np.testing.assert_array_equal(both.dab_nucleus_mean, table.dab_nucleus_mean)
    assert len(CellTable.empty()) == 0 and len(CellTable.concat([])) == 0
    with pytest.raises(ValueError, match="a_y"):
        CellTable(**{**{k: np.zeros(2) for k in ("a_x", "a_y")}, "a_y": np.zeros(3),
                     **{k: np.zeros(2) for k in CellTable.__dataclass_fields__ if k not in ("a_x", "a_y")}})


def test_hematoxylin_dab_channel_finds_brown_nuclei_without_hematoxylin():
    image = _draw(60.0, MPP, [("disc", 20.0, 30.0, NUCLEUS_R_UM, 0.0, 0.6), ("disc", 40.0, 30.0, NUCLEUS_R_UM, 0.5, 0.0)])
    on_h = detect_cells(image, mpp_um=MPP, params=DetectionParams(channel="hematoxylin"))[0]
    on_sum = detect_cells(image, mpp_um=MPP, params=DetectionParams(channel="hematoxylin_dab"))[0]
    assert len(on_h) == 1 and len(on_sum) == 2
    np.testing.assert_allclose(detection_image(image, "hematoxylin_dab"), image[..., 0] + image[..., 1])


@pytest.mark.parametrize(
    "field, value",
    [("sigma_um", -1.0), ("threshold_od", 0.0), ("max_area_um2", 5.0), ("channel", "eosin"), ("min_area_um2", float("nan")),
     ("faint_max_glass_fraction", 1.5), ("faint_min_hematoxylin_share", -0.1)],
)
def test_params_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DetectionParams(**{field: value})


def test_bad_pixel_size_is_rejected():
    with pytest.raises(ValueError, match="mpp_um"):
        detect_nuclei(np.zeros((8, 8), dtype=np.float32), mpp_um=0.0, params=DetectionParams())
    with pytest.raises(ValueError, match="mpp_um"):
        expand_cells(np.zeros((8, 8), dtype=np.int32), mpp_um=-1.0, params=DetectionParams())


def test_real_ki67_lung_field(shared_data: Path):
    """deepliif Lung1: 60 annotated nuclei (11 Ki67-positive, 18.3 %)."""
    from PIL import Image

    folder = shared_data / "ihc" / "deepliif" / "val"
    with Image.open(folder / "Lung1.png") as im:
        panels = np.asarray(im.convert("RGB"))
    truth = json.loads((folder / "Lung1.json").read_text())
    seg = panels[:, 2560:3072].astype(np.int16)
    red = (seg[..., 0] > 200) & (seg[..., 1] < 60) & (seg[..., 2] < 60)
    blue = (seg[..., 2] > 200) & (seg[..., 0] < 60) & (seg[..., 1] < 60)
    truth_xy = []
    for colour in (red, blue):
        n, _, stats, centroids = cv2.connectedComponentsWithStats(colour.astype(np.uint8), connectivity=8)
        truth_xy.append(centroids[1:][stats[1:, cv2.CC_STAT_AREA] >= truth["size_thresh"]])
    assert [len(p) for p in truth_xy] == [truth["num_pos"], truth["num_neg"]]
    truth_xy = np.concatenate(truth_xy) * (307 / 512)  # 0.3 -> 0.5 um/px
    a_rgb = cv2.resize(np.ascontiguousarray(panels[:, :512]), (307, 307), interpolation=cv2.INTER_AREA)
    stains = stain.StainVectors(background=stain_estimate.estimate_background(a_rgb))
    table, _, _ = detect_cells(stain.deconvolve(a_rgb, stains), mpp_um=MPP)
    # Each truth nucleus has one of our centroids within 4 um (8 px) for most nuclei.
    ours = np.column_stack([table.a_x, table.a_y])
    dist = np.hypot(*(truth_xy[:, None, :] - ours[None, :, :]).transpose(2, 0, 1))
    recall = float(np.mean(dist.min(axis=1) <= 4.0 / MPP))
    assert recall >= 0.8
    assert len(table) <= 1.5 * truth["num_total"]
    positive_pct = 100.0 * float(np.mean(table.dab_nucleus_mean >= 0.2))
    assert abs(positive_pct - truth["percent_pos"]) <= 10.0


def test_tile_with_margin_reproduces_core_cells_of_whole_field(shared_data: Path):
    """Cells whose centroid lies in a tile's core match the whole-field run
    when the tile has ``tile_margin_um`` of context and an even origin."""
    from PIL import Image

    with Image.open(shared_data / "ihc" / "ki67-glioma" / "1309620-A2-27" / "original.jpg") as im:
        rgb = np.asarray(im.convert("RGB"))
    a_rgb = cv2.resize(rgb, (816, 614), interpolation=cv2.INTER_AREA)  # 0.1 -> 0.5 um/px
    image = stain.deconvolve(a_rgb, stain.StainVectors(background=(207.0, 208.0, 208.0)))
    whole, _, _ = detect_cells(image, mpp_um=MPP)
    margin = int(np.ceil(tile_margin_um() / MPP))
    margin += margin % 2
    x0, y0, x1, y1 = 300, 204, 500, 404
    assert y0 - margin >= 0 and y1 + margin <= image.shape[0]  # the margin (about 100 um) fits in the field
    tile, _, _ = detect_cells(np.ascontiguousarray(image[y0 - margin : y1 + margin, x0 - margin : x1 + margin]), mpp_um=MPP)

    def core(table: CellTable, dx: int, dy: int) -> np.ndarray:
        x, y = table.a_x + dx, table.a_y + dy
        keep = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
        rows = np.column_stack([x, y, table.nucleus_area_um2, table.cell_area_um2, table.dab_cell_mean])[keep]
        return rows[np.lexsort(rows.T[::-1])]

    expected, got = core(whole, 0, 0), core(tile, x0 - margin, y0 - margin)
    assert len(expected) > 20
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)


# The fast paths of detection must give exactly what their plain definitions
# give; each test below builds the plain version and compares bit for bit.


def _bumpy(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Smooth random float32 image with plateaus (quantised) and many maxima."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), 2.0)
    return np.round(img * 200.0).astype(np.float32) / 200.0


@pytest.mark.parametrize("radius_px", [1.0, 2.0, 3.4, 6.0])
def test_maxima_equal_plain_dilation(radius_px):
    from ihc_score.cells._nuclei import _disk, _maxima

    score = _bumpy((90, 110), seed=int(radius_px * 10))
    mask = score > np.quantile(score, 0.3)
    plain = (score >= cv2.dilate(score, _disk(radius_px))) & mask
    got = _maxima(mask, score, radius_px)
    assert plain.sum() > 10
    np.testing.assert_array_equal(got, plain)


def test_partition_in_box_equals_whole_image():
    """Nuclei in one corner of a large field: the box path gives the whole-image labels."""
    from ihc_score.cells._nuclei import _partition, _partition_box

    score = np.zeros((400, 500), dtype=np.float32)
    score[37:137, 251:371] = _bumpy((100, 120), seed=3)
    mask = score > 0.45
    peaks = (score >= cv2.dilate(score, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13)))) & mask
    lab, n = _partition(mask, score, peaks, 0.5)
    whole, n_whole, fits = _partition_box(mask, score, peaks, 0.5, np.inf)
    assert fits and len(np.unique(whole)) > 3
    np.testing.assert_array_equal(lab, whole)
    assert n == n_whole


def _scattered_blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sparse foreground: small bumpy blobs far apart, two of them close, a long bar with two maxima at one end."""
    score = np.zeros((700, 900), dtype=np.float32)
    for k, (y, x) in enumerate([(20, 30), (300, 600), (620, 90), (640, 820), (400, 160), (400, 230)]):
        score[y : y + 40, x : x + 50] = _bumpy((40, 50), seed=10 + k)
    score[200:206, 300:650] = np.linspace(0.6, 0.46, 350, dtype=np.float32)  # its far end: 300 px from its markers
    score[200:206, 305:311] = 0.7
    score[200:206, 325:331] = 0.7
    mask = score > 0.45
    peaks = (score >= cv2.dilate(score, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13)))) & mask
    return mask, score, peaks


def test_partition_in_groups_of_blobs_equals_whole_image(monkeypatch):
    """A sparse foreground is split in a box per group of blobs: labels and numbers as on the whole image.

    The bar's group fails the distance check and falls back to the whole image; the test is run with and
    without it.
    """
    from ihc_score.cells import _blob_split, _nuclei

    used = []
    grouped = _nuclei.split_in_groups
    monkeypatch.setattr(_nuclei, "split_in_groups", lambda *a: used.append(grouped(*a)) or used[-1])
    mask, score, peaks = _scattered_blobs()
    no_bar = mask.copy()
    no_bar[200:206] = False
    results = [_nuclei._partition(m, score, peaks & m, 0.5) for m in (no_bar, mask)]
    assert used[0] is not None and used[1] is None  # the groups' boxes were used, then refused for the bar
    monkeypatch.setattr(_blob_split, "_MAX_GROUPED_BLOBS", 0)  # the whole image, as before grouping
    for m, (lab, n) in zip((no_bar, mask), results, strict=True):
        whole, n_whole = _nuclei._partition(m, score, peaks & m, 0.5)
        assert len(np.unique(whole)) > 8
        np.testing.assert_array_equal(lab, whole)
        assert n == n_whole


def test_small_holes_filled_border_and_large_holes_kept():
    from ihc_score.cells._nuclei import _fill_small_holes

    mask = np.zeros((120, 200), dtype=bool)
    mask[20:40, 130:160] = True
    mask[25:28, 140:145] = False  # 15 px hole: filled
    mask[60:100, 100:150] = True
    mask[65:95, 105:145] = False  # 1200 px hole: kept
    mask[100:120, 0:30] = True
    mask[110:120, 10:15] = False  # 50 px notch open to the image border: kept
    out = _fill_small_holes(mask, 100.0)
    expected = mask.copy()
    expected[25:28, 140:145] = True
    np.testing.assert_array_equal(out, expected)
    assert not mask[25:28, 140:145].any()  # input untouched


def test_expansion_of_few_nuclei_in_a_large_field_equals_whole_field_transform():
    """The box around a few nuclei gives what the image cut to that box gives,
    and both agree with the exact nearest-nucleus expansion but for about a
    pixel at the cells' edges."""
    nuclei = np.zeros((300, 420), dtype=np.int32)
    nuclei[200:206, 300:307] = 1
    nuclei[203:209, 311:316] = 2
    nuclei[180:187, 240:246] = 4
    nuclei[290:300, 410:420] = 3  # against the image corner
    params = DetectionParams(cell_expansion_um=5.0)
    got = expand_cells(nuclei, mpp_um=MPP, params=params)
    y0, x0 = 160, 220  # even origin, the whole reach of the nuclei inside
    cut = expand_cells(np.ascontiguousarray(nuclei[y0:, x0:]), mpp_um=MPP, params=params)
    np.testing.assert_array_equal(got[y0:, x0:], cut)
    assert not got[:y0].any() and not got[:, :x0].any()
    inside = nuclei != 0
    dist, near = cv2.distanceTransformWithLabels((~inside).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    exact = np.concatenate([[0], nuclei[inside]]).astype(np.int32)[near]
    exact[dist > 5.0 / MPP] = 0
    assert set(np.unique(got)) == {0, 1, 2, 3, 4}
    differ = got != exact
    assert differ.sum() <= 0.2 * (exact != 0).sum()  # a one-pixel band around cells of about 600 px
    # Every pixel that differs lies within 1.5 px of a cell edge of the exact expansion.
    edge = cv2.morphologyEx(exact.astype(np.float32), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) != 0
    near_edge = cv2.dilate(edge.view(np.uint8), np.ones((3, 3), np.uint8)) != 0
    assert near_edge[differ].all()


def test_glass_with_noise_has_no_nuclei_but_one_faint_nucleus_is_found():
    rng = np.random.default_rng(7)
    glass = np.zeros((200, 200, 3), dtype=np.float32)
    glass[..., 0] = rng.normal(0.0, 0.005, (200, 200))
    table, nuclei, _ = detect_cells(glass, mpp_um=MPP)
    assert len(table) == 0 and nuclei.shape == (200, 200) and nuclei.dtype == np.int32
    faint = glass.copy()
    yy, xx = np.mgrid[0:200, 0:200]
    faint[..., 0] += np.where(np.hypot(xx - 100, yy - 100) <= 8, 0.12, 0.0).astype(np.float32)
    table, _, _ = detect_cells(faint, mpp_um=MPP)
    assert len(table) == 1
    assert table.a_x[0] == pytest.approx(100.0, abs=1.0) and table.a_y[0] == pytest.approx(100.0, abs=1.0)


def test_measurement_of_channel_views_equals_contiguous_copies(scene):
    """Channels given as views of an (H, W, 3) array are measured as their copies."""
    _, nuclei, cells = scene
    conc = _draw(SIZE_UM, MPP, SCENE)
    a = measure_cells(nuclei, cells, conc[..., 0], conc[..., 1], mpp_um=MPP)
    b = measure_cells(nuclei, cells, conc[..., 0].copy(), conc[..., 1].copy(), mpp_um=MPP)
    for name in ("a_x", "hematoxylin_od_mean", "dab_cytoplasm_mean", "dab_cell_max"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("radius_px", [2.0, 5.0, 8.0, 16.0])
def test_octagon_stays_within_half_a_pixel_of_the_disk(radius_px):
    """The passes of 3 x 3 squares and crosses reach the disk's radius along
    the axes and its radius / sqrt(2) along the diagonals, within 0.5 px."""
    from ihc_score.cells._background import _octagon_filter

    n = 2 * int(radius_px) + 9
    point = np.zeros((n, n), dtype=np.float32)
    point[n // 2, n // 2] = 1.0
    shape = _octagon_filter(point, radius_px, cv2.MORPH_DILATE) > 0
    c = n // 2
    axis = np.flatnonzero(shape[c])
    diagonal = np.flatnonzero(np.diagonal(shape))
    assert abs((axis.max() - c) - radius_px) <= 0.5
    assert abs((diagonal.max() - c) * np.sqrt(2.0) - radius_px) <= 0.5 * np.sqrt(2.0) + 0.5


def test_background_is_the_level_under_nuclei_and_removes_structures_wider_than_the_ball():
    """On a tilted background, a nucleus keeps its own height above the
    background, a flat plate wider than the ball (radius 16 px) goes whole,
    and nothing becomes negative; a tile on even rows and columns with two
    radii of margin reproduces the whole image."""
    from ihc_score.cells._background import _subtract_background

    yy, xx = np.mgrid[0:240, 0:300].astype(np.float32)
    image = 0.05 + 0.0004 * xx + 0.0002 * yy  # a ramp: 0.05 .. 0.21 OD
    nucleus = np.hypot(xx - 60, yy - 60) <= 8
    plate = np.hypot(xx - 200, yy - 150) <= 30
    image = image + np.where(nucleus, 0.4, 0.0) + np.where(plate, 0.5, 0.0)
    image = image.astype(np.float32)
    out = _subtract_background(image, 16.0)
    assert out.min() >= 0.0
    assert out[60, 60] == pytest.approx(0.4, abs=0.02)
    assert out[plate].max() < 0.02  # the plate is background, not a ring of nuclei
    assert out[~nucleus & ~plate].max() < 0.02  # the ramp is gone
    y0, x0, m = 20, 40, 36
    tile = _subtract_background(np.ascontiguousarray(image[y0 : y0 + 120, x0 : x0 + 150]), 16.0)
    np.testing.assert_array_equal(tile[m:-m, m:-m], out[y0 + m : y0 + 120 - m, x0 + m : x0 + 150 - m])


def test_touching_nuclei_of_different_sizes_are_cut_near_their_valley():
    """Half-resolution lookups move the cut between two touching nuclei by at
    most about a pixel: each keeps about its own drawn area."""
    big_r, small_r = 6.0, 3.5
    scene = [("disc", 40.0, 40.0, big_r, 0.5, 0.0), ("disc", 40.0 + big_r + small_r - 0.5, 40.0, small_r, 0.6, 0.0)]
    table, nuclei, _ = detect_cells(_draw(80.0, MPP, scene), mpp_um=MPP)
    assert len(table) == 2
    areas = sorted(table.nucleus_area_um2)
    assert areas[0] == pytest.approx(np.pi * small_r**2, rel=0.3)
    assert areas[1] == pytest.approx(np.pi * big_r**2, rel=0.2)


def _textured_nucleus(x_um: float, y_um: float) -> list[tuple]:
    """A 15 um nucleus (0.4 OD) with three chromatin clumps (1 um, 0.8 OD) at the corners of a 5 um triangle."""
    h = 5.0 * np.sqrt(3.0) / 2.0
    clumps = [(x_um - 2.5, y_um - h / 3.0), (x_um + 2.5, y_um - h / 3.0), (x_um, y_um + 2.0 * h / 3.0)]
    return [("disc", x_um, y_um, 7.5, 0.4, 0.0)] + [("disc", x, y, 1.0, 0.8, 0.0) for x, y in clumps]


def test_textured_large_nucleus_is_one_and_touching_nuclei_stay_two():
    """The clumps are maxima more than 3 um apart (without the merge of markers the nucleus comes
    out in three pieces), but in one convex piece of the stain: one nucleus. Two such nuclei
    touching, and two touching 8 um nuclei, have a waist between them: two each."""
    area = np.pi * 7.5**2
    table, _, _ = detect_cells(_draw(60.0, MPP, _textured_nucleus(30.0, 30.0)), mpp_um=MPP)
    assert len(table) == 1
    assert table.nucleus_area_um2[0] == pytest.approx(area, rel=0.15)
    centres = [(25.0, 40.0), (37.0, 49.0)]  # 15 um apart: the discs touch
    table, _, _ = detect_cells(_draw(80.0, MPP, _textured_nucleus(*centres[0]) + _textured_nucleus(*centres[1])),
                               mpp_um=MPP)
    assert len(table) == 2
    for x, y in centres:
        assert table.nucleus_area_um2[_nearest(table, x, y)] == pytest.approx(area, rel=0.15)
    pair = [("disc", 26.0, 30.0, NUCLEUS_R_UM, 0.5, 0.0), ("disc", 34.0, 30.0, NUCLEUS_R_UM, 0.5, 0.0)]
    table, _, _ = detect_cells(_draw(60.0, MPP, pair), mpp_um=MPP)
    assert len(table) == 2
    assert table.nucleus_area_um2 == pytest.approx([DISC_AREA_UM2] * 2, rel=0.15)


def test_a_pale_nucleus_beside_a_dark_one_is_found_by_the_second_search():
    """A 1.2 OD nucleus touching a 0.15 OD one: the blurred slope of the dark one leaves the pale one no maximum,
    so one search loses it to the dark one's object; the search around the found nuclei finds it."""
    scene = [("disc", 30.0, 30.0, NUCLEUS_R_UM, 1.2, 0.8), ("disc", 38.5, 30.0, NUCLEUS_R_UM, 0.15, 0.0)]
    image = _draw(60.0, MPP, scene)
    one, _, _ = detect_cells(image, mpp_um=MPP)
    two, _, _ = detect_cells(image, mpp_um=MPP, params=DetectionParams(faint_pass=True))
    assert len(one) == 1 and len(two) == 2
    pale = _nearest(two, 38.5, 30.0)
    assert two.nucleus_area_um2[pale] == pytest.approx(DISC_AREA_UM2, rel=0.35)
    assert two.dab_nucleus_mean[pale] < 0.1  # its own pixels, not the dark neighbour's
    lone = detect_cells(_draw(60.0, MPP, [scene[1]]), mpp_um=MPP)[0]
    assert len(lone) == 1  # alone, the pale nucleus needs no second search


def test_the_second_search_adds_no_nucleus_from_stained_cytoplasm_or_a_blurred_edge():
    """A dark nucleus in a ring of faintly counterstained cytoplasm (0.15 OD, 3 um wide), and a large bright
    nucleus whose blurred edge reaches past its trim: nothing new."""
    image = _draw(80.0, MPP, [("disc", 25.0, 25.0, NUCLEUS_R_UM, 1.0, 0.5), ("disc", 55.0, 55.0, 7.5, 1.5, 0.0)])
    yy, xx = (np.mgrid[0 : image.shape[0], 0 : image.shape[1]] + 0.5) * MPP
    ring = (np.hypot(xx - 25.0, yy - 25.0) > NUCLEUS_R_UM) & (np.hypot(xx - 25.0, yy - 25.0) <= NUCLEUS_R_UM + 3.0)
    image[..., 0] = np.where(ring, 0.15, image[..., 0])
    one, _, _ = detect_cells(image, mpp_um=MPP)
    two, _, _ = detect_cells(image, mpp_um=MPP, params=DetectionParams(faint_pass=True))
    assert len(one) == len(two) == 2


@pytest.mark.parametrize("kind", ["pale nucleus", "stained cytoplasm", "glass ringed by mixed light"])
def test_the_second_search_keeps_only_nuclei_made_of_stain(kind: str):
    """Beside a dark nucleus, a pale object the first search loses: a pale nucleus (hematoxylin 0.15, no DAB) is a
    nucleus; DAB 1.0 with 0.15 of hematoxylin (a share of 0.13: a strongly stained cytoplasm through blurred light),
    and a ring of hematoxylin 0.2 round 1.5 um of glass (the mixed light at the rim of a gap between brown cells), are
    not.
    Without the stains (or with the tests off) all three are found."""
    scene = [("disc", 30.0, 30.0, NUCLEUS_R_UM, 1.2, 0.8)]
    if kind == "pale nucleus":
        scene.append(("disc", 38.5, 30.0, NUCLEUS_R_UM, 0.15, 0.0))
    elif kind == "stained cytoplasm":
        scene.append(("disc", 38.5, 30.0, NUCLEUS_R_UM, 0.15, 1.0))
    image = _draw(60.0, MPP, scene)
    if kind == "glass ringed by mixed light":
        yy, xx = (np.mgrid[0 : image.shape[0], 0 : image.shape[1]] + 0.5) * MPP
        r = np.hypot(xx - 38.5, yy - 30.0)
        image[..., 0] = np.where((r > 1.5) & (r <= NUCLEUS_R_UM), 0.2, image[..., 0])
    params = DetectionParams(faint_pass=True)
    untested = DetectionParams(faint_pass=True, faint_max_glass_fraction=1.0, faint_min_hematoxylin_share=0.0)
    assert len(detect_cells(image, mpp_um=MPP, params=untested)[0]) == 2
    assert detect_nuclei(image[..., 0], mpp_um=MPP, params=params).max() == 2  # no stains given: no tests
    assert len(detect_cells(image, mpp_um=MPP, params=params)[0]) == (2 if kind == "pale nucleus" else 1)


def test_of_stain_golden():
    from ihc_score.cells._faint import _of_stain

    stains = np.zeros((2, 5, 3), np.float32)
    stains[0, :, 0] = [0.3, 0.3, 0.0, 0.02, 0.1]  # hematoxylin
    stains[0, :, 1] = [0.0, 0.1, 0.0, 0.02, 0.5]  # DAB
    stains[1, :, 0] = [0.1, 0.1, 0.1, 0.1, 0.1]
    stains[1, :, 1] = [0.4, 0.4, 0.4, 0.4, 0.4]
    # object 1: pixels 0-1 (H share 0.6 / 0.7, no glass); object 2: pixels 2-3 (both glass: H + D 0 and 0.04);
    # object 3: pixel 4 and pixels 5-9 (H 0.1 + 5 x 0.1 = 0.6 of H + D 0.6 + 2.5: share 0.6 / 3.7 = 0.16)
    lab = np.array([1, 1, 2, 2, 3, 3, 3, 3, 3, 3])
    at = np.arange(10)
    got = _of_stain(lab, at, stains, 4, 0.1, 0.2)
    assert got.tolist() == [False, True, False, False]
    assert _of_stain(lab, at, stains, 4, 1.0, 0.15).tolist() == [False, True, True, True]  # tests loosened


def test_ellipse_fill_of_a_disc_a_square_and_a_ring():
    from ihc_score.cells._faint import _ellipse_fill

    yy, xx = np.mgrid[0:101, 0:101]
    r = np.hypot(xx - 50, yy - 50)
    shapes = {"disc": r <= 20, "square": (abs(xx - 50) <= 20) & (abs(yy - 50) <= 20), "ring": (r >= 15) & (r <= 20)}
    fill = {}
    for name, mask in shapes.items():
        at = np.flatnonzero(mask)
        fill[name] = _ellipse_fill(np.ones(at.size, np.int32), at, 101, 1)[1]
    assert fill["disc"] == pytest.approx(1.0, abs=0.02)
    assert fill["square"] == pytest.approx(3.0 / np.pi, abs=0.02)  # a square: its moments' ellipse is larger
    assert fill["ring"] < 0.5
