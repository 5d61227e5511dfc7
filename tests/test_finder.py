"""The car finder: decoding YOLOX's output, where its file comes from, and what it finds in real photos."""

import csv
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autospecnet.finder import (
    FINDER_SHA256,
    CarFinder,
    FinderUnavailableError,
    box_iou,
    decode,
    finder_path,
    letterbox,
)


def test_letterbox_scales_to_fit_at_the_top_left_and_pads_with_114():
    image = Image.new("RGB", (832, 416), (10, 20, 30))
    tensor, ratio = letterbox(image)
    assert tensor.shape == (1, 3, 416, 416) and tensor.dtype == np.float32
    assert ratio == 0.5
    assert tuple(tensor[0, :, 0, 0]) == (30, 20, 10)  # BGR, raw 0-255
    assert tuple(tensor[0, :, 300, 0]) == (114, 114, 114)


def yolox_rows(cells: dict[int, tuple]) -> np.ndarray:
    """An output with every score 0 but the given rows: (dx, dy, log w, log h, objectness, class id, score)."""
    output = np.zeros((1, 3549, 85), dtype=np.float32)
    output[0, :, 4] = 0.0
    for row, (dx, dy, lw, lh, objectness, class_id, score) in cells.items():
        output[0, row, :5] = (dx, dy, lw, lh, objectness)
        output[0, row, 5 + class_id] = score
    return output


def test_decode_places_boxes_by_grid_cell_and_stride_and_keeps_vehicles_only():
    # Row 52*10 + 20 is stride 8's cell (x=20, y=10); row 2704 + 26*3 + 5 is stride 16's cell (x=5, y=3).
    output = yolox_rows(
        {
            52 * 10 + 20: (0.5, 0.5, np.log(4), np.log(2), 0.9, 2, 0.9),  # a car
            2704 + 26 * 3 + 5: (0.0, 0.0, 0.0, 0.0, 0.9, 0, 0.9),  # a person: not a vehicle
        }
    )
    (car,) = decode(output, ratio=0.5, min_score=0.2)
    cx, cy, w, h = (20.5 * 8, 10.5 * 8, 4 * 8, 2 * 8)
    expected = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) / 0.5
    np.testing.assert_allclose(car.box, expected, rtol=1e-5)
    assert car.label == "car" and car.score == pytest.approx(0.81)


def test_one_box_per_vehicle_whichever_class_it_scored_as():
    output = yolox_rows(
        {
            100: (0.5, 0.5, np.log(4), np.log(4), 0.9, 2, 0.8),  # car
            101: (-0.5, 0.5, np.log(4), np.log(4), 0.9, 7, 0.7),  # the same vehicle as a truck, one cell over
            3000: (0.0, 0.0, 0.0, 0.0, 0.9, 5, 0.5),  # a bus elsewhere
        }
    )
    detections = decode(output, ratio=1.0, min_score=0.2)
    assert [d.label for d in detections] == ["car", "bus"]
    assert decode(output, ratio=1.0, min_score=0.5) == detections[:1]


def test_a_set_path_that_is_not_there_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOSPECNET_FINDER", str(tmp_path / "missing.onnx"))
    with pytest.raises(FinderUnavailableError, match="AUTOSPECNET_FINDER names no file"):
        finder_path()


class FileServer:
    """Serves one file's bytes at /yolox_nano.onnx on the loopback address, counting requests."""

    def __init__(self, data: bytes):
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/yolox_nano.onnx"

    def close(self):
        self.httpd.shutdown()


def test_download_checks_the_sha256_and_keeps_nothing_wrong(monkeypatch, tmp_path):
    monkeypatch.delenv("AUTOSPECNET_FINDER")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    server = FileServer(b"not the car finder")
    try:
        with pytest.raises(FinderUnavailableError, match="not the expected file"):
            finder_path(url=server.url)
    finally:
        server.close()
    assert list((tmp_path / "autospecnet").iterdir()) == []


def test_download_once_into_the_cache_then_use_it(monkeypatch, tmp_path, finder_file):
    monkeypatch.delenv("AUTOSPECNET_FINDER")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data = finder_file.read_bytes()
    assert hashlib.sha256(data).hexdigest() == FINDER_SHA256
    server = FileServer(data)
    try:
        assert finder_path(url=server.url) == tmp_path / "autospecnet" / "yolox_nano.onnx"
        assert finder_path(url=server.url).read_bytes() == data
    finally:
        server.close()
    assert server.requests == 1


def test_offline_without_a_copy_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("AUTOSPECNET_FINDER")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(FinderUnavailableError, match="Could not download the car finder"):
        finder_path(url="http://127.0.0.1:9/yolox_nano.onnx")  # the discard port: nothing listens


def test_finds_the_car_of_a_real_whole_photo_at_its_official_box(finder_file, shared_folder):
    whole = shared_folder / "data" / "stanford-cars-whole"
    with open(whole / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:10]
    finder = CarFinder(finder_file)
    for row in rows:
        with Image.open(whole / "images" / row["filename"]) as image:
            detections = finder.find(image.convert("RGB"))
        official = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")])
        largest = max(detections, key=lambda d: d.area)
        assert box_iou(np.array(largest.box), official[None])[0] >= 0.7, row["filename"]


def test_a_photo_without_a_car_has_no_vehicle(finder_file):
    skimage = pytest.importorskip("skimage", reason="sample photos without a car come with scikit-image")
    finder = CarFinder(finder_file)
    for name in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"):
        with Image.open(Path(skimage.__file__).parent / "data" / name) as image:
            assert finder.find(image.convert("RGB")) == [], name
