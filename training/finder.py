"""Measure the car finder and choose its score threshold and crop margin on validation data.

    python -m training.finder --model assets/model --data ../shared/data/stanford-cars-train \
        --whole ../shared/data/stanford-cars-whole --streets ../shared/data/street-scenes \
        --finder ../shared/weights/yolox_nano.onnx --output assets/finder.json

Choices are made on the **validation** part of the model's split only: for each score
threshold and crop margin, the 196-class accuracy of the whole pipeline (find, crop,
classify; "no car" counts as wrong) on the validation crops and on the whole photos whose
crops are in the validation part, among the thresholds that answer "no car" for at least
``NO_CAR_GOAL`` of the photos without a car. The test part is then measured once with
the choice. Also measured: the finder's main box against the official one on all whole
photos (IoU >= 0.5; detection does not depend on the classifier's split) and the largest car
of each street scene. Its speed is measured by ``python -m autospecnet.benchmark``. Photos
without a car are scikit-image's sample photos (``skimage.data``), none of which shows a car.
"""

from __future__ import annotations

import argparse
import csv
import json
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import skimage
from PIL import Image
from tqdm import tqdm

from autospecnet.finder import CarFinder, Detection, box_iou
from autospecnet.predict import Predictor
from autospecnet.recognise import CLOSE_UP_PAD, crop_box, find_zoomed_out, nameable
from autospecnet.records import finder_report
from autospecnet.records.finder_report import Choice, FinderReport, PartFigures
from autospecnet.records.split import PARTS, Split
from autospecnet.sources import load_model

THRESHOLDS = (0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2)
NO_CAR_GOAL = 0.9
LOWEST = min(THRESHOLDS)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--model", default="assets/model", help="model folder (its split.json names the parts)")
    p.add_argument("--data", required=True, help="Stanford Cars crops (labels.csv, images/)")
    p.add_argument("--whole", required=True, help="whole photos with official boxes (labels.csv, images/)")
    p.add_argument("--streets", required=True, help="street scenes (images/, annotations/ in Pascal VOC)")
    p.add_argument("--finder", "--detector", dest="finder", required=True, help="the car finder, yolox_nano.onnx")
    p.add_argument("--output", default=f"assets/{finder_report.FILE}", help="where the report goes")
    p.add_argument("--limit", type=int, default=None, help="at most this many crops per part (a quick look)")
    return p


@dataclass
class Look:
    """A photo as the finder saw it, both passes at the lowest threshold of the grid, and what is true of it."""

    key: str
    image: Image.Image | None  # kept only where it is classified
    first: list[Detection]
    zoomed: list[Detection]
    truth: str | None = None  # the class name
    part: str | None = None  # of the model's split
    official: tuple[float, float, float, float] | None = None  # a whole photo's official box
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # a street scene's cars

    def cars_at(self, threshold: float) -> list[Detection]:
        """What ``find_cars`` returns at ``threshold``."""
        first = [d for d in self.first if d.score >= threshold and nameable(d)]
        chosen = first or [d for d in self.zoomed if d.score >= threshold and nameable(d)]
        return sorted(chosen, key=lambda d: d.area, reverse=True)


