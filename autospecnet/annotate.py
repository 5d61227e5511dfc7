"""The photo as the page shows it: scaled down, each found car's box drawn and numbered."""

from __future__ import annotations

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
