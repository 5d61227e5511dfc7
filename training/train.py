"""Train AutoSpecNet on Stanford Cars: the paper's recipe by default, every change an explicit flag.

    # the paper's recipe (SGD 0.01, momentum 0.9, wd 1e-4, 224 px, batch 32), 40 epochs, lr /10 at 20 and 30:
    python -m training.train --data ../shared/data/stanford-cars-train --output-dir runs/paper
    # offline backbone weights, and a run that was killed continues where it stopped:
    python -m training.train --data ... --output-dir runs/paper \
        --backbone-init ../shared/weights/mobilenet_v2_imagenet.safetensors --resume
    # a warm start: a trained model's weights, fine-tuned at a larger input size on its own split
    python -m training.train --data ... --output-dir runs/bundled-400 --init-from assets/model --image-size 400 ...
    # distillation: what two trained models answer, learnt by one (training.distill)
    python -m training.train --data ... --output-dir runs/distilled --init-from assets/model --image-size 400 \
        --teacher assets/model --teacher runs/other-400/best --distill-weight 0.5 ...
    # the whole pipeline on a few batches, in seconds:
    python -m training.train --data ... --output-dir /tmp/dry --dry-run

A run folder holds ``training_args.json``, ``split.json`` (file names of each part),
``history.csv`` (one row an epoch, written as it goes), ``checkpoint.pt`` (for ``--resume``:
the last complete epoch, and every ``--checkpoint-minutes`` within an epoch, so that a kill
costs minutes, not an epoch), ``best/`` (the best model on **validation**,
``save_pretrained`` format) and ``test_metrics.json`` (that model on the test part,
evaluated once at the end). Files are written atomically: a kill at any moment
leaves the last complete epoch, and ``--resume`` reproduces an uninterrupted run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from autospecnet.heads import HEADS
from autospecnet.labels import Taxonomy, read_class_names
from autospecnet.model import PAPER_DROPOUT, AutoSpecNet
from autospecnet.records import history as history_file
from autospecnet.records import split as split_file
from autospecnet.records import training_args as training_args_file
from autospecnet.records.atomic import replace_folder_atomic
from autospecnet.records.split import Split
from autospecnet.records.test_metrics import PartMetrics
from autospecnet.records.training_args import TrainingArgs
from training import checkpoint, distributed, runinfo
from training.backbone import BACKBONE_INIT_HELP, init_backbone
from training.data import (
    DATA_ENV,
    DataError,
    epoch_seed,
    load_dataset,
    make_loaders,
    make_split,
    resolve_data_root,
    restrict_classes,
)
from training.distill import Teachers
from training.engine import PAPER_LOSS, EpochProgress, LossWeights, evaluate, train_one_epoch
from training.mixing import batch_mixer

DRY_RUN_BATCHES = 2
# Settings that say where and how a run ran, not what it trained: left out of the recipe (model card, metadata).
NOT_RECIPE = {"data", "output_dir", "resume", "dry_run", "workers", "device", "split_file", "checkpoint_minutes"}
# Settings a resumed run must share with the run it continues.
RESUME_KEYS = (
    "image_size",
    "batch_size",
    "lr",
    "seed",
    "subset",
    "augment",
    "lr_schedule",
    "ema_epochs",
    "cutmix_alpha",
    "mixup_alpha",
    "teacher",
    "distill_weight",
    "distill_temperature",
)


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
    p.add_argument(
        "--ema-epochs",
        type=float,
        default=0.0,
        help="keep an exponential moving average of the weights (BatchNorm statistics included) over about this "
        "many epochs, updated every step; validation, best/ and the test part then measure the average (0: off)",
    )
    p.add_argument("--label-smoothing", type=float, default=PAPER_LOSS.label_smoothing, help="of every head's CE")
    p.add_argument(
        "--augment",
        choices=("paper", "strong"),
        default="paper",
        help="paper: resize + horizontal flip; strong: also random resized crop and colour jitter",
    )
    p.add_argument("--cutmix-alpha", type=float, default=0.0, help="CutMix's Beta(alpha, alpha) (0: off)")
    p.add_argument("--mixup-alpha", type=float, default=0.0, help="MixUp's Beta(alpha, alpha) (0: off)")
    for head, title in (("year", "year"), ("make", "make"), ("type", "body-type")):
        default = getattr(PAPER_LOSS, f"lambda_{head}")
        p.add_argument(f"--lambda-{head}", type=float, default=default, help=f"weight of the {title} loss (the paper)")
    p.add_argument("--dropout", type=float, default=PAPER_DROPOUT, help="dropout before each head (the paper)")
    p.add_argument("--seed", type=int, default=0, help="seeds the split, the shuffling, augmentation and dropout")
    p.add_argument("--split-file", default=None, help="reuse a split.json instead of making one from --seed")
    p.add_argument(
        "--classes",
        default=None,
        help="train on these classes only: a text file of class names, one a line (the open-set protocol's known "
        "classes); the split is the whole dataset's, restricted to their images",
    )
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
    p.add_argument(
        "--teacher",
        action="append",
        default=None,
        metavar="FOLDER",
        help="distil from this trained model folder as well as the labels (repeat for an ensemble; each on this "
        "run's split and --image-size): training.distill",
    )
    p.add_argument("--distill-weight", type=float, default=0.5, help="with --teacher: the teachers' share of the loss")
    p.add_argument("--distill-temperature", type=float, default=1.0, help="with --teacher: the softmax temperature")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader worker processes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--amp",
        action="store_true",
        help="bfloat16 autocast: GPUs, and CPUs with AVX512-BF16 or AMX (weights stay float32)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=5.0,
        help="also checkpoint within an epoch this often (0: at the end of each epoch only)",
    )
    p.add_argument("--dry-run", action="store_true", help=f"{DRY_RUN_BATCHES} batches per part and epoch")
    return p


def recipe(settings: dict) -> dict:
    """What makes a run's model what it is: every setting of ``get_args_parser`` but where and how it ran."""
    names = [a.dest for a in get_args_parser(add_help=False)._actions if a.option_strings]
    return {name: settings.get(name) for name in names if name not in NOT_RECIPE and name in settings}


