"""The model card (README.md of a model folder or Hub repo), written from a run folder's records."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from autospecnet.app.model_card import sure_section
from autospecnet.config import ModelConfig
from autospecnet.heads import HEAD_LONG_TITLES, HEADS
from autospecnet.model import MODEL_TAGS
from autospecnet.records import calibration as calibration_file
from autospecnet.records import history as history_file
from autospecnet.records import test_metrics
from autospecnet.records.calibration import Calibration
from autospecnet.records.finder_report import FinderReport
from autospecnet.records.open_set import OpenSetReport
from autospecnet.records.split import Split
from autospecnet.records.test_metrics import PartMetrics
from autospecnet.records.training_args import TrainingArgs
from training.runinfo import portable
from training.train import get_args_parser, recipe

DATASET_ID = "HuggingFaceM4/Stanford-Cars"  # the Hub's copy of Stanford Cars (Krause et al., 2013)
DATASET_NAME = "Stanford Cars, training images cropped to their boxes (held-out test part of split.json)"


def metrics_table(metrics: PartMetrics) -> str:
    rows = ["| head | accuracy | top-5 | macro precision | macro recall |", "|---|---|---|---|---|"]
    for head in HEADS:
        m = metrics.heads[head]
        scores = f"{m.accuracy:.2%} | {m.top5:.2%} | {m.precision:.2%} | {m.recall:.2%}"
        rows.append(f"| {HEAD_LONG_TITLES[head]} | {scores} |")
    return "\n".join(rows)


def training_time(run_dir: Path) -> tuple[int, int, float]:
    """(best epoch on validation accuracy, epochs run, hours spent on them)."""
    rows = history_file.read_rows(run_dir / history_file.FILE)
    best = history_file.best_epoch(rows)
    return int(best["epoch"]), len(rows), history_file.seconds(rows) / 3600


def initialisation(args: TrainingArgs) -> str:
    """Where the weights started, in words."""
    if args.donor() is not None:
        return (
            f"{_warm_starts(args)}: all its weights, heads included, fine-tuned here at this input size, on its "
            "split, so that no image it trained on is validated or tested on (its recipe: the commands below)"
        )
    return _warm_starts(args)


def loss_line(training: TrainingArgs, lambdas: str) -> str:
    """The training loss in words: the paper's multi-task loss, and the teachers' share when distilled."""
    labels = f"CE(196 classes) + {lambdas}"
    teachers = training.teacher_records()
    if not teachers:
        return labels
    weight, temperature = training.get("distill_weight"), training.get("distill_temperature")
    sizes = ", ".join(f"{t.get('image_size')} px" for t in teachers)
    return (
        f"{1 - weight:g} x [{labels}] + {weight:g} x the KL divergence from the averaged probabilities of "
        f"{len(teachers)} trained teacher model(s) ({sizes}; every head, temperature {temperature:g}; their "
        "training: the commands below), knowledge distillation (`training.distill`)"
    )


def _warm_starts(args: TrainingArgs) -> str:
    """The chain of models a run started from, back to its first weights."""
    donor = args.donor()
    if donor is not None:
        return (
            f"a warm start from a model trained first at {donor.get('image_size')} px for "
            f"{args.warm_start['epochs_run']} epochs ({args.warm_start['hours']:.1f} h), itself from "
            f"{_warm_starts(donor)}"
        )
    if args.get("init_from"):
        return f"a warm start from the trained model `{Path(args.get('init_from')).name}`"
    backbone = args.get("backbone_init", "imagenet")
    if backbone == "imagenet":
        return "torchvision's `MobileNet_V2_Weights.IMAGENET1K_V2`"
    if backbone == "none":
        return "random"
    converted = "converted from Google's TF-slim MobileNetV2 1.0/224"
    return f"ImageNet MobileNetV2 weights from `{Path(backbone).name}` ({converted})"


def model_card(
    run_dir: Path, hardware: str, finder_report: FinderReport | None = None, open_set: OpenSetReport | None = None
) -> str:
    training = TrainingArgs.load(run_dir)
    args = training.settings
    split = Split.load(run_dir)
    calibrated = (run_dir / "best" / test_metrics.FILE).is_file()  # training.calibrate's, of the calibrated model
    test = PartMetrics.load(run_dir / "best" if calibrated else run_dir)
    best, ran, hours = training_time(run_dir)
    recipe_rows = "\n".join(f"| `{k}` | `{v}` |" for k, v in shareable_recipe(args).items())
    calibration = Calibration.load(run_dir / "best") if (run_dir / "best" / calibration_file.FILE).is_file() else None
    classes = len(ModelConfig.read(run_dir / "best").class_names)
    lambdas = f"{args['lambda_year']} CE(year) + {args['lambda_make']} CE(make) + {args['lambda_type']} CE(body type)"
    body = f"""
