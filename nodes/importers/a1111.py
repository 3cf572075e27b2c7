"""A1111 and Forge PNGs: the ``parameters`` text chunk they write -> a nodeforge graph.

The text is the prompt (its ``<lora:name:weight>`` tags become ``loras``), an optional ``Negative prompt:``, and a
last line of ``Key: value`` settings (values with commas are quoted): Steps, Sampler, Schedule type (Forge), CFG
scale, Seed, Size, Model, Batch size, and for a second pass Denoising strength with Hires upscale or Hires resize,
Hires upscaler and Hires steps. Without a Hires setting, Denoising strength means img2img: the graph then takes the
starting picture as its ``image`` input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nodeforge.nodes.importers.a1111_text import networks_of, settings_of, tidy, without_networks
from nodeforge.nodes.importers.builder import Builder
from nodeforge.nodes.importers.png_text import MAX_PARAMETERS_TEXT, PNG_SIGNATURE, png_texts
from nodeforge.nodes.importers.result import ImportFailed, ImportResult
from nodeforge.nodes.importers.samplers import STOCHASTIC, a1111_sampler, comfy_sampling

MAX_SIDE = 65_536
"""The widest or tallest picture a Size may name (nodeforge's own nodes take far less; this bounds the number)."""
MAX_INTEGER = 2**64
"""Seeds and counts are at most 64-bit numbers, as A1111 and ComfyUI write them."""
MAX_HIRES_SCALE = 16.0
# A1111's upscaler labels for the Real-ESRGAN weights nodeforge ships.
SHIPPED_UPSCALERS = {"r-esrgan 4x+": "realesrgan-x4plus", "r-esrgan 4x+ anime6b": "realesrgan-x4plus-anime"}
PIXEL_UPSCALERS = {"none": "bicubic", "lanczos": "bicubic", "nearest": "nearest"}


@dataclass
class Parameters:
    prompt: str
    negative: str
    settings: dict[str, str]
    loras: list[dict[str, Any]] = field(default_factory=list)


def parameters_of(data: bytes) -> str:
    """The ``parameters`` text of an A1111/Forge PNG."""
    if data[:8] != PNG_SIGNATURE:
        raise ImportFailed("an A1111 import takes the PNG that A1111 or Forge saved (this file is not a PNG)")
    found = png_texts(data)
    if "parameters" not in found.texts:
        raise ImportFailed(f"this PNG has no A1111 'parameters' text chunk (found: {found.found()})")
    return found.texts["parameters"]


def parse_parameters(text: str) -> Parameters:
    """Prompt, negative prompt and settings of an A1111 ``parameters`` text."""
    lines = text.strip().replace("\r\n", "\n").split("\n")
    settings: dict[str, str] = {}
    last = settings_of(lines[-1]) if lines else []
    if len(last) >= 3:
        lines.pop()
        settings = dict(last)
    prompt: list[str] = []
    negative: list[str] = []
    target = prompt
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative
            line = line[len("Negative prompt:"):].lstrip()
        target.append(line)
    return Parameters("\n".join(prompt).strip(), "\n".join(negative).strip(), settings)


def import_parameters(text: str, *, name: str = "") -> ImportResult:
    """The graph an A1111 ``parameters`` text describes."""
    if len(text) > MAX_PARAMETERS_TEXT:
        raise ImportFailed(f"the parameters text is longer than {MAX_PARAMETERS_TEXT:,} characters, the most an "
                           "import reads")
    params = parse_parameters(text)
    if not params.settings:
        raise ImportFailed("the parameters text has no settings line (Steps: ..., Sampler: ..., Seed: ...): not "
                           "written by A1111 or Forge")
    build = Builder(name, "Imported from A1111/Forge generation parameters")
    prompt, loras = _networks(params.prompt, build)
    settings = params.settings
    width, height = _size(settings.get("Size", "512x512"), "Size")
    steps = _number(settings, "Steps", 20, int)
    cfg = _number(settings, "CFG scale", 7.0, float)
    seed = _number(settings, "Seed", 0, int)
    sampler, schedule = a1111_sampler(settings.get("Sampler", "Euler"), settings.get("Schedule type", ""))
    sampling, problem = comfy_sampling(sampler, schedule) if sampler else ({"scheduler": "default"}, None)
    label = settings.get("Sampler", "")
    if not sampler:
        build.warn(f"sampler {label} has no equivalent; the model's own scheduler is used")
    elif problem:
        build.warn(f"Sampler {label}: {problem}")
    elif "sampler" in sampling and sampling["sampler"] in STOCHASTIC:
        build.warn(f"Sampler {label} runs as ComfyUI's {sampling['sampler']}, which draws its per-step noise "
                   "differently from A1111: the same seed gives another picture")
    clip_skip = _number(settings, "Clip skip", 1, int)
    model = settings.get("Model", "") or "model"
    model_file = model if "." in model.rsplit("/", 1)[-1] else f"{model}.safetensors"
    common: dict[str, Any] = {"prompt": build.bind("prompt", prompt, "text")}
    if params.negative:
        common["negative_prompt"] = build.bind("negative_prompt", params.negative, "text")
    common.update({"model": build.bind_model(model_file), "guidance_scale": cfg,
                   "seed": build.bind("seed", seed, "int"), **sampling, "prompt_syntax": "a1111"})
    if clip_skip > 1:
        common["clip_layer"] = -min(clip_skip, 24)
    if loras:
        common["loras"] = loras
    strength = settings.get("Denoising strength")
    hires = any(key in settings for key in ("Hires upscale", "Hires resize", "Hires upscaler"))
    if strength is not None and not hires:
        build.inputs["image"] = {"type": "image", "default": None, "description": "the picture img2img starts from"}
        final = build.add("transform", "", "image.transform",
                          {**common, "image": {"input": "image"}, "steps": build.bind("steps", steps, "int"),
                           "strength": _number(settings, "Denoising strength", 0.75, float)})
    else:
        count = _number(settings, "Batch size", 1, int)
        first = build.add("generate", "", "image.generate",
                          {**common, "steps": build.bind("steps", steps, "int"),
                           "width": build.bind("width", width, "int"), "height": build.bind("height", height, "int"),
                           **({"count": count} if count > 1 else {})})
        final = _second_pass(build, settings, first, common, steps, (width, height)) if hires else first
    build.add("save", "", "image.save", {"image": {"from": f"{final}.image"}, "name": "a1111"})
    build.output("image", f"{final}.image")
    return ImportResult(build.document(), "a1111", build.warnings, [])


def _second_pass(build: Builder, settings: dict[str, str], first: str, common: dict[str, Any], steps: int,
                 size: tuple[int, int]) -> str:
    """Hires fix: upscale the first picture (an upscaler model or a plain resize) and re-draw it as img2img."""
    if "Hires resize" in settings:
        target = _size(settings["Hires resize"], "Hires resize")
    else:
        scale = _number(settings, "Hires upscale", 2.0, float)
        if not 0 < scale <= MAX_HIRES_SCALE:
            raise ImportFailed(f"Hires upscale {scale:g} is out of range (above 0, at most {MAX_HIRES_SCALE:g})")
        target = (round(size[0] * scale / 8) * 8, round(size[1] * scale / 8) * 8)
    upscaler = settings.get("Hires upscaler", "Latent")
    source = f"{first}.image"
    key = upscaler.strip().lower()
    if key.startswith("latent"):
        build.warn(f"Hires upscaler {upscaler}: the latent upscale is done on the picture (bicubic)")
        filter_ = "bicubic"
    elif key in PIXEL_UPSCALERS:
        filter_ = PIXEL_UPSCALERS[key]
    else:
        model = SHIPPED_UPSCALERS.get(key, upscaler)
        if key not in SHIPPED_UPSCALERS:
            build.warn(f"Hires upscaler {upscaler} is named as given: point it at its weights file (e.g. "
                       f"--set or edit the upscale node's model)")
        source = build.add("upscale", "", "image.upscale", {"image": {"from": source}, "model": model}) + ".image"
        filter_ = "bicubic"
    resized = build.add("resize", "", "image.resize", {"image": {"from": source}, "width": target[0],
                                                         "height": target[1], "mode": "stretch", "filter": filter_})
    hires_steps = _number(settings, "Hires steps", 0, int) or steps
    return build.add("hires", "", "image.transform",
                     {**common, "image": {"from": f"{resized}.image"}, "steps": hires_steps,
                      "strength": _number(settings, "Denoising strength", 0.7, float)})


def _networks(prompt: str, build: Builder) -> tuple[str, list[dict[str, Any]]]:
    """The prompt without its ``<lora:...>`` tags, and those LoRAs as ``loras`` entries."""
    loras: list[dict[str, Any]] = []
    tags = networks_of(prompt)
    for tag in tags:
        if tag.kind == "hypernet":
            build.warn(f"hypernetwork {tag.name} is not supported and was left out")
            continue
        weight = _float(tag.weight)
        value = weight if weight is not None else 1.0
        file = tag.name if tag.name.lower().endswith((".safetensors", ".pt", ".ckpt")) else f"{tag.name}.safetensors"
        loras.append({"model": file, "weight": value})
    lines = [tidy(line) for line in without_networks(prompt, tags).split("\n")]
    return "\n".join(lines).strip(), loras


def _float(text: str) -> float | None:
    """A finite number written in ``text``, else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _size(text: str, key: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT``, each side a whole number of pixels from 1 to ``MAX_SIDE``."""
    width, separator, height = text.strip().partition("x")
    sides = (width.strip(), height.strip())
    if not separator or not all(side.isascii() and side.isdigit() and len(side) <= 6 for side in sides):
        raise ImportFailed(f"{key} '{_shown(text)}' is not WIDTHxHEIGHT")
    numbers = int(sides[0]), int(sides[1])
    if not all(1 <= side <= MAX_SIDE for side in numbers):
        raise ImportFailed(f"{key} '{_shown(text)}': each side must be 1 to {MAX_SIDE} pixels")
    return numbers


def _number(settings: dict[str, str], key: str, default: Any, kind: type) -> Any:
    """Setting ``key`` as a finite ``kind`` (int: a whole number of at most 64 bits), ``default`` when absent."""
    text = settings.get(key)
    if text is None or text == "":
        return default
    value = _float(text[:64])
    if value is None or len(text) > 64:
        raise ImportFailed(f"{key} '{_shown(text)}' is not a finite number")
    if kind is not int:
        return kind(value)
    exact = text.strip().lstrip("-")
    number = int(text) if exact.isascii() and exact.isdigit() else int(value)  # digits: no rounding through float
    if abs(number) >= MAX_INTEGER:
        raise ImportFailed(f"{key} '{_shown(text)}' is out of range (at most 64 bits)")
    return number


def _shown(text: str) -> str:
    """A setting as quoted in an error: at most 40 characters of it."""
    return text if len(text) <= 40 else text[:40] + "..."