def lr_factor(step: int, steps_per_epoch: int, args) -> float:
    epoch = step / steps_per_epoch
    if args.warmup_epochs and epoch < args.warmup_epochs:
        return (step + 1) / (args.warmup_epochs * steps_per_epoch)
    if args.lr_schedule == "cosine":
        progress = (epoch - args.warmup_epochs) / max(1e-8, args.epochs - args.warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 0.1 ** sum(epoch >= m for m in args.lr_milestones)


def open_run(args) -> dict | None:
    """Fill in derived settings, make the run folder, and read its checkpoint when resuming (None: a new run)."""
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.lr_milestones is None:
        args.lr_milestones = sorted(
            {m for m in (round(args.epochs * 0.5), round(args.epochs * 0.75)) if 0 < m < args.epochs}
        )
    state = checkpoint.load(out) if args.resume else None
    if state is not None:
        defaults = get_args_parser(add_help=False)
        for key in RESUME_KEYS:
            recorded = state["args"].get(key, defaults.get_default(key))  # checkpoints older than the setting
            if recorded != getattr(args, key):
                raise SystemExit(f"--resume: {key} was {recorded!r} in this run, not {getattr(args, key)!r}")
    elif (out / history_file.FILE).exists() and not args.dry_run:
        raise SystemExit(f"{out} already holds a run: pass --resume to continue it, or choose another --output-dir")
    return state


def choose_split(args, dataset, resumed: bool) -> Split:
    """The run's own split when resuming; else --split-file, the warm start's split, or a new one from --seed."""
    out = Path(args.output_dir)
    if args.split_file:
        split = Split.load_file(Path(args.split_file))
    elif resumed and (out / split_file.FILE).is_file():
        split = Split.load(out)
    elif args.init_from and (Path(args.init_from) / split_file.FILE).is_file():
        split = Split.load(Path(args.init_from))
    else:
        split = make_split(dataset, seed=args.seed)
    if args.init_from:
        check_donor_split(Path(args.init_from), split)
    return split


def check_donor_split(donor: Path, split: Split, flag: str = "--init-from") -> None:
    """A model that a run learns from (a warm start, a teacher) must not have trained on its validation or
    test images."""
    if not (donor / split_file.FILE).is_file():
        raise SystemExit(f"{flag} {donor}: no {split_file.FILE}, so its training images are unknown")
    leaked = sorted(set(Split.load(donor)["train"]) & (set(split["val"]) | set(split["test"])))
    if leaked:
        raise SystemExit(
            f"{flag} {donor}: {len(leaked)} of its training images are in this run's validation or test "
            f"part (e.g. {leaked[0]}): use its split (drop --split-file)"
        )


def load_teachers(args, taxonomy: Taxonomy, split: Split) -> Teachers | None:
    """The --teacher models, checked: this run's classes, input size, and no validation or test image trained on."""
    if not args.teacher:
        return None
    models = []
    for folder in args.teacher:
        try:
            model = AutoSpecNet.from_pretrained(folder)
        except (OSError, ValueError) as error:
            raise SystemExit(f"--teacher {folder}: not a model folder ({error})") from None
        if model.taxonomy.class_names != taxonomy.class_names:
            raise SystemExit(f"--teacher {folder}: its class names are not this dataset's")
        if model.image_size != args.image_size:
            raise SystemExit(f"--teacher {folder}: trained at {model.image_size} px, this run at {args.image_size}")
        check_donor_split(Path(folder), split, "--teacher")
        models.append(model)
    return Teachers(models, args.distill_temperature)


def model_record(donor: Path) -> dict:
    """How a model a run learns from (its warm start, a teacher) was trained (its own record, epochs and hours),
    for the run's record: a model folder holds them; a run's ``best/`` has them in the run folder above it."""
    if not (donor / training_args_file.FILE).is_file() and (donor.parent / training_args_file.FILE).is_file():
        donor = donor.parent
    rows = history_file.read_rows(donor / history_file.FILE)
    return {
        "training_args": TrainingArgs.read(donor).to_dict(),
        "epochs_run": len(rows),
        "hours": history_file.seconds(rows) / 3600,
    }


def build_model(args, taxonomy: Taxonomy, state: dict | None) -> AutoSpecNet:
    torch.manual_seed(args.seed)  # the heads' (and a 'none' backbone's) initial weights
    model = AutoSpecNet.from_taxonomy(taxonomy, image_size=args.image_size, dropout=args.dropout)
    if state is not None:
        model.load_state_dict(state["model"])
    elif args.init_from:
        donor = AutoSpecNet.from_pretrained(args.init_from)
        if donor.taxonomy.class_names != taxonomy.class_names:
            raise SystemExit(f"--init-from {args.init_from}: its class names are not this dataset's")
        model.load_state_dict(donor.state_dict())
    else:
        try:
            init_backbone(model, args.backbone_init)
        except OSError as error:  # urllib's errors are OSErrors: offline, or the weights server unreachable
            raise SystemExit(
                f"Could not download torchvision's ImageNet weights for the backbone ({error}). Offline, pass "
                "--backbone-init PATH (a safetensors state dict of mobilenet_v2) or --backbone-init none."
            ) from None
    return model


def save_best(model: AutoSpecNet, run_folder: Path) -> None:
    """``best/``: the model in ``save_pretrained`` format, with the split it was trained on."""

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        Split.load(run_folder).save(tmp)

    replace_folder_atomic(run_folder / "best", fill)


class Trainer:
    """One run's state between epochs: what a checkpoint saves and ``--resume`` restores."""

    def __init__(
        self, args, device: torch.device, model: AutoSpecNet, loaders, state: dict | None, teachers: Teachers | None
    ):
        self.args, self.device, self.model = args, device, model
        self.teachers = teachers
        self.out = Path(args.output_dir)
        self.writes = distributed.is_main()
        self.trained = distributed.wrap(model, device)  # BatchNorm over the global batch under torchrun
        self.train_loader, self.sampler, self.eval_loaders = loaders
        self.max_batches = DRY_RUN_BATCHES if args.dry_run else None
        steps_per_epoch = min(len(self.train_loader), self.max_batches or len(self.train_loader))
        head_ids = {id(p) for p in model.head_parameters()}
        self.optimizer = torch.optim.SGD(
            [
                {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": args.lr},
                {"params": model.head_parameters(), "lr": args.lr * args.head_lr_mult},
            ],
            lr=args.lr,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, steps_per_epoch, args)
        )
        self.mix = batch_mixer(args, len(model.vocabularies["model"]))
        self.average = None  # the moving average of the weights, with --ema-epochs
        if args.ema_epochs > 0:
            decay = max(0.0, 1.0 - 1.0 / (args.ema_epochs * steps_per_epoch))
            self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.start_epoch, self.best_val_accuracy, self.partial = 0, -1.0, None
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.average is not None:
                self.average.load_state_dict(state["average"])
            self.start_epoch, self.best_val_accuracy = state["epoch"] + 1, state["best_val_accuracy"]
            self.partial = state.get("partial")
            if self.writes:
                print(f"Resuming {self.out}: {checkpoint.where(state)}")
        recorded = history_file.read_rows(self.out / history_file.FILE)
        self.history = [row for row in recorded if int(row["epoch"]) <= self.start_epoch]

    def state(self, epochs_done: int, partial: dict | None = None) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "average": None if self.average is None else self.average.state_dict(),
            "epoch": epochs_done - 1,
            "best_val_accuracy": self.best_val_accuracy,
            "args": vars(self.args),
            "partial": partial,
        }

    def _resume_within_epoch(self) -> tuple[float | None, EpochProgress | None]:
        """(lr, progress) of an epoch that a mid-epoch checkpoint left half done; (None, None) otherwise."""
        if self.partial is None:
            return None, None
        partial, self.partial = self.partial, None
        progress = partial["progress"]
        if self.writes:  # the first process holds the epoch's sums and metrics; the others only how far it came
            resume = EpochProgress(**progress)
        else:
            resume = EpochProgress(progress["batches"], seconds=progress["seconds"])
        torch.set_rng_state(partial["rng"])  # dropout's random numbers go on as they would have
        if partial.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(partial["cuda_rng"], self.device)
        return partial["lr"], resume

    def run_epoch(self, epoch: int) -> None:
        started = time.time()
        torch.manual_seed(epoch_seed(self.args.seed, epoch))
        lr, resume = self._resume_within_epoch()
        lr = self.optimizer.param_groups[0]["lr"] if lr is None else lr
        self.sampler.set_epoch(epoch, resume.batches if resume else 0)

        def save_within_epoch(progress: EpochProgress) -> None:
            if self.writes:
                cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
                rng = torch.get_rng_state()
                within = {"lr": lr, "progress": progress.state_dict(), "rng": rng, "cuda_rng": cuda_rng}
                checkpoint.save(self.state(epoch, within), self.out)

        train_stats = train_one_epoch(
            self.trained,
            self.train_loader,
            self.optimizer,
            self.scheduler,
            self.device,
            epoch,
            self.args,
            self.max_batches,
            resume=resume,
            mix=self.mix,
            average=self.average,
            on_checkpoint=save_within_epoch,
            checkpoint_seconds=60 * self.args.checkpoint_minutes,
            teachers=self.teachers,
        )
        started -= resume.seconds if resume else 0.0  # the epoch's time before the restart counts too
        if self.writes:  # validation, history and checkpoints: the first process alone, while the others wait
            self._validate_and_record(epoch, lr, train_stats, started, train_seconds=time.time() - started)
        distributed.barrier()

    @property
    def kept(self) -> AutoSpecNet:
        """The model that validation measures and ``best/`` keeps: the weights' average with --ema-epochs."""
        return self.model if self.average is None else self.average.module

    def _validate_and_record(self, epoch: int, lr: float, train_stats: dict, started: float, train_seconds: float):
        val_stats = evaluate(
            self.kept,
            self.eval_loaders["val"],
            self.device,
            LossWeights.of(self.args),
            desc=f"epoch {epoch + 1} val",
            max_batches=self.max_batches,
            amp=self.args.amp,
        )
        seconds = time.time() - started
        self.history.append(history_file.row(epoch, lr, train_stats, val_stats, seconds, train_seconds))
        history_file.save_rows(self.history, self.out / history_file.FILE)
        if val_stats["model"]["accuracy"] > self.best_val_accuracy:
            self.best_val_accuracy = val_stats["model"]["accuracy"]
            save_best(self.kept, self.out)
        checkpoint.save(self.state(epoch + 1), self.out)
        heads = " ".join(f"{h} {val_stats[h]['accuracy']:.4f}" for h in HEADS if h != "model")
        train_accuracy, val_accuracy = train_stats["model"]["accuracy"], val_stats["model"]["accuracy"]
        print(
            f"epoch {epoch + 1}/{self.args.epochs}: loss {train_stats['loss']:.3f} train accuracy {train_accuracy:.4f} "
            f"| val accuracy {val_accuracy:.4f} {heads} | {seconds:.0f} s",
            flush=True,
        )

    def test_best(self) -> PartMetrics:
        """The best model on validation, measured once on the test part."""
        best = AutoSpecNet.from_pretrained(self.out / "best").to(self.device, memory_format=torch.channels_last)
        stats = evaluate(best, self.eval_loaders["test"], self.device, desc="test", max_batches=self.max_batches)
        return PartMetrics.from_stats("test", stats)


