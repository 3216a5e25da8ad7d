"""report.html: self-contained, every store string escaped, tables and skip notes as the summary says."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import pytest
import zarr

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer import open_run
from pinnlog.analyzer.errors import MissingGroupError
from pinnlog.analyzer.report import analyze_run

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp; "quoted" \'single\''

#: Every element the report may contain: no script, no iframe, nothing that loads from elsewhere.
ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "link",
    "title",
    "style",
    "body",
    "h1",
    "h2",
    "h3",
    "h4",
    "p",
    "b",
    "table",
    "caption",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "figure",
    "img",
    "figcaption",
    "a",
    "span",
    "br",
    "ul",
    "li",
    "details",
    "summary",
    "pre",
}


class Page(HTMLParser):
    """Elements, their attributes, text, and the cells of table rows."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.rows: list[tuple[dict, list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "tr":
            self.rows.append((attrs, []))
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory, make_store):
    tmp = tmp_path_factory.mktemp("hostile")
    path = make_store(tmp, n_steps=14, layers=(2, 4, 1), seed=5, residuals=True, name="hostile.zarr")
    root = zarr.open_group(path, mode="r+")
    layers = root.attrs["layers"]
    layers[0]["name"] = HOSTILE
    root.attrs.update({"config": {"note": HOSTILE, HOSTILE: [HOSTILE]}, "layers": layers, "device": HOSTILE, "model": HOSTILE})
    return analyze_run(path, tmp / "out", label=HOSTILE, smooth=1)


def test_store_strings_reach_the_page_as_text_never_as_markup(hostile_report):
    source = hostile_report.html.read_text()
    page = Page(source)
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS
    assert not [attrs for _, attrs in page.tags if any(name.startswith("on") for name in attrs)]
    assert "<script" not in source.lower()
    text = "".join(page.text)
    # the run label (title and heading), config, layer names, device and model all read back literally
    assert text.count(f"pinnlog report: {HOSTILE}") == 2
    config = {"note": HOSTILE, HOSTILE: [HOSTILE]}
    assert json.dumps(config, indent=2, ensure_ascii=False) in text
    cells = [cells for _, cells in page.rows]
    assert ["device", HOSTILE] in cells
    assert ["layers", json.dumps([HOSTILE, "layer_1"])] in cells
    assert f"model{HOSTILE}" in text


def test_every_image_is_embedded_and_is_the_png_written_beside_it(full_report):
    page = Page(full_report.html.read_text())
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    figures = full_report.summary["figures"]
    assert len(images) == len(figures) > 0
    for attrs, figure in zip(images, figures, strict=True):
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        png = base64.b64decode(attrs["src"][len(prefix) :])
        assert png == (full_report.out_dir / figure["png"]).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert (full_report.out_dir / figure["svg"]).read_text().lstrip().startswith("<?xml")
    links = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert not [href for href in links if "://" in href]  # nothing online: links only to the files beside it


def test_phase_table_rows_are_the_summary_phases(full_report):
    page = Page(full_report.html.read_text())
    rows = [cells for attrs, cells in page.rows if attrs.get("class", "").startswith("phase-")]
    phases = full_report.summary["runs"][0]["phases"]
    assert phases
    assert [[r[0], r[1], r[3]] for r in rows] == [[p["label"], f"{p['first_step']:,}", f"{p['last_step']:,}"] for p in phases]
    # the 95 % interval column: empty for the first phase, low–high (holding first_step) after it
    assert rows[0][2] == ""
    for row, p in zip(rows[1:], phases[1:]):
        assert row[2] == f"{p['first_step_low']:,}–{p['first_step_high']:,}"
        assert p["first_step_low"] <= p["first_step"] <= p["first_step_high"]


def test_skipped_figures_are_listed_with_the_metric_error(sparse_store, tmp_path):
    run = open_run(sparse_store)
    expected = {}
    for figure, metric in (
        ("mutual_information", M.mutual_information),
        ("binarization", M.binarization),
        ("residuals", lambda r: r["residuals"]),
    ):
        with pytest.raises((MissingGroupError, KeyError)) as info:
            metric(run)
        expected[figure] = info.value
    report = analyze_run(sparse_store, tmp_path, smooth=1)
    skipped = {s["figure"]: s["reason"] for s in report.summary["skipped"]}
    assert skipped["mutual_information"] == str(expected["mutual_information"])
    assert skipped["binarization"] == str(expected["binarization"])
    assert "residuals=" in skipped["residuals"]  # names the recorder option
    assert set(skipped) == {"mutual_information", "binarization", "residuals"}
    text = "".join(Page(report.html.read_text()).text)
    for figure, reason in skipped.items():
        assert f"{figure}: {reason}" in text
    # a figure drawn without one of its quantities says so under the figure
    srr = next(f for f in report.summary["figures"] if f["name"] == "srr")
    with pytest.raises(MissingGroupError) as info:
        M.srr_c(run)
    assert srr["notes"] == [f"SRR_C not drawn: {info.value}"]
    assert f"SRR_C not drawn: {info.value}" in text


def test_a_run_still_being_recorded_is_reported_as_a_prefix(make_store, tmp_path):
    store = make_store(tmp_path, n_steps=9, layers=(2, 3, 1), seed=2, close=False, name="live.zarr")
    report = analyze_run(store, tmp_path / "out", smooth=1)
    assert report.summary["runs"][0]["metadata"]["status"] == "recording"
    text = " ".join("".join(Page(report.html.read_text()).text).split())
    assert "live is still being recorded (status recording): this report covers the 9 rows committed so far." in text


def test_layer_phase_table_rows_are_the_summary_layer_phases(full_report):
    # the per-layer table (Fig. A.13): one row per weight matrix, the step each layer's diffusion and
    # total diffusion begin, from summary.json's layer_phases
    page = Page(full_report.html.read_text())
    layers = full_report.summary["runs"][0]["layer_phases"]
    assert layers, "the full store records per-layer gradient statistics"
    rows = [cells for _, cells in page.rows if cells and cells[0] in {entry["layer"] for entry in layers}]
    assert [r[0] for r in rows] == [entry["layer"] for entry in layers]
    for row, entry in zip(rows, layers):
        starts = {p["label"]: p["first_step"] for p in entry["phases"][1:]}
        for cell, label in zip(row[1:3], ("diffusion", "total diffusion")):
            assert cell.split(" ")[0] == (f"{starts[label]:,}" if label in starts else "")
        assert row[3] == entry["verdict"]
