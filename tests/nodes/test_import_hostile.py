"""Hostile files for the importers: every shape that used to escape as an unhandled exception (RecursionError,
OverflowError, ValueError, TypeError) is an ImportFailed naming the node, the input and the reason (the CLI: one
line, exit 2); parsers are linear and bounded; a PNG's pixels are never decoded."""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.cli import main
from nodeforge.nodes.importers import ImportFailed, import_a1111, import_comfy, import_file
from tests.nodes.import_support import (
    SETTINGS,
    api_with,
    backtracking_parameters,
    chunk,
    default_api,
    png,
    reroute_chain,
    scale_chain,
    ztxt_png,
)


def ui_workflow(node_type: str = "", **changes: Any) -> bytes:
    """ComfyUI's default UI workflow with top-level fields replaced, or those of its first node of ``node_type``."""
    workflow = json.loads((Path(__file__).resolve().parents[1] / "data" / "comfy" / "default_ui.json").read_text())
    target = next(node for node in workflow["nodes"] if node["type"] == node_type) if node_type else workflow
    target.update(changes)
    return json.dumps(workflow).encode()


def with_unmapped_id(node_id: str) -> bytes:
    workflow = default_api()
    workflow[node_id] = {"class_type": "UltimateSDUpscale", "inputs": {"image": ["8", 0]}}
    return json.dumps(workflow).encode()


def canny_workflow(threshold: float) -> bytes:
    workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
                "2": {"class_type": "Canny", "inputs": {"image": ["1", 0], "low_threshold": threshold,
                                                        "high_threshold": 0.8}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}
    return json.dumps(workflow).encode()


def a1111(settings: str) -> bytes:
    return png(before={"parameters": f"a fox\n{settings}"})


