"""Loading the compiled kernels of tile scoring at once: :func:`warm_up`.

The kernels (:mod:`ihc_score.cells._kernels`, :mod:`ihc_score.cells._detection_kernels`,
:mod:`ihc_score.cells._trim_kernels`, :mod:`ihc_score.cells._body_kernels`,
:mod:`ihc_score.cells._outline_kernels`) are compiled by Numba on first use and cached on disk; the
modules that call them import them inside those functions, so that a process that scores no tile
does not import Numba.
"""

from __future__ import annotations

import numpy as np

__all__ = ["warm_up"]


def warm_up() -> None:
    """Load every kernel now, for the argument types tile scoring passes them.

    The fork server that local workers are forked from (or each spawned
    worker) calls this while the main process plans the first slide, so that
    no first tile waits for the kernels to be loaded from the disk cache
    (about 0.5 s) or compiled. Arrays that are views of larger
    ones (a channel of an RGB image, a box of a tile) have their own
    compiled version, so both kinds are loaded.
    """
    from ihc_score.cells import _body_kernels, _detection_kernels, _kernels, _outline_kernels, _trim_kernels
    from ihc_score.cells.outlines import _PINCH_UNITS, _TABLES, UNITS_PER_PX

    _kernels.warm_up()
    _detection_kernels.warm_up()
    _trim_kernels.warm_up()
    _body_kernels.warm_up()
    _outline_kernels.trace_labels(
        np.ones((2, 2), dtype=np.int32), np.ones(1, dtype=np.int64), _TABLES, UNITS_PER_PX, _PINCH_UNITS
    )
