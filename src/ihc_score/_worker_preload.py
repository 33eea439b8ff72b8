"""Imported once by the fork server that local workers are forked from (:mod:`ihc_score.executors`).

Loads what every worker needs, the pipeline and its compiled kernels, so
that each forked worker starts with them in memory.
"""

from __future__ import annotations

import importlib

importlib.import_module(f"{__package__}.pipeline")
try:
    importlib.import_module(f"{__package__}._kernels").warm_up()
except Exception:  # noqa: BLE001 - each worker then loads them itself, and reports what fails
    pass
