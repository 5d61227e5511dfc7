"""Measure the car finder and choose its score threshold and crop margin on validation data.

    python -m training.finder --model assets/model --data ../shared/data/stanford-cars-train \
        --whole ../shared/data/stanford-cars-whole --streets ../shared/data/street-scenes \
        --output assets/finder.json

Choices are made on the **validation** part of the model's split only: for each score
threshold and crop margin, the 196-class accuracy of the whole pipeline (find, crop,
classify; "no car" counts as wrong) on the validation crops and on the whole photos whose
crops are in the validation part, among the thresholds that answer "no car" for at least
``NO_CAR_GOAL`` of the photos without a car. The test part is then measured once with
the choice. Also measured: the finder's main box against the official one on all whole
photos (IoU >= 0.5; detection does not depend on the classifier's split) and the largest car
of each street scene. Its speed is measured by ``python -m autospecnet.benchmark``. Photos without a car are
scikit-image's sample photos (``skimage.data``), none of which shows a car.
"""

from __future__ import annotations

import argparse
import csv
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from autospecnet.detector import CarFinder, Detection, box_iou
from autospecnet.predict import Predictor
from autospecnet.recognise import CLOSE_UP_PAD, crop_box, detect_zoomed_out, nameable
from autospecnet.sources import load_model
from training.atomic import save_json_atomic

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
    p.add_argument("--detector", required=True, help="yolox_nano.onnx")
    p.add_argument("--output", default="assets/finder.json", help="where the report goes")
    p.add_argument("--limit", type=int, default=None, help="at most this many crops per part (a quick look)")
    return p


