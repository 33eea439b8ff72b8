"""ihc-score: S100A9 immunohistochemistry scoring on whole-slide images.

The public Python API::

    import ihc_score

    model = ihc_score.load_model()                      # the shipped model, or a path to your own
    result = ihc_score.score_slide("A12.svs", model)    # one slide, in this process
    for region in result.regions:
        print(region.name, region.counts.h_score, region.call.call)


``run_batch`` scores many slides on an executor and writes the batch outputs,
as ``ihc-score score`` does.
Names are loaded on first use, so ``import ihc_score`` (and ``ihc-score
--help``) stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ihc_score.version import __version__

if TYPE_CHECKING:  # the names __getattr__ loads, for type checkers
    from ihc_score.model import Model, default_model, load_model  # noqa: F401
    from ihc_score.results import CaseAssignment, CaseResult, RegionResult, SlideDetail, SlideResult  # noqa: F401
    from ihc_score.run import BatchOptions, BatchSummary, run_batch, score_slide  # noqa: F401
    from ihc_score.slide import Slide, open_slide  # noqa: F401

#: Each public name and the module that holds it.
_API: dict[str, str] = {
    "load_model": "ihc_score.model",
    "default_model": "ihc_score.model",
    "Model": "ihc_score.model",
    "open_slide": "ihc_score.slide",
    "Slide": "ihc_score.slide",
    "score_slide": "ihc_score.run",
    "run_batch": "ihc_score.run",
    "BatchOptions": "ihc_score.run",
    "BatchSummary": "ihc_score.run",
    "SlideResult": "ihc_score.results",
    "SlideDetail": "ihc_score.results",
    "RegionResult": "ihc_score.results",
    "CaseResult": "ihc_score.results",
    "CaseAssignment": "ihc_score.results",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'ihc_score' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
