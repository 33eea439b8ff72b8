"""Options of one batch run: what the command line sets besides the model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ihc_score.run.pseudonym import Pseudonymizer

__all__ = ["BatchOptions"]


@dataclass(frozen=True)
class BatchOptions:
    """Options of one batch run.

    Attributes
    ----------
    mpp_option_um : float, optional
        Pixel size (um/px) for slides that store none (``--mpp``); a slide's
        own pixel size wins.
    force : bool
        Score again slides whose stored result is still valid.
    tiles_per_task : int
        Tiles handed to a worker at once.
    annotations_dir : Path, optional
        Folder searched for annotation files besides each slide's folder.
    region_mode : {"auto", "tissue"}
        Regions of a slide without annotation file.
    manifest : dict, optional
        Slide file name -> (case, metastasis label), from ``--manifest``.
    case_pattern : re.Pattern, optional
        Regular expression with a group ``case``, from ``--case-pattern``.
    detections : {"geojson", "geojson.gz", "none"}
        Whether and how to write ``detections/<slide>.geojson`` while scoring
        (``ihc-score detections`` writes it later from the per-cell results).
    cell_results : bool
        Write every cell's results to ``cells/<slide>.parquet`` (default).
    cells_csv : bool
        Also write ``cells/<slide>.csv.gz``.
    qc : bool
        Write the QC pictures ``qc/<slide>.png`` and the zooms.
    pseudonymizer : Pseudonymizer, optional
        From ``--pseudonymize``: every output names slides and cases by keyed
        pseudonyms only.
    roi_margin_um : float
        Band (um) around annotated regions whose cells are detected and kept
        unscored (``--roi-margin``), for ``ihc-score roi-stability``.
    refused : dict of Path to str, optional
        Slides failed again at once with the reason they failed with before,
        without being read (``ihc-score watch``: until their files change).
    """

    mpp_option_um: float | None = None
    force: bool = False
    tiles_per_task: int = 4
    annotations_dir: Path | None = None
    region_mode: str = "auto"
    manifest: dict[str, tuple[str, str]] | None = None
    case_pattern: re.Pattern[str] | None = None
    detections: str = "none"
    cell_results: bool = True
    cells_csv: bool = False
    qc: bool = True
    pseudonymizer: Pseudonymizer | None = None
    roi_margin_um: float = 0.0
    refused: dict[Path, str] | None = None

    def __post_init__(self) -> None:
        if self.detections not in ("geojson", "geojson.gz", "none"):
            raise ValueError(f"detections must be geojson, geojson.gz or none, got {self.detections!r}")
        if not 0.0 <= self.roi_margin_um <= 1000.0:
            raise ValueError(f"roi_margin_um must be within 0-1000 um, got {self.roi_margin_um!r}")

    @property
    def outlines(self) -> bool:
        """Whether workers trace cell outlines (for detections, QC zooms and the per-cell results' outlines)."""
        return self.detections != "none" or self.qc or self.cell_results
