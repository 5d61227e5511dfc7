"""The training step, the evaluation loop and what they report: the core that train, evaluate,
calibrate and benchmark share (torchvision's references/classification calls it ``engine``).

Under ``torchrun`` each process trains on its share of every batch; the loss and the metrics of
an epoch are gathered from all of them (``training.distributed``), so that they describe the
whole batch as a single process would.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from autospecnet.model import AutoSpecNet
from training import distributed
from training.distill import distillation_loss
from training.metrics import HeadMetrics


@dataclass(frozen=True)
class LossWeights:
    """The multi-task loss: CE(196 classes) + lambda x CE for year, make and body type; the paper's by default."""

    lambda_year: float = 0.1
    lambda_make: float = 0.1
    lambda_type: float = 0.1
    label_smoothing: float = 0.0

    @classmethod
    def of(cls, settings) -> LossWeights:
        """The weights of a run's settings (an argparse namespace, or a mapping such as training_args.json's),
        the paper's for what they do not say."""
        get = settings.get if isinstance(settings, dict) else lambda key, default: getattr(settings, key, default)
        return cls(**{key: get(key, default) for key, default in asdict(cls()).items()})


PAPER_LOSS = LossWeights()


def multitask_loss(logits: dict, targets: torch.Tensor, model: AutoSpecNet, weights: LossWeights) -> torch.Tensor:
    head_targets = model.head_targets(targets)
    smoothing = weights.label_smoothing
    loss = F.cross_entropy(logits["model"], targets, label_smoothing=smoothing)
    for head, weight in (("year", weights.lambda_year), ("make", weights.lambda_make), ("type", weights.lambda_type)):
        loss = loss + weight * F.cross_entropy(logits[head], head_targets[head], label_smoothing=smoothing)
    return loss


def new_head_metrics(model: AutoSpecNet) -> dict[str, HeadMetrics]:
    return {head: HeadMetrics(len(labels)) for head, labels in model.vocabularies.items()}


def update_head_metrics(metrics: dict[str, HeadMetrics], logits: dict, targets: torch.Tensor, model) -> None:
    for head, head_targets in model.head_targets(targets).items():
        metrics[head].update(logits[head], head_targets)


def batches(loader, device, desc: str, max_batches: int | None):
    """(progress bar, iterator of (images, targets) on ``device``), at most ``max_batches`` of them."""
    total = min(len(loader), max_batches or len(loader))
    interval = 1 if sys.stderr.isatty() else 30
    progress = tqdm(
        loader, desc=desc, total=total, leave=False, mininterval=interval, disable=not distributed.is_main()
    )

    def on_device():
        for batch, (images, targets, _) in enumerate(progress):
            if batch >= total:
                break
            images = images.to(device, non_blocking=True, memory_format=torch.channels_last)
            yield images, targets.to(device, non_blocking=True)

    return progress, on_device()


@dataclass
class EpochProgress:
    """How far an epoch has come, over all processes: what a mid-epoch checkpoint saves and a resumed
    epoch continues from (the sampler skips the ``batches`` done, the sums and metrics go on)."""

    batches: int = 0
    loss_sum: float = 0.0
    seen: int = 0
    predictions: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # head -> top-k predictions
    targets: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    seconds: float = 0.0  # training time spent on the epoch before this process started

    def state_dict(self) -> dict:
        return asdict(self)


def _gathered_progress(done: int, loss_sum: float, seen: int, metrics: dict, seconds: float) -> EpochProgress:
    loss_sum, seen = distributed.sum_over_processes(loss_sum, seen)
    parts = distributed.gather_objects({h: (m.top_predictions, m.targets) for h, m in metrics.items()})
    return EpochProgress(
        batches=done,
        loss_sum=loss_sum,
        seen=int(seen),
        predictions={h: [t for part in parts for t in part[h][0]] for h in metrics},
        targets={h: [t for part in parts for t in part[h][1]] for h in metrics},
        seconds=seconds,
    )


