"""Evaluate any model source on any part of the split.

    python -m training.evaluate --model assets/model --data ../shared/data/stanford-cars-train --part test --json
    python -m training.evaluate --model owner/name@v1 --data ../shared/data/stanford-cars-train --part val

The split is the model folder's ``split.json`` (the one it was trained with) unless
``--split-file`` names another; without either it is made from ``--seed``. ``--part`` picks one
of its parts (``--split``, its earlier name, still works). ``--json`` prints one object, the
layout of ``test_metrics.json`` (``autospecnet.records.test_metrics``): ``{"part": ..., "images": N,
"heads": {"model": {"accuracy", "top5", "precision", "recall"}, "year": {...}, "make": {...}, "type": {...}}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from autospecnet.heads import HEADS
from autospecnet.records import split as split_file
from autospecnet.records.split import PARTS, Split
from autospecnet.records.test_metrics import PartMetrics
from autospecnet.records.training_args import TrainingArgs
from autospecnet.sources import ModelLoadError, load_model
from training.data import DATA_ENV, CarImages, DataError, eval_transform, load_dataset, make_split, resolve_data_root
from training.engine import LossWeights, evaluate


def model_and_data_parser() -> argparse.ArgumentParser:
    """The options that evaluate, calibrate and gallery share (``argparse`` ``parents=``): which model, which
    data, which split, and how the images are read (cropped or not, as the model was trained by default)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model", required=True, help="a model folder or Hub repo 'owner/name[@rev]'")
    p.add_argument("--data", default=None, help=f"dataset folder (None: ${DATA_ENV})")
    p.add_argument("--split-file", default=None, help="split.json to use (None: the model folder's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split when the model folder has no split.json")
    p.add_argument(
        "--crop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="official layout: crop to the bounding boxes (None: as the model was trained, training_args.json)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per batch")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader worker processes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda or cuda:N")
    return p


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Per-head accuracy, top-5, macro precision and recall of a model",
        parents=[model_and_data_parser()],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--part", "--split", dest="part", choices=PARTS, default="test", help="which part to evaluate on")
    p.add_argument("--json", action="store_true", help="print the stable JSON report only")
    return p


def split_for(folder: Path, given: str | None, dataset, seed: int) -> Split:
    path = Path(given) if given else folder / split_file.FILE
    if path.is_file():
        return Split.load_file(path)
    if given:
        raise SystemExit(f"No split file at {path}")
    return make_split(dataset, seed=seed)


def load_for_evaluation(args):
    """(loaded model on its device, dataset, split) for --model, --data, --split-file, --seed, --device."""
    try:
        loaded = load_model(args.model)
        loaded.model  # noqa: B018 - the torch network, checked here so that a bad file is a message
    except ModelLoadError as error:
        raise SystemExit(f"error: {error}") from None
    if args.crop is None:
        args.crop = bool(TrainingArgs.read(loaded.folder).get("crop", False))
    dataset = load_dataset(resolve_data_root(args.data))
    split = split_for(loaded.folder, args.split_file, dataset, args.seed)
    loaded.model.to(torch.device(args.device), memory_format=torch.channels_last)
    return loaded, dataset, split


def part_loader(model, dataset, files: list[str], args) -> torch.utils.data.DataLoader:
    """The files of one part, preprocessed as ``model``'s config says."""
    transform = eval_transform(model.image_size, model.mean, model.std)
    images = CarImages(dataset, files, transform, crop=args.crop)
    return torch.utils.data.DataLoader(images, batch_size=args.batch_size, num_workers=args.workers)


def main(args) -> PartMetrics:
    loaded, dataset, split = load_for_evaluation(args)
    loader = part_loader(loaded.model, dataset, split[args.part], args)
    weights = LossWeights.of(TrainingArgs.read(loaded.folder).settings)  # as it was trained, else the paper's
    stats = evaluate(loaded.model, loader, torch.device(args.device), weights, desc=f"evaluate {args.part}")
    metrics = PartMetrics.from_stats(args.part, stats)
    if args.json:
        print(json.dumps(metrics.to_dict()))
    else:
        print(f"{args.model} on the {args.part} part ({metrics.images} images):")
        for head in HEADS:
            m = metrics.heads[head]
            print(
                f"  {head:<6} accuracy {m.accuracy:.2%}  top-5 {m.top5:.2%}  "
                f"precision {m.precision:.2%}  recall {m.recall:.2%}"
            )
    return metrics


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except DataError as error:
        sys.exit(f"error: {error}")
