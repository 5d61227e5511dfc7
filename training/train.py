"""Train AutoSpecNet on Stanford Cars: the paper's recipe by default, every change an explicit flag.

    # the paper's recipe (SGD 0.01, momentum 0.9, wd 1e-4, 224 px, batch 32), 40 epochs, lr /10 at 20 and 30:
    python -m training.train --data ../shared/data/stanford-cars-train --output-dir runs/paper
    # offline backbone weights, and a run that was killed continues where it stopped:
    python -m training.train --data ... --output-dir runs/paper --backbone-init ../shared/weights/mobilenet_v2_imagenet.safetensors --resume
    # the whole pipeline on a few batches, in seconds:
    python -m training.train --data ... --output-dir /tmp/dry --dry-run

A run folder holds ``args.json``, ``split.json`` (file names of each part),
``history.csv`` (one row an epoch, written as it goes), ``checkpoint.pt`` (last
complete epoch, for ``--resume``), ``best/`` (the best model on **validation**,
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
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from autospecnet.heads import HEADS, METRICS, history_column
from autospecnet.labels import Taxonomy
from autospecnet.model import BACKBONE_INIT_HELP, AutoSpecNet, init_backbone
from training import runinfo
from training.atomic import save_json_atomic
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
from training.metrics import HeadMetrics

DRY_RUN_BATCHES = 2


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train AutoSpecNet (multi-task MobileNetV2) on Stanford Cars", add_help=add_help
    )
    p.add_argument("--data", default=None, help=f"dataset folder (default: ${DATA_ENV})")
    p.add_argument("--output-dir", required=True, help="run folder: history, checkpoint, best model, split")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=0.01, help="backbone learning rate (the paper: 0.01 for all)")
    p.add_argument("--head-lr-mult", type=float, default=1.0, help="learning rate of the four heads = lr x this")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--lr-schedule", choices=("step", "cosine"), default="step")
    p.add_argument(
        "--lr-milestones",
        type=int,
        nargs="*",
        default=None,
        help="epochs at which 'step' divides the lr by 10 (default: 50%% and 75%% of --epochs, e.g. 20 30 for 40; "
        "the paper's code used 100 150, which never fire in 40 epochs)",
    )
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="linear lr warm-up (fractions allowed)")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument(
        "--augment",
        choices=("paper", "strong"),
        default="paper",
        help="paper: resize + horizontal flip; strong: also random resized crop and colour jitter",
    )
    p.add_argument("--lambda-year", type=float, default=0.1)
    p.add_argument("--lambda-make", type=float, default=0.1)
    p.add_argument("--lambda-type", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0, help="seeds the split, the shuffling, augmentation and dropout")
    p.add_argument("--split", default=None, help="reuse a split.json instead of making one from --seed")
    p.add_argument("--subset", type=float, default=1.0, help="fraction of the training part to use (reduced budgets)")
    p.add_argument("--crop", action="store_true", help="official layout: crop images to their bounding boxes")
    p.add_argument("--backbone-init", default="imagenet", help=BACKBONE_INIT_HELP)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (GPU)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last complete epoch")
    p.add_argument("--dry-run", action="store_true", help=f"{DRY_RUN_BATCHES} batches per part and epoch")
    return p


class SeededShuffle(torch.utils.data.Sampler):
    """Shuffles per epoch and hands each item its own augmentation seed, so that a resumed
    run sees exactly the batches and augmentations of an uninterrupted one, whatever the workers."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        item_seeds = torch.randint(0, 2**62, (self.size,), generator=generator).tolist()
        return iter(zip(item_seeds, order, strict=True))


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


def multitask_loss(logits: dict, targets: torch.Tensor, class_to_heads: torch.Tensor, args) -> torch.Tensor:
    head_targets = class_to_heads[targets]
    loss = F.cross_entropy(logits["model"], targets, label_smoothing=args.label_smoothing)
    for column, (head, weight) in enumerate(
        (("year", args.lambda_year), ("make", args.lambda_make), ("type", args.lambda_type))
    ):
        loss = loss + weight * F.cross_entropy(
            logits[head], head_targets[:, column], label_smoothing=args.label_smoothing
        )
    return loss


