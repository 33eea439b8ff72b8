"""Provenance of a batch: the ``run.json`` record."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ihc_score.model import Model
from ihc_score.results import CaseAssignment, SlideResult
from ihc_score.version import __version__

if TYPE_CHECKING:
    from ihc_score.run.options import BatchOptions

__all__ = ["run_record", "environment"]


def run_record(
    results: Sequence[tuple[CaseAssignment, SlideResult]],
    reused: Sequence[str],
    model: Model,
    options: BatchOptions,
    argv: Sequence[str],
    executor_name: str,
    started: datetime,
) -> dict[str, Any]:
    return {
        "ihc_score_version": __version__,
        "command": list(argv),
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "executor": executor_name,
        "options": {
            "mpp": options.mpp_option_um,
            "force": options.force,
            "annotations_dir": str(options.annotations_dir) if options.annotations_dir else None,
            "region_mode": options.region_mode,
            "roi_margin_um": options.roi_margin_um,
            "manifest": options.manifest is not None,
            "case_pattern": options.case_pattern.pattern if options.case_pattern else None,
        },
        "model": {
            "id": model.id,
            "version": model.version,
            "sha256": model.sha256,
            "overrides": [list(o) for o in model.overrides],
            "parameters": model.to_dict(),
        },
        "slides": {
            "total": len(results),
            "scored": sum(r.status == "ok" for _, r in results) - len(reused),
            "reused": sorted(reused),
            "failed": sorted(r.slide for _, r in results if r.status == "failed"),
            "incomplete": sorted(r.slide for _, r in results if r.status == "incomplete"),
            "seconds": {r.slide: round(r.seconds, 3) for _, r in results},
        },
        "environment": environment(),
    }


def environment() -> dict[str, Any]:
    """Versions of Python, the platform and the libraries that decide results."""
    from importlib import metadata

    versions = {}
    for dist in (
        "numpy", "scipy", "scikit-image", "opencv-python-headless", "openslide-python", "openslide-bin",
        "tifffile", "imagecodecs", "pillow", "shapely", "dask", "distributed", "click", "numba", "scikit-learn",
        "pandas", "statsmodels", "pingouin", "lifelines", "matplotlib",
    ):  # fmt: skip
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
    }
