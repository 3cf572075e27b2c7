"""The comparison page of a sweep: its cells table as one self-contained HTML page, a CSV and the JSON itself.

A cells table is a list of dicts, one per cell in order: ``{"index", "inputs", "outputs", "seconds", "devices",
"cached"}`` (and ``"error"`` for a cell that failed). Outputs are values as a run record holds them: texts and
numbers as themselves, media as ``{"path", "media_type"}`` (CLI) or ``{"url", "media_type", ...}`` (server), a
list output as a list of those. The page needs nothing but a browser: inline CSS and a small inline script (no
external assets), so it opens from a file:// URL next to the run's files, from an archive, or from the server;
every text in it is escaped, because graph values are user input.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nodeforge.engine.artifact_paths import ARTIFACT_URL
from nodeforge.engine.document import atomic_write_text

FILES = ("compare.html", "compare.csv", "compare.json")
TIMING = ("seconds", "devices", "cached")

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
.summary { color: #555; margin: 0 0 1rem; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #ddd; padding: .35rem .5rem; vertical-align: top; text-align: left; }
thead th { position: sticky; top: 0; background: #f0f0f3; z-index: 1; }
th button { font: inherit; font-weight: 600; border: 0; background: none; cursor: pointer; padding: 0; }
th[aria-sort=ascending] button::after { content: " \\25B2"; }
th[aria-sort=descending] button::after { content: " \\25BC"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.differs { background: hsl(calc(var(--tint) * 67) 75% 88%); font-weight: 600; }
td.error { color: #a00; }
pre.text { white-space: pre-wrap; word-break: break-word; max-width: 40ch; margin: 0; font: inherit; }
.media { display: flex; flex-wrap: wrap; gap: .35rem; }
img { display: block; max-width: 256px; max-height: 256px; image-rendering: auto; }
video { max-width: 320px; }
"""

# Sorts the rows by a clicked header: numbers as numbers, the rest as text (digits in order); empty cells last.
SCRIPT = """
const table = document.getElementById("cells");
const headers = Array.from(table.tHead.rows[0].cells);
headers.forEach((header, column) => header.querySelector("button").addEventListener("click", () => {
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  headers.forEach((other) => other.removeAttribute("aria-sort"));
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const numeric = header.dataset.type === "number";
  const key = (row) => {
    const text = row.cells[column].dataset.sort;
    const value = numeric && text !== "" ? Number(text) : text;
    return numeric && Number.isNaN(value) ? "" : value;
  };
  const body = table.tBodies[0];
  const rows = Array.from(body.rows).map((row) => [key(row), row]);
  rows.sort(([a], [b]) => {
    if (a === "" || b === "") return (a === "") - (b === "");
    const order = numeric ? a - b : a.localeCompare(b, undefined, {numeric: true});
    return ascending ? order : -order;
  });
  body.append(...rows.map(([, row]) => row));
}));
"""

SERVED_POLICY = ("default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; "
                 f"script-src 'sha256-{base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()}'; "
                 "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
"""The Content-Security-Policy the server sends with the page: the page's own sorting script and nothing else
runs, and pictures and sounds load only from the server, whatever a cell holds."""


def compare_html(table: Sequence[Mapping[str, Any]], *, title: str, axes: Sequence[str],
                 folder: Path | None = None) -> str:
    """The comparison page: one row per cell; the swept inputs first (values that differ between cells are
    tinted, one tint per value), then each output, then seconds, devices and cached. Media are linked as
    ``media_source`` allows (``folder`` is where the page will be written; None for the page the server serves),
    anything else is shown as text."""
    columns, values = _grid(table, axes)
    numeric = [_numeric([row[i] for row in values]) for i in range(len(columns))]
    tints = [_tints([row[i] for row in values]) for i in range(len(axes))]
    head = "".join(
        f'<th scope="col" data-column="{_e(name)}" data-type="{"number" if numeric[i] else "text"}"'
        f'{_class(("axis" if i < len(axes) else ""), ("num" if numeric[i] else ""))}>'
        f'<button type="button">{_e(name)}</button></th>' for i, name in enumerate(columns))
    body = []
    for position, (cell, row) in enumerate(zip(table, values, strict=True)):
        cells = "".join(_cell(value, columns[i], folder, axis=i < len(axes), numeric=numeric[i],
                              tint=tints[i][position] if i < len(axes) and tints[i] else None)
                        for i, value in enumerate(row))
        index = int(cell.get("index", position))
        body.append(f'<tr id="cell-{index}" data-index="{index}">{cells}</tr>')
    swept = " × ".join(axes) or "nothing"
    summary = f"{len(table)} cell{'' if len(table) == 1 else 's'}; swept: {swept}"
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{_e(title)}</h1>\n<p class=\"summary\">{_e(summary)}</p>\n"
            f"<table id=\"cells\">\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) +
            f"\n</tbody>\n</table>\n<script>{SCRIPT}</script>\n</body>\n</html>\n")


