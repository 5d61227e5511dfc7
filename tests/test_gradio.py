"""``python -m autospecnet.app.gradio`` served on a local port, called through gradio_client as a script would."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autospecnet import Recognizer
from tests.conftest import free_port, serve

pytest.importorskip("gradio", reason="the Gradio app needs gradio (requirements-dev.txt)")
gradio_client = pytest.importorskip("gradio_client", reason="the API test needs gradio_client")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gradio_server(random_model_dir, tmp_path_factory):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {"AUTOSPECNET_MODEL": str(random_model_dir)}
    env.pop("GRADIO_ANALYTICS_ENABLED", None)
    log = tmp_path_factory.mktemp("gradio") / "gradio.log"
    with serve(["-m", "autospecnet.app.gradio", "--port", str(port)], url, log, env=env):
        yield url


@pytest.fixture(scope="module")
def client(gradio_server):
    return gradio_client.Client(gradio_server, verbose=False)


def a_photo(tmp_path: Path) -> Path:
    """A whole photo of a car from the shared data when CI gives it, else a generated one."""
    shared = os.environ.get("AUTOSPECNET_TEST_SHARED")
    if shared:
        return Path(shared) / "data" / "stanford-cars-whole" / "images" / "00028.jpg"
    photo = tmp_path / "car.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)).save(photo)
    return photo


def test_api_returns_the_cars_and_one_label_per_head(client, random_model_dir, tmp_path):
    photo = a_photo(tmp_path)
    outputs = client.predict(gradio_client.handle_file(str(photo)), "make", api_name="/predict")
    cars, answer, car, make, body_type, year, sure, heatmap = outputs

    expected = Recognizer.from_source(str(random_model_dir)).recognise(photo, top_k=5)
    if expected.no_car:
        assert answer == "No car found in this photo." and cars["annotations"] == []
        return
    assert [a["label"] for a in cars["annotations"]] == [
        f"{n}: {c.prediction.headline}" for n, c in enumerate(expected.cars, 1) if c.box
    ]
    prediction = expected.main.prediction
    assert answer == prediction.headline and sure == prediction.sure
    heads = prediction.heads
    for label, head in ((car, "model"), (make, "make"), (body_type, "type"), (year, "year")):
        assert label["label"] == heads[head].top.label
        confidences = [c["confidence"] for c in label["confidences"]]
        assert confidences == pytest.approx([p.prob for p in heads[head].labels], abs=1e-4)
    with Image.open(heatmap) as image:  # the make head's heatmap over the main car's crop
        crop = expected.main.box or (0, 0, *expected.image.size)
        width, height = crop[2] - crop[0], crop[3] - crop[1]
        assert abs(image.width / image.height - width / height) < 0.05

    *_, no_heatmap = client.predict(gradio_client.handle_file(str(photo)), "none", api_name="/predict")
    assert no_heatmap is None


def png_bomb(path: Path, side: int = 12_000) -> Path:
    """A valid PNG of side x side black pixels: a few kB on disk, 144 megapixels decoded."""
    row = b"\x00" + b"\x00" * side
    compressed = zlib.compress(row * side, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", compressed) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(
    "make_file, message",
    [
        (lambda d: (d / "empty.jpg").write_bytes(b"") and None or d / "empty.jpg", "This file is empty"),
        (lambda d: (d / "notes.jpg").write_text("not a photo") and d / "notes.jpg", "not an image we can read"),
        (lambda d: (d / "tiny.png", Image.new("RGB", (8, 8)).save(d / "tiny.png"))[0], "too small"),
        (lambda d: png_bomb(d / "bomb.png"), "too large"),
    ],
)
def test_api_refuses_bad_uploads_with_the_readers_messages(client, tmp_path, make_file, message):
    path = make_file(tmp_path)
    with pytest.raises(Exception, match=message) as caught:
        client.predict(gradio_client.handle_file(str(path)), api_name="/predict")
    assert "Could not preprocess" not in str(caught.value) and "/tmp/" not in str(caught.value)


def test_api_refuses_a_file_over_the_upload_limit(client, tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + os.urandom(55 * 2**20))
    with pytest.raises(Exception, match="(?i)size|large|limit"):
        client.predict(gradio_client.handle_file(str(big)), api_name="/predict")
