"""The batch report: one self-contained HTML page built from a results folder.

:func:`build_report` reads what a batch already wrote (``slides.csv``,
``metastases.csv``, ``cases.csv``, ``run.json``, ``store/*.json`` and the QC
pictures under ``qc/``) and writes ``report.html`` beside them, so the report
can be rebuilt at any time without scoring again. The page needs no network
and no server: CSS and a small script are inline (allowed by hash in the
page's Content-Security-Policy), distributions are inline SVG, and QC pictures
are linked as relative ``qc/`` files (PNG, WebP) loaded lazily, so a batch of
hundreds of slides opens quickly. Every text from the results is escaped.
The same folder gives the same bytes.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ihc_score.fileio import atomic_write
from ihc_score.outputs._report_data import _int, _num, _read_results, _Results
from ihc_score.outputs._report_parts import (
    _CSS,
    _JS,
    _call_badge,
    _csp_hash,
    _e,
    _flags,
    _fmt,
    _region_histogram,
    _split,
    _table,
    _td,
    distribution_svg,
)
from ihc_score.outputs.palette import CLASS_COLOURS_HEX, CLASS_NAMES
from ihc_score.score import NON_TUMOUR_TYPES

__all__ = ["REPORT_NAME", "build_report"]

REPORT_NAME = "report.html"
_DASH = "\u2013"


def build_report(out_dir: Path) -> Path:
    """Write ``report.html`` into a results folder from the files already there.

    Parameters
    ----------
    out_dir : Path
        The ``--out`` folder of ``ihc-score score``: ``slides.csv``,
        ``metastases.csv``, ``cases.csv`` and ``run.json`` must be there;
        ``store/*.json`` (per-region histograms) and ``qc/`` pictures are used
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


# --------------------------------------------------------------------------- pieces


def _picture_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG or WebP header (Pillow reads no pixels), or None when absent or neither."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path, formats=("PNG", "WEBP")) as im:
            return im.size
    except (OSError, UnidentifiedImageError):
        return None


def _qc_names(row: dict[str, str], column: str) -> list[str]:
    """The QC picture a CSV row names (``qc_picture`` / ``qc_zoom``: a path relative to the results folder)."""
    given = row.get(column, "")
    return [Path(given).name] if given else []


def _qc_image(res: _Results, names: Sequence[str], alt: str, caption: str = "") -> str:
    """A lazily loaded thumbnail of the first existing ``qc/<name>``, linked to the full picture; "" if none exists."""
    for name in names:
        if name not in res.qc_files:
            continue
        size = _picture_size(res.out_dir / "qc" / name)
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


def _control_banner(res: _Results) -> str:
    """The control slide's verdict on this batch (``ihc-score monitor``), linking its Levey-Jennings page."""
    if res.control is None:
        return ""
    out = bool(res.control.get("out_of_control"))
    advice = " Do not report this batch's results until the control run has been reviewed." if out else ""
    return (f'<div class="control{" out" if out else ""}">{_e(str(res.control["line"]))}.{_e(advice)} '
            '<a href="control.html">Levey-Jennings chart</a></div>')


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
            + _td(_e(m.get("n_cells")) + _left_out_types(m), _int(m.get("n_cells")), "n")
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


def _left_out_types(m: dict[str, str]) -> str:
    """``<br>`` and the cells of each type the model does not score with their own H-score, or "" without any."""
    parts = [f"{_int(m.get(f'n_{t}'))} {t}" for t in NON_TUMOUR_TYPES if _int(m.get(f"n_{t}"))]
    if not parts:
        return ""
    h = _num(m.get("left_out_h_score"))
    own = f", their H-score {_fmt(h, 0)}" if h is not None else ""
    return f'<br><span class="muted">not {_e(m.get("scored_types", ""))}: {_e(", ".join(parts))}{own}</span>'


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
                f"stains {_e(s.get('stain_source')) or _DASH}{_left_out(s)}"
            )
        error = f'<p class="error">{_e(s.get("error"))}</p>' if s.get("error") else ""
        flags = f"<p>{_flags(_split(s.get('qc_flags', '')))}</p>" if s.get("qc_flags") else ""
        cards.append(
            f'<article class="slide{" failed" if status == "failed" else ""}" id="slide-{i}">'
            f'<h3>{_e(name)}</h3><p class="muted">{facts}</p>{error}{flags}'
            f'{overview}<div class="zooms">{zooms}</div><ul>{lines}</ul></article>'
        )
    return '<section id="slides"><h2>Slides</h2><div class="gallery">' + "".join(cards) + "</div></section>"


def _left_out(slide: dict[str, str]) -> str:
    """`` · left out: fold 0.12 mm², ...`` for the artefact and pigment areas of a slide row, or ""."""
    parts = [
        f"{label} {_fmt(area, 2)} mm\u00b2"
        for label, key in (("ink", "ink_area_mm2"), ("fold", "fold_area_mm2"), ("bubble", "bubble_area_mm2"),
                           ("out of focus", "blur_area_mm2"), ("pigment", "pigment_area_mm2"))
        if (area := _num(slide.get(key)) or 0.0) > 0
    ]
    if (_num(slide.get("n_pigmented")) or 0) > 0:
        parts.append(f"{_e(slide.get('n_pigmented'))} pigmented cells not graded")
    return " \u00b7 left out: " + ", ".join(parts) if parts else ""


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
        + _control_banner(res)
        + _summary(res)
        + _cases_section(res)
        + _metastases_section(res, slide_anchor, slide_flags)
        + _failures_section(res, slide_anchor)
        + _slides_section(res, slide_anchor)
        + _provenance_section(res.run)
        + f"</main><script>{_JS}</script></body></html>\n"
    )
