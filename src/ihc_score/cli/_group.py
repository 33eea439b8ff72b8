"""The ``ihc-score`` command group and helpers its commands share."""

from __future__ import annotations

import click

from ihc_score.version import __version__

__all__ = ["main", "parse_floats"]


def parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """Numbers separated by commas (None stays None); a usage error naming ``option`` otherwise."""
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got {text!r}", param_hint=option) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ihc-score")
def main() -> None:
    """Score S100A9 immunohistochemistry on whole-slide images: H-score and call per metastasis."""

