"""Tile grid: cores partition the frame, tissue-only tiles, margins."""

from __future__ import annotations

import numpy as np
import pytest

from ihc_score.run import in_core, tile_grid


def test_cores_partition_the_frame_so_each_point_counts_once():
    grid = tile_grid((5003, 3001), downsample=2.0, tile_px=256, margin_px=20)
    assert grid.a_size == (2501, 1500)
    assert grid.n_grid == 10 * 6 == len(grid.tiles)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 2501, 20000)
    y = rng.uniform(0, 1500, 20000)
    hits = sum(in_core(t, x, y).astype(int) for t in grid.tiles)
    assert np.all(hits == 1)


def test_read_rect_has_margin_clipped_to_frame():
    grid = tile_grid((1000, 1000), downsample=1.0, tile_px=400, margin_px=30)
    first, middle = grid.tiles[0], grid.tiles[4]
    assert first.a_core == (0, 0, 400, 400) and first.a_read == (0, 0, 430, 430)
    assert middle.a_core == (400, 400, 400, 400) and middle.a_read == (370, 370, 460, 460)
    last = grid.tiles[-1]
    assert last.a_core == (800, 800, 200, 200) and last.a_read == (770, 770, 230, 230)


def test_only_tiles_over_tissue_are_kept():
    # Level-0 4096 x 4096, mask at 64 px/px (64 x 64), tissue in the top-left quarter only.
    mask = np.zeros((64, 64), bool)
    mask[5:20, 5:20] = True
    grid = tile_grid((4096, 4096), downsample=2.0, tile_px=512, margin_px=16, tissue=mask, tissue_downsample=64.0)
    # analysis frame 2048 px = 4 x 4 tiles of 512; a tile spans 16 mask px; tissue 5..20 touches tiles 0 and 1
    assert grid.n_grid == 16
    assert [t.index for t in grid.tiles] == [0, 1, 4, 5]


def test_l0_rect_round_trip():
    grid = tile_grid((10000, 8000), downsample=2.0, tile_px=1000, margin_px=0)
    assert grid.l0_rect((1000, 2000, 1000, 1000)) == ((2000, 4000), (2000, 2000))


def test_upsampling_is_refused():
    with pytest.raises(ValueError, match="upsample"):
        tile_grid((100, 100), downsample=0.5, tile_px=64, margin_px=0)
