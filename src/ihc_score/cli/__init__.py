"""Command line: parse, call, print. Heavy imports live inside the commands so ``--help`` is instant.

Each command lives in its own module of this folder and registers itself on
the group :func:`main` when imported.
"""

# each import registers its commands on main
from ihc_score.cli import (  # noqa: F401, E501
    agree,
    calibrate,
    calibration,
    cell_types,
    detections,
    monitor,
    reanalysis,
    scoring,
    selftest,
    tools,
    watch,
)
from ihc_score.cli._group import main
from ihc_score.cli.tools import SYNTH_PRESETS, SYNTH_SCANNERS

__all__ = ["main", "SYNTH_PRESETS", "SYNTH_SCANNERS"]
