"""The comparison page writer: the HTML's structure and escaping (read back with html.parser), media sources,
the CSV rows, the JSON round trip and atomic writes."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.cli.compare_page import compare_csv, compare_html, media_source, write_compare

ARTIFACT = "0123456789abcdef0123456789abcdef"
VOID = {"meta", "img", "br", "hr", "input", "source", "link", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    own_text: str = ""

    def find_all(self, tag: str) -> list[Element]:
        """Every descendant with this tag, in document order."""
        found = []
        for child in self.children:
            found += [child] if child.tag == tag else []
            found += child.find_all(tag)
        return found

    def first(self, tag: str) -> Element:
        found = self.find_all(tag)
        assert found, f"no <{tag}> in <{self.tag}>"
        return found[0]

    @property
    def text(self) -> str:
        return self.own_text + "".join(child.text for child in self.children)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class Tree(HTMLParser):
    """The page as a tree of elements (void elements have no children)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        assert tag in [element.tag for element in self.stack], f"</{tag}> closes nothing open"
        while self.stack.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.stack[-1].own_text += data


def parse(page: str) -> Element:
    return Tree(page).root


def cells_table(folder: Path) -> list[dict[str, Any]]:
    """Two models x two seeds, with a picture inside ``folder`` per cell, a caption and a score."""
    table = []
    for index, (model, seed) in enumerate([("tiny/sd", 1), ("tiny/sd", 2), ("tiny/sdxl", 1), ("tiny/sdxl", 2)]):
        table.append({"index": index, "inputs": {"model": model, "seed": seed, "steps": 4},
                      "outputs": {"image": {"path": str(folder / "cells" / str(index) / "image.png"),
                                            "media_type": "image/png"},
                                  "caption": f"a fox\nnumber {index}", "score": [0.31, 2.5, 10.0, 0.07][index]},
                      "seconds": 1.25 + index, "devices": ["cpu"], "cached": index == 1})
    return table


def rows_of(page: Element) -> list[dict[str, Element]]:
    return [{td.attrs["data-column"]: td for td in tr.find_all("td")} for tr in page.first("tbody").find_all("tr")]


def test_the_page_has_a_row_per_cell_with_inputs_outputs_then_timing(tmp_path: Path) -> None:
    page = parse(compare_html(cells_table(tmp_path), title="Fox portrait", axes=["model", "seed"], folder=tmp_path))
    assert page.first("title").text == "Fox portrait" and page.first("h1").text == "Fox portrait"
    headers = page.first("thead").find_all("th")
    assert [th.attrs["data-column"] for th in headers] == ["model", "seed", "image", "caption", "score", "seconds",
                                                           "devices", "cached"]
    assert [th.text for th in headers] == [th.attrs["data-column"] for th in headers]
    assert [th.attrs["data-type"] for th in headers] == ["text", "number", "text", "text", "number", "number",
                                                         "text", "text"]
    assert all(th.first("button").attrs["type"] == "button" for th in headers), "headers are buttons: sortable"
    rows = rows_of(page)
    assert [tr.attrs["id"] for tr in page.first("tbody").find_all("tr")] == ["cell-0", "cell-1", "cell-2", "cell-3"]
    first = rows[0]
    assert first["image"].first("img").attrs["src"] == "cells/0/image.png"
    assert first["image"].first("a").attrs["href"] == "cells/0/image.png", "a click opens the full-size picture"
    caption = first["caption"].first("pre")
    assert caption.classes == {"text"} and caption.text == "a fox\nnumber 0"
    assert "num" in first["score"].classes and first["score"].text == "0.31"
    assert first["score"].attrs["data-sort"] == "0.31"
    assert [row["seconds"].text for row in rows] == ["1.25", "2.25", "3.25", "4.25"]
    assert [row["devices"].text for row in rows] == ["cpu"] * 4
    assert [row["cached"].text for row in rows] == ["no", "yes", "no", "no"]
    assert len(page.find_all("script")) == 1 and "src" not in page.first("script").attrs


