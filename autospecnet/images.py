"""Read an uploaded photo into an upright 8-bit RGB image, or say plainly why not.

Accepts bytes, a path or a binary file object, in the formats of ``PHOTO_TYPES``: what
Pillow reads, plus HEIC/HEIF, the default of iPhones (through pillow-heif, which applies the
file's own rotation, so EXIF orientation is not applied twice; the serving requirements bring
it, and where it is missing, as on a bare training machine, a HEIC photo is refused with the
command that adds it). Handles EXIF orientation, every PIL mode (CMYK, palette with
transparency, LA, 16-bit and float greyscale, 1-bit) and animated files (first frame).
Refuses empty files, non-images, truncated or corrupt data, images over ``MAX_PIXELS``
(decompression bombs) and images under ``MIN_SIDE`` pixels. Every refusal is an
``ImageError`` whose message can be shown to a user as it is.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

try:
    import pillow_heif
except ImportError:
    pillow_heif = None
else:
    pillow_heif.register_heif_opener()

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 50_000_000
MIN_SIDE = 32
PHOTO_TYPES = ["jpg", "jpeg", "png", "webp", "heic", "heif", "avif", "bmp", "gif", "tif", "tiff"]
PHOTO_FORMATS = "JPEG, PNG, WebP, HEIC, AVIF, BMP, GIF, TIFF"

HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}

ImageSource = bytes | bytearray | str | os.PathLike | BinaryIO


class ImageError(ValueError):
    """An input that is not a usable photo; ``str(error)`` is a message for the user."""


def _read_bytes(source: ImageSource) -> bytes:
    if isinstance(source, bytes | bytearray):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as error:
            raise ImageError(f"Cannot open {path.name}: {error.strerror or error}.") from None
        if size > MAX_FILE_BYTES:
            raise ImageError(_too_large_file(size))
        try:
            return path.read_bytes()
        except OSError as error:
            raise ImageError(f"Cannot read {path.name}: {error.strerror or error}.") from None
    data = source.read(MAX_FILE_BYTES + 1)
    if not isinstance(data, bytes | bytearray):
        raise ImageError("Expected the bytes of an image file.")
    return bytes(data)


def _too_large_file(size: int) -> str:
    return f"This file is too large ({size / 2**20:.0f} MB); the limit is {MAX_FILE_BYTES // 2**20} MB."


def read_image(source: ImageSource) -> Image.Image:
    data = _read_bytes(source)
    if not data:
        raise ImageError("This file is empty.")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(_too_large_file(len(data)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"This image is too large ({width} x {height} pixels); "
                    f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels."
                )
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            image = _to_rgb(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"This image is too large; the limit is {MAX_PIXELS / 1e6:.0f} megapixels.") from None
    except Image.UnidentifiedImageError:
        if pillow_heif is None and _is_heif(data):
            raise ImageError("This is a HEIC photo; reading it needs pillow-heif: pip install pillow-heif.") from None
        raise ImageError(f"This file is not an image we can read ({PHOTO_FORMATS}).") from None
    except Exception as error:  # PIL raises many types for corrupt data: OSError, SyntaxError, ValueError...
        raise ImageError(f"This file is not an image we can read ({_describe(error)}).") from None
    if min(image.size) < MIN_SIDE:
        raise ImageError(
            f"This image is too small ({image.width} x {image.height} pixels); "
            f"a car needs at least {MIN_SIDE} pixels on each side."
        )
    return image


def _is_heif(data: bytes) -> bool:
    """An ISO base media file whose brand is one of HEIF's (the HEIC of iPhones among them)."""
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def _describe(error: Exception) -> str:
    text = str(error).strip().rstrip(".")
    return text[:200] if text else type(error).__name__


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _to_8bit(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """High-bit-depth greyscale: scale its value range to 0..255 instead of clipping it."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        low, high = 0.0, 65535.0
    else:
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = np.nan_to_num((values - low) / max(high - low, 1e-12) * 255.0)
    return Image.fromarray(np.clip(scaled, 0, 255).round().astype(np.uint8), mode="L")
