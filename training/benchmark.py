"""Training throughput: our full step (data pipeline, four heads, multi-task loss) against a bare
torchvision MobileNetV2 step on ready-made tensors, at the same image size, batch and threads.

    python -m training.benchmark --data ../shared/data/stanford-cars-train --image-size 224 --batch-size 32
    python -m training.benchmark --data ../shared/data/stanford-cars-train --image-size 400 --amp   # bfloat16

Prints images per second of both and their ratio (goal: ours >= 0.9 x bare, i.e. the data
pipeline and the extra heads are not the bottleneck). A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F
from torchvision.models import mobilenet_v2

from autospecnet.labels import Taxonomy
from autospecnet.model import AutoSpecNet
from training import runinfo
from training.data import DATA_ENV, load_dataset, make_loaders, make_split, resolve_data_root
from training.engine import PAPER_LOSS, multitask_loss
from training.train import get_args_parser as train_args_parser


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Images per second of the training step, ours against bare MobileNetV2")
    p.add_argument("--data", default=None, help=f"dataset folder (None: ${DATA_ENV})")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=12, help="timed steps after --warmup")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--amp", action="store_true", help="both steps under bfloat16 autocast, as training.train --amp")
    return p


def timed_steps(step, batches, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step(next(batches))
    started = time.perf_counter()
    for _ in range(steps):
        step(next(batches))
    return time.perf_counter() - started


def main(args) -> None:
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    dataset = load_dataset(resolve_data_root(args.data))
    settings = {"--image-size": args.image_size, "--batch-size": args.batch_size, "--workers": args.workers}
    argv = ["--output-dir", "unused", "--augment", "paper", *(str(x) for item in settings.items() for x in item)]
    train_args = train_args_parser().parse_args(argv)
    loader, _, _ = make_loaders(dataset, make_split(dataset), train_args, torch.device("cpu"))

    model = AutoSpecNet.from_taxonomy(Taxonomy.from_class_names(dataset.class_names), args.image_size)
    model.train().to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp)

    def ours(batch):
        images, targets, _ = batch
        with autocast():
            loss = multitask_loss(model(images.to(memory_format=memory_format)), targets, model, PAPER_LOSS)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    classes = len(dataset.class_names)
    bare = mobilenet_v2(num_classes=classes).train().to(memory_format=memory_format)
    bare_optimizer = torch.optim.SGD(bare.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    tensors = torch.randn(args.batch_size, 3, args.image_size, args.image_size).to(memory_format=memory_format)
    labels = torch.randint(0, classes, (args.batch_size,))

    def bare_step(_):
        with autocast():
            loss = F.cross_entropy(bare(tensors), labels)
        bare_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        bare_optimizer.step()

    def forever():
        while True:
            yield from loader

    ours_seconds = timed_steps(ours, forever(), args.warmup, args.steps)
    bare_seconds = timed_steps(bare_step, iter(int, 1), args.warmup, args.steps)
    images = args.steps * args.batch_size
    ours_rate, bare_rate = images / ours_seconds, images / bare_seconds
    print(f"machine: {runinfo.hardware()}; {runinfo.software()}")
    print(
        f"settings: {args.image_size} px, batch {args.batch_size}, {args.workers} workers, "
        f"channels_last={args.channels_last}, bfloat16 autocast={args.amp}, {args.steps} timed steps after {args.warmup}"
    )
    print(f"bare torchvision MobileNetV2 step (tensors ready): {bare_rate:6.1f} img/s")
    print(f"AutoSpecNet step (JPEG decode, transforms, 4 heads): {ours_rate:6.1f} img/s")
    print(f"ratio: {ours_rate / bare_rate:.2f} (goal >= 0.90)")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
