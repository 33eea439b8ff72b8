"""The package version, kept apart so that any module can name it without importing the package's API."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
