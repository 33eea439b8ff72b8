"""Static parts of the batch report page (:mod:`ihc_score.outputs.report`).

The inline CSS and script with their Content-Security-Policy hashes, the
small HTML helpers every section uses (escaping, number formatting, table
cells, call badges, QC flags, sortable tables) and :func:`distribution_svg`,
the inline SVG plot of one metastasis's staining distribution, with the
histogram it draws taken from a stored region. Nothing here reads files;
:func:`ihc_score.outputs.report.build_report` assembles the page.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from ihc_score.outputs.palette import CLASS_COLOURS_HEX, CLASS_NAMES
from ihc_score.score import HISTOGRAM_EDGES

__all__ = [
    "distribution_svg",
    "_CSS",
    "_JS",
    "_csp_hash",
    "_e",
    "_fmt",
    "_td",
    "_call_badge",
    "_flags",
    "_split",
    "_region_histogram",
    "_table",
]

_CALL_MARK = {"positive": "+", "negative": "\u2212", "indeterminate": "?"}
_PLOT_W, _HIST_H, _BAR_H = 120, 30, 14

_CSS = """
:root{--pos:#D55E00;--neg:#0072B2;--ind:#6b5800;--flag:#a34400;--line:#d0d0d0;font-family:system-ui,sans-serif}
body{margin:0 1.5rem 3rem;color:#1a1a1a;font-size:14px;line-height:1.35}
header{border-bottom:1px solid var(--line);padding:.4rem 0}
header h1{font-size:1.15rem;margin:.2rem 0}nav a{margin-right:1rem}
h2{font-size:1.05rem;margin:1.6rem 0 .5rem;border-bottom:2px solid #333}
.control{padding:.4rem .6rem;margin:.4rem 0;border-left:4px solid var(--neg)}
.control.out{border-color:var(--pos);font-weight:600}
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


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"
