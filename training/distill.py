"""Knowledge distillation: a student learns every head's probabilities from trained teachers as well as the labels.

    python -m training.train --data ... --output-dir runs/distilled --init-from assets/model --image-size 400 \
        --teacher assets/model --teacher runs/scratch-400/best --distill-weight 0.5 --distill-temperature 1 ...

The teachers (model folders on this run's split and input size) read the very batch the student reads,
augmented and mixed as it is, in eval mode and once each (no mirror), and their probabilities at the
temperature are averaged per head: an ensemble, whose knowledge one network of the student's size and
speed takes in (Hinton et al., 2015; the consistent views and mixing of Beyer et al., 2022). The loss is
``(1 - w) x the multi-task loss + w x T² x (KL on the class head + lambda x KL on each attribute head)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autospecnet.heads import HEADS
from autospecnet.model import AutoSpecNet


class Teachers:
    """Trained models whose averaged probabilities a student learns."""

    def __init__(self, models: list[AutoSpecNet], temperature: float):
        if not models:
            raise ValueError("no teacher")
        self.models = [model.eval().requires_grad_(False) for model in models]
        for model in self.models:
            model.flip_average = False  # the student's batch is already flipped at random; a mirror doubles the cost
        self.temperature = float(temperature)

    def to(self, device, **kwargs) -> Teachers:
        for model in self.models:
            model.to(device, **kwargs)
        return self

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each head's probabilities at the temperature, the mean over the teachers (float32)."""
        total = None
        for model in self.models:
            logits = model(images)
            probabilities = {head: F.softmax(logits[head].float() / self.temperature, dim=1) for head in HEADS}
            total = probabilities if total is None else {head: total[head] + probabilities[head] for head in HEADS}
        return {head: total[head] / len(self.models) for head in HEADS}


def distillation_loss(
    logits: dict[str, torch.Tensor], teacher_probabilities: dict[str, torch.Tensor], temperature: float, lambdas: dict
) -> torch.Tensor:
    """T² x (KL(teachers ‖ student) of the class head + lambda x the same of each attribute head), batch mean.
    The T² keeps its gradients on the scale of the labels' loss whatever the temperature (Hinton et al.)."""
    loss = 0.0
    for head in HEADS:
        log_student = F.log_softmax(logits[head].float() / temperature, dim=1)
        divergence = F.kl_div(log_student, teacher_probabilities[head], reduction="batchmean")
        loss = loss + (1.0 if head == "model" else lambdas[head]) * divergence
    return temperature**2 * loss
