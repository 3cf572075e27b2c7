"""Draw graphs/assets/sample.png, the small picture the quickstart upscales: a fox under a low sun over hills, with
hard edges and a word of text, so a 4x upscaler has something to sharpen; and sample-sun-mask.png, white over the
sun, the area the inpainting example repaints. Made by the project (no third-party image); run
``python graphs/assets/draw_sample.py`` to redraw them (the output is byte-for-byte the same).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 96, 64
OUT = Path(__file__).resolve().with_name("sample.png")
MASK = OUT.with_name("sample-sun-mask.png")
SUN = (58, 14, 78, 34)


def draw(run: int = 0, sunset: int = 0) -> Image.Image:
    """The picture; ``run`` moves the fox that many pixels right and ``sunset`` the sun that many down (the frames
    of sample-clip.mp4, drawn by draw_sample_clip.py)."""
    picture = Image.new("RGB", (WIDTH, HEIGHT))
    pen = ImageDraw.Draw(picture)
    for y in range(HEIGHT):  # evening sky: deep blue to orange
        t = y / (HEIGHT - 1)
        pen.line([(0, y), (WIDTH, y)], fill=(int(40 + 215 * t), int(50 + 110 * t), int(120 - 70 * t)))
    left, top, right, bottom = SUN
    pen.ellipse([left, top + sunset, right, bottom + sunset], fill=(255, 214, 90), outline=(255, 240, 170))
    pen.polygon([(0, 46), (22, 30), (44, 44), (66, 28), (96, 42), (96, 64), (0, 64)], fill=(46, 92, 52))
    pen.polygon([(0, 54), (30, 44), (60, 52), (96, 46), (96, 64), (0, 64)], fill=(30, 66, 38))
    fox = (214, 96, 30)

    def moved(*points: tuple[int, int]) -> list[tuple[int, int]]:
        return [(x + run, y) for x, y in points]

    pen.polygon(moved((20, 52), (30, 44), (42, 44), (46, 52), (38, 56), (24, 56)), fill=fox)  # body
    pen.polygon(moved((40, 46), (48, 38), (54, 44), (50, 50)), fill=fox)  # head
    pen.polygon(moved((47, 39), (48, 33), (51, 38)), fill=fox)  # ear
    pen.polygon(moved((20, 52), (10, 46), (8, 50), (18, 56)), fill=fox)  # tail
    pen.polygon(moved((10, 46), (8, 50), (6, 47)), fill=(250, 244, 236))  # tail tip
    pen.point(moved((51, 42)), fill=(20, 20, 20))  # eye
    pen.text((4, 3), "nodeforge", fill=(250, 250, 250), font=ImageFont.load_default())
    return picture


def draw_mask() -> Image.Image:
    """White (repaint) over the sun and a 4-pixel margin, black elsewhere: a luminance mask."""
    mask = Image.new("L", (WIDTH, HEIGHT))
    left, top, right, bottom = SUN
    ImageDraw.Draw(mask).ellipse([left - 4, top - 4, right + 4, bottom + 4], fill=255)
    return mask


if __name__ == "__main__":
    draw().save(OUT, optimize=True)
    draw_mask().save(MASK, optimize=True)
    print(f"wrote {OUT} and {MASK}")
