"""Train AutoSpecNet on Stanford Cars: the paper's recipe by default, every change an explicit flag.

    # the paper's recipe (SGD 0.01, momentum 0.9, wd 1e-4, 224 px, batch 32), 40 epochs, lr /10 at 20 and 30:
    python -m training.train --data ../shared/data/stanford-cars-train --output-dir runs/paper
    # offline backbone weights, and a run that was killed continues where it stopped:
    python -m training.train --data ... --output-dir runs/paper --backbone-init ../shared/weights/mobilenet_v2_imagenet.safetensors --resume
    # the whole pipeline on a few batches, in seconds:
    python -m training.train --data ... --output-dir /tmp/dry --dry-run

A run folder holds ``args.json``, ``split.json`` (file names of each part),
``history.csv`` (one row an epoch, written as it goes), ``checkpoint.pt`` (for ``--resume``:
the last complete epoch, and every ``--checkpoint-minutes`` within an epoch, so that a kill
costs minutes, not an epoch), ``best/`` (the best model on **validation**,
``save_pretrained`` format) and ``test_metrics.json`` (that model on the test part,
evaluated once at the end). Files are written atomically: a kill at any moment
leaves the last complete epoch, and ``--resume`` reproduces an uninterrupted run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from autospecnet.heads import HEADS
from autospecnet.labels import Taxonomy
from autospecnet.model import BACKBONE_INIT_HELP, AutoSpecNet, init_backbone
from training import distributed, runinfo
from training.atomic import replace_folder_atomic, save_csv_atomic, save_json_atomic, write_atomic
from training.data import (
    DATA_ENV,
    CarImages,
    DataError,
    eval_transform,
    load_dataset,
    make_split,
    resolve_data_root,
    subset_files,
    train_transform,
)
from training.engine import EpochProgress, evaluate, evaluation_report, history_row, train_one_epoch

DRY_RUN_BATCHES = 2


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train AutoSpecNet (multi-task MobileNetV2) on Stanford Cars",
        add_help=add_help,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default=None, help=f"dataset folder (None: ${DATA_ENV})")
    p.add_argument("--output-dir", required=True, help="run folder: history, checkpoint, best model, split")
    p.add_argument("--image-size", type=int, default=224, help="the square input size, pixels")
    p.add_argument("--batch-size", type=int, default=32, help="images per step, over all processes")
    p.add_argument("--epochs", type=int, default=40, help="passes over the training part")
    p.add_argument("--lr", type=float, default=0.01, help="backbone learning rate (the paper: 0.01 for all)")
    p.add_argument("--head-lr-mult", type=float, default=1.0, help="learning rate of the four heads = lr x this")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="SGD weight decay")
    p.add_argument(
        "--lr-schedule", choices=("step", "cosine"), default="step", help="step: /10 at --lr-milestones; cosine decay"
    )
    p.add_argument(
        "--lr-milestones",
        type=int,
        nargs="*",
        default=None,
        help="epochs at which 'step' divides the lr by 10 (None: 50%% and 75%% of --epochs, e.g. 20 30 for 40; "
        "the paper's code used 100 150, which never fire in 40 epochs)",
    )
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="linear lr warm-up (fractions allowed)")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="of every head's cross-entropy")
    p.add_argument(
        "--augment",
        choices=("paper", "strong"),
        default="paper",
        help="paper: resize + horizontal flip; strong: also random resized crop and colour jitter",
    )
    p.add_argument("--lambda-year", type=float, default=0.1, help="weight of the year loss (the paper: 0.1)")
    p.add_argument("--lambda-make", type=float, default=0.1, help="weight of the make loss (the paper: 0.1)")
    p.add_argument("--lambda-type", type=float, default=0.1, help="weight of the body-type loss (the paper: 0.1)")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout before each head (the paper: 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seeds the split, the shuffling, augmentation and dropout")
    p.add_argument("--split", default=None, help="reuse a split.json instead of making one from --seed")
    p.add_argument("--subset", type=float, default=1.0, help="fraction of the training part to use (reduced budgets)")
    p.add_argument("--crop", action="store_true", help="official layout: crop images to their bounding boxes")
    p.add_argument("--backbone-init", default="imagenet", help=BACKBONE_INIT_HELP)
    p.add_argument(
        "--init-from",
        default=None,
        help="warm start: a trained model folder (config.json + model.safetensors, e.g. assets/model) whose "
        "weights, heads included, start this run at its own --image-size (progressive resizing); its split.json "
        "is reused, so that no image of its training part reaches this run's validation or test part",
    )
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader worker processes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (GPU)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=5.0,
        help="also checkpoint within an epoch this often (0: at the end of each epoch only)",
    )
    p.add_argument("--dry-run", action="store_true", help=f"{DRY_RUN_BATCHES} batches per part and epoch")
    return p


class SeededShuffle(torch.utils.data.Sampler):
    """Shuffles per epoch and hands each item its own augmentation seed, so that a resumed
    run sees exactly the batches and augmentations of an uninterrupted one, whatever the workers
    and however many processes share the batches."""

    def __init__(self, size: int, seed: int, batch_size: int, drop_last: bool):
        self.size, self.seed, self.epoch, self.start_batch = size, seed, 0, 0
        self.batch_size, self.drop_last = batch_size, drop_last  # the global batch (all processes)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """The epoch's order, from its ``start_batch``-th batch on (the ones before: done before a restart)."""
        self.epoch, self.start_batch = epoch, start_batch

    def _skipped(self) -> int:
        return self.start_batch * (self.batch_size // distributed.world_size())

    def __len__(self) -> int:
        items = len(distributed.shard(list(range(self.size)), self.batch_size, self.drop_last))
        return max(0, items - self._skipped())

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        item_seeds = torch.randint(0, 2**62, (self.size,), generator=generator).tolist()
        # Under torchrun, this process's share of each global batch (distributed.shard); alone, all of it.
        mine = distributed.shard(list(zip(item_seeds, order, strict=True)), self.batch_size, self.drop_last)
        return iter(mine[self._skipped() :])


class AugmentedImages(CarImages):
    def __getitem__(self, seeded_index):
        item_seed, index = seeded_index
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed)
            return super().__getitem__(index)


