"""The HTML report: content from a results folder, escaping, plots, speed, and the page in a real browser."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from browser import Chromium, find_chromium
from ihc_score.cli import main
from ihc_score.errors import OutputError
from ihc_score.fileio import safe_name
from ihc_score.outputs import CASE_COLUMNS, METASTASIS_COLUMNS, SLIDE_COLUMNS, write_csv, write_json, zoom_file_names
from ihc_score.outputs.palette import CLASS_COLOURS_HEX as CLASS_COLOURS
from ihc_score.outputs.report import build_report, distribution_svg
from ihc_score.score import HISTOGRAM_EDGES

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_slides"
#: Slide names a scanner folder may really hold: markup, quotes, URL syntax, non-ASCII.
HOSTILE = (
    '<img src=x onerror="window.__xss=1">.svs',
    "a&b \"q\" 'x' <td>.svs",
    "hash#1?x=%20 y.svs",
    "Ünïcødé 病理 slide.svs",
)


# --------------------------------------------------------------------------- fixtures and helpers


def _png(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def write_fake_results(
    out: Path,
    names: list[str],
    *,
    mets_per_slide: int = 2,
    failed: frozenset[str] = frozenset(),
    qc: bool = True,
    histogram_every: int = 2,
) -> dict[str, list[tuple[str, tuple[int, int, int, int], str]]]:
    """A results folder as ``ihc-score score`` writes it, with known values.

    Metastasis ``k`` of slide ``i`` has counts ``(100 + i, 10 * k, 5, i % 7)``;
    calls cycle positive / negative / indeterminate; every third region has a
    flag. Every ``histogram_every``-th slide stores a DAB histogram, the rest
    none. Returns slide -> [(region, counts, call)].
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "store").mkdir(exist_ok=True)
    if qc:
        (out / "qc").mkdir(exist_ok=True)
        overview, zoom = _png(64, 48, 1), _png(32, 32, 2)
    slide_rows, met_rows, truth = [], [], {}
    calls = ("positive", "negative", "indeterminate")
    for i, name in enumerate(names):
        status = "failed" if name in failed else "ok"
        slide_rows.append({c: "" for c in SLIDE_COLUMNS} | {
            "slide": name, "case": f"case {i // 2}", "status": status,
            "error": f"{name}: cannot open the slide (not a TIFF)" if status == "failed" else "",
            "vendor": "aperio", "mpp_um": "0.25000", "tissue_area_mm2": "1.5000", "n_cells": "1000",
            "qc_flags": "pen_ink" if i % 5 == 4 else "",
        })  # fmt: skip
        if status == "failed":
            continue
        regions, truth[name] = [], []
        zooms = zoom_file_names(name, [f"auto-{k + 1}" for k in range(mets_per_slide)]) if qc else []
        if qc:
            slide_rows[-1]["qc_picture"] = f"qc/{safe_name(Path(name).stem)}.png"
        for k in range(mets_per_slide):
            counts = (100 + i, 10 * k, 5, i % 7)
            n = sum(counts)
            h = (counts[1] + 2 * counts[2] + 3 * counts[3]) / n * 100
            call = calls[(i + k) % 3]
            region = f"auto-{k + 1}"
            truth[name].append((region, counts, call))
            flags = "overlaps_other_region" if (i + k) % 3 == 0 else ""
            met_rows.append({c: "" for c in METASTASIS_COLUMNS} | {
                "case": f"case {i // 2}", "slide": name, "region": region, "region_source": "auto",
                "region_area_mm2": "0.5000", "n_cells": n, "n_0": counts[0], "n_1plus": counts[1],
                "n_2plus": counts[2], "n_3plus": counts[3], "h_score": f"{h:.2f}", "h_score_low": f"{h - 5:.2f}",
                "h_score_high": f"{h + 5:.2f}", "pct_positive": f"{(n - counts[0]) / n * 100:.2f}", "allred": 5,
                "call": call, "call_reason": "h_score within 10 of the cut-off" if call == "indeterminate" else "",
                "region_flags": flags, "qc_zoom": f"qc/{zooms[k]}" if qc else "",
            })  # fmt: skip
            g = {"name": region, "counts": list(counts), "call": call, "reason": "", "area_mm2": 0.5, "source": "auto",
                 "h_interval": [h - 5, h + 5], "pct_interval": [0, 1], "flags": _split(flags), "wkt": "POLYGON ((0 0, 1 0, 1 1, 0 0))"}  # fmt: skip
            if i % histogram_every == 0:
                g["dab_histogram"] = {"edges": list(HISTOGRAM_EDGES), "counts": [(j * 7 + i) % 11 for j in range(30)]}
            regions.append(g)
        if qc:  # the names qc.py gives, as the batch records them in qc_picture / qc_zoom
            (out / "qc" / f"{safe_name(Path(name).stem)}.png").write_bytes(overview)
            for file_name in zooms:
                (out / "qc" / file_name).write_bytes(zoom)
        store = {"format": "ihc-score-slide-result/2", "key": {}, "result": {"slide": name, "status": "ok", "regions": regions}}
        (out / "store" / f"s{i:05d}.json").write_text(json.dumps(store))
    case_rows = [{c: "" for c in CASE_COLUMNS} | {"case": f"case {j}", "n_slides": 2, "n_failed_slides": 0,
                  "n_metastases": 4, "n_cells": 500, "pooled_h_score": "50.00", "call": calls[j % 3], "call_reason": "rule"}
                 for j in range((len(names) + 1) // 2)]  # fmt: skip
    write_csv(out / "slides.csv", SLIDE_COLUMNS, slide_rows)
    write_csv(out / "metastases.csv", METASTASIS_COLUMNS, met_rows)
    write_csv(out / "cases.csv", CASE_COLUMNS, case_rows)
    write_json(out / "run.json", {
        "ihc_score_version": "9.8.7", "command": ["ihc-score", "score", "in dir", "--out", str(out)],
        "started_utc": "2026-01-02T03:04:05+00:00", "finished_utc": "2026-01-02T03:09:05+00:00", "executor": "processes:2",
        "model": {"id": "s100a9-brain-met", "version": "0.1.0", "sha256": "ab" * 32, "overrides": [["positivity.cutoff", 120.0]],
                  "parameters": {"classification": {"thresholds": [0.2, 0.4, 0.6], "compartment": "cell", "statistic": "mean"},
                                 "positivity": {"metric": "h_score", "cutoff": 120.0, "borderline": 10.0, "min_cells": 500},
                                 "rationale": "PROVISIONAL <cut-off>"}},
        "slides": {"total": len(names), "scored": len(names) - len(failed), "reused": [], "failed": sorted(failed)},
        "environment": {"python": "3.11.7", "platform": "Linux", "packages": {"numpy": "2.4.6", "shapely": None}},
    })  # fmt: skip
    return truth


def _split(text: str) -> list[str]:
    return [t for t in text.split(";") if t]


class _Page(HTMLParser):
    """Elements and text of a page, enough to check it without a browser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._stack: list[str] = []
        self.rows: dict[str, list[tuple[str, list[str]]]] = {}
        self._table: list[str] = []
        self._cell: list[str] | None = None
        self._head: list[str] | None = None
        self.heads: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table":
            self._table.append(a.get("id") or "")
            self.rows.setdefault(self._table[-1], [])
        elif tag == "tr" and self._table:
            self.rows[self._table[-1]].append((a.get("class") or "", []))
        elif tag == "td" and self._table:
            self._cell = []
        elif tag == "th" and self._table:
            self._head = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._table:
            self._table.pop()
        elif tag == "td" and self._cell is not None:
            self.rows[self._table[-1]][-1][1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "th" and self._head is not None:
            self.heads.setdefault(self._table[-1], []).append("".join(self._head).strip())
            self._head = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._head is not None:
            self._head.append(data)


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def body_rows(page: _Page, table: str) -> list[list[str]]:
    return [cells for _, cells in page.rows[table] if cells]


def columns(page: _Page, table: str) -> dict[str, int]:
    return {label: i for i, label in enumerate(page.heads[table])}


def row_classes(page: _Page, table: str) -> list[set[str]]:
    return [set(cls.split()) for cls, cells in page.rows[table] if cells]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A real scoring run with QC pictures: a sample slide under a hostile name and an unreadable file."""
    src = tmp_path_factory.mktemp("slides")
    shutil.copy(SAMPLES / "synthetic-shifted-stains.svs", src / HOSTILE[0])
    (src / "broken.svs").write_bytes(b"not a slide at all")
    out = tmp_path_factory.mktemp("out")
    res = CliRunner().invoke(main, ["score", str(src), "--out", str(out), "--workers", "1", "--detections", "none", "--quiet"])
    assert isinstance(res.exception, SystemExit) and res.exit_code == 1, (res.output, res.exc_info)  # one slide failed
    build_report(out)
    return out


FAKE50 = list(HOSTILE) + [f"S{i:03d}.svs" for i in range(46)]


@pytest.fixture(scope="module")
def fake50(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fake50")
    names = FAKE50
    truth = write_fake_results(out, names, failed=frozenset({"S007.svs"}))
    build_report(out)
    return out, truth


# --------------------------------------------------------------------------- content


def test_real_run_report_shows_every_slide_its_scores_and_failure(real_run):
    page = parse(real_run / "report.html")
    with open(real_run / "metastases.csv", newline="") as fh:
        mets = list(csv.DictReader(fh))
    rows, col = body_rows(page, "metastasis-table"), columns(page, "metastasis-table")
    assert len(rows) == len(mets) == 1
    for m, row in zip(mets, rows):
        assert row[col["Slide"]] == m["slide"] and row[col["Region"]].startswith(m["region"])
        assert row[col["H-score"]] == f"{float(m['h_score']):.1f}"
        assert row[col["95% interval"]] == f"{float(m['h_score_low']):.0f}\u2013{float(m['h_score_high']):.0f}"
        assert row[col["Call"]].endswith(m["call"])
    failures = body_rows(page, "failure-table")
    assert [r[0] for r in failures] == ["broken.svs"] and failures[0][1] == "failed" and failures[0][2]
    text = "".join(page.text)
    for name in (HOSTILE[0], "broken.svs"):
        assert name in text
    run = json.loads((real_run / "run.json").read_text())
    assert run["model"]["sha256"] in text and run["ihc_score_version"] in text


def test_every_text_is_escaped_and_the_page_is_self_contained(fake50):
    out, _ = fake50
    html = (out / "report.html").read_text(encoding="utf-8")
    page = parse(out / "report.html")
    scripts = [a for t, a in page.tags if t == "script"]
    assert len(scripts) == 1 and "src" not in scripts[0]  # ours only, inline
    assert not [a for _, a in page.tags if "onerror" in a]  # the hostile name never became an element
    assert "<img src=x" not in html and "<td>.svs" not in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html), "nothing may load from the network"
    assert not any(t == "link" for t, _ in page.tags)
    text = "".join(page.text)
    for name in HOSTILE:
        assert name in text  # shown exactly, as text


def test_qc_pictures_are_lazy_relative_links_to_existing_files(fake50):
    out, truth = fake50
    page = parse(out / "report.html")
    imgs = [a for t, a in page.tags if t == "img"]
    assert len(imgs) == sum(1 + len(r) for r in truth.values())  # overview + one zoom per metastasis
    for a in imgs:
        assert a["loading"] == "lazy" and a["src"].startswith("qc/")
        assert (out / unquote(a["src"])).is_file()
        assert (a["width"], a["height"]) in (("64", "48"), ("32", "32"))
    links = {a["href"] for t, a in page.tags if t == "a" and a.get("href", "").startswith("qc/")}
    assert links == {a["src"] for a in imgs}  # each thumbnail opens its full picture


def test_missing_qc_pictures_leave_a_note_not_a_broken_image(tmp_path):
    write_fake_results(tmp_path, ["a.svs", "b.svs"], qc=False)
    page = parse(build_report(tmp_path))
    assert not [a for t, a in page.tags if t == "img"]
    assert "".join(page.text).count("no QC picture") == 2


def test_qc_file_names_are_taken_from_the_tables(tmp_path):
    write_fake_results(tmp_path, ["same.svs"], mets_per_slide=1)
    for table, table_columns, column, file_name in (
        ("slides.csv", SLIDE_COLUMNS, "qc_picture", "same-0123abcd.png"),
        ("metastases.csv", METASTASIS_COLUMNS, "qc_zoom", "same-0123abcd-auto-1-zoom.png"),
    ):
        with open(tmp_path / table, newline="") as fh:
            rows = [r | {column: f"qc/{file_name}"} for r in csv.DictReader(fh)]
        write_csv(tmp_path / table, table_columns, rows)
        (tmp_path / "qc" / file_name).write_bytes(_png(8, 8, 3))
    srcs = [a["src"] for t, a in parse(build_report(tmp_path)).tags if t == "img"]
    assert srcs == ["qc/same-0123abcd.png", "qc/same-0123abcd-auto-1-zoom.png"]


def test_rows_to_review_stand_out(fake50):
    out, truth = fake50
    page = parse(out / "report.html")
    expected = [call for name in FAKE50 if name in truth for _, _, call in truth[name]]
    rows, classes = body_rows(page, "metastasis-table"), row_classes(page, "metastasis-table")
    col = columns(page, "metastasis-table")
    assert [r[col["Call"]].split()[-1] for r in rows] == expected
    for row, cls, call in zip(rows, classes, expected):
        flags = row[col["Reason / QC flags"]]
        flagged = "overlaps_other_region" in flags or "pen_ink" in flags
        assert ("indeterminate" in cls) == (call == "indeterminate")
        assert ("flagged" in cls) == flagged
        assert ("review" in cls) == (call == "indeterminate" or flagged)
    assert sum("flagged" in c for c in classes) > 0
    assert [c for c in row_classes(page, "failure-table")] == [{"failed"}]


def test_distribution_plots_histogram_when_stored_else_class_bar(fake50):
    out, truth = fake50
    page = parse(out / "report.html")
    titles = [d for d in page.text if d.startswith(("DAB OD histogram", "cells "))]
    n_regions = sum(len(r) for r in truth.values())
    assert len(titles) == n_regions
    with_hist = sum(len(truth[n]) for i, n in enumerate(FAKE50) if n in truth and i % 2 == 0)  # histogram_every=2
    assert sum(t.startswith("DAB OD histogram") for t in titles) == with_hist


def test_class_bar_widths_are_proportional_to_counts():
    svg = distribution_svg([1, 1, 2, 0])
    rects = re.findall(r'<rect x="([\d.]+)" width="([\d.]+)" height="\d+" fill="(#\w+)"/>', svg)
    assert rects == [("0.00", "30.00", CLASS_COLOURS[0]), ("30.00", "30.00", CLASS_COLOURS[1]), ("60.00", "60.00", CLASS_COLOURS[2])]
    assert "Negative: 1, 1+: 1, 2+: 2, 3+: 0" in svg
    assert "no cells" in distribution_svg([0, 0, 0, 0])


def test_histogram_bins_take_the_class_of_their_centre_and_thresholds_are_ticked():
    edges = [0.0, 0.1, 0.2, 0.3, 0.4]  # 4 bins of 0.1 OD over 120 px: 30 px each
    svg = distribution_svg([1, 1, 0, 0], (edges, [2, 1, 0, 4]), thresholds=(0.2, 0.35))
    paths = dict(re.findall(r'<path fill="(#\w+)" d="([^"]+)"/>', svg))
    # heights scale the tallest bin (4 cells) to 28 px: 2 cells -> 14, 1 -> 7
    assert paths[CLASS_COLOURS[0]] == "M0.0 30h30.0v-14.0h-30.0zM30.0 30h30.0v-7.0h-30.0z"
    assert paths[CLASS_COLOURS[2]] == "M90.0 30h30.0v-28.0h-30.0z"  # centre 0.35 >= both thresholds
    assert CLASS_COLOURS[1] not in paths  # the only 1+ bin is empty
    ticks = re.findall(r'stroke-dasharray="2 1" d="M([\d.]+) 0V30"', svg)
    assert ticks == ["60.0", "105.0"]


def test_provenance_and_model_are_shown(fake50):
    out, _ = fake50
    text = "".join(parse(out / "report.html").text)
    for expected in ("9.8.7", "ihc-score score 'in dir' --out", "ab" * 32, "positivity.cutoff=120.0", "2026-01-02T03:04:05+00:00",
                     "2026-01-02T03:09:05+00:00", "numpy", "2.4.6", "not installed", "PROVISIONAL <cut-off>", "cut-off 120.0"):  # fmt: skip
        assert expected in text, expected


def test_not_a_results_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(OutputError, match=r"not an ihc-score results folder \(slides.csv is missing\)") as err:
        build_report(tmp_path)
    assert "\n" not in str(err.value)
    write_fake_results(tmp_path, ["a.svs"])
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(OutputError, match="cannot read .*run.json"):
        build_report(tmp_path)
    with pytest.raises(OutputError, match="is not a folder"):
        build_report(tmp_path / "absent")


def test_rebuild_gives_identical_bytes_and_leaves_no_temporary_file(tmp_path):
    write_fake_results(tmp_path, ["b.svs", "a.svs"])
    first = build_report(tmp_path).read_bytes()
    (tmp_path / "report.html").write_text("old")
    assert build_report(tmp_path).read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "cases.csv", "metastases.csv", "report.html", "run.json", "slides.csv",
    ]  # fmt: skip


def test_a_stale_store_entry_never_lends_its_histogram(tmp_path):
    truth = write_fake_results(tmp_path, ["a.svs"], mets_per_slide=1, histogram_every=1)
    stale = json.loads((tmp_path / "store" / "s00000.json").read_text())
    stale["result"]["regions"][0]["counts"] = [1, 2, 3, 4]  # an earlier run's counts
    (tmp_path / "store" / "s00000.json").write_text(json.dumps(stale))
    text = "".join(parse(build_report(tmp_path)).text)
    assert "DAB OD histogram" not in text and f"Negative: {truth['a.svs'][0][1][0]}" in text


def test_500_slides_build_fast_and_stay_small(tmp_path):
    names = [f"case-{i // 3:03d} slide {i % 3}.svs" for i in range(500)]
    write_fake_results(tmp_path, names)
    t0 = time.perf_counter()
    path = build_report(tmp_path)
    seconds = time.perf_counter() - t0
    size_mb = path.stat().st_size / 1e6
    print(f"500 slides / 1000 metastases: built in {seconds:.2f} s, {size_mb:.2f} MB")
    assert seconds < 5.0 and size_mb < 6.0
    assert len(body_rows(parse(path), "metastasis-table")) == 1000


# --------------------------------------------------------------------------- in a browser

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("IHC_SCORE_REQUIRE_BROWSER"),
    reason="chromium not installed (apt-get install chromium, or `make test` as root): browser test skipped",
)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("IHC_SCORE_REQUIRE_BROWSER is set but no chromium was found")
    with Chromium(CHROMIUM) as b:
        yield b


