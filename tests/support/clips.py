"""A test clip drawn in code: outlined shapes moving over a gradient and hatching, detail an upscaler can restore
(the video tools' tests and ``bench/video_upscale.py`` draw the same one)."""

from __future__ import annotations

from typing import Any

from nodeforge.engine.values import Image


def moving_shapes(frames: int, size: int, seed: int = 0) -> Any:
    """A clip [frames, 3, size, size] of an outlined square and disc crossing a gradient over thin hatching, as
    drawn animation looks: edges that move every frame."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    pictures = []
    for index in range(frames):
        picture = PILImage.linear_gradient("L").resize((size, size)).convert("RGB")
        draw = ImageDraw.Draw(picture)
        shift = (index * size // 8 + seed) % size
        draw.rectangle((shift, size // 4, shift + size // 3, size // 4 + size // 3), fill=(200, 40, 40),
                       outline=(10, 10, 10), width=max(1, size // 32))
        draw.ellipse((size // 2, size - shift - size // 3, size // 2 + size // 3, size - shift), fill=(40, 90, 220),
                     outline=(0, 0, 0), width=max(1, size // 42))
        for x in range(0, size, max(1, size // 8)):
            draw.line((x, size * 0.7, x + size // 4, size), fill=(30, 30, 30), width=max(1, size // 64))
        pictures.append(picture)
    return Image.from_pil(pictures).tensor
