"""``report.html``: one self-contained page (figures embedded as base64 PNG, inline CSS, no script).

The page is a pure function of the summary document (``summary.py``) and the PNG bytes of the figures.
Every value that reaches the page goes through :func:`esc` (``html.escape``), so a store's config,
layer names or a run label cannot inject markup.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pinnlog.analyzer.report.summary import threshold_name

__all__ = ["esc", "render_report"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1250px;
       padding: 1rem 1.5rem 3rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
h3 { margin-bottom: .3rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9rem; color: #444; } .note { color: #8a5a00; } .muted { color: #777; font-size: .85rem; }
pre { background: #f7f7f7; padding: .5rem; overflow-x: auto; font-size: .8rem; max-height: 20rem; }
ul.speedups li { font-size: 1.05rem; margin: .2rem 0; }
p.headline { font-size: 1.2rem; font-weight: 600; }
.phase-fitting { background: #e3eaf5; } .phase-diffusion { background: #fbeadf; } .phase-total { background: #e2f0e5; }
"""


#: Control characters HTML does not allow (C0 but tab/newline/CR, DEL, C1): shown as U+FFFD.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Tab, newline and CR as character references: an attribute keeps them as data, never as layout.
_WHITESPACE_REFS = {"\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}


def esc(value: Any) -> str:
    """Any value as text safe inside HTML elements and quoted attributes (controls replaced, newlines as references)."""
    text = html.escape(_FORBIDDEN.sub("\ufffd", str(value)), quote=True)
    return re.sub("[\t\n\r]", lambda m: _WHITESPACE_REFS[m.group()], text)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return esc(value)


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    row_classes: Sequence[str] | None = None,
    numeric: Sequence[bool] | None = None,
) -> str:
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = []
        for j, cell in enumerate(row):
            is_num = numeric[j] if numeric else isinstance(cell, (int, float)) or cell is None
            cells.append(f'<td class="num">{_num(cell)}</td>' if is_num else f"<td>{esc(cell)}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _phase_class(label: str) -> str:
    return {"fitting": "phase-fitting", "diffusion": "phase-diffusion", "total diffusion": "phase-total"}.get(label, "")


def phase_table(run: Mapping[str, Any]) -> str:
    """The phase table of one run (or why there is none)."""
    phases = run.get("phases")
    if not phases:
        return f'<p class="note">No phases: {esc(run.get("phases_note") or "no whole-net SNR was recorded")}</p>'
    rows = [(p["label"], p["first_step"], _interval(p), p["last_step"], p["median_snr"], p["slope"]) for p in phases]
    table = _table(
        ("phase", "first step", "95% interval", "last step", "median SNR", "slope (log-log)"),
        rows,
        row_classes=[_phase_class(p["label"]) for p in phases],
        numeric=(False, True, False, True, True, True),
    )
    verdict = run.get("phases_verdict")
    if verdict and verdict != "ok":
        table += f'<p class="note">{esc(run.get("phases_note") or verdict)}</p>'
    return table


def _interval(phase: Mapping[str, Any]) -> str:
    low, high = phase.get("first_step_low"), phase.get("first_step_high")
    return "" if low is None or high is None else f"{low:,}–{high:,}"


def layer_phase_table(run: Mapping[str, Any]) -> str:
    """Per-layer phases (the paper's Fig. A.13): the step each layer's phases begin, one row per layer."""
    layers = run.get("layer_phases")
    if not layers:
        return ""
    labels = ("diffusion", "total diffusion")
    rows = []
    for entry in layers:
        starts = {p["label"]: p for p in (entry.get("phases") or [])[1:]}
        cells = [entry["layer"]]
        for label in labels:
            p = starts.get(label)
            cells.append("" if p is None else f"{p['first_step']:,}" + (f" ({_interval(p)})" if _interval(p) else ""))
        cells.append(entry.get("verdict") or "")
        rows.append(tuple(cells))
    return _table(
        ("layer", "diffusion begins (95% interval)", "total diffusion begins (95% interval)", "verdict"),
        rows,
        caption="Phases per layer, from each weight matrix's own SNR (the paper's Fig. A.13)",
        numeric=(False, False, False, False),
    )


def _summary_table(run: Mapping[str, Any]) -> str:
    names = {
        "loss": "loss",
        "test_error": "test error (relative L2)",
        "snr": "SNR",
        "srr_b": "SRR_B",
        "srr_c": "SRR_C",
        "min_test_error": "lowest test error",
    }
    rows = []
    for key, name in names.items():
        entry = run["final"].get(key)
        rows.append((name, entry["value"] if entry else None, entry["step"] if entry else None))
    for entry in run["steps_to_error"]:
        rows.append(
            (
                f"first test error ≤ {threshold_name(entry['threshold'])}",
                "reached" if entry["step"] is not None else "never",
                entry["step"],
            )
        )
    return _table(("quantity", "value", "at step"), rows, numeric=(False, True, True))


def _metadata_block(run: Mapping[str, Any]) -> str:
    meta = dict(run["metadata"])
    config = meta.pop("config", None)
    model = meta.pop("model", None)
    rows = [("path", run["path"])] + [(k, v if not isinstance(v, (dict, list)) else json.dumps(v)) for k, v in meta.items()]
    rows += [("recorded rows", ", ".join(f"{g}: {n:,}" for g, n in run["recorded"].items()))]
    out = [_table(("field", "value"), rows, numeric=(False, False))]
    if config is not None:
        out.append(f"<h4>config</h4><pre>{esc(json.dumps(config, indent=2, ensure_ascii=False))}</pre>")
    if model:
        out.append(f"<details><summary>model</summary><pre>{esc(model)}</pre></details>")
    return "".join(out)


def _comparison_block(comparison: Mapping[str, Any]) -> str:
    """Headline, speed-ups, errors side by side, steps to each level, phase onsets, notes."""
    out = [
        "<h2>Comparison</h2>",
        f'<p class="headline">{esc(comparison["headline"])}</p>',
        f'<p class="muted">Ratios are against the reference run <b>{esc(comparison["reference"])}</b>.</p>',
        '<ul class="speedups">',
    ]
    out += [f"<li>{esc(s['text'])}</li>" for s in comparison["speedups"]]
    out.append("</ul>")
    if comparison.get("notes"):
        out.append('<ul class="notes">' + "".join(f'<li class="note">{esc(n)}</li>' for n in comparison["notes"]) + "</ul>")
    errors = comparison.get("errors") or {}
    labels = list(errors.get("lowest") or (comparison["steps_to_error"][0]["steps"] if comparison["steps_to_error"] else []))
    if labels:
        rows: list[Sequence[Any]] = []
        for key, what in (("lowest", "lowest test error"), ("final", "final test error")):
            rows.append([what] + [(errors[key][lb] or {}).get("value") for lb in labels])
            rows.append(["… at step"] + [(errors[key][lb] or {}).get("step") for lb in labels])
        rows += [
            [f"test error at step {e['step']:,}"] + [e["errors"].get(lb) for lb in labels] for e in errors.get("at_steps", [])
        ]
        out.append("<h3>Test error side by side</h3>")
        out.append(_table(["", *labels], rows, numeric=[False] + [True] * len(labels)))
    rows = [
        [f"≤ {e.get('name', threshold_name(e['threshold']))}"] + [e["steps"].get(lb) for lb in labels]
        for e in comparison["steps_to_error"]
    ]
    out.append("<h3>Steps to reach a test error</h3>")
    out.append(_table(["test error", *labels], rows, numeric=[False] + [True] * len(labels)))
    onsets = comparison.get("phase_onsets") or []
    if onsets:
        others = [lb for lb in labels if lb != comparison["reference"]]
        header = [
            "phase",
            *(f"{lb} starts at" for lb in labels),
            *(f"onset ratio {comparison['reference']} / {lb}" for lb in others),
        ]
        rows = [[o["phase"], *(o["onsets"].get(lb) for lb in labels), *(o["ratios"].get(lb) for lb in others)] for o in onsets]
        out.append("<h3>Phase onsets</h3>")
        out.append(
            _table(
                header,
                rows,
                row_classes=[_phase_class(o["phase"]) for o in onsets],
                numeric=[False] + [True] * (len(header) - 1),
            )
        )
    if comparison["phase_differences"]:
        out.append("<h3>Phase differences</h3>")
        rows = [
            (
                d["phase"],
                d["run"],
                d["run_first_step"],
                d["reference_first_step"],
                d["onset_ratio"],
                d["run_median_snr"],
                d["reference_median_snr"],
                d["median_snr_ratio"],
            )
            for d in comparison["phase_differences"]
        ]
        out.append(
            _table(
                (
                    "phase",
                    "run",
                    "run starts at",
                    "reference starts at",
                    "onset ratio (ref / run)",
                    "run median SNR",
                    "reference median SNR",
                    "median SNR ratio (run / ref)",
                ),
                rows,
                row_classes=[_phase_class(d["phase"]) for d in comparison["phase_differences"]],
                numeric=(False, False, True, True, True, True, True, True),
            )
        )
    return "".join(out)


def _figure_block(figure: Mapping[str, Any], png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    notes = "".join(f'<br><span class="note">{esc(n)}</span>' for n in figure.get("notes", ()))
    return (
        f'<figure id="fig-{esc(figure["name"])}"><img alt="{esc(figure["title"])}" '
        f'src="data:image/png;base64,{data}"><figcaption><b>{esc(figure["title"])}</b>'
        f"{' — ' + esc(figure['caption']) if figure.get('caption') else ''} "
        f'<span class="muted">(<a href="{esc(figure["png"])}">PNG</a>, <a href="{esc(figure["svg"])}">SVG</a>)</span>'
        f"{notes}</figcaption></figure>"
    )


def render_report(document: Mapping[str, Any], pngs: Mapping[str, bytes], captions: Mapping[str, str] | None = None) -> str:
    """The report page for a summary document (``kind`` analyze or compare).

    Parameters
    ----------
    document : mapping
        The ``summary.json`` document.
    pngs : mapping
        ``{figure name: PNG bytes}`` for every entry of ``document["figures"]``.
    captions : mapping, optional
        ``{figure name: what the figure shows}``.
    """
    runs = document["runs"]
    labels = [r["label"] for r in runs]
    title = ("pinnlog report: " + labels[0]) if document["kind"] == "analyze" else "pinnlog comparison: " + " vs ".join(labels)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">Generated {esc(document["generated"])} by pinnlog {esc(document["pinnlog_version"])}; '
        f"curves smoothed with a moving average of {esc(document['options']['smooth'])} captures "
        f"(phases, tables and summary.json use the raw values).</p>",
    ]
    for run in runs:
        status = run["metadata"].get("status")
        if status in ("recording", "interrupted"):
            why = "is still being recorded" if status == "recording" else "was interrupted"
            out.append(
                f'<p class="note">{esc(run["label"])} {why} (status {esc(status)}): this report covers the '
                f"{run['recorded'].get('gradient_stats', run['recorded'].get('scalars', 0)):,} rows committed "
                "so far.</p>"
            )
    if document.get("comparison"):
        out.append(_comparison_block(document["comparison"]))
    for run in runs:
        heading = "Run" if document["kind"] == "analyze" else f"Run {esc(run['label'])}"
        out.append(f"<h2>{heading}: phases and summary</h2>")
        out.append(phase_table(run))
        out.append(layer_phase_table(run))
        out.append(_summary_table(run))
    out.append("<h2>Figures</h2>")
    captions = captions or {}
    for figure in document["figures"]:
        out.append(_figure_block({**figure, "caption": captions.get(figure["name"], "")}, pngs[figure["name"]]))
    if document["skipped"]:
        out.append("<h3>Figures not drawn</h3><ul>")
        out += [f'<li><b>{esc(s["figure"])}</b>: <span class="note">{esc(s["reason"])}</span></li>' for s in document["skipped"]]
        out.append("</ul>")
    if document.get("warnings"):
        out.append("<h3>Warnings while computing</h3><ul>")
        out += [f'<li class="note">{esc(w)}</li>' for w in document["warnings"]]
        out.append("</ul>")
    out.append("<h2>Run metadata</h2>")
    for run in runs:
        if len(runs) > 1:
            out.append(f"<h3>{esc(run['label'])}</h3>")
        out.append(_metadata_block(run))
    out.append("</body></html>")
    return "\n".join(out) + "\n"
