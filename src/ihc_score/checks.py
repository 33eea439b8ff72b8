"""Range checks of parameter values, with one message form for every parameter class of the model.

Each frozen parameter class validates itself in ``__post_init__``; the model
loader turns the ``ValueError`` into a one-line :class:`~ihc_score.errors.ModelError`
naming the section and key.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["require_range"]


def require_range(
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    unit: str = "",
) -> None:
    """Refuse ``value`` unless it is a finite number within ``[low, high]`` (an end open where asked, absent when None).

    Raises
    ------
    ValueError
        ``"<name> must be in (0, 1] um, got <value>"``, ``"<name> must be >= 0 um^2, got ..."``.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return
    if low is not None and high is not None:
        span = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        span = f"{'>' if low_open else '>='} {low:g}"
    else:
        span = f"{'<' if high_open else '<='} {high:g}" if high is not None else "a finite number"
    raise ValueError(f"{name} must be {span}{' ' + unit if unit else ''}, got {value!r}")