def main(args) -> PartMetrics | None:
    """Train one run; under torchrun every process trains, and the first one writes (returns the test metrics)."""
    device = distributed.setup(args.device)
    try:
        return train(args, device)
    finally:
        distributed.teardown()


def train(args, device: torch.device) -> PartMetrics | None:
    state = open_run(args)
    out = Path(args.output_dir)
    dataset = load_dataset(resolve_data_root(args.data))
    split = choose_split(args, dataset, resumed=state is not None)
    if args.classes:  # the whole dataset's split, restricted: the same images in each part as any other run's
        dataset = restrict_classes(dataset, read_class_names(args.classes))
        kept = {s.filename for s in dataset.samples}
        split = split.restricted(kept.__contains__)
    writes = distributed.is_main()
    if writes:
        split.save(out)
    taxonomy = Taxonomy.from_class_names(dataset.class_names)
    model = build_model(args, taxonomy, state)
    model.to(device, memory_format=torch.channels_last)
    teachers = load_teachers(args, taxonomy, split)
    if teachers is not None:
        teachers.to(device, memory_format=torch.channels_last)
    loaders = make_loaders(dataset, split, args, device)
    args.train_images = loaders[1].size  # derived values are recorded with the settings
    if writes:
        environment = {
            "hardware": runinfo.hardware(args.device),
            "processes": distributed.world_size(),
            "software": runinfo.software(),
            "git_commit": runinfo.git_commit(),
        }
        # on --resume the donor and teacher folders may hold other models by now: keep what was recorded
        recorded = TrainingArgs.read(out) if state is not None else TrainingArgs({})
        warm_start = (recorded.warm_start or model_record(Path(args.init_from))) if args.init_from else None
        teachers_record = (recorded.teachers or [model_record(Path(t)) for t in args.teacher]) if args.teacher else None
        TrainingArgs(vars(args), sys.argv, environment, warm_start, teachers_record).save(out)
    trainer = Trainer(args, device, model, loaders, state, teachers)
    for epoch in range(trainer.start_epoch, args.epochs):
        trainer.run_epoch(epoch)
    if not writes:
        return None
    metrics = trainer.test_best()
    metrics.save(out)
    print("test (best model on validation): " + ", ".join(f"{h} {metrics.heads[h].accuracy:.4f}" for h in HEADS))
    return metrics


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except DataError as error:
        sys.exit(f"error: {error}")