def _new_head_metrics(model: AutoSpecNet) -> dict[str, HeadMetrics]:
    return {head: HeadMetrics(len(labels)) for head, labels in model.vocabularies.items()}


def _update_head_metrics(metrics, logits, targets, class_to_heads) -> None:
    head_targets = class_to_heads[targets]
    metrics["model"].update(logits["model"], targets)
    for column, head in enumerate(("year", "make", "type")):
        metrics[head].update(logits[head], head_targets[:, column])


def _to_device(images, targets, device):
    return images.to(device, non_blocking=True, memory_format=torch.channels_last), targets.to(
        device, non_blocking=True
    )


def _batches(loader, device, desc: str, max_batches: int | None):
    """(progress bar, iterator of (images, targets) on ``device``), at most ``max_batches`` of them."""
    total = min(len(loader), max_batches or len(loader))
    progress = tqdm(loader, desc=desc, total=total, leave=False, mininterval=1 if sys.stderr.isatty() else 30)

    def batches():
        for batch, (images, targets, _) in enumerate(progress):
            if batch >= total:
                break
            yield _to_device(images, targets, device)

    return progress, batches()


def train_one_epoch(model, loader, optimizer, scheduler, device, epoch, args, max_batches=None) -> dict:
    model.train()
    metrics = _new_head_metrics(model)
    total_loss, seen = 0.0, 0
    progress, batches = _batches(loader, device, f"epoch {epoch + 1}/{args.epochs} train", max_batches)
    for images, targets in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            logits = model(images)
            loss = multitask_loss(logits, targets, model.class_to_heads, args)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(targets)
        seen += len(targets)
        _update_head_metrics(metrics, logits, targets, model.class_to_heads)
        progress.set_postfix(
            loss=f"{total_loss / seen:.3f}",
            acc=f"{metrics['model'].accuracy():.3f}",
            lr=f"{optimizer.param_groups[0]['lr']:.2g}",
        )
    return {"loss": total_loss / max(1, seen), **{h: m.compute() for h, m in metrics.items()}}


@torch.inference_mode()
def evaluate(model, loader, device, args=None, desc="eval", max_batches=None) -> dict:
    """Loss and per-head metrics of ``model`` on ``loader``; the loss uses the paper's weights unless args say else."""
    model.eval()
    weights = args or argparse.Namespace(
        lambda_year=0.1, lambda_make=0.1, lambda_type=0.1, label_smoothing=0.0, amp=False
    )
    metrics = _new_head_metrics(model)
    total_loss, seen = 0.0, 0
    for images, targets in _batches(loader, device, desc, max_batches)[1]:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=weights.amp):
            logits = model(images)
            total_loss += multitask_loss(logits, targets, model.class_to_heads, weights).item() * len(targets)
        seen += len(targets)
        # Metrics of the probabilities users see: calibrated and mixed as the model's config says.
        _update_head_metrics(metrics, model.log_probabilities(logits), targets, model.class_to_heads)
    return {"loss": total_loss / max(1, seen), "images": seen, **{h: m.compute() for h, m in metrics.items()}}


def history_row(epoch: int, lr: float, train: dict, val: dict, seconds: float, train_seconds: float) -> dict:
    """Columns as in the paper's code (train_acc, train_year_acc, ...) plus precision, recall and time
    (``epoch_time``: training and validation; ``train_time``: training alone)."""
    row = {"epoch": epoch + 1, "lr": lr}
    for prefix, stats in (("train", train), ("val", val)):
        row[f"{prefix}_loss"] = stats["loss"]
        for metric in METRICS:
            for head in HEADS:
                row[history_column(prefix, head, metric)] = stats[head][metric]
        row[f"{prefix}_top5"] = stats["model"]["top5"]
    row["epoch_time"] = seconds
    row["train_time"] = train_seconds
    return row


def evaluation_report(split: str, stats: dict) -> dict:
    """The stable JSON that ``python -m training.evaluate --json`` prints."""
    heads = {}
    for head in HEADS:
        m = stats[head]
        heads[head] = {"accuracy": m["acc"], "top5": m["top5"], "precision": m["precision"], "recall": m["recall"]}
    return {"split": split, "images": stats["images"], "heads": heads}