_COLUMN = (
    "(() => {{ const t = document.getElementById('metastasis-table');"
    " const i = Array.from(t.tHead.rows[0].cells).findIndex(th => th.textContent === {label!r});"
    " return Array.from(t.tBodies[0].rows).map(r => r.cells[i].textContent.trim()); }})()"
)


def _header_centre(browser: Chromium, label: str) -> tuple[float, float]:
    r = browser.evaluate(
        "(() => { const b = Array.from(document.querySelectorAll('#metastasis-table th button'))"
        f".find(b => b.textContent === {json.dumps(label)}); b.scrollIntoView({{block: 'center'}});"
        " const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    return r[0], r[1]


@needs_chromium
@pytest.mark.slow
def test_real_run_report_in_a_browser(real_run, browser, tmp_path):
    seconds = browser.open((real_run / "report.html").as_uri())
    assert browser.evaluate("document.readyState") == "complete"
    assert browser.errors() == []
    slides = browser.evaluate("Array.from(document.querySelectorAll('article.slide h3')).map(h => h.textContent)")
    with open(real_run / "slides.csv", newline="") as fh:
        assert sorted(slides) == sorted(r["slide"] for r in csv.DictReader(fh))
    assert browser.evaluate("window.__xss === undefined && document.scripts.length === 1")
    sizes = browser.evaluate(
        "Promise.all(Array.from(document.images).map(i => (i.loading = 'eager', i.decode().then(() => i.naturalWidth))))"
    )
    pictures = [*(real_run / "qc").glob("*.png"), *(real_run / "qc").glob("*.webp")]
    assert len(sizes) == len(pictures) >= 2 and min(sizes) > 0  # overview (PNG) and zoom (WebP), both decoded
    assert browser.errors() == []
    png = tmp_path / "report.png"
    browser.screenshot(png)
    px = np.asarray(Image.open(png).convert("L"), np.float32)
    assert px.std() > 10, "the page looks blank"
    print(f"real run report: loaded in {seconds:.3f} s")


@needs_chromium
@pytest.mark.slow
def test_fifty_slides_in_a_browser_load_sort_and_render(fake50, browser, tmp_path):
    out, truth = fake50
    seconds = browser.open((out / "report.html").as_uri())
    assert browser.errors() == []  # no console error, exception, failed picture or CSP violation
    slides = browser.evaluate("Array.from(document.querySelectorAll('article.slide h3')).map(h => h.textContent)")
    assert len(slides) == 50 and set(HOSTILE) <= set(slides)
    loaded = browser.evaluate(
        "Promise.all(Array.from(document.images).slice(0, 6).map(i => (i.loading = 'eager', i.decode().then(() => i.naturalWidth))))"
    )
    assert loaded and all(w in (64, 32) for w in loaded)

    before = [float(x) for x in browser.evaluate(_COLUMN.format(label="H-score"))]
    assert before != sorted(before)
    browser.click(*_header_centre(browser, "H-score"))
    after = [float(x) for x in browser.evaluate(_COLUMN.format(label="H-score"))]
    assert after == sorted(before)
    browser.click(*_header_centre(browser, "H-score"))
    assert [float(x) for x in browser.evaluate(_COLUMN.format(label="H-score"))] == sorted(before, reverse=True)
    browser.click(*_header_centre(browser, "Case"))  # text with numbers: "case 2" before "case 10"
    cases = browser.evaluate(_COLUMN.format(label="Case"))
    assert [int(c.split()[1]) for c in cases] == sorted(int(c.split()[1]) for c in cases)
    assert browser.evaluate("window.__xss") is None

    visible = "Array.from(document.querySelectorAll('#metastasis-table tbody tr')).filter(r => !r.hidden)"
    browser.evaluate(
        "(() => { const box = document.querySelector('.tools[data-table=metastasis-table] input[type=search]');"
        " box.value = 'hash#1'; box.dispatchEvent(new Event('input', {bubbles: true})); })()"
    )
    assert browser.evaluate(f"{visible}.map(r => r.cells[1].textContent)") == ["hash#1?x=%20 y.svs"] * 2
    browser.evaluate(
        "(() => { const t = document.querySelector('.tools[data-table=metastasis-table]');"
        " t.querySelector('input[type=search]').value = ''; t.querySelector('input[type=checkbox]').click(); })()"
    )
    n_review = sum(call == "indeterminate" or (i + k) % 3 == 0 or i % 5 == 4
                   for i, name in enumerate(FAKE50) for k, (_, _, call) in enumerate(truth.get(name, [])))  # fmt: skip
    assert browser.evaluate(f"{visible}.every(r => r.classList.contains('review')) && {visible}.length") == n_review
    assert browser.errors() == []

    browser.evaluate("window.scrollTo(0, 0)")
    png = tmp_path / "report.png"
    size = browser.screenshot(png)
    px = np.asarray(Image.open(png).convert("L"), np.float32)
    assert px.shape == (900, 1280) and px.std() > 10, "the page looks blank"
    print(f"50 slides: loaded in {seconds:.3f} s, screenshot {size} bytes")



def test_report_command_rebuilds_without_scoring_and_refuses_other_folders(tmp_path):
    write_fake_results(tmp_path / "out", ["a.svs"])
    res = CliRunner().invoke(main, ["report", str(tmp_path / "out")])
    assert res.exit_code == 0 and (tmp_path / "out" / "report.html").is_file()
    assert not (tmp_path / "out" / "detections").exists()  # nothing scored again
    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: {tmp_path} is not an ihc-score results folder (slides.csv is missing); give the --out folder of `ihc-score score`"
    ]
