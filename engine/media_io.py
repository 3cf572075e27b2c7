"""Media at the edge of a run: decoding media graph inputs from files, writing media outputs to files."""

from __future__ import annotations

import hashlib
import json
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeforge.engine.errors import GraphInputError
from nodeforge.engine.limits import MediaLimits, media_problem
from nodeforge.engine.values import Audio, Control, Image, Video

MEDIA_TYPE = {"image": "image/png", "audio": "audio/wav", "video": "video/mp4"}


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks: the cache key of a media input is its content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_media(kind: str, path: Path, limits: MediaLimits | None = None) -> Image | Audio | Video:
    """Decode an image, WAV or video file into a value, refused before decoding when its header is over the
    limits; errors name the file (not its folder) and what was wrong."""
    limits = limits or MediaLimits()
    if not path.is_file():
        raise GraphInputError(f"{kind} file {path.name} does not exist")
    try:
        problem = media_problem(kind, path, limits)
        if problem:
            raise GraphInputError(f"{path.name}: {problem}")
        if kind == "image":
            from PIL import Image as PILImage

            with PILImage.open(path) as picture:
                picture.load()
                return Image.from_pil([picture])
        if kind == "audio":
            return read_wav(path)
        if kind == "video":
            return read_video(path, limits)
    except GraphInputError:
        raise
    except Exception as exc:
        reason = str(exc).replace(str(path), path.name) or type(exc).__name__
        raise GraphInputError(f"cannot decode {kind} file {path.name}: {reason}") from None
    raise GraphInputError(f"unknown media kind '{kind}'")


def read_wav(path: Path) -> Audio:
    import numpy as np
    import torch

    with wave.open(str(path), "rb") as wav:
        width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise GraphInputError(f"{path.name}: only 16-bit PCM WAV is supported, this one has {8 * width}-bit samples")
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return Audio(torch.from_numpy(samples.reshape(-1, channels).T.copy()), rate)


def write_wav(audio: Audio, path: Path) -> None:

    samples = audio.tensor.detach().float().clamp(-1, 1).to("cpu").numpy()
    pcm = (samples.T * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(samples.shape[0])
        wav.setsampwidth(2)
        wav.setframerate(audio.sample_rate)
        wav.writeframes(pcm.tobytes())


def read_video(path: Path, limits: MediaLimits | None = None,
               on_frame: Callable[[int, int | None], None] | None = None) -> Video:
    """Frames (RGB, 0..1) at the stream's frame rate, with the first audio track when there is one; decoding
    stops with an error past the frame limit or the sound limits (a header may understate the length, or give
    none). ``on_frame(done, total)`` is called after each decoded frame (total from the header, None when it has
    none): progress, and a place to stop a cancelled run."""
    import av
    import numpy as np
    import torch

    limits = limits or MediaLimits()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 24)
        total = int(stream.frames or 0) or None
        frames: list[np.ndarray] = []
        for frame in container.decode(stream):
            if len(frames) >= limits.max_video_frames:
                raise GraphInputError(f"{path.name}: the video has more than {limits.max_video_frames} frames, "
                                      "over the limit (--max-video-frames)")
            frames.append(frame.to_ndarray(format="rgb24"))
            if on_frame is not None:
                on_frame(len(frames), total)
    if not frames:
        raise GraphInputError(f"{path.name} has no video frames")
    tensor = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255.0)
    return Video(tensor, fps, _read_audio_track(path, limits))


def _read_audio_track(path: Path, limits: MediaLimits) -> Audio | None:
    """The first sound track at its own rate (mono or stereo), counted while it decodes: a container without a
    duration can hold hours of sound in a few hundred kilobytes."""
    import av
    import numpy as np
    import torch

    from nodeforge.engine.sound import sound_chunks

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = int(stream.rate)
        try:
            chunks = list(sound_chunks(container, stream, limits))
        except GraphInputError as exc:
            raise GraphInputError(f"{path.name}: its sound track: {exc}") from None
    if not chunks:
        return None
    return Audio(torch.from_numpy(np.ascontiguousarray(np.concatenate(chunks, axis=1), dtype=np.float32)), rate)


def write_png(image: Image, path: Path, metadata: dict[str, Any] | None = None) -> list[Path]:
    """Write each batch item as PNG (``name.png``, or ``name-1.png``... for a batch), with metadata text chunks."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (metadata or {}).items():
        info.add_itxt(key, value if isinstance(value, str) else json.dumps(value))
    pictures = image.to_pil()
    paths = [path] if len(pictures) == 1 else [path.with_name(f"{path.stem}-{i + 1}{path.suffix}")
                                                for i in range(len(pictures))]
    for picture, target in zip(pictures, paths, strict=True):
        picture.save(target, pnginfo=info)
    return paths


def write_mp4(video: Video, path: Path) -> None:
    """H.264 (yuv420p, CRF 18) at the video's exact frame rate, with AAC audio when the video carries a track.

    yuv420p needs even sizes: an odd width or height is padded by repeating the last column or row (nothing is
    cropped away). Audio with more than two channels is mixed down to stereo.
    """
    from fractions import Fraction

    import av
    import numpy as np

    pixels = (video.frames.detach().float().clamp(0, 1) * 255).round().byte().to("cpu")
    frames = pixels.permute(0, 2, 3, 1).numpy()
    if frames.shape[3] == 1:
        frames = np.repeat(frames, 3, axis=3)
    frames = np.pad(frames[..., :3], ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)),
                    mode="edge")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(video.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "18"}
        audio_stream = None
        if video.audio is not None and video.audio.tensor.shape[1] > 0:
            audio_stream = container.add_stream("aac", rate=video.audio.sample_rate)
            audio_stream.layout = "mono" if video.audio.tensor.shape[0] == 1 else "stereo"
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None and video.audio is not None:
            samples = video.audio.tensor.detach().float().clamp(-1, 1).to("cpu").numpy().astype(np.float32)
            if samples.shape[0] > 2:
                samples = np.stack([samples[0::2].mean(axis=0), samples[1::2].mean(axis=0)])
            audio = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp",
                                               layout=audio_stream.layout.name)
            audio.sample_rate = video.audio.sample_rate
            for packet in audio_stream.encode(audio):
                container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)


def write_output(value: Any, folder: Path, name: str, metadata: dict[str, Any] | None = None) -> Any:
    """A graph output as the record shows it: media become files ``{"path", "media_type"}``; the rest unchanged."""
    if isinstance(value, Image | Audio | Video):
        folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        if isinstance(value, Image):
            paths = write_png(value, folder / f"{safe}.png", metadata)
            files = [{"path": str(p), "media_type": MEDIA_TYPE["image"]} for p in paths]
            return files[0] if len(files) == 1 else files
        if isinstance(value, Audio):
            write_wav(value, folder / f"{safe}.wav")
            return {"path": str(folder / f"{safe}.wav"), "media_type": MEDIA_TYPE["audio"]}
        write_mp4(value, folder / f"{safe}.mp4")
        return {"path": str(folder / f"{safe}.mp4"), "media_type": MEDIA_TYPE["video"]}
    if isinstance(value, Control):
        return {"kind": value.kind, "model": value.model, "weight": value.weight, "start": value.start,
                "end": value.end, "mode": value.mode, "image": write_output(value.image, folder, name, metadata)}
    if isinstance(value, list):
        return [write_output(item, folder, f"{name}-{i + 1}", metadata) for i, item in enumerate(value)]
    return value
