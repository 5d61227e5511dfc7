"""The photo as the page shows it: scaled down, each found car's box drawn and numbered; a heatmap over a crop."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BOX_COLOURS = ("#1f5fbf", "#e8710a", "#188038", "#a142f4", "#d93025")


def annotated_thumbnail(image: Image.Image, boxes: list[tuple[int, int, int, int]], side: int = 800) -> Image.Image:
    """A copy at most ``side`` pixels on its longer side, with box ``i`` outlined and labelled ``i + 1``."""
    shown = image.copy()
    shown.thumbnail((side, side))
    scale = shown.width / image.width
    draw = ImageDraw.Draw(shown)
    line = max(3, round(min(shown.size) / 120))
    font = ImageFont.load_default(size=max(16, round(min(shown.size) / 10)))
    for number, box in enumerate(boxes, 1):
        colour = BOX_COLOURS[(number - 1) % len(BOX_COLOURS)]
        x1, y1, x2, y2 = (round(v * scale) for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        label = str(number)
        left, top, right, bottom = draw.textbbox((x1, y1), label, font=font)
        pad = line
        tag = (x1, y1, x1 + (right - left) + 2 * pad, y1 + (bottom - top) + 2 * pad)
        draw.rectangle(tag, fill=colour)
        draw.text((x1 + pad - (left - x1), y1 + pad - (top - y1)), label, fill="white", font=font)
    return shown


# An inferno-like colour map, dark (little evidence) to bright yellow (most), as anchors to interpolate.
HEAT_COLOURS = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], dtype=np.float64)


def heatmap_overlay(crop: Image.Image, heatmap: np.ndarray, side: int = 400) -> Image.Image:
    """The crop (at most ``side`` pixels) under a translucent colour map of ``heatmap`` (h x w, 0 to 1, top row
    first, stretched over the whole crop as the model saw it): hot cells bright and opaque, cold ones clear."""
    shown = crop.convert("RGB")
    shown.thumbnail((side, side))
    grid = Image.fromarray(np.clip(heatmap, 0, 1).astype(np.float32), mode="F")
    heat = np.asarray(grid.resize(shown.size, Image.Resampling.BILINEAR), dtype=np.float64).clip(0, 1)
    position = heat * (len(HEAT_COLOURS) - 1)
    low = np.floor(position).astype(int).clip(0, len(HEAT_COLOURS) - 2)
    fraction = (position - low)[..., None]
    colours = HEAT_COLOURS[low] * (1 - fraction) + HEAT_COLOURS[low + 1] * fraction
    alpha = (0.15 + 0.5 * heat)[..., None]
    blended = np.asarray(shown, dtype=np.float64) * (1 - alpha) + colours * alpha
    return Image.fromarray(blended.round().astype(np.uint8), "RGB")