def test_values_that_differ_between_cells_are_highlighted_one_tint_per_value(tmp_path: Path) -> None:
    page = parse(compare_html(cells_table(tmp_path), title="t", axes=["model", "seed", "steps"]))
    rows = rows_of(page)
    assert [row["model"].attrs.get("style") for row in rows] == ["--tint: 0", "--tint: 0", "--tint: 1", "--tint: 1"]
    assert [row["seed"].attrs.get("style") for row in rows] == ["--tint: 0", "--tint: 1", "--tint: 0", "--tint: 1"]
    assert all({"axis", "differs"} <= row["model"].classes and "differs" in row["seed"].classes for row in rows)
    assert all("differs" not in row["steps"].classes and "style" not in row["steps"].attrs for row in rows), \
        "steps is 4 in every cell: nothing to point at"
    assert "differs" not in {name for row in rows for td in row.values() if td.attrs["data-column"] not in (
        "model", "seed") for name in td.classes}


def test_every_text_is_escaped(tmp_path: Path) -> None:
    attack = '</pre><script>alert(1)</script><img src=x onerror="alert(2)">'
    table = [{"index": 0, "inputs": {"subject": attack, "seed": 1},
              "outputs": {attack: attack, "note": "\"quoted\" & 'single'"}, "seconds": 0.5, "devices": [attack],
              "cached": False, "error": attack},
             {"index": 1, "inputs": {"subject": "ok", "seed": 2}, "outputs": {}, "seconds": 0.25, "devices": [],
              "cached": True}]
    text = compare_html(table, title=attack, axes=["subject", "seed"])
    page = parse(text)
    assert len(page.find_all("script")) == 1 and "alert" not in page.first("script").text
    assert page.find_all("img") == []
    assert page.first("title").text == attack and page.first("h1").text == attack
    headers = [th.attrs["data-column"] for th in page.first("thead").find_all("th")]
    assert headers == ["subject", "seed", attack, "note", "seconds", "devices", "cached", "error"]
    row = rows_of(page)[0]
    assert row["subject"].text == attack and row["subject"].attrs["data-sort"] == attack
    assert row[attack].first("pre").text == attack
    assert row["note"].first("pre").text == "\"quoted\" & 'single'"
    assert row["devices"].text == attack
    assert "error" in row["error"].classes and row["error"].text == attack
    assert rows_of(page)[1]["note"].text == "", "a cell without an output shows an empty cell"


def test_media_sources_relative_inside_the_folder_file_urls_outside_and_artifact_urls(tmp_path: Path) -> None:
    page_folder = tmp_path / "sweep"
    inside = {"path": str(page_folder / "cells" / "a b#1.png"), "media_type": "image/png"}
    assert media_source(inside, page_folder) == "cells/a%20b%231.png"
    outside = {"path": str(tmp_path / "elsewhere.wav"), "media_type": "audio/wav"}
    assert media_source(outside, page_folder) == (tmp_path / "elsewhere.wav").resolve().as_uri()
    assert media_source(inside, None) is None, "the served page links no file of the server's"
    artifact = {"url": f"/api/artifacts/{ARTIFACT}", "media_type": "video/mp4", "bytes": 10}
    assert media_source(artifact, page_folder) == media_source(artifact, None) == artifact["url"]
    other = {"url": f"/api/artifacts/{ARTIFACT[::-1]}", "media_type": "image/png"}
    table = [{"index": 0, "inputs": {"seed": 1}, "outputs": {
        "frames": [inside, other], "speech": outside,
        "clip": artifact, "data": {"path": str(page_folder / "x.bin"), "media_type": "application/octet-stream"}},
        "seconds": 1.0, "devices": ["cuda:0"], "cached": False}]
    row = rows_of(parse(compare_html(table, title="media", axes=["seed"], folder=page_folder)))[0]
    assert [img.attrs["src"] for img in row["frames"].find_all("img")] == ["cells/a%20b%231.png", other["url"]]
    audio = row["speech"].first("audio")
    assert "controls" in audio.attrs and audio.attrs["src"] == (tmp_path / "elsewhere.wav").resolve().as_uri()
    video = row["clip"].first("video")
    assert "controls" in video.attrs and video.attrs["src"] == artifact["url"]
    assert row["data"].first("a").attrs["href"] == "x.bin" and row["data"].text == "x.bin"


HOSTILE_URLS = ["javascript:alert(document.domain)", " JavaScript:alert(1)", "java\tscript:alert(1)",
                "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", "https://evil.example/x.png",
                "//evil.example/x.png", "/api/artifacts/../../api/health", f"/api/artifacts/{ARTIFACT}?x=1",
                f"/api/artifacts/{ARTIFACT}#x"]


