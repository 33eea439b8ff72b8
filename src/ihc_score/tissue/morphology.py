"""Small operations on boolean masks shared by tissue, artefact and metastasis detection (OpenCV, 8-connected pieces)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["disc", "remove_small", "fill_holes", "hysteresis"]


def disc(diameter_px: float) -> np.ndarray:
    """Elliptic structuring element of about ``diameter_px`` (odd, at least 3)."""
    d = max(3, 2 * int(round(diameter_px / 2)) + 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))


def remove_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    """``mask`` without its pieces of fewer than ``min_px`` pixels."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_px
    keep[0] = False
    return keep[labels]


def fill_holes(mask: np.ndarray, max_px: float) -> np.ndarray:
    """``mask`` with 4-connected holes (not touching the border) up to ``max_px`` pixels filled."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).view(np.uint8), connectivity=4)
    fill = stats[:, cv2.CC_STAT_AREA] <= max_px
    fill[0] = False
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    fill[border] = False
    return mask | fill[labels]


def hysteresis(strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Pieces of ``weak`` (8-connected) that hold a pixel of ``strong``."""
    n, labels = cv2.connectedComponents(weak.view(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[labels[strong & weak]] = True
    keep[0] = False
    return keep[labels]