def _open(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _no_car_photos() -> list[Path]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg"))


def _cars_at(detections: list[Detection], zoomed: list[Detection], threshold: float) -> list[Detection]:
    """What ``find_cars`` returns at ``threshold``, from both passes made once at the lowest threshold."""
    first = [d for d in detections if d.score >= threshold and nameable(d)]
    chosen = first or [d for d in zoomed if d.score >= threshold and nameable(d)]
    return sorted(chosen, key=lambda d: d.area, reverse=True)


def _both_passes(finder: CarFinder, image: Image.Image) -> tuple[list[Detection], list[Detection]]:
    """The finder's two looks at a photo (as it is, zoomed out), both at the lowest threshold of the grid."""
    return finder.detect(image, LOWEST), detect_zoomed_out(finder, image, LOWEST)


class Classifier:
    """The main car's 196-class answer for a photo and a box, cached by (photo, box, margin)."""

    def __init__(self, predictor: Predictor):
        self.predictor, self.cache = predictor, {}

    def label(self, key: str, image: Image.Image, box, margin: float | None) -> str:
        box_key = None if box is None else tuple(round(v, 1) for v in box)
        cache_key = (key, box_key, margin)
        if cache_key not in self.cache:
            photo = image if box is None else image.crop(crop_box(box, image.size, margin))
            self.cache[cache_key] = self.predictor.predict(photo, top_k=1).class_name
        return self.cache[cache_key]


def main(args) -> dict:
    loaded = load_model(args.model)
    predictor = Predictor(loaded)
    finder = CarFinder(args.detector)
    split = json.loads((loaded.folder / "split.json").read_text())
    data = Path(args.data)
    with open(data / "labels.csv", newline="") as f:
        truth = {f"images/{row['filename']}": row["class_name"] for row in csv.DictReader(f)}

    classifier = Classifier(predictor)
    seen: dict[str, dict] = {}  # key -> {"image", "first", "zoomed", "truth", "part"}
    for part in ("val", "test"):
        for file in tqdm(split[part][: args.limit], desc=f"{part} crops"):
            image = _open(data / file)
            first, zoomed = _both_passes(finder, image)
            seen[f"{part}:{file}"] = {
                "image": image,
                "first": first,
                "zoomed": zoomed,
                "truth": truth[file],
                "part": part,
            }

    with open(Path(args.whole) / "labels.csv", newline="") as f:
        whole_rows = list(csv.DictReader(f))
    part_of = {file: part for part in ("train", "val", "test") for file in split[part]}
    whole = {}
    for row in tqdm(whole_rows, desc="whole photos"):
        image = _open(Path(args.whole) / "images" / row["filename"])
        first, zoomed = _both_passes(finder, image)
        official = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
        whole[row["filename"]] = {"image": image, "first": first, "zoomed": zoomed, "official": official,
                                  "truth": row["class_name"], "part": part_of.get(f"images/{row['filename']}")}  # fmt: skip

    streets = []
    for xml in sorted((Path(args.streets) / "annotations").glob("*.xml")):
        root = ElementTree.parse(xml).getroot()
        boxes = [tuple(float(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
                 for o in root.iter("object")]  # fmt: skip
        image = _open(Path(args.streets) / "images" / root.findtext("filename"))
        streets.append({"first": finder.detect(image, LOWEST), "zoomed": [], "boxes": boxes})
    no_car = [_both_passes(finder, _open(p)) for p in _no_car_photos()]

    def pipeline_accuracy(samples, threshold, margin) -> float:
        right = 0
        for key, s in samples:
            cars = _cars_at(s["first"], s["zoomed"], threshold)
            right += bool(cars) and classifier.label(key, s["image"], cars[0].box, margin) == s["truth"]
        return right / max(1, len(samples))

    def parts(part):
        crops = [(k, s) for k, s in seen.items() if s["part"] == part]
        photos = [(f"whole:{k}", s) for k, s in whole.items() if s["part"] == part]
        return crops, photos

    val_crops, val_whole = parts("val")
    no_car_rate = {t: sum(not _cars_at(f, z, t) for f, z in no_car) / len(no_car) for t in THRESHOLDS}
    grid = []
    for threshold in THRESHOLDS:
        for margin in tqdm(MARGINS, desc=f"threshold {threshold}", leave=False):
            grid.append({
                "threshold": threshold, "margin": margin, "no_car_rate": no_car_rate[threshold],
                "val_crops": pipeline_accuracy(val_crops, threshold, margin),
                "val_whole": pipeline_accuracy(val_whole, threshold, margin),
            })  # fmt: skip
    eligible = [g for g in grid if g["no_car_rate"] >= NO_CAR_GOAL]
    n_crops, n_whole = len(val_crops), len(val_whole)
    best = max(eligible, key=lambda g: (g["val_crops"] * n_crops + g["val_whole"] * n_whole, g["threshold"]))
    threshold, margin = best["threshold"], best["margin"]

    def crop_report(part):
        crops, photos = parts(part)
        return {
            "crops": len(crops),
            "crops_classifier_alone": sum(classifier.label(k, s["image"], None, None) == s["truth"] for k, s in crops) / max(1, len(crops)),
            "crops_pipeline": pipeline_accuracy(crops, threshold, margin),
            "crops_no_car": sum(not _cars_at(s["first"], s["zoomed"], threshold) for _, s in crops),
            "crops_found_first_pass": sum(any(d.score >= threshold for d in s["first"]) for _, s in crops),
            "whole_photos": len(photos),
            "whole_photos_classifier_alone": sum(classifier.label(k, s["image"], None, None) == s["truth"] for k, s in photos) / max(1, len(photos)),
            "whole_photos_official_box": sum(classifier.label(k, s["image"], s["official"], 0.0) == s["truth"] for k, s in photos) / max(1, len(photos)),
            "whole_photos_pipeline": pipeline_accuracy(photos, threshold, margin),
        }  # fmt: skip

    def main_box_iou(s) -> float:
        cars = _cars_at(s["first"], s["zoomed"], threshold)
        return float(box_iou(_array(cars[0].box), _array(s["official"])[None])[0]) if cars else 0.0

    def largest_found(s) -> tuple[bool, bool]:
        cars = _cars_at(s["first"], s["zoomed"], threshold)
        largest = max(s["boxes"], key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        found = any(box_iou(_array(c.box), _array(largest)[None])[0] >= 0.5 for c in cars)
        first = bool(cars) and box_iou(_array(cars[0].box), _array(largest)[None])[0] >= 0.5
        return found, first

    street_results = [largest_found(s) for s in streets]
    report = {
        "chosen": {"threshold": threshold, "margin": margin, "close_up_pad": CLOSE_UP_PAD},
        "choice": f"on the validation part ({n_crops} crops, {n_whole} whole photos), no-car rate >= {NO_CAR_GOAL:.0%}",
        "grid": grid,
        "val": crop_report("val"),
        "test": crop_report("test"),
        "whole_photos_main_box_iou50": sum(main_box_iou(s) >= 0.5 for s in whole.values()) / len(whole),
        "whole_photos": len(whole),
        "street_scenes": len(streets),
        "street_largest_car_found": sum(f for f, _ in street_results) / len(streets),
        "street_largest_car_first": sum(f for _, f in street_results) / len(streets),
        "no_car_photos": len(no_car),
        "no_car_answered_no_car": no_car_rate[threshold],
        "model": str(args.model),
        "backend": predictor.backend_name,
    }
    save_json_atomic(report, Path(args.output))
    print(json.dumps({k: v for k, v in report.items() if k != "grid"}, indent=1))
    return report


def _array(box):
    import numpy as np

    return np.asarray(box, dtype=np.float64)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
