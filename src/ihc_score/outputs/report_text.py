"""The sentence for the pathology report: ``cases.csv`` column ``report_text``.

CAP's guideline for quantitative IHC image analysis (Bui et al., Arch Pathol
Lab Med 2019, recommendation 7) asks that the report say image analysis was
used; the sentence names the method, the tool's and the model's versions,
the deciding metastasis' value with its 95 % interval, the call with its
cut-off, and that the result is for research use until the laboratory has
validated the method itself.
"""

from __future__ import annotations

import math

from ihc_score.model import Model
from ihc_score.results import CaseResult, RegionResult
from ihc_score.version import __version__

__all__ = ["report_text"]

#: The closing words of every sentence: no S100A9 cut-off is published, so no result is clinical before a
#: laboratory has validated the method.
RESEARCH_USE = "For research use until validated in this laboratory."

_METRIC_WORDS = {"h_score": ("H-score", 0), "pct_positive": ("percent positive cells", 1)}


def report_text(case: CaseResult, model: Model) -> str:
    """One sentence (plain ASCII) for the pathology report of ``case``.

    The deciding metastasis is the one with the highest value of the model's
    metric among those with cells (the case rule ``any_positive`` calls a
    case by its highest metastasis); its 95 % interval is the spatial block
    bootstrap of :mod:`ihc_score.score.intervals` ("interval not computed"
    when too few tissue blocks held cells).
    """
    rule = model.positivity
    name, decimals = _METRIC_WORDS[rule.metric]
    overrides = " with one-run overrides" if model.overrides else ""
    method = (
        f"{model.marker} immunohistochemistry quantified by digital image analysis "
        f"(ihc-score {__version__}, scoring model {model.id} {model.version}{overrides})"
    )
    scored = [(slide, g) for slide, g in case.metastases if g.counts.n]
    if not scored:
        return f"{method}: no {name} ({case.reason or 'no metastasis scored'}); call {case.call}. {RESEARCH_USE}"
    slide, lead = max(scored, key=lambda sg: (rule.value(sg[1].counts), sg[0], sg[1].name))
    value = rule.value(lead.counts)
    where = f"highest of {len(scored)} metastases" if len(scored) > 1 else "1 metastasis"
    cutoff = f"{rule.cutoff:.{decimals}f}"
    return (
        f"{method}: {name} {value:.{decimals}f} ({_interval(lead, rule.metric, decimals)}; {where}, "
        f"{lead.counts.n} cells scored); {model.marker} {case.call} (cut-off {name} >= {cutoff}). {RESEARCH_USE}"
    )


def _interval(region: RegionResult, metric: str, decimals: int) -> str:
    """``95 % CI 140-163`` of the region's metric, or why there is none."""
    iv = region.h_interval if metric == "h_score" else region.pct_interval
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return "interval not computed"
    return f"95 % CI {iv.low:.{decimals}f}-{iv.high:.{decimals}f}"