def _open(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def look(finder: CarFinder, key: str, image: Image.Image, keep_image: bool = True, **truth) -> Look:
    first, zoomed = finder.find(image, LOWEST), find_zoomed_out(finder, image, LOWEST)
    return Look(key, image if keep_image else None, first, zoomed, **truth)


def look_at_crops(finder: CarFinder, data: Path, split: Split, limit: int | None) -> list[Look]:
    with open(data / "labels.csv", newline="") as f:
        truth = {f"images/{row['filename']}": row["class_name"] for row in csv.DictReader(f)}
    return [
        look(finder, f"{part}:{file}", _open(data / file), truth=truth[file], part=part)
        for part in ("val", "test")
        for file in tqdm(split[part][:limit], desc=f"{part} crops")
    ]


def look_at_whole_photos(finder: CarFinder, folder: Path, split: Split) -> list[Look]:
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    part_of = {file: part for part in PARTS for file in split[part]}
    return [
        look(
            finder,
            f"whole:{row['filename']}",
            _open(folder / "images" / row["filename"]),
            truth=row["class_name"],
            part=part_of.get(f"images/{row['filename']}"),
            official=tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2")),
        )
        for row in tqdm(rows, desc="whole photos")
    ]


def look_at_streets(finder: CarFinder, folder: Path) -> list[Look]:
    """Street scenes, the finder's first pass only: every scene has cars to find."""
    looks = []
    for xml in sorted((folder / "annotations").glob("*.xml")):
        root = ElementTree.parse(xml).getroot()
        boxes = [
            tuple(float(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            for o in root.iter("object")
        ]
        image = _open(folder / "images" / root.findtext("filename"))
        looks.append(Look(xml.stem, None, finder.find(image, LOWEST), [], boxes=boxes))
    return looks


def look_at_photos_without_a_car(finder: CarFinder) -> list[Look]:
    folder = Path(skimage.__file__).parent / "data"
    photos = sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg"))
    return [look(finder, p.name, _open(p), keep_image=False) for p in photos]


class Classifier:
    """The main car's 196-class answer for a photo and a box, cached by (photo, box, margin)."""

    def __init__(self, predictor: Predictor):
        self.predictor, self.cache = predictor, {}

    def label(self, sample: Look, box, margin: float | None) -> str:
        box_key = None if box is None else tuple(round(v, 1) for v in box)
        cache_key = (sample.key, box_key, margin)
        if cache_key not in self.cache:
            image = sample.image
            photo = image if box is None else image.crop(crop_box(box, image.size, margin))
            self.cache[cache_key] = self.predictor.predict(photo, top_k=1).class_name
        return self.cache[cache_key]

    def pipeline_accuracy(self, samples: list[Look], threshold: float, margin: float) -> float:
        """Find, crop with ``margin``, name the main car: the share named right ("no car" is wrong)."""
        right = 0
        for s in samples:
            cars = s.cars_at(threshold)
            right += bool(cars) and self.label(s, cars[0].box, margin) == s.truth
        return right / max(1, len(samples))

    def accuracy(self, samples: list[Look], box_of) -> float:
        """The share named right when each sample is classified within ``box_of(sample)`` (None: all of it)."""
        return sum(self.label(s, box_of(s), 0.0) == s.truth for s in samples) / max(1, len(samples))


def in_part(samples: list[Look], part: str) -> list[Look]:
    return [s for s in samples if s.part == part]


def choose(classifier: Classifier, crops: list[Look], whole: list[Look], no_car: list[Look]) -> tuple[Choice, list]:
    """The threshold and margin with the best validation accuracy over crops and whole photos together, among
    the thresholds that answer "no car" for at least NO_CAR_GOAL of the photos without one; and the grid."""
    val_crops, val_whole = in_part(crops, "val"), in_part(whole, "val")
    grid = []
    for threshold in THRESHOLDS:
        no_car_rate = sum(not s.cars_at(threshold) for s in no_car) / len(no_car)
        for margin in tqdm(MARGINS, desc=f"threshold {threshold}", leave=False):
            grid.append(
                {
                    "threshold": threshold,
                    "margin": margin,
                    "no_car_rate": no_car_rate,
                    "val_crops": classifier.pipeline_accuracy(val_crops, threshold, margin),
                    "val_whole": classifier.pipeline_accuracy(val_whole, threshold, margin),
                }
            )
    eligible = [g for g in grid if g["no_car_rate"] >= NO_CAR_GOAL]
    n_crops, n_whole = len(val_crops), len(val_whole)
    best = max(eligible, key=lambda g: (g["val_crops"] * n_crops + g["val_whole"] * n_whole, g["threshold"]))
    return Choice(best["threshold"], best["margin"], CLOSE_UP_PAD), grid


def part_figures(classifier: Classifier, crops: list[Look], whole: list[Look], choice: Choice) -> PartFigures:
    threshold, margin = choice.threshold, choice.margin
    return PartFigures(
        crops=len(crops),
        crops_classifier_alone=classifier.accuracy(crops, lambda s: None),
        crops_pipeline=classifier.pipeline_accuracy(crops, threshold, margin),
        crops_no_car=sum(not s.cars_at(threshold) for s in crops),
        crops_found_first_pass=sum(any(d.score >= threshold for d in s.first) for s in crops),
        whole_photos=len(whole),
        whole_photos_classifier_alone=classifier.accuracy(whole, lambda s: None),
        whole_photos_official_box=classifier.accuracy(whole, lambda s: s.official),
        whole_photos_pipeline=classifier.pipeline_accuracy(whole, threshold, margin),
    )


def iou(box, other) -> float:
    return float(box_iou(np.asarray(box, dtype=np.float64), np.asarray(other, dtype=np.float64)[None])[0])


def main_box_overlaps(sample: Look, threshold: float) -> bool:
    cars = sample.cars_at(threshold)
    return bool(cars) and iou(cars[0].box, sample.official) >= 0.5


def largest_car_found(scene: Look, threshold: float) -> tuple[bool, bool]:
    """Whether the scene's largest car was found at all, and whether it was the main (largest) car found."""
    cars = scene.cars_at(threshold)
    largest = max(scene.boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    found = any(iou(c.box, largest) >= 0.5 for c in cars)
    return found, bool(cars) and iou(cars[0].box, largest) >= 0.5


def main(args) -> FinderReport:
    loaded = load_model(args.model)
    predictor = Predictor(loaded)
    finder = CarFinder(args.finder)
    split = Split.load(loaded.folder)
    crops = look_at_crops(finder, Path(args.data), split, args.limit)
    whole = look_at_whole_photos(finder, Path(args.whole), split)
    streets = look_at_streets(finder, Path(args.streets))
    no_car = look_at_photos_without_a_car(finder)

    classifier = Classifier(predictor)
    choice, grid = choose(classifier, crops, whole, no_car)
    threshold = choice.threshold
    street_results = [largest_car_found(s, threshold) for s in streets]
    val_crops, val_whole = in_part(crops, "val"), in_part(whole, "val")
    report = FinderReport(
        chosen=choice,
        choice=f"on the validation part ({len(val_crops)} crops, {len(val_whole)} whole photos), "
        f"no-car rate >= {NO_CAR_GOAL:.0%}",
        grid=grid,
        val=part_figures(classifier, val_crops, val_whole, choice),
        test=part_figures(classifier, in_part(crops, "test"), in_part(whole, "test"), choice),
        whole_photos_main_box_iou50=sum(main_box_overlaps(s, threshold) for s in whole) / len(whole),
        whole_photos=len(whole),
        street_scenes=len(streets),
        street_largest_car_found=sum(found for found, _ in street_results) / len(streets),
        street_largest_car_first=sum(first for _, first in street_results) / len(streets),
        no_car_photos=len(no_car),
        no_car_answered_no_car=sum(not s.cars_at(threshold) for s in no_car) / len(no_car),
        model=str(args.model),
        backend=predictor.backend_name,
    )
    report.save_file(Path(args.output))
    print(json.dumps({k: v for k, v in asdict(report).items() if k != "grid"}, indent=1))
    return report


if __name__ == "__main__":
    main(get_args_parser().parse_args())