def compare_csv(table: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> str:
    """One row per cell: its index, the swept inputs, each output (media as their path or URL, the items of a
    list joined with ' | '), seconds, devices and cached (and the error, when a cell has one)."""
    columns, values = _grid(table, axes)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # "\n": the file is written in text mode
    writer.writerow(["index", *columns])
    for cell, row in zip(table, values, strict=True):
        writer.writerow([_plain(cell.get("index")), *(_plain(value) for value in row)])
    return buffer.getvalue()


def write_compare(folder: Path, table: Sequence[Mapping[str, Any]], *, title: str,
                  axes: Sequence[str]) -> list[Path]:
    """Write compare.html, compare.csv and compare.json (the table, pretty) into ``folder``, each through a temp
    file and a rename: a reader sees the old file or the new one, never half of one."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = (compare_html(table, title=title, axes=axes, folder=folder), compare_csv(table, axes),
             json.dumps(list(table), indent=2, ensure_ascii=False) + "\n")
    paths = [folder / name for name in FILES]
    for path, text in zip(paths, texts, strict=True):
        atomic_write_text(path, text)
    return paths


def output_names(table: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every output name in the table, in the order cells first show them (a failed cell may lack some)."""
    names: dict[str, None] = {}
    for cell in table:
        names.update(dict.fromkeys(cell.get("outputs", {})))
    return list(names)


def _grid(table: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """The columns of the page and the CSV, and each cell's value in them (None where a cell lacks one): the
    swept inputs, the outputs, the timing, and the error when some cell failed."""
    outputs = output_names(table)
    errors = ["error"] if any(cell.get("error") for cell in table) else []
    values = [[*(cell.get("inputs", {}).get(axis) for axis in axes),
               *(cell.get("outputs", {}).get(name) for name in outputs),
               *(cell.get(name) for name in (*TIMING, *errors))] for cell in table]
    return [*axes, *outputs, *TIMING, *errors], values


def media_source(item: Mapping[str, Any], folder: Path | None) -> str | None:
    """Where the page finds a media value, or None when it may not be linked. A page written into ``folder``
    links a file inside it by a relative path (so the folder can be moved or archived whole) and one elsewhere
    by a file:// URL; a page the server serves (no folder) links nothing but the server's own artifact URLs.
    Values are user input (a swept value, a forged ``ui.sweep``): a ``url`` of any other form (``javascript:``,
    ``data:``, another site) is never linked."""
    if "url" in item:
        url = item["url"]
        return url if isinstance(url, str) and ARTIFACT_URL.fullmatch(url) else None
    if folder is None or not isinstance(item.get("path"), str):
        return None
    path = Path(item["path"]).resolve()
    if path.is_relative_to(folder.resolve()):
        return quote(path.relative_to(folder.resolve()).as_posix())  # ':' is quoted: never read as a scheme
    return path.as_uri()


def _is_media(value: Any) -> bool:
    return isinstance(value, Mapping) and "media_type" in value and ("path" in value or "url" in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric(values: list[Any]) -> bool:
    """A column of numbers (some cells may lack one) sorts as numbers."""
    return any(_is_number(value) for value in values) and all(_is_number(v) or v is None for v in values)


def _tints(values: list[Any]) -> list[int]:
    """One tint number per value, the same for equal values; none when every cell has the same value."""
    keys = [json.dumps(value, sort_keys=True, default=str) for value in values]
    distinct = list(dict.fromkeys(keys))
    return [distinct.index(key) for key in keys] if len(distinct) > 1 else []


def _cell(value: Any, name: str, folder: Path | None, *, axis: bool, numeric: bool, tint: int | None) -> str:
    classes = _class("axis" if axis else "", "num" if numeric else "", "differs" if tint is not None else "",
                     "error" if name == "error" and value else "")
    style = f' style="--tint: {tint}"' if tint is not None else ""
    return (f'<td data-column="{_e(name)}" data-sort="{_e(_sort_key(value, name))}"{classes}{style}>'
            f'{_render(value, name, folder)}</td>')


def _render(value: Any, name: str, folder: Path | None) -> str:
    """A value as page content: media as players and pictures, texts as wrapped blocks, numbers as numbers."""
    if value is None:
        return ""
    if _is_media(value):
        return _media(value, name, folder)
    if isinstance(value, list) and value and all(_is_media(item) for item in value):
        return '<div class="media">' + "".join(_media(item, name, folder) for item in value) + "</div>"
    if isinstance(value, str) and name != "error":
        return f'<pre class="text">{_e(value)}</pre>'
    return _e(_display(value, name))


def _media(item: Mapping[str, Any], name: str, folder: Path | None) -> str:
    found = media_source(item, folder)
    if found is None:
        return f'<pre class="text">{_e(_display(dict(item), name))}</pre>'
    source = _e(found)
    kind = str(item.get("media_type", "")).split("/", 1)[0]
    if kind == "image":
        return f'<a href="{source}"><img src="{source}" alt="{_e(name)}" loading="lazy"></a>'
    if kind in ("audio", "video"):
        return f'<{kind} controls preload="metadata" src="{source}"></{kind}>'
    return f'<a href="{source}">{_e(Path(found).name or name)}</a>'


def _display(value: Any, name: str) -> str:
    """A plain value as text: seconds to the hundredth, other numbers to six significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}" if name == "seconds" else f"{value:.6g}"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _sort_key(value: Any, name: str) -> str:
    """What a header click sorts by: the exact number (an empty key for NaN), a media file's source, or the
    value's text."""
    if value is None:
        return ""
    if _is_number(value):
        return repr(value) if math.isfinite(value) else ""
    return _plain(value) if _is_media(value) or isinstance(value, list) else _display(value, name)


def _plain(value: Any) -> str:
    """A value as one CSV field: media as their path or URL, list items joined with ' | '."""
    if value is None:
        return ""
    if _is_media(value):
        return str(value.get("url", value.get("path")))
    if isinstance(value, list):
        return " | ".join(_plain(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, Mapping) else str(value)


def _class(*names: str) -> str:
    joined = " ".join(name for name in names if name)
    return f' class="{joined}"' if joined else ""


def _e(text: str) -> str:
    return html.escape(text, quote=True)
