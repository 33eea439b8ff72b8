"""Imported once by the fork server that local workers are forked from (:mod:`ihc_score.run.executors`).

Loads what every worker needs, the pipeline and its compiled kernels, so
that each forked worker starts with them in memory.
"""

from __future__ import annotations

from ihc_score.run.executors import _load_worker_code

try:
    _load_worker_code()
except Exception:  # noqa: BLE001 - each worker then loads it itself (_init_worker), and reports what fails
    pass
