"""A1111 and Forge PNGs: the ``parameters`` text chunk they write -> a nodeforge graph.

The text is the prompt (its ``<lora:name:weight>`` tags become ``loras``), an optional ``Negative prompt:``, and a
last line of ``Key: value`` settings (values with commas are quoted): Steps, Sampler, Schedule type (Forge), CFG
scale, Seed, Size, Model, Batch size, and for a second pass Denoising strength with Hires upscale or Hires resize,
Hires upscaler and Hires steps. Without a Hires setting, Denoising strength means img2img: the graph then takes the
starting picture as its ``image`` input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from nodeforge.nodes.importers.builder import Builder
from nodeforge.nodes.importers.comfy_read import PNG_SIGNATURE, png_texts
from nodeforge.nodes.importers.result import ImportFailed, ImportResult
from nodeforge.nodes.importers.samplers import a1111_sampler, comfy_scheduler

SETTING = re.compile(r'\s*([\w][\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
NETWORK = re.compile(r"<(lora|lyco|hypernet):([^:>]+)(?::([^:>]*))?(?::[^>]*)?>", re.IGNORECASE)
SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
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
    texts = png_texts(data)
    if "parameters" not in texts:
        found = ", ".join(sorted(texts)) or "none"
        raise ImportFailed(f"this PNG has no A1111 'parameters' text chunk (found: {found})")
    return texts["parameters"]


def parse_parameters(text: str) -> Parameters:
    """Prompt, negative prompt and settings of an A1111 ``parameters`` text."""
    lines = text.strip().replace("\r\n", "\n").split("\n")
    settings: dict[str, str] = {}
    if lines and len(SETTING.findall(lines[-1])) >= 3:
        settings = {key.strip(): _unquote(value.strip()) for key, value in SETTING.findall(lines.pop())}
    prompt: list[str] = []
    negative: list[str] = []
    target = prompt
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative
            line = line[len("Negative prompt:"):].lstrip()
        target.append(line)
    return Parameters("\n".join(prompt).strip(), "\n".join(negative).strip(), settings)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def import_parameters(text: str, *, name: str = "") -> ImportResult:
    """The graph an A1111 ``parameters`` text describes."""
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
    scheduler, problem = comfy_scheduler(sampler, schedule) if sampler else ("default", None)
    label = settings.get("Sampler", "")
    if not sampler:
        build.warn(f"sampler {label} has no equivalent; the model's own scheduler is used")
    elif problem:
        build.warn(f"Sampler {label}: {problem}")
    if settings.get("Clip skip", "1") not in ("1", ""):
        build.warn(f"Clip skip {settings['Clip skip']} is not supported; the last layer is used")
    model = settings.get("Model", "") or "model"
    model_file = model if "." in model.rsplit("/", 1)[-1] else f"{model}.safetensors"
    common: dict[str, Any] = {"prompt": build.bind("prompt", prompt, "text")}
    if params.negative:
        common["negative_prompt"] = build.bind("negative_prompt", params.negative, "text")
    common.update({"model": build.bind_model(model_file), "guidance_scale": cfg,
                   "seed": build.bind("seed", seed, "int"), "scheduler": scheduler})
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
    for kind, name, weight in NETWORK.findall(prompt):
        if kind.lower() == "hypernet":
            build.warn(f"hypernetwork {name} is not supported and was left out")
            continue
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            value = 1.0
        file = name if name.lower().endswith((".safetensors", ".pt", ".ckpt")) else f"{name}.safetensors"
        loras.append({"model": file, "weight": value})
    lines = []
    for line in NETWORK.sub("", prompt).split("\n"):
        line = re.sub(r"[ \t]{2,}", " ", re.sub(r"[ \t]*,([ \t]*,)+", ",", line))
        lines.append(line.strip().strip(",").strip())
    return "\n".join(lines).strip(), loras


def _size(text: str, key: str) -> tuple[int, int]:
    match = SIZE.match(text)
    if not match:
        raise ImportFailed(f"{key} '{text}' is not WIDTHxHEIGHT")
    return int(match.group(1)), int(match.group(2))


def _number(settings: dict[str, str], key: str, default: Any, kind: type) -> Any:
    text = settings.get(key)
    if text is None or text == "":
        return default
    try:
        return kind(float(text)) if kind is int else kind(text)
    except ValueError:
        raise ImportFailed(f"{key} '{text}' is not a number") from None
