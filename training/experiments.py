"""The paper's experiment grid: image size, batch size and learning rate, one run each.

    # the paper's protocol (40 epochs, all training data) on a GPU, or on 8 GPUs with torchrun:
    python -m training.experiments --data ../shared/data/stanford-cars-train --epochs 40
    python -m training.experiments --data ../shared/data/stanford-cars-train --epochs 40 --nproc-per-node 8
    # the reduced budget shipped in assets/experiments/6-epochs (the same for every run, recorded in each
    # run's metadata; 7.7 hours of wall time on a 2-core CPU shared with other work, resumable):
    python -m training.experiments --data ../shared/data/stanford-cars-train --epochs 6 --lr-milestones 4 5 \
        --backbone-init ../shared/weights/mobilenet_v2_imagenet.safetensors --runs-dir ~/autospecnet-runs/grid-6ep
    # how far each run has come (finished, epochs and batches done, not started):
    python -m training.experiments --epochs 6 --runs-dir ~/autospecnet-runs/grid-6ep --status

Six runs cover the three comparisons: image size 224 vs 400 (batch 32, lr 0.01); batch
16/32/64 (224 px, lr 0.01); learning rate 0.005/0.01/0.05 (400 px, batch 32). Each trains
with ``training.train`` (the paper's recipe otherwise) in a process of its own, into
``--runs-dir/<run>``; finished runs are skipped and interrupted ones resumed. Each run's
``history.csv`` and a ``metadata.json`` (hyperparameters, budget, data, split, hardware, time
of its epochs, images per second, git commit, test metrics), read from what the run stored, go
to ``--output-dir``: one folder per budget under ``assets/experiments/``, which the app's
Experiments page reads and compares with the paper's findings (``PAPER``).
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
from pathlib import Path

from autospecnet.records import experiments as experiments_files
from autospecnet.records import history as history_file
from autospecnet.records import test_metrics
from autospecnet.records.experiments import Budget, Grid, RunMetadata
from autospecnet.records.split import PARTS, Split
from autospecnet.records.test_metrics import PartMetrics
from autospecnet.records.training_args import TrainingArgs
from training import checkpoint
from training.data import DATA_ENV, DataError
from training.runinfo import portable
from training.train import recipe

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

# What the paper found for each comparison: its best run, and its claim in words.
PAPER = {
    "image size": {"winner": "size400-batch32-lr0.01", "claim": "400 px beats 224 px (above 92 % accuracy)"},
    "batch size": {"winner": "size224-batch32-lr0.01", "claim": "batch 32 beats 16 and 64"},
    "learning rate": {"winner": "size400-batch32-lr0.01", "claim": "lr 0.01 beats 0.005 and 0.05"},
}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Run the paper's image size / batch size / learning rate grid")
    p.add_argument("--data", default=None, help=f"dataset folder (None: ${DATA_ENV})")
    p.add_argument("--runs-dir", default="runs/experiments", help="run folders (checkpoints; keep out of git)")
    p.add_argument(
        "--output-dir",
        default=None,
        help="histories + metadata for the app (default: assets/experiments/<epochs>-epochs[-subset<fraction>], "
        "one folder per budget)",
    )
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
    p.add_argument(
        "--nproc-per-node", type=int, default=1, help="processes (GPUs) per run: above 1, each run starts with torchrun"
    )
    p.add_argument("--dry-run", action="store_true", help="a few batches per run, to check the pipeline")
    p.add_argument("--status", action="store_true", help="say how far each run has come, and train nothing")
    return p


def finished(run_dir: Path) -> bool:
    return (run_dir / test_metrics.FILE).is_file()


def run_status(run_dir: Path, epochs: int) -> str:
    """Where a run stands: finished, how far it came (from its checkpoint), or not started."""
    if finished(run_dir):
        return "finished"
    state = checkpoint.load(run_dir)
    if state is None:
        return "not started"
    return f"{checkpoint.where(state)}: resumable"


def run_argv(name: str, args) -> list[str]:
    """The ``python -m training.train`` arguments of one run of the grid."""
    settings = RUNS[name]
    values = {
        "--output-dir": Path(args.runs_dir) / name,
        "--image-size": settings["image_size"],
        "--batch-size": settings["batch_size"],
        "--lr": settings["lr"],
        "--epochs": args.epochs,
        "--subset": args.subset,
        "--seed": args.seed,
        "--backbone-init": args.backbone_init,
    }
    argv = [str(item) for flag, value in values.items() for item in (flag, value)]
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
    if (Path(args.runs_dir) / name / checkpoint.FILE).is_file() and not args.dry_run:
        argv.append("--resume")
    return argv


def export(name: str, run_dir: Path, output_dir: Path) -> None:
    """The run's history and its metadata, read from what the run itself stored (its training settings, with
    the values derived when it started, its split, history and test metrics), into the app's folder."""
    target = output_dir / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(run_dir / history_file.FILE, target / history_file.FILE)
    args = TrainingArgs.load(run_dir)
    split = Split.load(run_dir)
    history = history_file.read_rows(run_dir / history_file.FILE)
    train_images = args.get("train_images") or (len(split["train"]) if args.get("subset") >= 1 else None)
    train_seconds = sum(float(row.get("train_time") or "nan") for row in history)
    environment = args.environment
    # The metadata is shown to every visitor of the app: a path of the training machine only as .../name.
    command = [portable(a, ".../") for a in args.argv[1:] if a != "--resume"]  # the recipe, not the restart
    metadata = RunMetadata(
        name=name,
        hyperparameters={k: portable(v, ".../") for k, v in recipe(args.settings).items()},
        budget=Budget(
            epochs=args.get("epochs"),
            epochs_run=len(history),
            subset=args.get("subset"),
            train_images=train_images,
            full_protocol=args.get("epochs") >= 40 and args.get("subset") >= 1.0,
            dry_run=args.get("dry_run"),
        ),
        data={
            "dataset": "Stanford Cars (cropped training images)",
            "split_seed": split.seed,
            "parts": {p: len(split[p]) for p in PARTS},
        },
        hardware=environment.get("hardware"),
        software=environment.get("software"),
        git_commit=environment.get("git_commit"),
        wall_seconds=round(history_file.seconds(history), 1),
        train_images_per_second=round(train_images * len(history) / train_seconds, 1)
        if train_images and math.isfinite(train_seconds) and train_seconds > 0
        else None,
        command="python -m training.train " + " ".join(command),
        test=PartMetrics.load(run_dir).to_dict(),
    )
    metadata.save(target)


