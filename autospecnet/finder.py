"""The car finder: Megvii's YOLOX-Nano (COCO, Apache-2.0) on ONNX Runtime, vehicles only.

    from autospecnet.finder import CarFinder
    finder = CarFinder.load()                  # $AUTOSPECNET_FINDER, else the user's cache (downloaded once)
    for car in finder.find(image):             # a PIL image; vehicles above the score threshold, NMS applied
        print(car.box, car.score, car.label)   # (x1, y1, x2, y2) in the photo's pixels, 0.87, "car"

Where the ONNX file comes from: ``$AUTOSPECNET_FINDER`` (a path; ``$AUTOSPECNET_DETECTOR``, its
earlier name, is read too) when set; otherwise
``~/.cache/autospecnet/yolox_nano.onnx`` (``$XDG_CACHE_HOME`` is honoured), downloaded once
from a pinned URL and checked against its sha256, as torchvision does for its weights.
Every failure is a ``FinderUnavailableError`` with a message for the user.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from autospecnet.settings import FINDER_ENV, finder_setting

FINDER_URL = (
    "https://github.com/Kazuhito00/YOLOX-ONNX-TFLite-Sample/raw/"
    "3d4f1119d0694200671c08069ecb847aa0d8495a/model/yolox_nano.onnx"
)
FINDER_SHA256 = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
FINDER_FILE = "yolox_nano.onnx"
DOWNLOAD_TIMEOUT_S = 20

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
PAD_VALUE = 114
VEHICLES = {2: "car", 5: "bus", 7: "truck"}  # COCO-80 class ids; pickups are often "truck"
NMS_IOU = 0.45
# Chosen on validation data by `python -m training.finder` (see the README's "Real photos").
MIN_SCORE = 0.2


class FinderUnavailableError(RuntimeError):
    """The car finder's ONNX file could not be found, downloaded or loaded; ``str(error)`` says why."""


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the photo
    score: float  # objectness x class score
    label: str  # "car", "bus" or "truck"

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "autospecnet"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def finder_path(download: bool = True, url: str = FINDER_URL) -> Path:
    """The ONNX file: ``$AUTOSPECNET_FINDER``, else the cached copy, else downloaded into the cache."""
    configured = finder_setting()
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise FinderUnavailableError(f"{FINDER_ENV} names no file: {path}.")
        return path
    cached = cache_dir() / FINDER_FILE
    if cached.is_file() and sha256_of(cached) == FINDER_SHA256:
        return cached
    if not download:
        raise FinderUnavailableError(f"The car finder is not in the cache ({cached}) and downloads are off.")
    _download(url, cached)
    return cached


def _download(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while block := response.read(1 << 16):
                out.write(block)
        actual = sha256_of(tmp)
        if actual != FINDER_SHA256:
            raise FinderUnavailableError(
                f"The car finder downloaded from {url} is not the expected file (sha256 {actual[:12]}…, "
                f"expected {FINDER_SHA256[:12]}…)."
            )
        os.replace(tmp, target)
    except OSError as error:  # URLError, timeouts and disk errors are all OSErrors
        reason = getattr(error, "reason", None) or error
        raise FinderUnavailableError(
            f"Could not download the car finder ({reason}). Set {FINDER_ENV} to a copy of {FINDER_FILE}."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def letterbox(image: Image.Image, size: int = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """(1 x 3 x size x size float32 BGR 0-255, scale): the photo scaled to fit, at the top left, padded with 114."""
    ratio = min(size / image.width, size / image.height)
    resized = image.resize(
        (max(1, round(image.width * ratio)), max(1, round(image.height * ratio))), Image.Resampling.BILINEAR
    )
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.float32)
    canvas[: resized.height, : resized.width] = np.asarray(resized, dtype=np.float32)
    return canvas[:, :, ::-1].transpose(2, 0, 1)[None].copy(), ratio


def _grid(size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Each output row's cell (x, y) and stride, in the network's order (stride 8 first)."""
    cells, strides = [], []
    for stride in STRIDES:
        n = size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((n * n, 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode(output: np.ndarray, ratio: float, min_score: float) -> list[Detection]:
    """YOLOX rows (box, objectness, 80 class scores) -> vehicle detections in photo pixels, after NMS."""
    rows = output.reshape(-1, 85)
    cells, strides = _grid()
    vehicle_ids = np.array(sorted(VEHICLES))
    class_scores = rows[:, 5:][:, vehicle_ids] * rows[:, 4:5]
    best = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(rows)), best]
    keep = scores >= min_score
    if not keep.any():
        return []
    centres = (rows[keep, :2] + cells[keep]) * strides[keep]
    sizes = np.exp(np.minimum(rows[keep, 2:4], 20.0)) * strides[keep]
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) / ratio
    scores, labels = scores[keep], vehicle_ids[best[keep]]
    # One box per vehicle, whichever of car/bus/truck it scored as: NMS across the three classes.
    return [
        Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), VEHICLES[int(labels[i])])
        for i in non_max_suppression(boxes, scores, NMS_IOU)
    ]


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = list(np.argsort(-scores, kind="stable"))
    kept = []
    while order:
        first, rest = order[0], np.array(order[1:], dtype=int)
        kept.append(int(first))
        order = list(rest[box_iou(boxes[first], boxes[rest]) < iou]) if len(rest) else []
    return kept


class CarFinder:
    """YOLOX-Nano on ONNX Runtime. ``find`` may be called from several threads."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread measured fastest here for this small network (two were about twice as slow).
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # No busy-waiting after a run: the classifier runs next, and a spinning thread would take one of its cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
            raise FinderUnavailableError(f"The car finder at {path} could not be loaded ({error}).") from None
        self.input_name = self.session.get_inputs()[0].name

    @classmethod
    def load(cls, download: bool = True) -> CarFinder:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise FinderUnavailableError("The car finder needs onnxruntime: pip install onnxruntime.") from None
        return cls(finder_path(download=download))

    def find(self, image: Image.Image, min_score: float = MIN_SCORE) -> list[Detection]:
        """Vehicles in ``image`` (RGB) with a score of at least ``min_score``, best first."""
        tensor, ratio = letterbox(image)
        (output,) = self.session.run(None, {self.input_name: tensor})
        detections = decode(output, ratio, min_score)
        width, height = image.size
        return [
            Detection(
                (max(0.0, d.box[0]), max(0.0, d.box[1]), min(float(width), d.box[2]), min(float(height), d.box[3])),
                d.score,
                d.label,
            )
            for d in detections
        ]


def zoomed_out(image: Image.Image, pad: float) -> tuple[Image.Image, int, int]:
    """The photo centred on a grey canvas ``pad`` times its size larger on each side, and its offset."""
    dx, dy = round(image.width * pad), round(image.height * pad)
    canvas = Image.new("RGB", (image.width + 2 * dx, image.height + 2 * dy), (PAD_VALUE,) * 3)
    canvas.paste(image, (dx, dy))
    return canvas, dx, dy
