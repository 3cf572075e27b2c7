"""Hostile media built in code: small files that decode into far more than their size says, or whose header
says nothing (or lies) about their length. The hostile suite and the media tests build them from here."""

from __future__ import annotations

import io

FLAC_MAX_RATE = 655_350
"""The highest sample rate FLAC can declare."""


def flac(rate: int, seconds: float, *, hide_length: bool = False) -> bytes:
    """Mono 16-bit silence as FLAC (a few hundred bytes a second whatever the rate). ``hide_length`` zeroes the
    total sample count in STREAMINFO, as a streamed encoder writes it: the header then gives no length."""
    import av
    import numpy as np

    out = io.BytesIO()
    total = round(rate * seconds)
    block = 65_536
    silence = np.zeros((1, block), dtype=np.int16)
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        for start in range(0, total, block):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(silence[:, :min(block, total - start)]),
                                               format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = bytearray(out.getvalue())
    if hide_length:  # bytes 18..25: rate (20 bits), channels (3), bits (5), total samples (36)
        fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
        data[18:26] = fields.to_bytes(8, "big")
    return bytes(data)


def webm_without_duration(seconds: float, *, frames: int = 1, size: int = 16) -> bytes:
    """A WebM written as a live stream (no duration in its header, no cues) with ``frames`` tiny VP8 frames and
    ``seconds`` of stereo Opus silence at 48 kHz: about 460 bytes a second of sound."""
    import av
    import numpy as np

    out = io.BytesIO()
    rate, block = 48_000, 48_000
    with av.open(out, "w", format="webm", options={"live": "1"}) as container:
        video = container.add_stream("libvpx", rate=1)
        video.width, video.height, video.pix_fmt = size, size, "yuv420p"
        sound = container.add_stream("libopus", rate=rate, layout="stereo")
        picture = np.zeros((size, size, 3), dtype=np.uint8)
        for _ in range(frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        silence = np.zeros((1, 2 * block), dtype=np.int16)
        for index in range(round(seconds * rate / block)):
            frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="stereo")
            frame.sample_rate, frame.pts = rate, index * block
            for packet in sound.encode(frame):
                container.mux(packet)
        for packet in sound.encode(None):
            container.mux(packet)
    return out.getvalue()
