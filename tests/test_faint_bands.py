"""The second nucleus search works on the rows and bands that can hold a faint nucleus: the same result as the
whole image."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ihc_score.cells import _faint
from ihc_score.cells._nuclei import _CORE_FRACTION, _foreground, _maxima, _partition, _smooth
from ihc_score.cells.detect import detect_nuclei
from ihc_score.model import DEFAULT_MODEL_PATH, load_model

MPP = 0.5


def _scattered_nuclei(seed: int, size: int = 600) -> np.ndarray:
    """Hematoxylin OD: clusters of dark nuclei with pale ones against them, in a few bands of rows, rest glass."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 0.004, (size, size)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    for cy in rng.choice(np.arange(20, size - 20), size=4, replace=False):  # bands of rows, some at the edges
        for cx in rng.uniform(10, size - 10, size=5):
            dark_r, pale_r = rng.uniform(6.0, 9.0), rng.uniform(5.0, 8.0)
            angle = rng.uniform(0, 2 * np.pi)
            px, py = cx + (dark_r + pale_r + 1) * np.cos(angle), cy + (dark_r + pale_r + 1) * np.sin(angle)
            image += np.where(np.hypot(xx - cx, yy - cy) <= dark_r, rng.uniform(0.5, 0.9), 0.0).astype(np.float32)
            image += np.where(np.hypot(xx - px, yy - py) <= pale_r, rng.uniform(0.12, 0.2), 0.0).astype(np.float32)
    return image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_smoothing_of_chosen_rows_is_that_of_the_whole_image_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 1.0, (300, 170)).astype(np.float32)
    rows = np.zeros(300, dtype=bool)
    rows[[0, 1, 2, 60, 61, 150, 151, 152, 153, 299]] = True
    rows[200:240] = True
    for sigma in (1.0, 3.0, 4.7):
        got = _faint._smooth_rows(image, sigma, rows)
        np.testing.assert_array_equal(got[rows], _smooth(image, sigma)[rows])
        assert not got[~rows].any()


def test_the_kernel_reach_is_opencv_s():
    for sigma in (0.8, 1.0, 2.5, 3.0, 4.7):
        impulse = np.zeros((101, 101), dtype=np.float32)
        impulse[50, 50] = 1.0
        spread = np.flatnonzero(_smooth(impulse, sigma)[50] > 0)
        assert spread.max() - 50 == _faint._support_px(sigma)


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_partition_band_by_band_gives_the_blobs_of_the_whole_image(seed):
    image = _smooth(_scattered_nuclei(seed, size=900), 2.0)
    mask = _foreground(image, 0.07, 100.0)
    peaks = _maxima(mask, image, 6.0)
    whole, n_whole = _partition(mask, image, peaks, _CORE_FRACTION)
    bands, n_bands = _faint._partition_bands(mask, image, peaks)
    assert len(_faint._bands(mask)) > 1  # several bands are partitioned
    # the same objects, numbered band by band
    pairs = np.unique(np.stack([whole.ravel(), bands.ravel()]), axis=1)
    assert np.array_equal(np.unique(pairs[0]), np.unique(whole)) and np.array_equal(np.unique(pairs[1]),
                                                                                      np.unique(bands))
    assert len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))
    assert n_bands == n_whole


@pytest.mark.parametrize("seed", [7, 8])
def test_second_search_finds_what_it_finds_on_the_whole_image(seed, monkeypatch):
    """Against the search with every row smoothed and the faint foreground partitioned as one image."""
    params = dataclasses.replace(load_model(DEFAULT_MODEL_PATH).detection, faint_pass=True)
    image = _scattered_nuclei(seed)
    got = detect_nuclei(image, mpp_um=MPP, params=params)
    monkeypatch.setattr(_faint, "_smooth_rows", lambda img, sigma, rows: _smooth(img, sigma))
    monkeypatch.setattr(_faint, "_partition_bands", lambda m, s, p: _partition(m, s, p, _CORE_FRACTION))
    whole = detect_nuclei(image, mpp_um=MPP, params=params)
    first = detect_nuclei(image, mpp_um=MPP, params=dataclasses.replace(params, faint_pass=False))
    assert whole.max() > first.max()  # the search finds pale nuclei here
    pairs = np.unique(np.stack([whole.ravel(), got.ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))
    assert whole.max() == got.max()