def lr_factor(step: int, steps_per_epoch: int, args) -> float:
    epoch = step / steps_per_epoch
    if args.warmup_epochs and epoch < args.warmup_epochs:
        return (step + 1) / (args.warmup_epochs * steps_per_epoch)
    if args.lr_schedule == "cosine":
        progress = (epoch - args.warmup_epochs) / max(1e-8, args.epochs - args.warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 0.1 ** sum(epoch >= m for m in args.lr_milestones)


def _read_history(path: Path, epochs_done: int) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["epoch"]) <= epochs_done]


def _save_model_atomic(model: AutoSpecNet, folder: Path, split_path: Path) -> None:
    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        (tmp / "split.json").write_bytes(split_path.read_bytes())  # a model folder names its images

    replace_folder_atomic(folder, fill)


def _check_warm_start_split(donor: Path, split: dict) -> None:
    """A warm start must keep its donor's validation and test images out of its training part."""
    donor_split = donor / "split.json"
    if not donor_split.is_file():
        raise SystemExit(f"--init-from {donor}: no split.json, so its training images are unknown")
    seen = set(json.loads(donor_split.read_text())["train"])
    leaked = sorted(seen & (set(split["val"]) | set(split["test"])))
    if leaked:
        raise SystemExit(
            f"--init-from {donor}: {len(leaked)} of its training images are in this run's validation or test "
            f"part (e.g. {leaked[0]}): use its split (drop --split)"
        )


