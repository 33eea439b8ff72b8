"""What a slide leaves out of its score, and why: artefact areas and pigment.

Pen ink, folds and air bubbles are found on the slide's thumbnail when it is
planned; out-of-focus blocks and pigment in the tiles, by the workers. Each
is left out of the scored area (ink, folds, bubbles, blur) or out of the
graded cells (cells mostly covered by pigment), and its area is reported, so
that a pathologist sees how much of the slide the score rests on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ExcludedAreas", "ARTEFACT_KINDS"]

#: Label of each artefact kind in the artefact masks (0 = none), in drawing order.
ARTEFACT_KINDS: dict[int, str] = {1: "pen ink", 2: "fold", 3: "air bubble", 4: "out of focus"}


@dataclass(frozen=True)
class ExcludedAreas:
    """Areas of one slide left out of scoring, mm^2, by cause.

    Attributes
    ----------
    ink_mm2, fold_mm2, bubble_mm2 : float
        Pen ink, tissue folds and air bubbles found on the thumbnail (on or
        within tissue).
    blur_mm2 : float
        Tissue in tile cores judged out of focus; no cell in it counts.
    pigment_mm2 : float
        Tissue pixels judged brown pigment (melanin, hemosiderin) rather than
        DAB, outside the out-of-focus blocks.
    n_pigmented : int
        Cells whose area is mostly pigment (model ``pigment.max_cell_fraction``):
        not graded, counted apart.
    """

    ink_mm2: float = 0.0
    fold_mm2: float = 0.0
    bubble_mm2: float = 0.0
    blur_mm2: float = 0.0
    pigment_mm2: float = 0.0
    n_pigmented: int = 0

    def __post_init__(self) -> None:
        for name in ("ink_mm2", "fold_mm2", "bubble_mm2", "blur_mm2", "pigment_mm2"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite area >= 0 mm^2, got {value!r}")
        if self.n_pigmented < 0:
            raise ValueError(f"n_pigmented must be >= 0, got {self.n_pigmented!r}")
