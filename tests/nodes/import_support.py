"""Hostile and large inputs for the importers, built here byte by byte: PNGs with text chunks before or after their
pixels (any size, without holding the pixels), A1111 parameters that backtrack a regular expression, and ComfyUI
workflows of any shape and size. Shared by the importer unit tests and the attack suite against a real server;
``run_imported`` runs an imported graph through the command line, as a user would after ``nodeforge import``."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "comfy"
SETTINGS = "Steps: 4, Sampler: Euler a, CFG scale: 6, Seed: 5, Size: 64x64, Model: dreamshaper_8"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int = 8, height: int = 8, *, before: dict[str, str] | None = None,
        after: dict[str, str] | None = None, extra: bytes = b"") -> bytes:
    """An RGBA PNG of one colour with tEXt chunks ``before`` and ``after`` its pixels; the rows are compressed one
    at a time, so a 13,000-pixel square costs a second and a few MB, not the 676 MB it decodes to."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
    deflate = zlib.compressobj(1)
    row = bytes(1 + width * 4)
    pixels = b"".join([*(deflate.compress(row) for _ in range(height)), deflate.flush()])
    texts = [chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
             for key, value in (before or {}).items()]
    later = [chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
             for key, value in (after or {}).items()]
    return b"".join([b"\x89PNG\r\n\x1a\n", header, *texts, chunk(b"IDAT", pixels), *later, extra,
                     chunk(b"IEND", b"")])


def ztxt_png(key: str, text_bytes: int) -> bytes:
    """A small PNG whose zTXt chunk inflates to ``text_bytes`` characters (a compression bomb)."""
    deflate = zlib.compressobj(9)
    block = b"{" * 65536
    body = b"".join([*(deflate.compress(block) for _ in range(text_bytes // len(block))), deflate.flush()])
    return png(extra=chunk(b"zTXt", key.encode() + b"\0\0" + body))


def backtracking_parameters(size: int) -> dict[str, str]:
    """A1111 parameters each of whose parts made one of the old regular expressions backtrack in quadratic time:
    a settings line without a colon, unclosed LoRA tags, and a run of blanks before no comma."""
    return {"settings": "a fox\n" + "a" * size,
            "tags": "<lora:a:b:" * (size // 10) + "\n" + SETTINGS,
            "blanks": "a" + " " * size + "b\n" + SETTINGS}


def default_api() -> dict[str, Any]:
    return dict(json.loads((DATA / "default_api.json").read_text()))


def api_with(node: str, name: str, value: Any) -> bytes:
    """ComfyUI's default API workflow with one input of one node replaced (JSON allows NaN and Infinity)."""
    workflow = default_api()
    workflow[node]["inputs"][name] = value
    return json.dumps(workflow).encode()


def scale_chain(length: int) -> dict[str, Any]:
    """LoadImage -> ``length`` ImageScaleBy nodes in a row -> SaveImage, in the API format."""
    workflow: dict[str, Any] = {"0": {"class_type": "LoadImage", "inputs": {"image": "in.png"}}}
    for index in range(1, length + 1):
        workflow[str(index)] = {"class_type": "ImageScaleBy",
                                "inputs": {"image": [str(index - 1), 0], "upscale_method": "bicubic",
                                           "scale_by": 1.0}}
    workflow["save"] = {"class_type": "SaveImage", "inputs": {"images": [str(length), 0], "filename_prefix": "x"}}
    return workflow


def reroute_chain(length: int) -> dict[str, Any]:
    """A UI workflow whose LoadImage reaches its SaveImage through ``length`` Reroutes."""
    nodes: list[dict[str, Any]] = [
        {"id": 1, "type": "LoadImage", "widgets_values": ["in.png", "image"], "pos": [0, 0]}]
    links: list[list[Any]] = []
    for index in range(length + 1):
        links.append([index + 1, index + 1 if index == 0 else 100 + index, 0, 100 + index + 1, 0, "IMAGE"])
    for index in range(1, length + 1):
        nodes.append({"id": 100 + index, "type": "Reroute", "pos": [0, 0],
                      "inputs": [{"name": "", "type": "*", "link": index}]})
    nodes.append({"id": 100 + length + 1, "type": "SaveImage", "widgets_values": ["x"], "pos": [0, 0],
                  "inputs": [{"name": "images", "type": "IMAGE", "link": length + 1}]})
    return {"nodes": nodes, "links": links}


def many_pipelines(count: int) -> dict[str, Any]:
    """``count`` text-to-image pipelines of 7 nodes each in the UI format, every node at the same place, each with
    its own model file, its own inexact sampler (a warning each) and its own SaveImage: what made the old import
    quadratic (places, warnings, output names and model inputs each searched from the start)."""
    nodes: list[dict[str, Any]] = []
    links: list[list[Any]] = []

    def node(node_id: int, kind: str, widgets: list[Any], inputs: list[tuple[str, str, int]]) -> None:
        nodes.append({"id": node_id, "type": kind, "pos": [10, 10], "widgets_values": widgets,
                      "inputs": [{"name": name, "type": type_, "link": link} for name, type_, link in inputs]})

    def link(origin: int, slot: int, target: int, kind: str) -> int:
        links.append([len(links) + 1, origin, slot, target, 0, kind])
        return len(links)

    for unit in range(count):
        base = unit * 10
        loader, positive, negative, latent, sampler, decode, save = (base + i for i in range(1, 8))
        node(loader, "CheckpointLoaderSimple", [f"model_{unit}.safetensors"], [])
        node(positive, "CLIPTextEncode", [f"a fox number {unit}"],
             [("clip", "CLIP", link(loader, 1, positive, "CLIP"))])
        node(negative, "CLIPTextEncode", ["blurry"], [("clip", "CLIP", link(loader, 1, negative, "CLIP"))])
        node(latent, "EmptyLatentImage", [512, 512, 1], [])
        node(sampler, "KSampler", [unit, "fixed", 20, 7.0, "lms", "normal", 1.0],
             [("model", "MODEL", link(loader, 0, sampler, "MODEL")),
              ("positive", "CONDITIONING", link(positive, 0, sampler, "CONDITIONING")),
              ("negative", "CONDITIONING", link(negative, 0, sampler, "CONDITIONING")),
              ("latent_image", "LATENT", link(latent, 0, sampler, "LATENT"))])
        node(decode, "VAEDecode", [], [("samples", "LATENT", link(sampler, 0, decode, "LATENT")),
                                       ("vae", "VAE", link(loader, 2, decode, "VAE"))])
        node(save, "SaveImage", ["out"], [("images", "IMAGE", link(decode, 0, save, "IMAGE"))])
    return {"nodes": nodes, "links": links}


def run_imported(document: dict[str, Any], tmp_path: Path, sets: list[str],
                 capsys: pytest.CaptureFixture[str]) -> Any:
    """``nodeforge run GRAPH --json --set ...`` of an imported graph in a fresh data folder; its run record."""
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps(document))
    command = ["run", str(graph), "--json", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    for item in sets:
        command += ["--set", item]
    code = main(command)
    record = json.loads(capsys.readouterr().out)
    assert code == 0, record.get("error")
    return record
