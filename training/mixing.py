"""CutMix and MixUp of a training batch (torchvision's ``transforms.v2``), as torchvision's references apply them.

    python -m training.train --data ... --output-dir runs/x --cutmix-alpha 1.0 --mixup-alpha 0.2

Each batch gets one of the two (at random, when both are on): MixUp blends every image with the next one
of the batch, CutMix pastes a box of it; the class targets become probabilities in the same proportions,
and ``AutoSpecNet.head_targets`` turns them into each attribute head's probabilities. The draws are seeded
by the run's seed, the epoch and the batch, so that a resumed run mixes as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from training.data import epoch_seed


def batch_mixer(args, num_classes: int):
    """``mix(images, targets, epoch, batch) -> (images, class probabilities)``, or None when both alphas are 0."""
    choices = []
    if args.cutmix_alpha > 0:
        choices.append(v2.CutMix(alpha=args.cutmix_alpha, num_classes=num_classes))
    if args.mixup_alpha > 0:
        choices.append(v2.MixUp(alpha=args.mixup_alpha, num_classes=num_classes))
    if not choices:
        return None
    transform = choices[0] if len(choices) == 1 else v2.RandomChoice(choices)

    def mix(images: torch.Tensor, targets: torch.Tensor, epoch: int, batch: int):
        with torch.random.fork_rng(devices=[]):  # the draws are on the CPU whatever the device
            torch.manual_seed(epoch_seed(args.seed, epoch) * 1_000_003 + batch)
            return transform(images, targets)

    return mix
