"""Images and audio from an OpenAI-compatible server, for ``image.generate``, ``audio.speech`` and
``audio.transcribe`` given ``model = "openai:<model>"``: the images API (``/images/generations``), the speech API
(``/audio/speech``) and the transcriptions API (``/audio/transcriptions``), with the settings of
``nodes/openai_client.py``.

Results are cached like a local model's (the node's key holds every input, the seed included), as
``llm.generate`` does for ``openai:`` models: an unchanged node asks the server once; a new seed asks again.
What comes back is checked to be what was asked for (a picture, a sound, a transcript), so a server that answers
with something else is a clear error on ``model``, not a decoding traceback.
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nodeforge.engine.context import NodeContext
from nodeforge.engine.errors import GraphInputError, NodeError
from nodeforge.engine.limits import MediaLimits
from nodeforge.engine.values import Audio, Image
from nodeforge.nodes.openai_client import Endpoint, endpoint, looks_like, post, remote_name

DEFAULT_VOICE = "alloy"  # OpenAI's speech API needs a voice; nodeforge serve reads its voices as the default
AUDIO_MAGIC = ((b"RIFF", "wav"), (b"fLaC", "flac"), (b"ID3", "mp3"), (b"\xff\xfb", "mp3"), (b"\xff\xf3", "mp3"),
               (b"\xff\xf2", "mp3"), (b"OggS", "ogg"))
LOCAL_ONLY = {"loras": "LoRAs", "controls": "ControlNets and IP-Adapters", "vae": "a VAE override"}


def image_problems(literals: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Static problems of an ``image.generate`` whose model is ``openai:<model>``: no inputs that only a local
    pipeline can use (the name itself is checked from the input's declaration)."""
    problems: list[tuple[str | None, str]] = []
    model = literals.get("model")
    for name, what in LOCAL_ONLY.items():
        if literals.get(name):
            problems.append((name, f"{what} apply to local models only; an OpenAI-compatible server ({model}) "
                                   "takes a prompt, a size and a count"))
    return problems


def remote_generate(inputs: Any, ctx: NodeContext) -> Image:
    """``image.generate`` with ``openai:<model>``: the node's inputs as an images request."""
    for name, what in LOCAL_ONLY.items():
        if getattr(inputs, name):
            raise NodeError(f"{what} apply to local models only, not to {inputs.model}", input=name)
    if inputs.scheduler != "default":
        ctx.warn(f"scheduler {inputs.scheduler} is not sent: the server picks its own sampler")
    ctx.progress(0, 1)
    image = generate_images(inputs.model, inputs.prompt, width=inputs.width, height=inputs.height,
                            count=inputs.count, seed=inputs.seed, steps=inputs.steps,
                            guidance_scale=inputs.guidance_scale, negative_prompt=inputs.negative_prompt,
                            data_dir=ctx.data_dir)
    ctx.progress(1, 1)
    return image


def generate_images(model: str, prompt: str, *, width: int, height: int, count: int, seed: int, steps: int,
                    guidance_scale: float, negative_prompt: str, data_dir: Path | None) -> Image:
    """``count`` pictures of ``width`` x ``height`` from ``POST /images/generations`` as one batch. Servers other
    than OpenAI's own also get seed, steps, guidance_scale and negative_prompt (nodeforge serve uses them)."""
    name = _name(model)
    where = endpoint(data_dir)
    body: dict[str, Any] = {"model": name, "prompt": prompt, "n": count, "size": f"{width}x{height}",
                            "response_format": "b64_json"}
    if not where.is_openai:
        body.update(seed=seed, steps=steps, guidance_scale=guidance_scale)
        if negative_prompt:
            body["negative_prompt"] = negative_prompt
    answer = post(where, "/images/generations", name, json_body=body).json("an images response")
    items = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(items, list) or not items:
        raise NodeError(f"the server sent no images for model '{name}' (no data list in its answer)", input="model")
    pictures = [_picture(item, where, name, i) for i, item in enumerate(items)]
    sizes = {picture.size for picture in pictures}
    if len(sizes) > 1:
        raise NodeError(f"the server sent images of different sizes ({', '.join(f'{w}x{h}' for w, h in sizes)})",
                        input="model")
    return Image.from_pil(pictures)


def _picture(item: Any, where: Endpoint, name: str, index: int) -> Any:
    """One decoded picture of an images answer: ``b64_json``, or a ``url`` fetched when that is all it has."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
        try:
            data = base64.b64decode(item["b64_json"], validate=True)
        except ValueError:
            raise NodeError(f"image {index + 1} from the server is not valid base64", input="model") from None
    elif isinstance(item, dict) and isinstance(item.get("url"), str):
        data = _fetch(item["url"], where, name)
    else:
        raise NodeError(f"image {index + 1} from the server has neither b64_json nor url", input="model")
    try:
        with PILImage.open(io.BytesIO(data)) as picture:
            picture.load()
            return picture.convert("RGB")
    except (UnidentifiedImageError, OSError):
        raise NodeError(f"image {index + 1} from the server is not a picture ({looks_like(data)})",
                        input="model") from None


def _fetch(url: str, where: Endpoint, name: str) -> bytes:
    """A picture the server only linked to; a relative URL is on the server itself (the key goes there only)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    origin = urllib.parse.urlsplit(where.base_url)
    absolute = urllib.parse.urljoin(f"{origin.scheme}://{origin.netloc}/", url)
    headers = {}
    if where.api_key and urllib.parse.urlsplit(absolute).netloc == origin.netloc:
        headers["Authorization"] = f"Bearer {where.api_key}"
    try:
        with urllib.request.urlopen(urllib.request.Request(absolute, headers=headers), timeout=where.timeout) as got:
            return bytes(got.read())
    except (urllib.error.URLError, TimeoutError) as exc:
        raise NodeError(f"the image of model '{name}' at {absolute[:200]} cannot be fetched: {exc}",
                        input="model") from None