def make_loaders(dataset, split: dict, args, device):
    labels = {sample.filename: sample.label for sample in dataset.samples}
    train_files = subset_files(split["train"], labels, args.subset, args.seed)
    if args.batch_size % distributed.world_size():
        raise DataError(
            f"--batch-size {args.batch_size} does not split evenly over {distributed.world_size()} processes"
        )
    loader_kwargs = {
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": args.workers > 0,
    }
    train_images = AugmentedImages(dataset, train_files, train_transform(args.image_size, args.augment), crop=args.crop)
    drop_last = len(train_images) > args.batch_size  # a last batch of 1 breaks BatchNorm; tiny sets keep theirs
    sampler = SeededShuffle(len(train_images), args.seed, args.batch_size, drop_last)
    train_loader = torch.utils.data.DataLoader(
        train_images,
        sampler=sampler,
        drop_last=drop_last,
        # its own generator for the workers' base seed, which would otherwise be drawn from the global RNG
        # that dropout uses, once per epoch or once per run depending on --workers, and break exact resumes
        generator=torch.Generator().manual_seed(args.seed),
        **{**loader_kwargs, "batch_size": args.batch_size // distributed.world_size()},
    )
    eval_loaders = {
        part: torch.utils.data.DataLoader(
            CarImages(dataset, split[part], eval_transform(args.image_size), crop=args.crop),
            **{**loader_kwargs, "persistent_workers": loader_kwargs["persistent_workers"] and part == "val"},
        )
        for part in ("val", "test")  # the test part is read once, at the end: no workers kept for it
    }
    return train_loader, sampler, eval_loaders


def main(args) -> dict | None:
    """Train one run; under torchrun every process trains, and the first one writes (returns the test report)."""
    device = distributed.setup(args.device)
    try:
        return _train(args, device)
    finally:
        distributed.teardown()


def _train(args, device: torch.device) -> dict | None:
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    writes = distributed.is_main()
    if args.lr_milestones is None:
        args.lr_milestones = sorted(
            {m for m in (round(args.epochs * 0.5), round(args.epochs * 0.75)) if 0 < m < args.epochs}
        )
    checkpoint_path = out / "checkpoint.pt"
    checkpoint = None
    if args.resume and checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        saved = checkpoint["args"]
        for key in ("image_size", "batch_size", "lr", "seed", "subset", "augment", "lr_schedule"):
            if saved[key] != getattr(args, key):
                raise SystemExit(f"--resume: {key} was {saved[key]!r} in this run, not {getattr(args, key)!r}")
    elif (out / "history.csv").exists() and not args.dry_run:
        raise SystemExit(f"{out} already holds a run: pass --resume to continue it, or choose another --output-dir")
    dataset = load_dataset(resolve_data_root(args.data))
    split_path = out / "split.json"
    if args.split:
        split = json.loads(Path(args.split).read_text())
    elif split_path.is_file() and checkpoint is not None:
        split = json.loads(split_path.read_text())
    elif args.init_from and (Path(args.init_from) / "split.json").is_file():
        split = json.loads((Path(args.init_from) / "split.json").read_text())
    else:
        split = make_split(dataset, seed=args.seed)
    if args.init_from:
        _check_warm_start_split(Path(args.init_from), split)
    if writes:
        save_json_atomic(split, split_path)

    taxonomy = Taxonomy.from_class_names(dataset.class_names)
    torch.manual_seed(args.seed)  # the heads' (and a 'none' backbone's) initial weights
    model = AutoSpecNet.from_taxonomy(taxonomy, image_size=args.image_size, dropout=args.dropout)
    if checkpoint is None and args.init_from:
        donor = AutoSpecNet.from_pretrained(args.init_from)
        if donor.taxonomy.class_names != taxonomy.class_names:
            raise SystemExit(f"--init-from {args.init_from}: its class names are not this dataset's")
        model.load_state_dict(donor.state_dict())
    elif checkpoint is None:
        try:
            init_backbone(model, args.backbone_init)
        except OSError as error:  # urllib's errors are OSErrors: offline, or the weights server unreachable
            raise SystemExit(
                f"Could not download torchvision's ImageNet weights for the backbone ({error}). Offline, pass "
                "--backbone-init PATH (a safetensors state dict of mobilenet_v2) or --backbone-init none."
            ) from None
    else:
        model.load_state_dict(checkpoint["model"])
    model.to(device, memory_format=torch.channels_last)
    trained = distributed.wrap(model, device)  # the same module alone; BatchNorm over the global batch under torchrun

    train_loader, sampler, eval_loaders = make_loaders(dataset, split, args, device)
    # The run's settings with the values derived from them, read back by the card, the grid and evaluation.
    args.train_images = sampler.size
    environment = {
        "hardware": runinfo.hardware(args.device),
        "processes": distributed.world_size(),
        "software": runinfo.software(),
        "git_commit": runinfo.git_commit(),
    }
    if writes:
        save_json_atomic({**vars(args), "argv": sys.argv, "environment": environment}, out / "args.json")
    max_batches = DRY_RUN_BATCHES if args.dry_run else None
    steps_per_epoch = min(len(train_loader), max_batches or len(train_loader))
    head_ids = {id(p) for p in model.head_parameters()}
    optimizer = torch.optim.SGD(
        [
            {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": args.lr},
            {"params": model.head_parameters(), "lr": args.lr * args.head_lr_mult},
        ],
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, args))

    start_epoch, best_val_acc, partial = 0, -1.0, None
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start_epoch, best_val_acc = checkpoint["epoch"] + 1, checkpoint["best_val_acc"]
        partial = checkpoint.get("partial")
        if writes:
            within = f", {partial['progress']['batches']} batches into epoch {start_epoch + 1}" if partial else ""
            print(f"Resuming {out} after epoch {start_epoch}{within} (best val acc {best_val_acc:.4f})")
    history = _read_history(out / "history.csv", start_epoch)

    def checkpoint_state(epochs_done: int, partial_epoch: dict | None = None) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "epoch": epochs_done - 1, "best_val_acc": best_val_acc, "args": vars(args),
                "partial": partial_epoch}  # fmt: skip

    for epoch in range(start_epoch, args.epochs):
        started = time.time()
        torch.manual_seed(args.seed * 100_003 + epoch)
        lr, resume = optimizer.param_groups[0]["lr"], None
        if partial is not None:  # continue the epoch where its mid-epoch checkpoint left it
            lr, progress = partial["lr"], partial["progress"]
            resume = (
                EpochProgress(**progress) if writes else EpochProgress(progress["batches"], seconds=progress["seconds"])
            )
            torch.set_rng_state(partial["rng"])  # dropout's random numbers go on as they would have
            if partial.get("cuda_rng") is not None and device.type == "cuda":
                torch.cuda.set_rng_state(partial["cuda_rng"], device)
            partial = None
        sampler.set_epoch(epoch, resume.batches if resume else 0)

        def save_within_epoch(progress: EpochProgress, epoch=epoch, lr=lr) -> None:
            if writes:
                cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
                state = checkpoint_state(
                    epoch,
                    {"lr": lr, "progress": progress.state_dict(), "rng": torch.get_rng_state(), "cuda_rng": cuda_rng},
                )
                write_atomic(checkpoint_path, lambda tmp: torch.save(state, tmp))

        train_stats = train_one_epoch(
            trained, train_loader, optimizer, scheduler, device, epoch, args, max_batches, resume=resume,
            on_checkpoint=save_within_epoch, checkpoint_seconds=60 * args.checkpoint_minutes,
        )  # fmt: skip
        started -= resume.seconds if resume else 0.0  # the epoch's time before the restart counts too
        train_seconds = time.time() - started
        if writes:  # validation, history and checkpoints: the first process alone, while the others wait
            val_stats = evaluate(
                model, eval_loaders["val"], device, args, desc=f"epoch {epoch + 1} val", max_batches=max_batches
            )
            history.append(history_row(epoch, lr, train_stats, val_stats, time.time() - started, train_seconds))
            save_csv_atomic(history, out / "history.csv")
            if val_stats["model"]["acc"] > best_val_acc:
                best_val_acc = val_stats["model"]["acc"]
                _save_model_atomic(model, out / "best", split_path)
            state = checkpoint_state(epoch + 1)
            write_atomic(checkpoint_path, lambda tmp, state=state: torch.save(state, tmp))
            print(
                f"epoch {epoch + 1}/{args.epochs}: loss {train_stats['loss']:.3f} train acc {train_stats['model']['acc']:.4f} "
                f"| val acc {val_stats['model']['acc']:.4f} year {val_stats['year']['acc']:.4f} make {val_stats['make']['acc']:.4f} "
                f"type {val_stats['type']['acc']:.4f} | {time.time() - started:.0f} s",
                flush=True,
            )
        distributed.barrier()

    if not writes:
        return None
    best = AutoSpecNet.from_pretrained(out / "best").to(device, memory_format=torch.channels_last)
    test_stats = evaluate(best, eval_loaders["test"], device, desc="test", max_batches=max_batches)
    report = evaluation_report("test", test_stats)
    save_json_atomic(report, out / "test_metrics.json")
    print("test (best model on validation): " + ", ".join(f"{h} {report['heads'][h]['accuracy']:.4f}" for h in HEADS))
    return report


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except DataError as error:
        sys.exit(f"error: {error}")