def default_output_dir(epochs: int, subset: float) -> Path:
    budget = f"{epochs}-epochs" + (f"-subset{subset:g}" if subset < 1 else "")
    return Path("assets") / experiments_files.FOLDER / budget


def main(args) -> None:
    if args.status:
        for name in args.only or RUNS:
            print(f"{name}: {run_status(Path(args.runs_dir) / name, args.epochs)}")
        return
    output_dir = Path(args.output_dir) if args.output_dir else default_output_dir(args.epochs, args.subset)
    output_dir.mkdir(parents=True, exist_ok=True)
    Grid(RUNS, COMPARISONS, PAPER).save(output_dir)
    failed = []
    for name in args.only or RUNS:
        run_dir = Path(args.runs_dir) / name
        argv = run_argv(name, args)
        if finished(run_dir) and not args.dry_run:
            print(f"{name}: finished already, skipped")
        else:
            print(f"{name}: training", flush=True)
            # A process per run: each starts with fresh memory, and one run's crash does not end the grid.
            launcher = [sys.executable]
            if args.nproc_per_node > 1:
                launcher += [
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    "--nproc_per_node",
                    str(args.nproc_per_node),
                ]
            if subprocess.run([*launcher, "-m", "training.train", *argv]).returncode != 0:
                print(f"{name}: failed; run the grid again to resume it", flush=True)
                failed.append(name)
                continue
        export(name, run_dir, output_dir)
    if failed:
        raise SystemExit(f"failed runs: {', '.join(failed)}")


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except DataError as error:
        sys.exit(f"error: {error}")
