"""Sound decoded as a stream under the media limits, for files whose size says nothing about what they hold.

A compressed sound is small on disk and large once decoded, and its header may be missing or wrong: the header
is checked first (``header_problem``), then every decoded frame is counted (``SoundMeter``) and decoding stops at
the limit. ``sound_chunks`` resamples frame by frame to the rate the caller needs, so memory follows that rate,
not the file's (a 655 kHz file transcribed at 16 kHz holds 16 kHz samples only).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nodeforge.engine.errors import GraphInputError
from nodeforge.engine.limits import MediaLimits, SoundMeter


def header_problem(container: Any, stream: Any, limits: MediaLimits) -> str | None:
    """Why the sound ``stream`` is over the limits by what its container's header says (None when it fits or
    says nothing: decoding then counts)."""
    duration = stream.duration * stream.time_base if stream.duration and stream.time_base else None
    seconds = float(duration) if duration is not None else (container.duration or 0) / 1_000_000
    if not seconds:
        return None
    return limits.sound_problem(seconds, int(stream.rate or 0), int(stream.codec_context.channels or 1))


def sound_chunks(container: Any, stream: Any, limits: MediaLimits, *, rate: int | None = None,
                 mono: bool = False) -> Iterator[Any]:
    """The decoded ``stream`` as float32 arrays ``[channels, samples]`` at ``rate`` (the stream's own when None),
    mono or at most stereo; GraphInputError as soon as the decoded sound passes the limits."""
    import av

    meter = SoundMeter(limits)
    channels = int(stream.codec_context.channels or 1)
    layout = "mono" if mono or channels == 1 else "stereo"
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate or int(stream.rate))
    for frame in container.decode(stream):
        problem = meter.add(frame.samples, frame.sample_rate or int(stream.rate or 1),
                            len(frame.layout.channels) or channels)
        if problem:
            raise GraphInputError(problem)
        for out in resampler.resample(frame):
            yield out.to_ndarray()
    for out in resampler.resample(None):
        yield out.to_ndarray()
