"""report.html: one self-contained page (pictures embedded as data URIs, no scripts, no links
outside the file) that opens in any browser and can be sent to a colleague."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from mammotools.benchmark.results import (
    METRIC_TITLES,
    METRICS,
    ONE_CLASS_SHARE,
    PAIRED_HEADER,
    ci_line,
    class_cell,
    data_line,
    figure_cell,
    flags,
    has_intervals,
    over_words,
    paired_cells,
    paired_intro,
    percent,
    repeats_line,
    row_notes,
    runs_per_model,
)
from mammotools.benchmark.settings import epochs_cell, settings_line

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
.wide { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.quick { background: #fff3cd; border: 1px solid #e0b300; padding: 0.6em 1em; font-weight: bold; }
.note { color: #555; font-size: 0.85em; }
.flag { background: #f8d7da; border: 1px solid #c0392b; color: #7b1f1f; padding: 0.6em 1em; }
td.flagged { background: #f8d7da; color: #7b1f1f; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
details.matrix summary { cursor: pointer; font-weight: bold; margin: 0.4em 0; }
details.matrix img { display: block; }
figcaption { font-size: 0.8em; color: #555; }
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _cell(text: str) -> str:
    """A cell; one that says a model failed or did not learn is shown in red."""
    flagged = text.startswith(("failed", "did not learn")) or "; did not learn" in text
    return f'<td class="flagged">{escape(text)}</td>' if flagged else f"<td>{escape(text)}</td>"


def _table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in body)
    # A wide table (a column per class) scrolls on its own instead of widening the page.
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def report_page(
    rows: list[dict[str, Any]],
    tests: list[dict[str, Any]],
    record: dict[str, Any],
    charts: dict[str, Path],
    confusions: dict[str, Path],
    pictures: dict[str, Path],
    quick: bool,
    paired_note: str = "",
    bootstrap: dict[str, Any] | None = None,
) -> str:
    """The whole page as HTML text (``charts``: metrics, class_iou, curves, those drawn)."""
    bootstrap = bootstrap or {}
    several = runs_per_model(record) > 1
    problems = flags(rows)
    banner = (
        '<p class="quick">QUICK BENCHMARK: reduced widths, inputs and epochs, for trying the tool out. '
        "These figures are not comparable with the paper's.</p>"
        if quick
        else ""
    )
    hw = record["hardware"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{'QUICK ' if quick else ''}mammotools benchmark</title>",
        f"<style>{STYLE}</style></head><body>",
        banner,
        f"<h1>{'Quick benchmark' if quick else 'Benchmark'} of {len(rows)} segmentation model(s)</h1>",
        f'<p class="note">Dataset <code>{escape(record["dataset"])}</code>: {escape(data_line(record))}; every model '
        f"scored on the same whole images by sliding window. {escape(repeats_line(record).capitalize())}; "
        f"recipe {escape(record['recipe'])}. "
        f"Started {escape(record['started'])}, finished {escape(str(record.get('finished')))}. "
        f"Machine: {escape(str(hw['cpu']))}, {hw['cores']} cores, GPU {escape(str(hw['gpu'] or 'none'))}; "
        f"mammotools {escape(record['versions'].get('mammotools', '?'))}, "
        f"torch {escape(record['versions'].get('torch', '?'))}.</p>",
        f'<p class="note">Settings: {escape(settings_line(record))}. Trained now: '
        f"{escape(', '.join(record.get('trained') or []) or 'none')}; reused from an earlier run: "
        f"{escape(', '.join(record.get('reused') or []) or 'none')}.</p>",
        *(
            ['<div class="flag"><b>Check these models:</b><ul>', *[f"<li>{escape(p)}</li>" for p in problems], "</ul></div>"]
            if problems
            else []
        ),
        "<h2>Results</h2>",
        _table(
            [
                "model",
                *[f"{METRIC_TITLES[m]} %" for m in METRICS],
                "parameters",
                "input px",
                "training s",
                "epochs (windows seen, stopped by)",
                "inference s/image",
                "notes",
            ],
            [
                [
                    r["model"],
                    *[figure_cell(r, m, several) for m in METRICS],
                    f"{r['parameters']:,}",
                    str(r["input_size"]),
                    "n/a" if r["train_seconds"] is None else f"{r['train_seconds']:.1f}",
                    epochs_cell(r),
                    "n/a" if r["seconds_per_image"] is None else f"{r['seconds_per_image']:.2f}",
                    "; ".join(row_notes(r)),
                ]
                for r in rows
            ],
        ),
        '<p class="note">'
        + (f"Mean ± standard deviation over {over_words(record)}. " if runs_per_model(record) > 1 else "One run per model. ")
        + escape(ci_line(bootstrap))
        + " Classes absent from both truth and prediction are left out of the means. A model predicting one class on "
        + f"{100 * ONE_CLASS_SHARE:.0f}% or more of the scored pixels is marked as one that did not learn.</p>",
        *([_img(charts["metrics"], "the figures per model")] if "metrics" in charts else []),
        "<h2>Per class</h2>",
    ]
    classes = next((list(r["classes"]) for r in rows if r["classes"]), [])
    titles = (("iou", "IoU %"), ("dice", "Dice %" + (" [95% CI]" if has_intervals(bootstrap) else "")))
    for key, title in titles if classes else ():
        parts.append(f"<p><b>{title}</b></p>")
        parts.append(_table(["model", *classes], [[r["model"], *[class_cell(r, c, key) for c in classes]] for r in rows]))
    if "class_iou" in charts:
        parts.append(_img(charts["class_iou"], "IoU per class"))
    with_paper = [r for r in rows if r["paper"]]
    parts.append("<h2>The paper's figures beside ours</h2>")
    if with_paper:
        parts.append(
            _table(
                ["model", "ours: pixel acc / mIoU / mean class acc %", "paper: pixel acc / mIoU / mean class acc %"],
                [
                    [r["model"], f"failed: {r['failed']}" if r.get("failed") else
                     f"{percent(r['pixel_accuracy'])} / {percent(r['mean_iou'])} / {percent(r['mean_accuracy'])}",
                     f"{r['paper']['pixel_accuracy']:.2f} / {r['paper']['mean_iou']:.2f} / {r['paper']['mean_accuracy']:.2f}"]
                    for r in with_paper
                ],
            )
        )  # fmt: skip
        if record.get("dataset_kind") != "cityscapes":
            parts.append('<p class="note">The paper\'s Table 10 is on its own mammograms and classes, not these.</p>')
        else:
            parts.append(
                '<p class="note">The paper\'s Table 9: Cityscapes val (its 500 scenes), 19 classes; '
                "ours: this folder's val scenes.</p>"
            )
    else:
        parts.append("<p>The paper reports none of these models for this task.</p>")
    parts.append("<h2>Paired comparison by subject</h2>")
    if paired_note:
        parts.append(f"<p>{escape(paired_note)}</p>")
    else:
        parts.append(f'<p class="note">{escape(paired_intro(record, bootstrap))}</p>')
        parts.append(_table(PAIRED_HEADER, [paired_cells(t) for t in tests]))
    if "curves" in charts:
        parts += ["<h2>Training curves</h2>", _img(charts["curves"], "training curves")]
    parts.append("<h2>Validation images</h2>")
    for name, path in pictures.items():
        parts.append(f"<figure>{_img(path, name)}<figcaption>{escape(name)}: image, truth and each model's prediction"
                     "</figcaption></figure>")  # fmt: skip
    parts.append('<h2>Confusion matrices</h2><p class="note">Rows: truth, % of its pixels. Click a model to show '
                 "or hide its matrix, drawn at full size.</p>")  # fmt: skip
    for i, (key, path) in enumerate(confusions.items()):
        opened = " open" if i == 0 else ""
        parts.append(f'<details class="matrix"{opened}><summary>{escape(key)}</summary>{_img(path, key)}</details>')
    parts.append(banner)
    parts.append('<p class="note">Written by mammotools benchmark. The tables as text: results.md, results.csv, '
                 "results.json; the matrices: confusion/*.csv.</p></body></html>")  # fmt: skip
    return "\n".join(parts)
