"""The model card (README.md of a model folder or Hub repo), written from a run folder's records."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from autospecnet.heads import HEAD_LONG_TITLES, HEADS

RECIPE_KEYS = (
    "image_size", "batch_size", "epochs", "lr", "head_lr_mult", "momentum", "weight_decay", "lr_schedule",
    "lr_milestones", "warmup_epochs", "label_smoothing", "augment", "lambda_year", "lambda_make", "lambda_type",
    "dropout", "seed", "subset", "backbone_init",
)  # fmt: skip


def metrics_table(test_metrics: dict) -> str:
    rows = ["| head | accuracy | top-5 | macro precision | macro recall |", "|---|---|---|---|---|"]
    for head in HEADS:
        m = test_metrics["heads"][head]
        rows.append(
            f"| {HEAD_LONG_TITLES[head]} | {m['accuracy']:.2%} | {m['top5']:.2%} | {m['precision']:.2%} | {m['recall']:.2%} |"
        )
    return "\n".join(rows)


def best_epoch(history_csv: Path) -> tuple[int, int, float]:
    """(best epoch on validation accuracy, epochs run, hours spent on them)."""
    with open(history_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    best = max(rows, key=lambda r: float(r["val_acc"]))
    return int(best["epoch"]), len(rows), sum(float(r["epoch_time"]) for r in rows) / 3600


def model_card(run_dir: Path, hardware: str) -> str:
    args = json.loads((run_dir / "args.json").read_text())
    split = json.loads((run_dir / "split.json").read_text())
    calibrated_metrics = run_dir / "best" / "test_metrics.json"
    test = json.loads(
        (calibrated_metrics if calibrated_metrics.is_file() else run_dir / "test_metrics.json").read_text()
    )
    best, ran, hours = best_epoch(run_dir / "history.csv")
    recipe = "\n".join(f"| `{k}` | `{args.get(k)}` |" for k in RECIPE_KEYS if k in args)
    parts = {p: len(split[p]) for p in ("train", "val", "test")}
    backbone = args.get("backbone_init", "imagenet")
    backbone_text = (
        "torchvision's `MobileNet_V2_Weights.IMAGENET1K_V2`" if backbone == "imagenet"
        else "random" if backbone == "none"
        else f"ImageNet MobileNetV2 weights from `{Path(backbone).name}` (converted from Google's TF-slim "
        "MobileNetV2 1.0/224)"
    )  # fmt: skip
    return f"""---
library_name: autospecnet
license: mit
pipeline_tag: image-classification
tags:
- car-recognition
- stanford-cars
- mobilenet_v2
- multi-task
datasets:
- stanford-cars
metrics:
- accuracy
---

# AutoSpecNet: make, body type, model year and model of a car

A multi-task MobileNetV2 after *AutoSpecNet: A Multi-Task Learning Car Recognition Method
based on MobileNetV2* (2024): an ImageNet-pretrained MobileNetV2 whose pooled features feed
a year, a make and a body-type head (Dropout 0.2 + Linear); a fourth head reads the features
together with those three heads' logits and names one of the 196 Stanford Cars classes.

## Test metrics

Measured on the held-out **test** part ({test["images"]} images), which no choice looked at: the
epoch was the best on the **validation** part (epoch {best} of {ran}), and any calibration below
was fitted on validation too. Macro precision and recall average over the labels of each head.

{metrics_table(test)}

{calibration_section(run_dir / "best" / "calibration.json")}## Data and split

{data_section(split, parts, args)}
## Training

- Backbone initialisation: {backbone_text}.
- Input: {args["image_size"]} x {args["image_size"]} px (the crop is resized, not padded),
  ImageNet normalisation.
- Loss: CE(196 classes) + {args["lambda_year"]} CE(year) + {args["lambda_make"]} CE(make) + {args["lambda_type"]} CE(body type).
- Hardware: {hardware}; {ran} epochs in {hours:.1f} h.
- Per-epoch history: `history.csv`. Recipe (`python -m training.train` arguments):

| argument | value |
|---|---|
{recipe}

## Limits

- Trained and tested on **tight crops** of cars: whole photos with background, several cars
  or unusual angles score lower than the numbers above.