def train_one_epoch(
    model,
    loader,
    optimizer,
    scheduler,
    device,
    epoch,
    args,
    max_batches=None,
    resume=None,
    mix=None,
    average=None,
    on_checkpoint=None,
    checkpoint_seconds=0.0,
    teachers=None,
) -> dict:
    """One epoch of training; ``model`` may be wrapped in DistributedDataParallel.

    ``resume`` (an ``EpochProgress``, held by the first process) continues an epoch whose first batches a
    mid-epoch checkpoint holds (the first process holds its sums and metrics, every process its ``batches``);
    the loader must already skip those batches. ``mix`` (``training.mixing.batch_mixer``) mixes each batch;
    ``average`` (a ``torch.optim.swa_utils.AveragedModel``) is updated after every step; ``teachers``
    (``training.distill.Teachers``) add their distillation loss, weighted by ``args.distill_weight``. Every
    ``checkpoint_seconds`` of the first process's clock, ``on_checkpoint(progress)`` is called in every process
    with the progress of all of them."""
    core = distributed.unwrap(model)
    model.train()
    metrics = new_head_metrics(core)
    resume = resume or EpochProgress()
    for head, m in metrics.items():
        m.top_predictions, m.targets = list(resume.predictions.get(head, [])), list(resume.targets.get(head, []))
    total_loss, seen, done = resume.loss_sum, resume.seen, resume.batches
    started = last_checkpoint = time.time()
    checkpointing = on_checkpoint is not None and checkpoint_seconds > 0
    weights = LossWeights.of(args)
    lambdas = {"year": weights.lambda_year, "make": weights.lambda_make, "type": weights.lambda_type}
    progress, on_device = batches(loader, device, f"epoch {epoch + 1}/{args.epochs} train", max_batches)
    for images, targets in on_device:
        if mix is not None:
            images, targets = mix(images, targets, epoch, done)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            logits = model(images)
            loss = multitask_loss(logits, targets, core, weights)
            if teachers is not None:
                learnt = distillation_loss(logits, teachers.probabilities(images), teachers.temperature, lambdas)
                loss = (1 - args.distill_weight) * loss + args.distill_weight * learnt
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if average is not None:
            average.update_parameters(core)
        total_loss += loss.item() * len(targets)
        seen += len(targets)
        done += 1
        update_head_metrics(metrics, logits, targets if targets.ndim == 1 else targets.argmax(dim=1), core)
        progress.set_postfix(
            loss=f"{total_loss / seen:.3f}",
            acc=f"{metrics['model'].accuracy():.3f}",
            lr=f"{optimizer.param_groups[0]['lr']:.2g}",
        )
        if checkpointing and distributed.first_process_decides(time.time() - last_checkpoint >= checkpoint_seconds):
            seconds = resume.seconds + time.time() - started
            on_checkpoint(_gathered_progress(done, total_loss, seen, metrics, seconds))
            last_checkpoint = time.time()
    total_loss, seen = distributed.sum_over_processes(total_loss, seen)
    metrics = {head: distributed.gather_metrics(m) for head, m in metrics.items()}
    return {"loss": total_loss / max(1, seen), **{h: m.compute() for h, m in metrics.items()}}


@torch.inference_mode()
def evaluate(
    model: AutoSpecNet, loader, device, weights: LossWeights = PAPER_LOSS, desc="eval", max_batches=None, amp=False
) -> dict:
    """Loss and per-head metrics of ``model`` on ``loader`` (in one process). Metrics are those of the
    probabilities users see: calibrated and mixed as the model's config says."""
    model.eval()
    metrics = new_head_metrics(model)
    total_loss, seen = 0.0, 0
    for images, targets in batches(loader, device, desc, max_batches)[1]:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(images)
            total_loss += multitask_loss(logits, targets, model, weights).item() * len(targets)
        seen += len(targets)
        update_head_metrics(metrics, model.log_probabilities(logits), targets, model)
    return {"loss": total_loss / max(1, seen), "images": seen, **{h: m.compute() for h, m in metrics.items()}}
