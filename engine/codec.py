"""Encode node outputs for the disk cache without pickle: JSON for the structure, safetensors for tensors."""

from __future__ import annotations

from typing import Any

from nodeforge.engine.errors import CodecError
from nodeforge.engine.values import Audio, Control, Image, Mask, Video

PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def encode(value: Any, tensors: dict[str, Any]) -> Any:
    """A JSON-ready form of ``value``; tensors are moved to CPU and collected in ``tensors`` by name."""
    if type(value) in PLAIN_TYPES:
        return value
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mask):
        return {"$media": "mask", "t": _put(value.tensor, tensors)}
    if isinstance(value, Image):
        return {"$media": "image", "t": _put(value.tensor, tensors)}
    if isinstance(value, Control):
        return {"$media": "control", "t": _put(value.image.tensor, tensors), "kind": value.kind, "model": value.model,
                "weight": value.weight, "start": value.start, "end": value.end, "family": value.family,
                "mode": value.mode, "encoder": value.encoder}
    if isinstance(value, Audio):
        return {"$media": "audio", "t": _put(value.tensor, tensors), "sample_rate": value.sample_rate}
    if isinstance(value, Video):
        audio = encode(value.audio, tensors) if value.audio is not None else None
        return {"$media": "video", "t": _put(value.frames, tensors), "fps": value.fps, "audio": audio}
    if isinstance(value, list | tuple):
        return [encode(item, tensors) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise CodecError("only dicts with string keys can be cached")
        items = {key: encode(item, tensors) for key, item in value.items()}
        return {"$dict": items} if any(key.startswith("$") for key in value) else items
    raise CodecError(f"a value of type {type(value).__name__} cannot be cached (no pickle)")


def decode(data: Any, tensors: dict[str, Any]) -> Any:
    """Inverse of ``encode``; raises CodecError when the data does not fit (a corrupt entry)."""
    if isinstance(data, list):
        return [decode(item, tensors) for item in data]
    if not isinstance(data, dict):
        return data
    if "$dict" in data:
        return {key: decode(item, tensors) for key, item in data["$dict"].items()}
    kind = data.get("$media")
    if kind is None:
        return {key: decode(item, tensors) for key, item in data.items()}
    try:
        tensor = tensors[data["t"]]
        if kind == "image":
            return Image(tensor)
        if kind == "mask":
            return Mask(tensor)
        if kind == "control":
            return Control(str(data["kind"]), str(data["model"]), Image(tensor), float(data["weight"]),
                           float(data["start"]), float(data["end"]), data.get("family"), data.get("mode"),
                           data.get("encoder"))
        if kind == "audio":
            return Audio(tensor, int(data["sample_rate"]))
        if kind == "video":
            audio = decode(data["audio"], tensors) if data.get("audio") else None
            return Video(tensor, float(data["fps"]), audio)
    except (KeyError, ValueError, TypeError) as exc:
        raise CodecError(f"cached {kind} entry is malformed: {exc}") from exc
    raise CodecError(f"unknown media kind {kind!r} in a cache entry")


def _put(tensor: Any, tensors: dict[str, Any]) -> str:
    name = f"t{len(tensors)}"
    tensors[name] = tensor.detach().to("cpu").contiguous()
    return name