# AutoSpecNet: make, body type, model year and model of a car

A multi-task MobileNetV2 after *AutoSpecNet: A Multi-Task Learning Car Recognition Method
based on MobileNetV2* (2024): an ImageNet-pretrained MobileNetV2 whose pooled features feed
a year, a make and a body-type head (Dropout 0.2 + Linear); a fourth head reads the features
together with those three heads' logits and names one of the 196 Stanford Cars classes.

## Test metrics

Measured on the held-out **test** part ({test.images} images), which no choice looked at: the
epoch was the best on the **validation** part (epoch {best} of {ran}), and any calibration below
was fitted on validation too. Macro precision and recall average over the labels of each head.

{metrics_table(test)}

{calibration_section(run_dir / "best")}{sure_section(calibration, open_set, classes)}
## Data and split

{data_section(split, args)}
## Training

- Initialisation: {initialisation(training)}.
- Input: {args["image_size"]} x {args["image_size"]} px (the crop is resized, not padded),
  ImageNet normalisation.
- Loss: {loss_line(training, lambdas)}.
- Hardware: {hardware}; {ran} epochs in {hours:.1f} h.
- Per-epoch history: `history.csv`. Recipe (`python -m training.train` arguments):

| argument | value |
|---|---|
{recipe_rows}

{whole_photos_section(finder_report)}## Limits

- Trained and tested on **tight crops** of cars: the car finder crops whole photos first (see the
  AutoSpecNet README); unusual angles, night photos and partly hidden cars score lower.
