"""Calibrate a scanner against the one a model's thresholds were set on, from one section scanned on both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ihc_score.fileio import file_sha256
from ihc_score.model import Model
from ihc_score.run.plan import _plan_and_sample
from ihc_score.stain import ScannerScale, deconvolve, scanner_scale

__all__ = ["ScannerCalibration", "calibrate_scanner", "tissue_concentrations"]

#: Above this residual one factor does not map the two scans: the record says so.
RESIDUAL_WARNING = 0.10


@dataclass(frozen=True)
class ScannerCalibration:
    """The fit between two scans of one section and the ``stains.od_scale`` it gives.

    Attributes
    ----------
    fit : ScannerScale
        Factor from the new scan's raw concentrations onto the reference
        scan's (the reference deconvolved with the model's own ``od_scale``).
    od_scale : float
        The new scanner's ``stains.od_scale``: ``fit.scale``.
    reference, new : str
        File names of the two scans.
    reference_scanner, new_scanner : str
        The scanner models the files name (empty when they name none).
    reference_sha256, new_sha256 : str
        sha256 of their files (of the index file of a multi-file format).
    warnings : tuple of str
        What makes the factor less trustworthy (a poor fit, a stain the
        section lacks); empty when none.
    """

    fit: ScannerScale
    od_scale: float
    reference: str
    new: str
    reference_sha256: str
    new_sha256: str
    reference_scanner: str = ""
    new_scanner: str = ""
    warnings: tuple[str, ...] = ()

    def record(self, date: str) -> dict[str, object]:
        """The ``calibrations`` entry of the derived model."""
        return {
            "kind": "scanner",
            "date": date,
            "reference_scan": self.reference,
            "reference_sha256": self.reference_sha256,
            "new_scan": self.new,
            "new_sha256": self.new_sha256,
            "reference_scanner": self.reference_scanner,
            "new_scanner": self.new_scanner,
            "od_scale": round(self.od_scale, 4),
            "hematoxylin_scale": _rounded(self.fit.hematoxylin_scale),
            "dab_scale": _rounded(self.fit.dab_scale),
            "residual": round(self.fit.residual, 4),
            "warnings": list(self.warnings),
        }


def _rounded(x: float) -> float | None:
    return None if np.isnan(x) else round(x, 4)


def tissue_concentrations(
    path: str | Path, model: Model, *, mpp_option_um: float | None = None
) -> tuple[np.ndarray, str]:
    """(N, 3) float32 stain concentrations of tissue pixels sampled over a slide, and its scanner model.

    The pixels the stain estimate reads (patches spread over the tissue, at
    the analysis pixel size), deconvolved with the slide's own vectors and
    background and the model's ``stains.od_scale``; the scanner model the
    file names, or empty.
    """
    plan, pixels = _plan_and_sample(path, model, mpp_option_um, None, "tissue")
    return deconvolve(pixels, plan.stains).reshape(-1, 3), plan.scanner_model


def calibrate_scanner(
    reference: str | Path,
    new: str | Path,
    model: Model,
    *,
    mpp_option_um: float | None = None,
) -> ScannerCalibration:
    """Fit the new scanner's OD factor from one section scanned on the reference and on the new scanner.

    Parameters
    ----------
    reference : str or Path
        The section scanned on the scanner ``model`` is set for (its own
        ``stains.od_scale`` applies).
    new : str or Path
        The same section scanned on the new scanner.
    model : Model
    mpp_option_um : float, optional
        Pixel size of scans that store none.

    Raises
    ------
    IhcScoreError
        A scan cannot be read or is not an H-DAB brightfield slide.
    ValueError
        Too little tissue, or no stain, to fit on.
    """
    ref_conc, ref_scanner = tissue_concentrations(reference, model, mpp_option_um=mpp_option_um)
    raw = model.with_overrides(**{"stains.od_scale": 1.0})
    new_conc, new_scanner = tissue_concentrations(new, raw, mpp_option_um=mpp_option_um)
    fit = scanner_scale(ref_conc, new_conc)
    warnings = []
    if fit.residual > RESIDUAL_WARNING:
        warnings.append(f"one factor maps the scans only to {100 * fit.residual:.0f} % (are they the same section?)")
    for stain, value in (("hematoxylin", fit.hematoxylin_scale), ("DAB", fit.dab_scale)):
        if np.isnan(value):
            warnings.append(f"too little {stain} in the section: fitted on the other stain alone")
    if not new_scanner:
        warnings.append("the new scan names no scanner model: its slides cannot be checked against it "
                        "(scanner_not_calibrated is never raised)")
    return ScannerCalibration(
        fit=fit,
        od_scale=fit.scale,
        reference=Path(reference).name,
        new=Path(new).name,
        reference_sha256=file_sha256(Path(reference)),
        new_sha256=file_sha256(Path(new)),
        reference_scanner=ref_scanner,
        new_scanner=new_scanner,
        warnings=tuple(warnings),
    )
