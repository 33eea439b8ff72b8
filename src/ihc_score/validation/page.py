"""Pages of the validation commands: one self-contained HTML file with plots, tables and the machine's record.

Plots are drawn by matplotlib into inline SVG (vector, no side files, readable
in any browser years later); numbers are written as text beside them so a
page can be checked without the plot.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ihc_score.fileio import atomic_write
from ihc_score.run import environment
from ihc_score.version import __version__

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["new_figure", "figure_svg", "html_table", "write_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 70em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; font-variant-numeric: tabular-nums; }
th { background: #eee; }
.fail { color: #b00020; font-weight: bold; } .pass { color: #1b6e20; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; } .plots svg { max-width: 34em; height: auto; }
.note { color: #555; }
"""


def new_figure(width_in: float = 5.0, height_in: float = 4.0) -> Figure:
    """A matplotlib figure not tied to any window or global state (safe in threads and without a display)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def figure_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element, with fixed ids and no date so the same plot gives the same text."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "ihc-score", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, classes: Sequence[str] | None = None) -> str:
    """An HTML table of text cells (escaped); ``classes`` gives each row's CSS class (``pass``, ``fail``, "")."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{html.escape(classes[i])}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_page(path: str | Path, title: str, sections: Sequence[tuple[str, str]], *, inputs: dict[str, str]) -> None:
    """Write a validation page atomically: the title, each ``(heading, html)`` section, then the record.

    Parameters
    ----------
    path : path
        The ``.html`` file.
    title : str
        Plain text.
    sections : sequence of (str, str)
        Heading (plain text) and body (HTML made by this module's helpers or
        escaped by the caller).
    inputs : dict of str to str
        What the page was made from (files and their sha256, the command);
        listed in the record with the date, ihc-score's version, the machine
        and the libraries' versions.
    """
    env = environment()
    record = [
        ("date (UTC)", datetime.now(timezone.utc).isoformat(timespec="seconds")),
        ("ihc-score", __version__),
        ("python", env["python"]),
        ("platform", env["platform"]),
        ("CPUs", env["cpu_count"]),
        *inputs.items(),
        *((name, version or "not installed") for name, version in sorted(env["packages"].items())),
    ]
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<h2>{html.escape(heading)}</h2>\n{body}" for heading, body in sections),
        "<h2>Record</h2>",
        html_table(("item", "value"), record),
        "</body></html>",
    ]
    atomic_write(Path(path), ("\n".join(parts) + "\n").encode("utf-8"))
