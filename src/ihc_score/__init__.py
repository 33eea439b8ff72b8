"""ihc-score: S100A9 immunohistochemistry scoring on whole-slide images."""

from __future__ import annotations

__version__ = "0.1.0"