def speech(model: str, text: str, *, voice: str, speed: float, data_dir: Path | None) -> Audio:
    """Spoken ``text`` from ``POST /audio/speech`` as WAV (a server that sends MP3, FLAC or Ogg instead is
    decoded too)."""
    name = _name(model)
    where = endpoint(data_dir)
    body = {"model": name, "input": text, "voice": voice.strip() or DEFAULT_VOICE, "response_format": "wav",
            "speed": speed}
    reply = post(where, "/audio/speech", name, json_body=body, accept="audio/wav, audio/*")
    kind = next((kind for magic, kind in AUDIO_MAGIC if reply.body.startswith(magic)), None)
    if kind is None:
        raise NodeError(f"the server sent {reply.media_type or 'an unknown type'} where audio was expected: "
                        f"{looks_like(reply.body)}", input="model")
    audio = read_wav_bytes(reply.body) if kind == "wav" else decode_audio(reply.body)
    if audio.tensor.shape[1] == 0:
        raise NodeError(f"model '{name}' sent a sound without samples", input="model")
    return audio


def transcribe(model: str, audio: Audio, *, language: str, data_dir: Path | None) -> str:
    """The text of ``audio`` from ``POST /audio/transcriptions`` (sent as a 16-bit WAV file)."""
    name = _name(model)
    where = endpoint(data_dir)
    fields = {"model": name, "response_format": "json"}
    if language.strip():
        fields["language"] = language.strip().lower()
    reply = post(where, "/audio/transcriptions", name, fields=fields,
                 file=("audio.wav", "audio/wav", wav_bytes(audio)))
    if reply.media_type.startswith("text/plain"):
        return reply.body.decode("utf-8", "replace").strip()
    answer = reply.json("a transcription")
    if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
        raise NodeError(f"the server's transcription answer has no text: {str(answer)[:200]}", input="model")
    return str(answer["text"]).strip()


def wav_bytes(audio: Audio) -> bytes:
    """``audio`` as a 16-bit PCM WAV file in memory."""
    samples = audio.tensor.detach().float().clamp(-1, 1).cpu().numpy()
    pcm = (samples.T * 32767.0).round().astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(int(samples.shape[0]))
        wav.setsampwidth(2)
        wav.setframerate(audio.sample_rate)
        wav.writeframes(pcm.tobytes())
    return out.getvalue()


def read_wav_bytes(data: bytes) -> Audio:
    """A 16-bit PCM WAV file in memory as Audio; other sample widths go through the general decoder."""
    import numpy as np
    import torch

    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError):
        return decode_audio(data)  # WAVE_FORMAT_EXTENSIBLE or float samples: PyAV reads those
    if width != 2:
        return decode_audio(data)
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return Audio(torch.from_numpy(samples.reshape(-1, channels).T.copy()), rate)


def decode_audio(data: bytes, what: str = "the server's sound", limits: MediaLimits | None = None) -> Audio:
    """Any sound file PyAV (FFmpeg) reads, in memory, as float Audio at its own rate; errors call it ``what``.
    Decoding is counted against ``limits`` (the default media limits) and stops past them: a small compressed
    file can hold hours, or millions of samples a second."""
    import numpy as np
    import torch

    from nodeforge.engine.sound import sound_chunks

    try:
        import av
    except ImportError:
        raise NodeError("this sound needs PyAV to decode (pip install av)", input="model") from None
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.audio:
                raise NodeError(f"{what} has no audio stream", input="model")
            stream = container.streams.audio[0]
            rate = int(stream.rate or stream.codec_context.sample_rate)
            chunks = list(sound_chunks(container, stream, limits or MediaLimits(), rate=rate))
    except NodeError:
        raise
    except GraphInputError as exc:
        raise NodeError(f"{what} is too large: {exc}", input="model") from None
    except Exception as exc:  # noqa: BLE001 - FFmpeg's many error types: the reason is what counts
        reason = getattr(exc, "strerror", None) or str(exc)  # FFmpeg's errors: the reason without errno and path
        raise NodeError(f"{what} cannot be decoded: {reason}", input="model") from None
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), dtype=np.float32)
    return Audio(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), rate)


def _name(model: str) -> str:
    name = remote_name(model)
    if not name:
        raise NodeError("openai:<model> needs a model name after the colon", input="model")
    return name