# (file, what the error says, the node and input it names): each of these answered 500 before (the exception in
# the comment), and the CLI printed a traceback.
HOSTILE: dict[str, tuple[bytes, str, tuple[str, str] | None]] = {
    "deep JSON": (b"[" * 100_000 + b"]" * 100_000, "nests its JSON more than 64 levels deep", None),  # Recursion
    "NaN steps": (api_with("3", "steps", math.nan), "input 'steps' is nan, not a finite number",
                  ("3", "steps")),  # ValueError: cannot convert float NaN to integer
    "Infinity seed": (api_with("3", "seed", math.inf), "input 'seed' is inf, not a finite number",
                      ("3", "seed")),  # OverflowError
    "huge width": (api_with("5", "width", 1e300), "input 'width' is the value 1e+300, out of range",
                   ("5", "width")),  # imported as a 301-digit width
    "Canny 1e306": (canny_workflow(1e306), "input 'low_threshold' is the value 1e+306, out of range",
                    ("2", "low_threshold")),  # OverflowError: round(inf)
    "inputs not a list": (ui_workflow("CLIPTextEncode", inputs=5), "input 'clip' is not connected",
                          ("7", "clip")),  # TypeError: 'int' object is not iterable
    "groups not a list": (ui_workflow(groups=5), "", None),  # TypeError
    "group box of words": (ui_workflow(groups=[{"bounding": ["a", "b", "c", "d"]}]), "", None),  # ValueError
    "NaN position": (ui_workflow("KSampler", pos=[math.nan, 0]), "", None),  # ValueError: round(nan)
    "1e400 position": (ui_workflow("SaveImage", pos=[0, math.inf]), "", None),  # OverflowError: round(inf)
    "unicode digit id": (with_unmapped_id("\u00b2"), "node(s) cannot be mapped", ("\u00b2", "")),  # int('²')
    "Seed 1e999": (a1111(SETTINGS.replace("Seed: 5", "Seed: 1e999")), "Seed '1e999' is not a finite number",
                   None),  # OverflowError: cannot convert float infinity to integer
    "5000-digit Size": (a1111(SETTINGS.replace("64x64", "9" * 5000 + "x64")), "is not WIDTHxHEIGHT",
                        None),  # ValueError: exceeds the limit for integer string conversion
    "Hires upscale 1e308": (a1111(SETTINGS + ", Denoising strength: 0.5, Hires upscale: 1e308"),
                            "Hires upscale 1e+308 is out of range", None),  # OverflowError
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_shapes_fail_with_the_reason_and_where(name: str) -> None:
    data, reason, where = HOSTILE[name]
    try:
        result = import_file(data)
    except ImportFailed as failed:
        assert reason in str(failed)
        if where is not None and where[1]:
            assert [(item.id, item.input) for item in failed.unmapped] == [where]
        elif where is not None:
            assert [item.id for item in failed.unmapped] == [where[0]]
        return
    assert reason == "", f"{name} imported: {result.document}"  # a shape that is only ignored
    json.dumps(result.document, allow_nan=False)  # nothing non-finite reaches the document


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_cli_says_one_line_and_exits_2(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, reason, _ = HOSTILE[name]
    source = tmp_path / ("in.png" if data.startswith(b"\x89PNG") else "in.json")
    source.write_bytes(data)
    code = main(["import", "a1111" if data.startswith(b"\x89PNG") else "comfy", str(source), "-o",
                 str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == (2 if reason else 0), err
    assert reason in err


def test_a_nan_cfg_is_an_issue_on_the_sampler_not_a_null_guidance() -> None:
    with pytest.raises(ImportFailed) as failed:
        import_comfy(api_with("3", "cfg", math.nan))
    [item] = failed.value.unmapped
    assert (item.id, item.class_type, item.input) == ("3", "KSampler", "cfg")
    assert item.reason == "input 'cfg' is nan, not a finite number"


@pytest.mark.parametrize(("build", "length"), [(scale_chain, 1500), (reroute_chain, 3000)])
def test_chains_of_thousands_of_nodes_import_without_recursion(build: Any, length: int) -> None:
    document = import_comfy(build(length)).document
    resized = [node for node in document["nodes"].values() if node["type"] == "image.resize"]
    assert len(resized) == (length if build is scale_chain else 0)
    assert document["outputs"]["image"]["from"].split(".")[0] in document["nodes"]
    if build is scale_chain:  # laid out one column further per link
        columns = {position[0] for position in document["ui"]["positions"].values()}
        assert len(columns) == length + 2


def test_a_lora_chain_longer_than_the_cap_names_the_node() -> None:
    workflow = default_api()
    previous = "4"
    for index in range(100, 170):
        workflow[str(index)] = {"class_type": "LoraLoaderModelOnly",
                                "inputs": {"model": [previous, 0], "lora_name": f"l{index}.safetensors",
                                           "strength_model": 1.0}}
        previous = str(index)
    workflow["3"]["inputs"]["model"] = [previous, 0]
    with pytest.raises(ImportFailed) as failed:
        import_comfy(workflow)
    assert [(item.id, item.input, item.reason) for item in failed.value.unmapped] == [
        ("164", "model", "more than 64 LoRAs on one model")]


def test_a_long_prompt_copied_into_thousands_of_nodes_is_refused() -> None:
    workflow = default_api()
    workflow["6"]["inputs"]["text"] = "x" * 100_000  # differs from the first sampler's: a literal in each
    for index in range(400):
        workflow[f"s{index}"] = {**workflow["3"], "inputs": {**workflow["3"]["inputs"], "positive": ["6", 0]}}
        workflow[f"p{index}"] = {"class_type": "PreviewImage", "inputs": {"images": [f"d{index}", 0]}}
        workflow[f"d{index}"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"s{index}", 0],
                                                                      "vae": ["4", 2]}}
    workflow["first"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "short", "clip": ["4", 1]}}
    workflow["3"]["inputs"]["positive"] = ["first", 0]
    with pytest.raises(ImportFailed, match="over the limit of 33,554,432"):
        import_comfy(workflow)


@pytest.mark.parametrize("part", sorted(backtracking_parameters(1)))
def test_a1111_parameters_parse_in_linear_time(part: str) -> None:
    """Each text made one of the old regular expressions backtrack: 40,000 characters took 2 to 16 s here (and froze
    the server for 17 s); the scanners take milliseconds, so one second is a ceiling, not a speed figure."""
    text = backtracking_parameters(40_000)[part]
    started = time.perf_counter()
    try:
        import_a1111(text)
    except ImportFailed as failed:
        assert "no settings line" in str(failed)
    assert time.perf_counter() - started < 1.0


def test_settings_and_tags_still_read_as_a1111_writes_them() -> None:
    result = import_a1111('a <LoRA:fox:0.5> <lyco:x> <lora::1> <hypernet:h:1>, , ,  b\n'
                          'Steps: 4, Sampler: Euler, CFG scale: 6, Seed: 18446744073709551615, Size: 64 x 64, '
                          'Odd: "unclosed, Model: m')
    inputs = result.document["nodes"]["generate"]["inputs"]
    assert inputs["loras"] == [{"model": "fox.safetensors", "weight": 0.5}, {"model": "x.safetensors", "weight": 1.0}]
    assert result.document["inputs"]["prompt"]["default"] == "a <lora::1>, b"
    assert result.document["inputs"]["seed"]["default"] == 18446744073709551615  # exact, not through a float
    assert result.document["inputs"]["model"]["default"] == "m.safetensors"
    assert result.warnings == ["hypernetwork h is not supported and was left out"]


def test_a_pngs_pixels_are_never_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text after the pixels made Pillow decode the whole picture (a 657 KB PNG became 676 MB); the chunks are
    read from their lengths now, so decoding is never called."""
    from PIL import ImageFile

    def refuse(*_: Any) -> None:
        raise AssertionError("the importer decoded the picture's pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    result = import_file(png(64, 64, after={"parameters": "a fox\n" + SETTINGS}))
    assert result.source == "a1111" and result.document["inputs"]["prompt"]["default"] == "a fox"
    workflow = json.dumps(default_api())
    assert import_file(png(64, 64, after={"prompt": workflow})).source == "comfy-png"


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x89PNG\r\n\x1a\n" + b"garbage!" * 4, "the PNG is damaged: at byte 8 it holds no chunk"),
    (b"\x89PNG\r\n\x1a\n" + b"\0\0\1\0IDAT", "the PNG is truncated: its IDAT chunk needs 256 bytes, 0 are left"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "the PNG is truncated: 2 stray byte(s) after its last chunk"),
    (png()[:-20], "the PNG is truncated"),
    (png().replace(b"IEND", b"tEXt")[:-4] + b"\0\0\0\0", "a tEXt chunk fails its checksum"),
    (ztxt_png("workflow", 9 * 1024 * 1024), "the PNG's 'workflow' text is longer than 8,388,608 characters"),
    (png(before={"parameters": "a" * 300_000}), "the PNG's 'parameters' text is longer than 262,144 characters"),
    (png(extra=chunk(b"zTXt", b"prompt\0\0not zlib")), "its compressed text does not inflate"),
], ids=["garbage", "cut IDAT", "stray bytes", "cut IEND", "bad CRC", "zTXt bomb", "long parameters", "bad zlib"])
def test_a_bad_png_is_named_in_words(data: bytes, reason: str) -> None:
    with pytest.raises(ImportFailed) as failed:
        import_file(data)
    assert reason in str(failed.value)
    assert " at 0x" not in str(failed.value) and "object" not in str(failed.value)


@pytest.mark.parametrize("compressed", [False, True])
def test_every_kind_of_text_chunk_reads_back(compressed: bool) -> None:
    """tEXt, zTXt (Latin-1) and iTXt (UTF-8, plain or compressed), as Pillow writes them."""
    import io

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt("parameters", "a fox \U0001f98a\n" + SETTINGS, zip=compressed)
    info.add_text("Software", "GIMP", zip=compressed)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=info)
    assert import_file(buffer.getvalue()).document["inputs"]["prompt"]["default"] == "a fox \U0001f98a"
    with pytest.raises(ImportFailed, match=r"found: Software, parameters\)"):
        import_comfy(buffer.getvalue())


def test_a_compressed_chunk_inflates_no_further_than_its_cap() -> None:
    """A 9 MB zTXt is a few KB on disk: the inflater stops one byte past the cap instead of expanding it all."""
    data = ztxt_png("workflow", 64 * 1024 * 1024)
    assert len(data) < 200_000
    with pytest.raises(ImportFailed, match="longer than 8,388,608"):
        import_file(data)


MUTANTS = [math.nan, math.inf, -math.inf, 10**30, 2**64, -1, 0, 1e300, "x", "", "\u00b2", None, True, [], {}, [1, 2],
           ["999", 0], ["3", 99], ["3", -1], [None] * 6, {"a": 1}]


def _places(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _places(child, (*path, key))


def test_randomly_mutated_workflows_fail_only_with_a_reason() -> None:
    """The kept workflows (API, UI and both chunks of each PNG) with one to four values anywhere replaced by a
    hostile one, 600 times (a fixed seed): each imports (nothing non-finite in the document) or is an ImportFailed.
    On the previous code this failed at once (7,000 such mutations raised 13 distinct unhandled exceptions)."""
    from PIL import Image

    data = Path(__file__).resolve().parents[1] / "data" / "comfy"
    bases = [json.loads((data / name).read_text()) for name in ("default_api.json", "default_ui.json",
                                                                "edge_cases_ui.json", "sdxl_refiner_api.json")]
    for path in sorted(data.glob("*.png")):
        with Image.open(path) as picture:
            bases += [json.loads(picture.info["workflow"]), json.loads(picture.info["prompt"])]
    chance = random.Random(23)
    for _ in range(600):
        workflow = copy.deepcopy(chance.choice(bases))
        for _ in range(chance.randint(1, 4)):
            *parent, key = chance.choice([path for path in _places(workflow) if path])
            target = workflow
            for step in parent:
                target = target[step]
            target[key] = copy.deepcopy(chance.choice(MUTANTS))
        try:
            result = import_file(json.dumps(workflow).encode(), partial=chance.random() < 0.5)
        except ImportFailed:
            continue
        json.dumps(result.document, allow_nan=False)


def test_random_a1111_settings_fail_only_with_a_reason() -> None:
    keys = ["Steps", "Sampler", "CFG scale", "Seed", "Size", "Denoising strength", "Hires upscale", "Hires resize",
            "Hires steps", "Batch size", "Hires upscaler", "Clip skip", "Schedule type", "Model"]
    values = ["nan", "inf", "-inf", "1e999", "-5", "0", "x", "", '"q, w"', "9" * 30, "64x", "0x0", "1e308", "2.5",
              '"', "<lora:a:nan>"]
    chance = random.Random(23)
    for _ in range(400):
        settings = ", ".join(f"{chance.choice(keys)}: {chance.choice(values)}" for _ in range(chance.randint(3, 8)))
        try:
            result = import_a1111(f"a fox <lora:x:inf> <lora:y:1e999>\n{settings}")
        except ImportFailed:
            continue
        json.dumps(result.document, allow_nan=False)