def _write_history(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _read_history(path: Path, epochs_done: int) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["epoch"]) <= epochs_done]


def _save_model_atomic(model: AutoSpecNet, folder: Path, split_path: Path) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.copy(split_path, tmp / "split.json")  # a model folder names the images it was trained and tested on
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def _save_checkpoint(state: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def make_loaders(dataset, split: dict, args, device):
    labels = {sample.filename: sample.label for sample in dataset.samples}
    train_files = subset_files(split["train"], labels, args.subset, args.seed)
    loader_kwargs = {
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": args.workers > 0,
    }
    train_images = AugmentedImages(dataset, train_files, train_transform(args.image_size, args.augment), crop=args.crop)
    sampler = SeededShuffle(len(train_images), args.seed)
    drop_last = len(train_images) > args.batch_size  # a last batch of 1 breaks BatchNorm; tiny sets keep theirs
    train_loader = torch.utils.data.DataLoader(train_images, sampler=sampler, drop_last=drop_last, **loader_kwargs)
    eval_loaders = {
        part: torch.utils.data.DataLoader(
            CarImages(dataset, split[part], eval_transform(args.image_size), crop=args.crop),
            **{**loader_kwargs, "persistent_workers": loader_kwargs["persistent_workers"] and part == "val"},
        )
        for part in ("val", "test")  # the test part is read once, at the end: no workers kept for it
    }
    return train_loader, sampler, eval_loaders


def main(args) -> dict:
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
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
    else:
        split = make_split(dataset, seed=args.seed)
    save_json_atomic(split, split_path)

    taxonomy = Taxonomy.from_class_names(dataset.class_names)
    torch.manual_seed(args.seed)  # the heads' (and a 'none' backbone's) initial weights
    model = AutoSpecNet.from_taxonomy(taxonomy, image_size=args.image_size, dropout=args.dropout)
    if checkpoint is None:
        try:
            init_backbone(model, args.backbone_init)
        except OSError as error:  # urllib's errors are OSErrors: offline, or the weights server unreachable
            raise SystemExit(
                f"Could not download torchvision's ImageNet weights for the backbone ({error}). Offline, pass "
                "--backbone-init PATH (a safetensors state dict of mobilenet_v2) or --backbone-init none."
            ) from None
    model.to(device, memory_format=torch.channels_last)

    train_loader, sampler, eval_loaders = make_loaders(dataset, split, args, device)
    # The run's settings with the values derived from them, read back by the card, the grid and evaluation.
    args.train_images = len(train_loader.dataset)
    environment = {
        "hardware": runinfo.hardware(args.device),
        "software": runinfo.software(),
        "git_commit": runinfo.git_commit(),
    }
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

    start_epoch, best_val_acc = 0, -1.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start_epoch, best_val_acc = checkpoint["epoch"] + 1, checkpoint["best_val_acc"]
        print(f"Resuming {out} after epoch {start_epoch} (best val acc {best_val_acc:.4f})")
    history = _read_history(out / "history.csv", start_epoch)

    for epoch in range(start_epoch, args.epochs):
        started = time.time()
        torch.manual_seed(args.seed * 100_003 + epoch)
        sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        train_stats = train_one_epoch(model, train_loader, optimizer, scheduler, device, epoch, args, max_batches)
        train_seconds = time.time() - started
        val_stats = evaluate(
            model, eval_loaders["val"], device, args, desc=f"epoch {epoch + 1} val", max_batches=max_batches
        )
        history.append(history_row(epoch, lr, train_stats, val_stats, time.time() - started, train_seconds))
        _write_history(history, out / "history.csv")
        if val_stats["model"]["acc"] > best_val_acc:
            best_val_acc = val_stats["model"]["acc"]
            _save_model_atomic(model, out / "best", split_path)
        _save_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "best_val_acc": best_val_acc,
                "args": vars(args),
            },
            checkpoint_path,
        )
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {train_stats['loss']:.3f} train acc {train_stats['model']['acc']:.4f} "
            f"| val acc {val_stats['model']['acc']:.4f} year {val_stats['year']['acc']:.4f} make {val_stats['make']['acc']:.4f} "
            f"type {val_stats['type']['acc']:.4f} | {time.time() - started:.0f} s",
            flush=True,
        )

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
