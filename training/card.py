"""The model card (README.md of a model folder or Hub repo), written from a run folder's records."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from autospecnet.heads import HEAD_LONG_TITLES, HEADS
from autospecnet.model import MODEL_TAGS

DATASET_ID = "HuggingFaceM4/Stanford-Cars"  # the Hub's copy of Stanford Cars (Krause et al., 2013)
DATASET_NAME = "Stanford Cars, training images cropped to their boxes (held-out test part of split.json)"

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


def model_card(run_dir: Path, hardware: str, finder_report: dict | None = None) -> str:
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
    body = f"""
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

{whole_photos_section(finder_report)}## Limits

- Trained and tested on **tight crops** of cars: the car finder crops whole photos first (see the
  AutoSpecNet README); unusual angles, night photos and partly hidden cars score lower.
- Knows only the 196 Stanford Cars classes, models of **2012 and earlier**; any other car is
  given the nearest of these, so check the probabilities.
- The Stanford Cars images are for non-commercial research and educational use.

## Use

```python
from autospecnet import Recognizer
recognizer = Recognizer.from_source("this/repo")  # or a local folder; finds the cars, then names them
print([car.prediction.answer for car in recognizer.recognise("street.jpg").cars])
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
    return str(ModelCard.from_template(card_data(test), template_str="---\n{{ card_data }}\n---\n" + body))


def card_data(test: dict) -> ModelCardData:
    """The card's metadata: the mixin's library and tags, and the test accuracies as ``model-index``
    results, which the Hub shows on the model page."""
    results = [
        EvalResult(
            task_type="image-classification",
            dataset_type=DATASET_ID,
            dataset_name=DATASET_NAME,
            dataset_split="test",
            metric_type="accuracy",
            metric_name=f"{HEAD_LONG_TITLES[head]} accuracy",
            metric_value=round(test["heads"][head]["accuracy"], 4),
        )
        for head in HEADS
    ]
    return ModelCardData(
        model_name="AutoSpecNet",
        library_name="autospecnet",
        license="mit",
        pipeline_tag="image-classification",
        tags=[*MODEL_TAGS, "model_hub_mixin", "pytorch_model_hub_mixin", "onnx"],
        datasets=[DATASET_ID],
        metrics=["accuracy"],
        eval_results=results,
    )


def whole_photos_section(report: dict | None) -> str:
    """Two stages for whole photos, with what ``python -m training.finder`` measured for this model."""
    if not report:
        return ""
    test = report["test"]
    return f"""## Whole photos: find the car, then name it

People's photos show a car in a street, not a tight crop. The AutoSpecNet app and command line run
two stages: YOLOX-Nano (Megvii, COCO, Apache-2.0) on ONNX Runtime finds every car, bus or truck
scoring at least {report["chosen"]["threshold"]}; each box (margin {report["chosen"]["margin"]}) goes to this classifier, largest
first. Threshold and margin were chosen on the validation part. Measured with `python -m training.finder`:

| check | result |
|---|---|
| test crops, 196 classes: classifier alone / finder + classifier | {test["crops_classifier_alone"]:.2%} / {test["crops_pipeline"]:.2%} ({test["crops"]} crops) |
| whole photos of the test part: whole photo / official box / finder + classifier | {test["whole_photos_classifier_alone"]:.0%} / {test["whole_photos_official_box"]:.0%} / {test["whole_photos_pipeline"]:.0%} ({test["whole_photos"]} photos) |
| finder's main box overlaps the official box (IoU >= 0.5) | {report["whole_photos_main_box_iou50"]:.1%} of {report["whole_photos"]} whole photos |
| largest car of a street scene found | {report["street_largest_car_found"]:.0%} of {report["street_scenes"]} scenes |
| photos without a car answered "no car" | {report["no_car_answered_no_car"]:.0%} of {report["no_car_photos"]} |

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
    """The ``python -m training.train`` flags that give this run's settings: every stored value that differs
    from the parser's default (derived values such as the LR milestones were filled in when the run started)."""
    from training.train import get_args_parser

    flags = []
    for action in get_args_parser(add_help=False)._actions:
        if action.dest in NOT_RECIPE or action.dest not in args or not action.option_strings:
            continue
        value, flag = args[action.dest], action.option_strings[-1]
        if action.nargs == 0:  # store_true
            if value:
                flags.append(flag)
        elif value != action.default:
            shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
            flags.append(f"{flag} {shown}".rstrip())
    return flags


NOT_RECIPE = {"data", "output_dir", "resume", "dry_run", "workers", "device", "split"}
