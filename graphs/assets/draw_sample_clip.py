"""Draw graphs/assets/sample-clip.mp4, the short clip graphs/upscale-video.json upscales: the sample picture's fox
running right while the sun sinks (12 frames of 96x64 at 8 fps, H.264), with a soft two-note chime as its sound
track (AAC, 16 kHz mono), so the upscaled clip shows the sound kept. Made by the project; run
``.venv/bin/python graphs/assets/draw_sample_clip.py`` to redraw it.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, for nodeforge when not installed

from draw_sample import draw  # noqa: E402 - this folder, next to this script

OUT = Path(__file__).resolve().with_name("sample-clip.mp4")
FRAMES, FPS, RATE = 12, 8.0, 16000


def chime(seconds: float) -> list[float]:
    """Two notes (A5 then E6), each fading out: a sound whose length and content are easy to check."""
    half = int(seconds * RATE / 2)
    samples = []
    for index in range(2 * half):
        note, t = divmod(index, half)
        frequency = 880.0 if note == 0 else 1318.5
        samples.append(0.3 * math.sin(2 * math.pi * frequency * t / RATE) * math.exp(-3.0 * t / half))
    return samples


def main() -> None:
    import torch

    from nodeforge.engine.media_io import write_mp4
    from nodeforge.engine.values import Audio, Image, Video

    frames = Image.from_pil([draw(run=3 * index, sunset=index) for index in range(FRAMES)]).tensor
    sound = Audio(torch.tensor([chime(FRAMES / FPS)]), RATE)
    write_mp4(Video(frames, FPS, sound), OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