- Knows only the 196 Stanford Cars classes, models of **2012 and earlier**. For another car its
  best guess is the nearest of these: it then says what it is sure of instead of a name when its
  sure rule sees the car is not one it knows (above), which a close look-alike can still escape.
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
{reproduce(training)}
python -m training.evaluate --model runs/model/best --data PATH/TO/stanford-cars-train --part test --json
```
"""
    return str(ModelCard.from_template(card_data(test), template_str="---\n{{ card_data }}\n---\n" + body))


def card_data(test: PartMetrics) -> ModelCardData:
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
            metric_value=round(test.heads[head].accuracy, 4),
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


def whole_photos_section(report: FinderReport | None) -> str:
    """Two stages for whole photos, with what ``python -m training.finder`` measured for this model."""
    if not report:
        return ""
    test = report.test
    crops = f"{test.crops_classifier_alone:.2%} / {test.crops_pipeline:.2%} ({test.crops} crops)"
    whole = (
        f"{test.whole_photos_classifier_alone:.0%} / {test.whole_photos_official_box:.0%} / "
        f"{test.whole_photos_pipeline:.0%} ({test.whole_photos} photos)"
    )
    boxes = f"{report.whole_photos_main_box_iou50:.1%} of {report.whole_photos} whole photos"
    return f"""## Whole photos: find the car, then name it

People's photos show a car in a street, not a tight crop. The AutoSpecNet app and command line run
two stages: YOLOX-Nano (Megvii, COCO, Apache-2.0) on ONNX Runtime finds every car, bus or truck
scoring at least {report.chosen.threshold}; each box (margin {report.chosen.margin}) goes to this classifier,
largest first. Threshold and margin were chosen on the validation part. Measured with `python -m training.finder`:

| check | result |
|---|---|
| test crops, 196 classes: classifier alone / finder + classifier | {crops} |
| whole photos of the test part: whole photo / official box / finder + classifier | {whole} |
| finder's main box overlaps the official box (IoU >= 0.5) | {boxes} |
| largest car of a street scene found | {report.street_largest_car_found:.0%} of {report.street_scenes} scenes |
| photos without a car answered "no car" | {report.no_car_answered_no_car:.0%} of {report.no_car_photos} |

"""


def data_section(split: Split, args: dict) -> str:
    parts = split.counts()
    if split.official_test:
        cropped = ", cropped to the bounding boxes" if args.get("crop") else ""
        return (
            f"- Stanford Cars (Krause et al., 2013), official layout{cropped}.\n"
            f"- The official test split ({parts['test']} images) is the test part; {split.val_fraction:.0%} of each "
            f"class of the official training split (seed {split.seed}) is the validation part: "
            f"{parts['train']} train, {parts['val']} validation images. The file lists are in `split.json`.\n"
        )
    train_share = 1 - split.val_fraction - split.test_fraction
    return (
        "- Stanford Cars (Krause et al., 2013), the 8,144 training images, each **cropped to its\n"
        "  bounding box** and shrunk to at most 448 px on the longer side.\n"
        f"- Split per class, seeded (seed {split.seed}), {train_share:.0%} / {split.val_fraction:.0%} / "
        f"{split.test_fraction:.0%}: {parts['train']} train, {parts['val']} validation, {parts['test']} test "
        "images.\n  Byte-identical duplicates stay in one part. The file lists are in `split.json`.\n"
    )


def calibration_section(model_folder: Path) -> str:
    if not (model_folder / calibration_file.FILE).is_file():
        return "Probabilities are each head's softmax, not calibrated (`python -m training.calibrate`).\n\n"
    report = Calibration.load(model_folder)
    rows = [
        "| head | temperature | weight of the class head | validation accuracy | validation NLL | validation ECE "
        "| test ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for head in HEADS:
        before, after, test = report.val["before"][head], report.val["after"][head], report.test
        weight = report.marginal_weights.get(head)
        cells = [
            HEAD_LONG_TITLES[head],
            f"{report.temperatures[head]:.3f}",
            "-" if weight is None else f"{weight:.2f}",
            f"{before['accuracy']:.2%} -> {after['accuracy']:.2%}",
            f"{before['nll']:.3f} -> {after['nll']:.3f}",
            f"{before['ece']:.3f} -> {after['ece']:.3f}",
            f"{test['before'][head]['ece']:.3f} -> {test['after'][head]['ece']:.3f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return (
        "## Calibration\n\nFitted on the validation part with `python -m training.calibrate`: a softmax "
        "temperature per head, and for year, make and body type a weight for mixing in the 196-class head's "
        "probabilities summed over each label's classes (0: the paper's head alone). The test metrics above are "
        "those of the calibrated model. Before -> after, ECE in 15 bins of top-1 confidence:\n\n"
        + "\n".join(rows)
        + "\n\n"
    )


def reproduce(training: TrainingArgs, output_dir: str = "runs/model") -> str:
    """The ``python -m training.train`` commands that give this run: the warm start's and the teachers' first,
    when it had them."""
    flags = _flags(training.settings)
    donor = training.donor()
    lines = []
    if donor is not None:
        warm_dir = f"{output_dir}-warm-start"
        lines.append(reproduce(donor, warm_dir))
        flags = [f for f in flags if not f.startswith("--init-from ")] + [f"--init-from {warm_dir}/best"]
    teachers = training.teacher_records()
    if teachers:
        flags = [f for f in flags if not f.startswith("--teacher ")]
        for number, teacher in enumerate(teachers, start=1):
            teacher_dir = f"{output_dir}-teacher-{number}"
            lines.append(reproduce(teacher, teacher_dir))
            flags.append(f"--teacher {teacher_dir}/best")
    lines.append(
        f"python -m training.train --data PATH/TO/stanford-cars-train --output-dir {output_dir} {' '.join(flags)}"
    )
    return "\n".join(lines)


def shareable_recipe(args: dict) -> dict:
    """The recipe as a card shows it: a file of the training machine as ``PATH/TO/name``, like the data."""
    return {k: portable(v, "PATH/TO/") for k, v in recipe(args).items()}


def _flags(args: dict) -> list[str]:
    """The ``python -m training.train`` flags that give this run's settings: every recipe value that differs
    from the parser's default (derived values such as the LR milestones were filled in when the run started)."""
    actions = {a.dest: a for a in get_args_parser(add_help=False)._actions if a.option_strings}
    flags = []
    for name, value in shareable_recipe(args).items():
        action = actions[name]
        flag = action.option_strings[-1]
        if action.nargs == 0:  # store_true
            if value:
                flags.append(flag)
        elif action.nargs is None and isinstance(value, list):  # a flag given once per value (--teacher)
            flags.extend(f"{flag} {item}" for item in value)
        elif value != action.default:
            shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
            flags.append(f"{flag} {shown}".rstrip())
    return flags
