"""From a whole photo to named cars: find each car, crop it with a margin, classify it.

    from autospecnet.recognise import Recognizer
    recognizer = Recognizer.from_source()          # the classifier and the car finder (or from_loaded)
    result = recognizer.recognise("street.jpg")
    for number, car in enumerate(result.cars, 1):  # largest first, at most MAX_CARS
        print(number, car.box, car.prediction.answer)
    result.no_car                                  # True when the finder saw no vehicle at all

The rules, each chosen on validation data by ``python -m training.finder`` (README, "Real photos"):
vehicles (COCO car, bus, truck) scoring at least ``MIN_SCORE``; every car, largest first, at most
``MAX_CARS``; each crop grows by ``CROP_MARGIN`` of the box on every side (none: the classifier was
trained on tight boxes, and validation preferred the finder's box as it is; ``assets/finder.json``).
The finder, trained on
COCO, often misses a car that fills the whole frame (a close-up, or a photo already cropped to the
car): when it finds nothing, it looks once more at the photo zoomed out on a grey canvas, where such
a car looks like the cars it knows. Only when that finds nothing either is the answer "no car".
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from autospecnet.finder import MIN_SCORE, CarFinder, Detection, FinderUnavailableError, zoomed_out
from autospecnet.images import MIN_SIDE, ImageSource, read_image
from autospecnet.predict import Prediction, Predictor
from autospecnet.sources import LoadedModel, load_model

MAX_CARS = 5
CROP_MARGIN = 0.1  # with MIN_SCORE, chosen on validation by `python -m training.finder` (assets/finder.json)
CLOSE_UP_PAD = 0.5
NO_CAR_MESSAGE = "No car found in this photo."
FINDER_UNAVAILABLE = "The car finder is unavailable, so whole photos are classified"

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Car:
    box: Box | None  # x1, y1, x2, y2 in pixels of the photo as read (after EXIF orientation); None: the whole photo
    score: float | None  # the finder's confidence that a vehicle is there; None: the whole photo
    prediction: Prediction


@dataclass(frozen=True)
class PhotoResult:
    image: Image.Image  # the photo as read, upright RGB
    cars: tuple[Car, ...]  # largest first; empty when the finder found no car
    finder_used: bool

    @property
    def no_car(self) -> bool:
        return self.finder_used and not self.cars

    @property
    def main(self) -> Car | None:
        return self.cars[0] if self.cars else None

    def to_dict(self) -> dict:
        """The command line's JSON (README): the main car's answer, heads and box, then the others."""
        if self.no_car:
            return {"no_car": True, "message": NO_CAR_MESSAGE}
        main, others = self.cars[0], self.cars[1:]
        return {
            **main.prediction.to_dict(),
            "box": list(main.box) if main.box else None,
            "others": [{"box": list(car.box), **car.prediction.to_dict()} for car in others],
        }


def nameable(detection: Detection) -> bool:
    """A car at least MIN_SIDE pixels on each side: a smaller one is too small to name, as a smaller photo is."""
    x1, y1, x2, y2 = detection.box
    return min(x2 - x1, y2 - y1) >= MIN_SIDE


def find_cars(finder: CarFinder, image: Image.Image, min_score: float = MIN_SCORE) -> list[Detection]:
    """Nameable vehicles in the photo, largest first; when there is none, the photo is looked at again zoomed
    out (a close-up the finder misses)."""
    detections = [d for d in finder.find(image, min_score) if nameable(d)]
    if not detections:
        detections = [d for d in find_zoomed_out(finder, image, min_score) if nameable(d)]
    return sorted(detections, key=lambda d: d.area, reverse=True)


def find_zoomed_out(finder: CarFinder, image: Image.Image, min_score: float = MIN_SCORE) -> list[Detection]:
    """Vehicles found in the photo placed on a larger grey canvas, with their boxes in the photo's pixels."""
    canvas, dx, dy = zoomed_out(image, CLOSE_UP_PAD)
    return [
        Detection(_clip((d.box[0] - dx, d.box[1] - dy, d.box[2] - dx, d.box[3] - dy), image.size), d.score, d.label)
        for d in finder.find(canvas, min_score)
    ]


def _clip(box, size) -> tuple[float, float, float, float]:
    width, height = size
    x1, y1, x2, y2 = box
    return min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height)


def pixel_box(box, size) -> Box:
    """A detection's box in whole pixels inside the photo."""
    x1, y1, x2, y2 = _clip(box, size)
    return round(x1), round(y1), max(round(x2), round(x1) + 1), max(round(y2), round(y1) + 1)


def crop_box(box, size, margin: float = CROP_MARGIN) -> Box:
    """The box grown by ``margin`` of its width and height on every side, inside the photo."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    return pixel_box((x1 - dx, y1 - dy, x2 + dx, y2 + dy), size)


class Recognizer:
    """The classifier with the car finder in front of it (or without, when it is unavailable)."""

    def __init__(self, predictor: Predictor, finder: CarFinder | None, finder_error: str | None = None):
        self.predictor = predictor
        self.finder = finder
        self.finder_error = finder_error  # why there is no finder, for a one-line notice

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, backend: str | None = None, use_finder: bool = True) -> Recognizer:
        """The classifier of a loaded model on ``backend``, with the car finder when ``use_finder`` and it can
        be had (else ``finder_error`` says why not): how the apps, the command line and the API assemble it."""
        finder, error = load_finder() if use_finder else (None, None)
        return cls(Predictor(loaded, backend=backend), finder, error)

    @classmethod
    def from_source(cls, source: str | None = None, backend: str | None = None, use_finder: bool = True) -> Recognizer:
        """``from_loaded`` for a model source: a folder, or a Hub repo ``owner/name[@rev]`` (default: the app's)."""
        return cls.from_loaded(load_model(source), backend=backend, use_finder=use_finder)

    def recognise(
        self,
        photo: Image.Image | ImageSource,
        top_k: int | None = 5,
        use_finder: bool = True,
        max_cars: int = MAX_CARS,
        explain: bool = False,
    ) -> PhotoResult:
        """``explain``: also each car's heatmap per head, over its crop (``HeadPrediction.heatmap``)."""
        image = photo.convert("RGB") if isinstance(photo, Image.Image) else read_image(photo)
        if not use_finder or self.finder is None:
            prediction = self.predictor.predict(image, top_k, explain=explain)
            return PhotoResult(image, (Car(None, None, prediction),), finder_used=False)
        detections = find_cars(self.finder, image)[:max_cars]
        crops = [image.crop(crop_box(d.box, image.size)) for d in detections]
        predictions = self.predictor.predict_batch(crops, top_k, explain=explain) if crops else []
        cars = tuple(
            Car(pixel_box(d.box, image.size), round(d.score, 4), p)
            for d, p in zip(detections, predictions, strict=True)
        )
        return PhotoResult(image, cars, finder_used=True)


def load_finder(download: bool = True) -> tuple[CarFinder | None, str | None]:
    """(the car finder, None), or (None, a one-line reason) when it cannot be had."""
    try:
        return CarFinder.load(download=download), None
    except FinderUnavailableError as error:
        return None, f"{FINDER_UNAVAILABLE}: {error}"
