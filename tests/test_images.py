"""Bad and odd uploads: each either becomes an upright RGB image or a clear ImageError."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from autospecnet.images import MAX_FILE_BYTES, ImageError, read_image
from tests.conftest import run_python


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def gradient(width=64, height=48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    array = np.stack(
        [np.tile(x, (height, 1)), np.tile(x[::-1], (height, 1)), np.full((height, width), 90, np.uint8)], -1
    )
    return Image.fromarray(array, "RGB")


def assert_rgb(image, size=(64, 48)):
    assert image.mode == "RGB" and image.size == size


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"Make: BMW\nModel: M3\n", "not an image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not an image"),
        (b"%PDF-1.4\n1 0 obj\n", "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "not an image"),
    ],
    ids=["empty", "text", "svg", "pdf", "jpeg-magic-only"],
)
def test_non_images_are_refused(data, message):
    with pytest.raises(ImageError, match=message):
        read_image(data)


def test_truncated_jpeg():
    data = encode(gradient(), "JPEG", quality=90)
    with pytest.raises(ImageError, match="not an image we can read"):
        read_image(data[: len(data) // 2])


def test_png_with_wrong_crc():
    data = bytearray(encode(gradient(), "PNG"))
    data[29] ^= 0xFF  # last byte of the IHDR chunk's CRC
    with pytest.raises(ImageError, match="not an image we can read"):
        read_image(bytes(data))


def test_one_pixel_image_is_too_small():
    with pytest.raises(ImageError, match="too small"):
        read_image(encode(Image.new("RGB", (1, 1)), "PNG"))


def test_thin_strip_is_too_small():
    with pytest.raises(ImageError, match="too small .*400 x 20"):
        read_image(encode(Image.new("RGB", (400, 20)), "PNG"))


def test_decompression_bomb_header_is_refused_without_decoding():
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )
    with pytest.raises(ImageError, match="too large"):
        read_image(data)


def test_moderately_huge_image_over_our_limit(monkeypatch):
    monkeypatch.setattr("autospecnet.images.MAX_PIXELS", 64 * 47)
    with pytest.raises(ImageError, match="too large .*64 x 48"):
        read_image(encode(gradient(), "PNG"))


def test_file_over_the_byte_limit():
    with pytest.raises(ImageError, match="too large"):
        read_image(io.BytesIO(b"\0" * (MAX_FILE_BYTES + 1)))


def test_cmyk_jpeg():
    image = read_image(encode(gradient().convert("CMYK"), "JPEG", quality=95))
    assert_rgb(image)
    assert abs(int(image.getpixel((60, 10))[0]) - 250) < 20  # red kept, not inverted


def test_16bit_png_is_scaled_not_clipped():
    array = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    image = read_image(encode(Image.fromarray(array), "PNG"))
    assert_rgb(image)
    values = np.asarray(image)[..., 0]
    assert values.min() == 0 and values.max() == 255 and 100 < values[24, 32] < 160


def test_float_tiff():
    array = np.linspace(-1.0, 3.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    image = read_image(encode(Image.fromarray(array, "F"), "TIFF"))
    assert_rgb(image)
    assert np.asarray(image)[..., 0].max() == 255


def test_palette_png_with_transparency_becomes_white():
    palette_image = Image.new("P", (64, 48), 0)
    palette_image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette_image.paste(1, (0, 0, 32, 48))
    image = read_image(encode(palette_image, "PNG", transparency=0))
    assert_rgb(image)
    assert image.getpixel((10, 10)) == (255, 0, 0) and image.getpixel((50, 10)) == (255, 255, 255)


@pytest.mark.parametrize(
    "mode, fmt", [("LA", "PNG"), ("RGBA", "PNG"), ("L", "PNG"), ("1", "PNG"), ("P", "PNG"), ("I", "TIFF")]
)
def test_other_modes(mode, fmt):
    assert_rgb(read_image(encode(gradient().convert(mode), fmt)))


def test_exif_rotated_photo_is_turned_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image = read_image(encode(gradient(), "JPEG", exif=exif.tobytes()))
    assert_rgb(image, size=(48, 64))


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "JPEG"])
def test_phone_formats_are_turned_upright_once(fmt):
    """iPhones save HEIC, some Android phones AVIF; HEIF's own rotation and EXIF orientation must not both apply."""
    portrait = Image.new("RGB", (64, 128), (0, 0, 255))
    portrait.paste((255, 0, 0), (0, 0, 64, 32))  # red along the top as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display: the red edge ends on the right
    image = read_image(encode(portrait, fmt, exif=exif.tobytes(), quality=95))
    assert_rgb(image, size=(128, 64))
    left, right = np.asarray(image)[32, 4], np.asarray(image)[32, 123]
    assert left[2] > 200 and left[0] < 50 and right[0] > 200 and right[2] < 50


def test_heic_over_the_pixel_limit_is_refused(monkeypatch):
    monkeypatch.setattr("autospecnet.images.MAX_PIXELS", 64 * 47)
    with pytest.raises(ImageError, match="too large .*64 x 48"):  # from the header, before decoding
        read_image(encode(gradient(), "HEIF"))


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (64, 48), colour) for colour in ((200, 0, 0), (0, 0, 200))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = read_image(data)
    assert_rgb(image)
    red, _, blue = image.getpixel((5, 5))
    assert red > 150 and blue < 50


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF", "PNG", "JPEG", "GIF"])
def test_common_formats(fmt):
    assert_rgb(read_image(encode(gradient(), fmt)))


def test_path_file_object_and_bytes_agree(tmp_path):
    data = encode(gradient(), "PNG")
    path = tmp_path / "car.png"
    path.write_bytes(data)
    images = [read_image(path), read_image(str(path)), read_image(io.BytesIO(data)), read_image(data)]
    assert all(np.array_equal(np.asarray(images[0]), np.asarray(other)) for other in images[1:])


def test_missing_path(tmp_path):
    with pytest.raises(ImageError, match="Cannot open nothing.jpg"):
        read_image(tmp_path / "nothing.jpg")


def test_without_pillow_heif_a_heic_photo_is_refused_with_the_command_that_adds_it(tmp_path):
    Image.new("RGB", (64, 48), "red").save(tmp_path / "IMG_0001.HEIC", "HEIF")  # pillow-heif is here
    Image.new("RGB", (64, 48), "red").save(tmp_path / "car.jpg")
    code = (
        "import sys; sys.modules['pillow_heif'] = None\n"  # as on a machine without it
        "from autospecnet.images import ImageError, read_image\n"
        "print(read_image(sys.argv[1]).size)\n"
        "try:\n    read_image(sys.argv[2])\nexcept ImageError as error:\n    print(error)\n"
    )
    result = run_python("-c", code, str(tmp_path / "car.jpg"), str(tmp_path / "IMG_0001.HEIC"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "(64, 48)",
        "This is a HEIC photo; reading it needs pillow-heif: pip install pillow-heif.",
    ]