@pytest.mark.parametrize("folder", [None, "sweep"])
def test_a_media_value_links_only_the_servers_own_artifacts(tmp_path: Path, folder: str | None) -> None:
    """A swept value or a forged ``ui.sweep`` can hold any media-shaped object: whatever its ``url`` (script,
    data, another site, a path that climbs out), the page shows it as text and links or loads nothing from it."""
    values = [{"url": url, "media_type": kind} for url in HOSTILE_URLS for kind in ("image/png", "audio/wav",
                                                                                    "text/html")]
    values += [{"url": ["javascript:alert(1)"], "media_type": "image/png"}, {"path": 5, "media_type": "image/png"}]
    table = [{"index": index, "inputs": {"pick": value}, "outputs": {"shown": value, "listed": [value, value]},
              "seconds": 0.1, "devices": [], "cached": False} for index, value in enumerate(values)]
    page_folder = None if folder is None else tmp_path / folder
    page = parse(compare_html(table, title="t", axes=["pick"], folder=page_folder))
    linked = [element for tag in ("a", "img", "audio", "video", "source", "iframe") for element in page.find_all(tag)]
    assert linked == []
    assert "alert(document.domain)" in rows_of(page)[0]["pick"].text, "the value is still shown, as text"


def test_a_file_named_like_a_scheme_inside_the_folder_stays_a_relative_link(tmp_path: Path) -> None:
    folder = tmp_path / "sweep"
    item = {"path": str(folder / "javascript:alert(1).png"), "media_type": "image/png"}
    assert media_source(item, folder) == "javascript%3Aalert%281%29.png"


def test_csv_has_a_row_per_cell_with_media_paths_and_joined_lists(tmp_path: Path) -> None:
    table = cells_table(tmp_path)
    table[0]["outputs"]["frames"] = [{"url": "/api/artifacts/a", "media_type": "image/png"},
                                     {"url": "/api/artifacts/b", "media_type": "image/png"}]
    table[2]["devices"] = ["cuda:0", "cuda:1"]
    rows = list(csv.reader(io.StringIO(compare_csv(table, ["model", "seed"]))))
    assert rows[0] == ["index", "model", "seed", "image", "caption", "score", "frames", "seconds", "devices",
                       "cached"]
    assert rows[1] == ["0", "tiny/sd", "1", str(tmp_path / "cells" / "0" / "image.png"), "a fox\nnumber 0", "0.31",
                       "/api/artifacts/a | /api/artifacts/b", "1.25", "cpu", "false"]
    assert rows[2][5:] == ["2.5", "", "2.25", "cpu", "true"]
    assert rows[3][8] == "cuda:0 | cuda:1"
    assert len(rows) == 5


def test_write_compare_writes_the_three_files_and_the_json_round_trips(tmp_path: Path) -> None:
    folder = tmp_path / "sweep"
    table = cells_table(folder)
    paths = write_compare(folder, table, title="Fox", axes=["model", "seed"])
    assert paths == [folder / "compare.html", folder / "compare.csv", folder / "compare.json"]
    assert json.loads(paths[2].read_text(encoding="utf-8")) == table
    assert paths[2].read_text(encoding="utf-8").startswith('[\n  {\n    "index": 0,'), "pretty JSON"
    assert paths[0].read_text(encoding="utf-8") == compare_html(table, title="Fox", axes=["model", "seed"],
                                                                 folder=folder)
    assert paths[1].read_text(encoding="utf-8") == compare_csv(table, ["model", "seed"])
    assert sorted(p.name for p in folder.iterdir()) == ["compare.csv", "compare.html", "compare.json"]


def test_a_failed_write_leaves_the_old_files_and_no_temp_files(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    table = cells_table(tmp_path)
    write_compare(tmp_path, table, title="first", axes=["model"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_replace(source: Any, target: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_compare(tmp_path, table, title="second", axes=["model", "seed"])
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    write_compare(tmp_path, table[:1], title="third", axes=["seed"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.csv", "compare.html", "compare.json"]
    assert json.loads((tmp_path / "compare.json").read_text(encoding="utf-8")) == table[:1]
