"""Tiny Stanford Cars look-alikes, made by the tests, in the two layouts the training package reads."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["BMW M3 Coupe 2012", "Audi TTS Coupe 2012", "Ford F-150 Regular Cab 2012", "Honda Odyssey Minivan 2012"]
COLOURS = [(200, 30, 30), (30, 160, 30), (30, 30, 200), (200, 200, 30)]


def car_image(label: int, index: int, size=(96, 56)) -> Image.Image:
    """A noisy image whose colour says its class, so that a few steps of training can learn something."""
    rng = np.random.default_rng(1000 * label + index)
    base = np.array(COLOURS[label], dtype=np.float64)
    pixels = np.clip(base + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def make_folder_layout(root: Path, per_class: int = 10, duplicates: int = 2) -> Path:
    """images/ + labels.csv + class_names.txt; the last ``duplicates`` files copy earlier ones, labelled otherwise."""
    (root / "images").mkdir(parents=True)
    (root / "class_names.txt").write_text("\n".join(CLASSES) + "\n")
    rows = []
    number = 0
    for label in range(len(CLASSES)):
        for index in range(per_class):
            number += 1
            name = f"{number:05d}.jpg"
            car_image(label, index).save(root / "images" / name, "JPEG", quality=90)
            rows.append(
                {
                    "filename": name,
                    "label": label,
                    "class_name": CLASSES[label],
                    "original_width": 96,
                    "original_height": 56,
                    "duplicate_of": "",
                }
            )
    for i in range(duplicates):
        original = rows[i * per_class]
        number += 1
        name = f"{number:05d}.jpg"
        (root / "images" / name).write_bytes((root / "images" / original["filename"]).read_bytes())
        label = (int(original["label"]) + 1) % len(CLASSES)
        rows.append(
            {
                **original,
                "filename": name,
                "label": label,
                "class_name": CLASSES[label],
                "duplicate_of": original["filename"],
            }
        )
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def make_official_layout(root: Path, train_per_class: int = 6, test_per_class: int = 3) -> Path:
    """The layout torchvision.datasets.StanfordCars reads: <root>/stanford_cars/{devkit, cars_train, cars_test}."""
    from scipy.io import savemat

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(CLASSES, dtype=object)})
    for part, per_class, annotations_file in (
        ("train", train_per_class, base / "devkit" / "cars_train_annos.mat"),
        ("test", test_per_class, base / "cars_test_annos_withlabels.mat"),
    ):
        folder = base / f"cars_{part}"
        folder.mkdir()
        records = []
        for label in range(len(CLASSES)):
            for index in range(per_class):
                name = f"{len(records) + 1:05d}.jpg"
                # The car sits in a grey frame: the bounding box crops the frame away.
                canvas = Image.new("RGB", (140, 100), (128, 128, 128))
                canvas.paste(car_image(label, index + (100 if part == "test" else 0)), (20, 22))
                canvas.save(folder / name, "JPEG", quality=90)
                records.append((20, 22, 20 + 96 - 1, 22 + 56 - 1, label + 1, name))
        dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
        savemat(annotations_file, {"annotations": np.array(records, dtype=dtype)})
    return root
