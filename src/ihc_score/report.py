"""The batch report: one self-contained HTML page built from a results folder.

:func:`build_report` reads what a batch already wrote (``slides.csv``,
``metastases.csv``, ``cases.csv``, ``run.json``, ``store/*.json`` and the QC
pictures under ``qc/``) and writes ``report.html`` beside them, so the report
can be rebuilt at any time without scoring again. The page needs no network
and no server: CSS and a small script are inline (allowed by hash in the
page's Content-Security-Policy), distributions are inline SVG, and QC pictures
are linked as relative ``qc/...png`` files loaded lazily, so a batch of
hundreds of slides opens quickly. Every text from the results is escaped.
The same folder gives the same bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import OutputError
from .fileio import atomic_write
from .palette import CLASS_COLOURS_HEX, CLASS_NAMES
from .region_scores import HISTOGRAM_EDGES

__all__ = ["REPORT_NAME", "build_report", "distribution_svg"]

REPORT_NAME = "report.html"
_DASH = "\u2013"
_CALL_MARK = {"positive": "+", "negative": "\u2212", "indeterminate": "?"}
_PLOT_W, _HIST_H, _BAR_H = 120, 30, 14

_CSS = """
:root{--pos:#D55E00;--neg:#0072B2;--ind:#6b5800;--flag:#a34400;--line:#d0d0d0;font-family:system-ui,sans-serif}
body{margin:0 1.5rem 3rem;color:#1a1a1a;font-size:14px;line-height:1.35}
header{border-bottom:1px solid var(--line);padding:.4rem 0}
header h1{font-size:1.15rem;margin:.2rem 0}nav a{margin-right:1rem}
h2{font-size:1.05rem;margin:1.6rem 0 .5rem;border-bottom:2px solid #333}
.summary{display:flex;flex-wrap:wrap;gap:.5rem 2rem;margin:.4rem 0}.summary .call{min-width:0}.summary b{font-size:1.1rem}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid var(--line);padding:.2rem .4rem;text-align:left;vertical-align:middle}
th{background:#f2f2f2;position:sticky;top:0;z-index:1}td.nw{white-space:nowrap}td.w{overflow-wrap:anywhere;min-width:5rem}td.why{min-width:11rem}
.error{color:#a00000}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
th button{all:unset;cursor:pointer;font-weight:600}th button::after{content:" \\2195";color:#888}
th[aria-sort=ascending] button::after{content:" \\25B2";color:#000}th[aria-sort=descending] button::after{content:" \\25BC";color:#000}
tr.indeterminate td{background:repeating-linear-gradient(135deg,#fff8d6 0 6px,#fff 6px 12px)}
tr.flagged td:first-child{box-shadow:inset 4px 0 0 var(--flag)}tr.failed td{background:#fde8e8}
.call{display:inline-block;min-width:6.6em;padding:0 .35em;border:2px solid;border-radius:3px;font-weight:600;white-space:nowrap}
.call b{display:inline-block;width:1em;text-align:center}
.call.positive{background:var(--pos);border-color:var(--pos);color:#fff}.call.negative{background:#fff;border-color:var(--neg);color:var(--neg)}
.call.indeterminate{border-style:dashed;border-color:var(--ind);color:var(--ind);background:#fff8d6}
.flags{color:var(--flag)}.flags:not(:empty)::before{content:"\\2691 "}.muted{color:#666}
svg.d{width:120px;display:block}.legend span{display:inline-flex;align-items:center;margin-right:1rem}
.legend i{display:inline-block;width:1em;height:1em;margin-right:.3em;border:1px solid #555}
.tools{margin:.3rem 0;display:flex;gap:1rem;align-items:center}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:.8rem}
.slide{border:1px solid var(--line);border-radius:4px;padding:.5rem;overflow-wrap:anywhere;content-visibility:auto;contain-intrinsic-size:auto 420px}.slide.failed{border-color:#c00}
.slide h3{font-size:.95rem;margin:0 0 .3rem}.slide img{max-width:240px;max-height:180px;height:auto;width:auto;border:1px solid #ccc}
.zooms{display:flex;flex-wrap:wrap;gap:.3rem}.zooms img{max-width:112px;max-height:112px}
figure{margin:.2rem 0}figcaption{font-size:.8rem;color:#444}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem}dl.kv dt{font-weight:600}dl.kv dd{margin:0;overflow-wrap:anywhere}
code{font-size:.9em;overflow-wrap:anywhere}
@media print{th{position:static}.tools{display:none}}
"""

_JS = """
(function(){
function val(td,num){var v=td.getAttribute('data-v');if(v===null)v=td.textContent.trim();if(!num)return v;var x=parseFloat(v);return isNaN(x)?null:x;}
function sortBy(table,th,col){
var asc=th.getAttribute('aria-sort')!=='ascending',num=th.getAttribute('data-type')==='num';
table.querySelectorAll('th[aria-sort]').forEach(function(h){h.removeAttribute('aria-sort');});
th.setAttribute('aria-sort',asc?'ascending':'descending');
var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows),keys=new Map();
rows.forEach(function(r){keys.set(r,val(r.cells[col],num));});
rows.sort(function(a,b){var x=keys.get(a),y=keys.get(b);
if(x===null||x==='')return(y===null||y==='')?0:1;if(y===null||y==='')return -1;
var c=num?x-y:String(x).localeCompare(String(y),undefined,{numeric:true,sensitivity:'base'});return asc?c:-c;});
var f=document.createDocumentFragment();rows.forEach(function(r){f.appendChild(r);});body.appendChild(f);}
document.querySelectorAll('table.sortable').forEach(function(table){
table.querySelectorAll('thead th').forEach(function(th,col){var b=th.querySelector('button');
if(b)b.addEventListener('click',function(){sortBy(table,th,col);});});});
function filter(box){var table=document.getElementById(box.getAttribute('data-table')),
q=(box.querySelector('input[type=search]').value||'').toLowerCase(),only=box.querySelector('input[type=checkbox]');
only=only&&only.checked;Array.prototype.forEach.call(table.tBodies[0].rows,function(r){
var show=(!q||r.textContent.toLowerCase().indexOf(q)>=0)&&(!only||r.classList.contains('review'));r.hidden=!show;});}
document.querySelectorAll('.tools').forEach(function(box){box.addEventListener('input',function(){filter(box);});});
})();
"""


@dataclass(frozen=True)
class _Results:
    """What a results folder holds, as read from its files."""

    out_dir: Path
    slides: list[dict[str, str]]
    metastases: list[dict[str, str]]
    cases: list[dict[str, str]]
    run: dict[str, Any]
    regions: dict[tuple[str, str, tuple[int, ...]], dict[str, Any]]
    qc_files: frozenset[str]


def build_report(out_dir: Path) -> Path:
    """Write ``report.html`` into a results folder from the files already there.

    Parameters
    ----------
    out_dir : Path
        The ``--out`` folder of ``ihc-score score``: ``slides.csv``,
        ``metastases.csv``, ``cases.csv`` and ``run.json`` must be there;
        ``store/*.json`` (per-region histograms) and ``qc/*.png`` are used
        when present.

    Returns
    -------
    Path
        The report written (``out_dir / "report.html"``), replaced atomically.

    Raises
    ------
    OutputError
        ``out_dir`` is not a results folder (a file is missing or unreadable),
        or the report cannot be written.
    """
    res = _read_results(Path(out_dir))
    page = _render(res)
    path = res.out_dir / REPORT_NAME
    atomic_write(path, page.encode("utf-8"))
    return path


# --------------------------------------------------------------------------- reading


def _read_results(out_dir: Path) -> _Results:
    hint = "give the --out folder of `ihc-score score`"
    if not out_dir.is_dir():
        raise OutputError(f"{out_dir} is not a folder; {hint}")
    tables = {}
    for name in ("slides.csv", "metastases.csv", "cases.csv"):
        try:
            with open(out_dir / name, newline="", encoding="utf-8") as fh:
                tables[name] = list(csv.DictReader(fh))
        except FileNotFoundError:
            raise OutputError(f"{out_dir} is not an ihc-score results folder ({name} is missing); {hint}") from None
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise OutputError(f"cannot read {out_dir / name}: {err}; score the slides again") from err
    try:
        run = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{out_dir} is not an ihc-score results folder (run.json is missing); {hint}") from None
    except (OSError, ValueError) as err:
        raise OutputError(f"cannot read {out_dir / 'run.json'}: {err}; score the slides again") from err
    if not isinstance(run, dict):
        raise OutputError(f"{out_dir / 'run.json'} is not an ihc-score run record; score the slides again")
    try:
        qc_files = frozenset(e.name for e in os.scandir(out_dir / "qc") if e.name.lower().endswith(".png"))
    except OSError:
        qc_files = frozenset()
    return _Results(
        out_dir, tables["slides.csv"], tables["metastases.csv"], tables["cases.csv"], run, _stored_regions(out_dir), qc_files
    )


def _stored_regions(out_dir: Path) -> dict[tuple[str, str, tuple[int, ...]], dict[str, Any]]:
    """Stored regions keyed by (slide, region, class counts); unreadable or stale store files are skipped.

    Keying on the counts too matches each row of ``metastases.csv`` to the
    stored result it came from, even when two slides share a file name or
    the store still holds results of an earlier run.
    """
    found: dict[tuple[str, str, tuple[int, ...]], dict[str, Any]] = {}
    for p in sorted((out_dir / "store").glob("*.json")):
        try:
            result = json.loads(p.read_text(encoding="utf-8"))["result"]
            for g in result["regions"]:
                found[(str(result["slide"]), str(g["name"]), tuple(int(c) for c in g["counts"]))] = g
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def _num(text: str | None) -> float | None:
    try:
        v = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _int(text: str | None) -> int:
    v = _num(text)
    return int(v) if v is not None else 0


# --------------------------------------------------------------------------- pieces


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _fmt(value: float | None, decimals: int) -> str:
    return "\u2013" if value is None else f"{value:.{decimals}f}"


def _td(text: str, sort_value: Any = None, cls: str = "") -> str:
    attrs = f' class="{cls}"' if cls else ""
    if sort_value is not None:
        attrs += f' data-v="{_e(sort_value)}"'
    return f"<td{attrs}>{text}</td>"


def _call_badge(call: str) -> str:
    mark = _CALL_MARK.get(call, "!")
    css = call if call in _CALL_MARK else "indeterminate"
    return f'<span class="call {css}"><b aria-hidden="true">{mark}</b> {_e(call or "no call")}</span>'


def _flags(*groups: Iterable[str]) -> str:
    items = sorted({f for g in groups for f in g if f})
    return f'<span class="flags">{_e("; ".join(items))}</span>'


def _split(text: str) -> list[str]:
    return [t for t in (text or "").split(";") if t]


def distribution_svg(counts: Sequence[int], histogram: tuple[Sequence[float], Sequence[int]] | None = None,
                     thresholds: Sequence[float] = ()) -> str:  # fmt: skip
    """A small inline SVG of one metastasis's staining distribution.

    Parameters
    ----------
    counts : sequence of 4 int
        Cells per class (0, 1+, 2+, 3+).
    histogram : (edges, counts), optional
        Histogram of the graded DAB measurement (OD, base 10): ``len(edges)``
        is ``len(counts) + 1``. Without it, the class proportions are drawn as
        one stacked bar.
    thresholds : sequence of float
        Class thresholds (OD); bins are coloured by the class of their centre
        and the thresholds drawn as ticks.

    Returns
    -------
    str
        ``<svg>`` markup with a ``<title>`` giving the numbers (read aloud and
        shown on hover), so the plot never relies on colour alone.
    """
    n = [int(c) for c in counts][:4] + [0] * max(0, 4 - len(counts))
    total = sum(n)
    summary = ", ".join(f"{lab}: {c}" for lab, c in zip(CLASS_NAMES, n))
    if total == 0:
        return '<span class="muted">no cells</span>'
    if histogram is not None and len(histogram[0]) == len(histogram[1]) + 1 and sum(histogram[1]) > 0:
        edges, hist = [float(x) for x in histogram[0]], [int(c) for c in histogram[1]]
        lo, span, top = edges[0], (edges[-1] - edges[0]) or 1.0, max(hist)
        paths: list[list[str]] = [[] for _ in CLASS_NAMES]
        for a, b, c in zip(edges, edges[1:], hist):
            if c <= 0:
                continue
            k = min(3, sum((a + b) / 2 >= t for t in thresholds))
            x, w, h = (a - lo) / span * _PLOT_W, (b - a) / span * _PLOT_W, max(0.5, c / top * (_HIST_H - 2))
            paths[k].append(f"M{x:.1f} {_HIST_H}h{w:.1f}v{-h:.1f}h{-w:.1f}z")
        body = "".join(f'<path fill="{CLASS_COLOURS_HEX[k]}" d="{"".join(p)}"/>' for k, p in enumerate(paths) if p)
        ticks = "".join(
            f'<path stroke="#000" stroke-dasharray="2 1" d="M{(t - lo) / span * _PLOT_W:.1f} 0V{_HIST_H}"/>'
            for t in thresholds
            if lo < t < edges[-1]
        )
        title = f"DAB OD histogram {edges[0]:g}-{edges[-1]:g}; cells {summary}"
        return (
            f'<svg class="d" viewBox="0 0 {_PLOT_W} {_HIST_H}" role="img"><title>{_e(title)}</title>'
            f'<path stroke="#999" d="M0 {_HIST_H - 0.5}H{_PLOT_W}"/>{body}{ticks}</svg>'
        )
    x, rects = 0.0, []
    for c, colour in zip(n, CLASS_COLOURS_HEX):
        w = c / total * _PLOT_W
        if w > 0:
            rects.append(f'<rect x="{x:.2f}" width="{w:.2f}" height="{_BAR_H}" fill="{colour}"/>')
        x += w
    return (
        f'<svg class="d" viewBox="0 0 {_PLOT_W} {_BAR_H}" role="img"><title>cells {_e(summary)}</title>'
        f'{"".join(rects)}<rect width="{_PLOT_W}" height="{_BAR_H}" fill="none" stroke="#555"/></svg>'
    )


def _region_histogram(region: dict[str, Any] | None) -> tuple[list[float], list[int]] | None:
    if not region:
        return None
    h = region.get("dab_histogram")
    if isinstance(h, dict) and isinstance(h.get("edges"), list) and isinstance(h.get("counts"), list):
        return h["edges"], h["counts"]
    h = region.get("histogram")
    if isinstance(h, list) and len(h) == len(HISTOGRAM_EDGES) - 1:
        return list(HISTOGRAM_EDGES), h
    return None


def _png_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG header, or None when the file is absent or not a PNG."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _qc_names(row: dict[str, str], column: str) -> list[str]:
    """The QC picture a CSV row names (``qc_picture`` / ``qc_zoom``: a path relative to the results folder)."""
    given = row.get(column, "")
    return [Path(given).name] if given else []


def _qc_image(res: _Results, names: Sequence[str], alt: str, caption: str = "") -> str:
    """A lazily loaded thumbnail of the first existing ``qc/<name>``, linked to the full picture; "" if none exists."""
    for name in names:
        if name not in res.qc_files:
            continue
        size = _png_size(res.out_dir / "qc" / name)
        if size is None:
            continue
        url = _e("qc/" + quote(name))
        cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
        return (
            f'<figure><a href="{url}" target="_blank" rel="noopener">'
            f'<img src="{url}" loading="lazy" decoding="async" alt="{_e(alt)}" width="{size[0]}" height="{size[1]}">'
            f"</a>{cap}</figure>"
        )
    return ""


def _table(table_id: str, columns: Sequence[tuple[str, str]], rows: Sequence[str], *, review: bool) -> str:
    """A sortable table; ``columns`` are (label, type) with type "num", "text" or "" (not sortable)."""
    heads = []
    for label, kind in columns:
        cls = ' class="n"' if kind == "num" else ""
        inner = f'<button type="button">{_e(label)}</button>' if kind else _e(label)
        heads.append(f'<th scope="col"{cls} data-type="{kind}">{inner}</th>')
    only = '<label><input type="checkbox"> only rows to review</label>' if review else ""
    tools = (
        f'<div class="tools" data-table="{table_id}"><label>Filter <input type="search" '
        f'aria-label="filter {table_id}"></label>{only}</div>'
    )
    return (
        f'{tools}<table id="{table_id}" class="sortable"><thead><tr>{"".join(heads)}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table>'
    )


# --------------------------------------------------------------------------- sections


def _summary(res: _Results) -> str:
    def calls(rows: list[dict[str, str]]) -> str:
        out = []
        for call in ("positive", "negative", "indeterminate"):
            k = sum(r.get("call") == call for r in rows)
            out.append(f"{k}\u00a0{_call_badge(call)}")
        return " ".join(out)

    failed = sum(s.get("status") == "failed" for s in res.slides)
    return (
        f'<div class="summary"><span><b>{len(res.cases)}</b> cases: {calls(res.cases)}</span>'
        f"<span><b>{len(res.metastases)}</b> metastases: {calls(res.metastases)}</span>"
        f"<span><b>{len(res.slides)}</b> slides, <b>{failed}</b> failed</span></div>"
    )


def _row_class(call: str, *, flagged: bool) -> str:
    """CSS classes of a result row: ``indeterminate`` (any call but positive/negative), ``flagged``, ``review`` (either)."""
    unsure = call not in ("positive", "negative")
    return " ".join(c for c, on in (("indeterminate", unsure), ("flagged", flagged), ("review", unsure or flagged)) if on)


def _cases_section(res: _Results) -> str:
    rows = []
    for c in res.cases:
        call, n_failed = c.get("call", ""), _int(c.get("n_failed_slides"))
        cls = _row_class(call, flagged=n_failed > 0)
        h, pct, mx = _num(c.get("pooled_h_score")), _num(c.get("pooled_pct_positive")), _num(c.get("max_metastasis_h_score"))
        rows.append(
            f'<tr class="{cls}">' + _td(_e(c.get("case")), None, "w")
            + _td(_e(c.get("n_slides")), _int(c.get("n_slides")), "n")
            + _td(_e(n_failed) if n_failed else "0", n_failed, "n")
            + _td(_e(c.get("n_metastases")), _int(c.get("n_metastases")), "n")
            + _td(_e(c.get("n_cells")), _int(c.get("n_cells")), "n")
            + _td(_fmt(h, 1), h if h is not None else "", "n")
            + _td(_fmt(pct, 1), pct if pct is not None else "", "n")
            + _td(_fmt(mx, 1), mx if mx is not None else "", "n")
            + _td(_call_badge(call), call) + _td(_e(c.get("call_reason")))
            + "</tr>"
        )  # fmt: skip
    cols = [("Case", "text"), ("Slides", "num"), ("Failed slides", "num"), ("Metastases", "num"), ("Cells", "num"),
            ("Pooled H-score", "num"), ("% positive", "num"), ("Max metastasis H-score", "num"), ("Call", "text"),
            ("Reason", "text")]  # fmt: skip
    return '<section id="cases"><h2>Cases</h2>' + _table("case-table", cols, rows, review=True) + "</section>"


def _metastases_section(res: _Results, slide_anchor: dict[str, str], slide_flags: dict[str, list[str]]) -> str:
    thresholds = _thresholds(res.run)
    rows = []
    for m in res.metastases:
        counts = tuple(_int(m.get(k)) for k in ("n_0", "n_1plus", "n_2plus", "n_3plus"))
        stored = res.regions.get((m.get("slide", ""), m.get("region", ""), counts))
        call = m.get("call", "")
        flags = _split(m.get("region_flags", "")) + slide_flags.get(m.get("slide", ""), [])
        cls = _row_class(call, flagged=bool(flags))
        h, lo, hi = _num(m.get("h_score")), _num(m.get("h_score_low")), _num(m.get("h_score_high"))
        p, plo, phi = _num(m.get("pct_positive")), _num(m.get("pct_positive_low")), _num(m.get("pct_positive_high"))
        ci = f"{_fmt(lo, 0)}\u2013{_fmt(hi, 0)}" if lo is not None and hi is not None else "\u2013"
        pci = f"{_fmt(plo, 0)}\u2013{_fmt(phi, 0)}" if plo is not None and phi is not None else "\u2013"
        anchor = slide_anchor.get(m.get("slide", ""), "")
        slide = f'<a href="#{anchor}">{_e(m.get("slide"))}</a>' if anchor else _e(m.get("slide"))
        label = " \u00b7 ".join(x for x in (m.get("metastasis", ""), m.get("region_source", "")) if x)
        region = _e(m.get("region")) + (f'<br><span class="muted">{_e(label)}</span>' if label else "")
        reason = _e(m.get("call_reason"))
        rows.append(
            f'<tr class="{cls}">' + _td(_e(m.get("case")), None, "w") + _td(slide, m.get("slide", ""), "w")
            + _td(region, m.get("region", ""), "w")
            + _td(_fmt(_num(m.get("region_area_mm2")), 3), m.get("region_area_mm2", ""), "n")
            + _td(_e(m.get("n_cells")), _int(m.get("n_cells")), "n")
            + _td(_fmt(h, 1), h if h is not None else "", "n") + _td(ci, lo if lo is not None else "", "n nw")
            + _td(f"{_fmt(p, 1)}<br><span class=\"muted\">{pci}</span>", p if p is not None else "", "n")
            + _td(_e(m.get("allred")), m.get("allred", ""), "n")
            + _td(_call_badge(call), call)
            + _td(reason + (" " if reason else "") + _flags(flags), m.get("call_reason", "") + ";".join(flags), "why")
            + _td(distribution_svg(counts, _region_histogram(stored), thresholds))
            + "</tr>"
        )  # fmt: skip
    cols = [("Case", "text"), ("Slide", "text"), ("Region", "text"), ("Area mm\u00b2", "num"),
            ("Cells", "num"), ("H-score", "num"), ("95% interval", "num"), ("% positive (95%)", "num"),
            ("Allred", "num"), ("Call", "text"), ("Reason / QC flags", "text"), ("Distribution", "")]  # fmt: skip
    legend = "".join(f'<span><i class="c{k}"></i>{_e(lab)}</span>' for k, lab in enumerate(CLASS_NAMES))
    thr = ", ".join(f"{t:g}" for t in thresholds)
    note = (
        f'<p class="legend">{legend} <span class="muted">Distribution: histogram of the graded DAB OD with the class '
        f"thresholds ({_e(thr)} OD) dashed, or the class proportions as one bar when no histogram is stored.</span></p>"
    )
    return (
        '<section id="metastases"><h2>Metastases</h2>' + note
        + _table("metastasis-table", cols, rows, review=True) + "</section>"
    )  # fmt: skip


def _slides_section(res: _Results, slide_anchor: dict[str, str]) -> str:
    by_slide: dict[str, list[dict[str, str]]] = {}
    for m in res.metastases:
        by_slide.setdefault(m.get("slide", ""), []).append(m)
    cards = []
    for i, s in enumerate(res.slides):
        name, status = s.get("slide", ""), s.get("status", "")
        mets = by_slide.get(name, [])
        overview = _qc_image(res, _qc_names(s, "qc_picture"), f"QC overview of {name}") or '<p class="muted">no QC picture</p>'
        zooms = "".join(
            _qc_image(res, _qc_names(m, "qc_zoom"), f"{name} {m.get('region', '')} zoom", m.get("region", "")) for m in mets
        )
        lines = "".join(
            f"<li>{_e(m.get('region'))}: H-score {_fmt(_num(m.get('h_score')), 1)} {_call_badge(m.get('call', ''))}</li>"
            for m in mets
        ) or ("<li>no metastasis scored</li>" if status != "failed" else "")
        facts = f"case {_e(s.get('case'))} \u00b7 {_e(status)}"
        if status != "failed":
            facts += (
                f" \u00b7 {_e(s.get('vendor'))} \u00b7 {_fmt(_num(s.get('mpp_um')), 3)} \u00b5m/px \u00b7 tissue "
                f"{_fmt(_num(s.get('tissue_area_mm2')), 2)} mm\u00b2 \u00b7 {_e(s.get('n_cells') or 0)} cells \u00b7 "
                f"stains {_e(s.get('stain_source')) or _DASH}"
            )
        error = f'<p class="error">{_e(s.get("error"))}</p>' if s.get("error") else ""
        flags = f"<p>{_flags(_split(s.get('qc_flags', '')))}</p>" if s.get("qc_flags") else ""
        cards.append(
            f'<article class="slide{" failed" if status == "failed" else ""}" id="slide-{i}">'
            f'<h3>{_e(name)}</h3><p class="muted">{facts}</p>{error}{flags}'
            f'{overview}<div class="zooms">{zooms}</div><ul>{lines}</ul></article>'
        )
    return '<section id="slides"><h2>Slides</h2><div class="gallery">' + "".join(cards) + "</div></section>"


def _failures_section(res: _Results, slide_anchor: dict[str, str]) -> str:
    bad = [s for s in res.slides if s.get("status") != "ok" or s.get("error")]
    if not bad:
        return '<section id="failures"><h2>Failures</h2><p>No slide failed.</p></section>'
    rows = [
        f'<tr class="failed">{_td(_link(s.get("slide", ""), slide_anchor), s.get("slide", ""))}'
        f"{_td(_e(s.get('status')))}{_td(_e(s.get('error')))}</tr>"
        for s in bad
    ]
    cols = [("Slide", "text"), ("Status", "text"), ("Reason", "text")]
    return f'<section id="failures"><h2>Failures ({len(bad)})</h2>' + _table("failure-table", cols, rows, review=False) + "</section>"


def _link(name: str, slide_anchor: dict[str, str]) -> str:
    return f'<a href="#{slide_anchor[name]}">{_e(name)}</a>' if name in slide_anchor else _e(name)


def _thresholds(run: dict[str, Any]) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in run["model"]["parameters"]["classification"]["thresholds"])
    except (KeyError, TypeError, ValueError):
        return ()


def _provenance_section(run: dict[str, Any]) -> str:
    model = run.get("model") if isinstance(run.get("model"), dict) else {}
    params = model.get("parameters") if isinstance(model.get("parameters"), dict) else {}
    pos = params.get("positivity") if isinstance(params.get("positivity"), dict) else {}
    cls = params.get("classification") if isinstance(params.get("classification"), dict) else {}
    env = run.get("environment") if isinstance(run.get("environment"), dict) else {}
    slides = run.get("slides") if isinstance(run.get("slides"), dict) else {}
    command = run.get("command")
    command_text = shlex.join(str(w) for w in command) if isinstance(command, list) else str(command or "")
    overrides = model.get("overrides") or []
    override_text = "; ".join("=".join(str(x) for x in o) if isinstance(o, list) else str(o) for o in overrides)
    items = [
        ("ihc-score version", run.get("ihc_score_version")),
        ("Command", f"<code>{_e(command_text)}</code>"),
        ("Started (UTC)", run.get("started_utc")),
        ("Finished (UTC)", run.get("finished_utc")),
        ("Executor", run.get("executor")),
        ("Slides", f"{_e(slides.get('total'))} total, {_e(slides.get('scored'))} scored, "
                   f"{len(slides.get('reused') or [])} reused, {len(slides.get('failed') or [])} failed"),
        ("Model", f"{_e(model.get('id'))} version {_e(model.get('version'))}"),
        ("Model sha256", f"<code>{_e(model.get('sha256'))}</code>"),
        ("Model overrides", override_text or "none"),
        ("Positivity", f"{_e(pos.get('metric'))} cut-off {_e(pos.get('cutoff'))}, borderline \u00b1{_e(pos.get('borderline'))}, "
                       f"at least {_e(pos.get('min_cells'))} cells"),
        ("Classification", f"DAB OD {_e(cls.get('statistic'))} over the {_e(cls.get('compartment'))}, thresholds "
                           + _e(", ".join(str(t) for t in cls.get("thresholds") or []))),
        ("Python", env.get("python")),
        ("Platform", env.get("platform")),
    ]  # fmt: skip
    safe = {"Command", "Model sha256", "Slides", "Model", "Positivity", "Classification"}
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{v if k in safe else _e(v)}</dd>" for k, v in items)
    packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
    pk = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v if v is not None else 'not installed')}</dd>" for k, v in sorted(packages.items()))
    rationale = params.get("rationale")
    why = f"<details><summary>Model rationale</summary><p>{_e(rationale)}</p></details>" if rationale else ""
    return (
        f'<section id="provenance"><h2>Provenance</h2><dl class="kv">{dl}</dl>{why}'
        f'<details><summary>Package versions</summary><dl class="kv">{pk}</dl></details></section>'
    )


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _render(res: _Results) -> str:
    slide_anchor: dict[str, str] = {}
    for i, s in enumerate(res.slides):
        slide_anchor.setdefault(s.get("slide", ""), f"slide-{i}")
    slide_flags = {s.get("slide", ""): _split(s.get("qc_flags", "")) for s in res.slides}
    css = _CSS + "".join(f".legend i.c{k}{{background:{c}}}" for k, c in enumerate(CLASS_COLOURS_HEX)) + "\n"
    csp = f"default-src 'none'; img-src 'self' file: data:; style-src {_csp_hash(css)}; script-src {_csp_hash(_JS)}"
    model = res.run.get("model") if isinstance(res.run.get("model"), dict) else {}
    title = f"ihc-score report: {len(res.slides)} slides, {len(res.cases)} cases"
    sub = f"model {model.get('id', '')} {model.get('version', '')}, run {res.run.get('finished_utc', '')}"
    n_failed = sum(s.get("status") != "ok" or bool(s.get("error")) for s in res.slides)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{css}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><nav><a href="#cases">Cases</a><a href="#metastases">Metastases</a>'
        f'<a href="#slides">Slides</a><a href="#failures">Failures ({n_failed})</a><a href="#provenance">Provenance</a>'
        f'<span class="muted">{_e(sub)}</span></nav></header><main>'
        + _summary(res)
        + _cases_section(res)
        + _metastases_section(res, slide_anchor, slide_flags)
        + _failures_section(res, slide_anchor)
        + _slides_section(res, slide_anchor)
        + _provenance_section(res.run)
        + f"</main><script>{_JS}</script></body></html>\n"
    )