- Knows only the 196 Stanford Cars classes, models of **2012 and earlier**; any other car is
  given the nearest of these, so check the probabilities.
- The Stanford Cars images are for non-commercial research and educational use.

## Use

```python
from autospecnet import Predictor
predictor = Predictor.from_source("this/repo")  # or a local folder
print(predictor.predict("car.jpg").answer)
```

```bash
python -m autospecnet predict car.jpg --model this/repo --json
```

## Reproduce

```bash
python -m training.train --data PATH/TO/stanford-cars-train --output-dir runs/model {" ".join(_flags(args))}
python -m training.evaluate --model runs/model/best --data PATH/TO/stanford-cars-train --split test --json
```
"""


def data_section(split: dict, parts: dict, args: dict) -> str:
    if split.get("official_test"):
        return (
            f"- Stanford Cars (Krause et al., 2013), official layout{', cropped to the bounding boxes' if args.get('crop') else ''}.\n"
            f"- The official test split ({parts['test']} images) is the test part; {split['val_fraction']:.0%} of each "
            f"class of the official training split (seed {split['seed']}) is the validation part: {parts['train']} train, "
            f"{parts['val']} validation images. The file lists are in `split.json`.\n"
        )
    train_share = 1 - split["val_fraction"] - split["test_fraction"]
    return (
        "- Stanford Cars (Krause et al., 2013), the 8,144 training images, each **cropped to its\n"
        "  bounding box** and shrunk to at most 448 px on the longer side.\n"
        f"- Split per class, seeded (seed {split['seed']}), {train_share:.0%} / {split['val_fraction']:.0%} / "
        f"{split['test_fraction']:.0%}: {parts['train']} train, {parts['val']} validation, {parts['test']} test images.\n"
        "  Byte-identical duplicates stay in one part. The file lists are in `split.json`.\n"
    )


def calibration_section(path: Path) -> str:
    if not path.is_file():
        return "Probabilities are each head's softmax, not calibrated (`python -m training.calibrate`).\n\n"
    report = json.loads(path.read_text())
    rows = ["| head | temperature | weight of the class head | validation accuracy | validation NLL | "
            "validation ECE | test ECE |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for head in HEADS:
        val, test = report["val"], report["test"]
        weight = report["marginal_weights"].get(head)
        rows.append(
            f"| {HEAD_LONG_TITLES[head]} | {report['temperatures'][head]:.3f} | {'-' if weight is None else f'{weight:.2f}'} | "
            f"{val['before'][head]['accuracy']:.2%} -> {val['after'][head]['accuracy']:.2%} | "
            f"{val['before'][head]['nll']:.3f} -> {val['after'][head]['nll']:.3f} | "
            f"{val['before'][head]['ece']:.3f} -> {val['after'][head]['ece']:.3f} | "
            f"{test['before'][head]['ece']:.3f} -> {test['after'][head]['ece']:.3f} |"
        )
    return (
        "## Calibration\n\nFitted on the validation part with `python -m training.calibrate`: a softmax "
        "temperature per head, and for year, make and body type a weight for mixing in the 196-class head's "
        "probabilities summed over each label's classes (0: the paper's head alone). The test metrics above are "
        "those of the calibrated model. Before -> after, ECE in 15 bins of top-1 confidence:\n\n"
        + "\n".join(rows)
        + "\n\n"
    )


def _flags(args: dict) -> list[str]:
    defaults = {"image_size": 224, "batch_size": 32, "epochs": 40, "lr": 0.01, "head_lr_mult": 1.0, "momentum": 0.9,
                "weight_decay": 1e-4, "lr_schedule": "step", "warmup_epochs": 0.0, "label_smoothing": 0.0,
                "augment": "paper", "seed": 0, "subset": 1.0, "dropout": 0.2}  # fmt: skip
    flags = []
    for key, default in defaults.items():
        if key in args and args[key] != default:
            flags.append(f"--{key.replace('_', '-')} {args[key]}")
    if args.get("backbone_init", "imagenet") != "imagenet":
        flags.append(f"--backbone-init {args['backbone_init']}")
    return flags
