"""Reading tiles of a slide opened from its path, as workers do.

A worker receives a slide's path, never an open handle: :class:`TileReader`
opens it, reopens it after a read error, and gives up a region that fails
twice, so that one corrupt JPEG tile costs that tile only.
"""

from __future__ import annotations

import numpy as np

from ihc_score.errors import SlideReadError
from ihc_score.slide.factory import open_slide

__all__ = ["TileReader"]


class TileReader:
    """A slide opened from its path, reopened after a read error; a region that fails twice is given up."""

    def __init__(self, path: str, mpp_option_um: float | None) -> None:
        self.path, self.mpp_option_um = path, mpp_option_um
        self.slide = open_slide(path, mpp_option_um=mpp_option_um)

    def _reopen(self) -> None:
        self.slide.close()
        self.slide = open_slide(self.path, mpp_option_um=self.mpp_option_um)

    def read(self, l0_xy: tuple[int, int], l0_size: tuple[int, int], downsample: float) -> np.ndarray | None:
        """RGB uint8 of a level-0 rectangle reduced by ``downsample`` (:meth:`Slide.read_scaled`), or None where it fails twice."""
        for attempt in range(2):
            try:
                return self.slide.read_scaled(l0_xy, l0_size, downsample)
            except SlideReadError:
                self._reopen()  # the first failure may be passing (I/O); a corrupt tile fails again
        return None

    def close(self) -> None:
        """Close the slide."""
        self.slide.close()
