"""The paper's experiment grid: image size, batch size and learning rate, one run each.

    # the paper's protocol (40 epochs, all training data; a GPU):
    python -m training.experiments --data ../shared/data/stanford-cars-train --epochs 40
    # a reduced budget that fits a 2-core CPU (the same for every run, recorded in each run's metadata):
    python -m training.experiments --data ../shared/data/stanford-cars-train --epochs 3 --subset 0.2 \
        --backbone-init ../shared/weights/mobilenet_v2_imagenet.safetensors

Six runs cover the three comparisons: image size 224 vs 400 (batch 32, lr 0.01); batch
16/32/64 (224 px, lr 0.01); learning rate 0.005/0.01/0.05 (400 px, batch 32). Each trains
with ``training.train`` (the paper's recipe otherwise) in a process of its own, into
``--runs-dir/<run>``; finished runs are skipped and interrupted ones resumed. Each run's
``history.csv`` and a ``metadata.json`` (hyperparameters, budget, data, split, hardware, time
of its epochs, git commit, test metrics) are copied to ``--output-dir``, the folder the app's
Experiments page reads.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from training import runinfo
from training.atomic import save_json_atomic
from training.data import DATA_ENV, subset_files
from training.train import get_args_parser as train_args_parser

RUNS = {
    "size224-batch32-lr0.01": {"image_size": 224, "batch_size": 32, "lr": 0.01},
    "size400-batch32-lr0.01": {"image_size": 400, "batch_size": 32, "lr": 0.01},
    "size224-batch16-lr0.01": {"image_size": 224, "batch_size": 16, "lr": 0.01},
    "size224-batch64-lr0.01": {"image_size": 224, "batch_size": 64, "lr": 0.01},
    "size400-batch32-lr0.005": {"image_size": 400, "batch_size": 32, "lr": 0.005},
    "size400-batch32-lr0.05": {"image_size": 400, "batch_size": 32, "lr": 0.05},
}
COMPARISONS = {
    "image size": ["size224-batch32-lr0.01", "size400-batch32-lr0.01"],
    "batch size": ["size224-batch16-lr0.01", "size224-batch32-lr0.01", "size224-batch64-lr0.01"],
    "learning rate": ["size400-batch32-lr0.005", "size400-batch32-lr0.01", "size400-batch32-lr0.05"],
}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Run the paper's image size / batch size / learning rate grid")
    p.add_argument("--data", default=None, help=f"dataset folder (default: ${DATA_ENV})")
    p.add_argument("--runs-dir", default="runs/experiments", help="run folders (checkpoints; keep out of git)")
    p.add_argument("--output-dir", default="assets/experiments", help="histories + metadata for the app")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--subset", type=float, default=1.0, help="fraction of the training part each run uses")
    p.add_argument(
        "--lr-milestones", type=int, nargs="*", default=None, help="epochs at which each run divides its lr by 10"
    )
    p.add_argument("--only", nargs="*", choices=sorted(RUNS), help="run only these")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backbone-init", default="imagenet")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--dry-run", action="store_true", help="a few batches per run, to check the pipeline")
    return p


def run_argv(name: str, args) -> list[str]:
    """The ``python -m training.train`` arguments of one run of the grid."""
    settings = RUNS[name]
    argv = [
        "--output-dir", str(Path(args.runs_dir) / name),
        "--image-size", str(settings["image_size"]),
        "--batch-size", str(settings["batch_size"]),
        "--lr", str(settings["lr"]),
        "--epochs", str(args.epochs),
        "--subset", str(args.subset),
        "--seed", str(args.seed),
        "--backbone-init", args.backbone_init,
    ]  # fmt: skip
    if args.lr_milestones is not None:
        argv += ["--lr-milestones", *map(str, args.lr_milestones)]
    if args.data:
        argv += ["--data", args.data]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    if args.device:
        argv += ["--device", args.device]
    if args.dry_run:
        argv.append("--dry-run")
    run_dir = Path(args.runs_dir) / name
    if (run_dir / "checkpoint.pt").is_file() and not args.dry_run:
        argv.append("--resume")
    return argv


def export(name: str, run_dir: Path, output_dir: Path, train_args) -> None:
    target = output_dir / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(run_dir / "history.csv", target / "history.csv")
    split = json.loads((run_dir / "split.json").read_text())
    settings = vars(train_args)
    metadata = {
        "name": name,
        "hyperparameters": {
            k: settings[k]
            for k in (
                "image_size",
                "batch_size",
                "lr",
                "momentum",
                "weight_decay",
                "lr_schedule",
                "lr_milestones",
                "augment",
                "label_smoothing",
                "head_lr_mult",
                "lambda_year",
                "lambda_make",
                "lambda_type",
            )
        },
        "budget": {
            "epochs": train_args.epochs,
            "subset": train_args.subset,
            "train_images": len(subset_files(split["train"], train_args.subset, train_args.seed)),
            "full_protocol": train_args.epochs >= 40 and train_args.subset >= 1.0,
            "dry_run": train_args.dry_run,
        },
        "data": {
            "dataset": "Stanford Cars (cropped training images)",
            "split_seed": split["seed"],
            "parts": {p: len(split[p]) for p in ("train", "val", "test")},
        },
        "hardware": runinfo.hardware(train_args.device),
        "software": runinfo.software(),
        "wall_seconds": round(_epoch_seconds(run_dir / "history.csv"), 1),
        "git_commit": runinfo.git_commit(),
        "test": json.loads((run_dir / "test_metrics.json").read_text()),
    }
    save_json_atomic(metadata, target / "metadata.json")


def _epoch_seconds(history_csv: Path) -> float:
    """Time spent in the run's epochs (training and validation), summed across resumed sessions."""
    with open(history_csv, newline="") as f:
        return sum(float(row["epoch_time"]) for row in csv.DictReader(f))


def main(args) -> None:
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_json_atomic({"runs": RUNS, "comparisons": COMPARISONS}, output_dir / "grid.json")
    failed = []
    for name in args.only or RUNS:
        run_dir = Path(args.runs_dir) / name
        argv = run_argv(name, args)
        train_args = train_args_parser().parse_args(argv)
        if (run_dir / "test_metrics.json").is_file() and not args.dry_run:
            print(f"{name}: finished already, skipped")
        else:
            print(f"{name}: training", flush=True)
            # A process per run: each starts with fresh memory, and one run's crash does not end the grid.
            if subprocess.run([sys.executable, "-m", "training.train", *argv]).returncode != 0:
                print(f"{name}: failed; run the grid again to resume it", flush=True)
                failed.append(name)
                continue
        export(name, run_dir, output_dir, train_args)
    if failed:
        raise SystemExit(f"failed runs: {', '.join(failed)}")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
