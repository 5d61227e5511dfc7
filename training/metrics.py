"""Accuracy, top-5 accuracy, macro precision and macro recall for each head.

Macro averages run over the labels that occur among the targets or the
predictions (as scikit-learn does); a label never predicted has precision 0.
"""

from __future__ import annotations

import torch


def macro_precision_recall(predictions: torch.Tensor, targets: torch.Tensor, num_labels: int) -> tuple[float, float]:
    confusion = torch.bincount(targets * num_labels + predictions, minlength=num_labels * num_labels)
    confusion = confusion.reshape(num_labels, num_labels).double()  # rows: truth, columns: prediction
    true_positives = confusion.diag()
    predicted = confusion.sum(0)
    actual = confusion.sum(1)
    present = (predicted + actual) > 0
    precision = torch.where(predicted > 0, true_positives / predicted.clamp(min=1), torch.zeros_like(predicted))
    recall = torch.where(actual > 0, true_positives / actual.clamp(min=1), torch.zeros_like(actual))
    return precision[present].mean().item(), recall[present].mean().item()


class HeadMetrics:
    """Collects logits' top predictions and targets for one head over an epoch."""

    def __init__(self, num_labels: int, top_k: int = 5):
        self.num_labels = num_labels
        self.top_k = min(top_k, num_labels)
        self.top_predictions: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.top_predictions.append(logits.detach().topk(self.top_k, dim=1).indices.cpu())
        self.targets.append(targets.detach().cpu())

    def accuracy(self) -> float:
        if not self.targets:
            return 0.0
        top, targets = torch.cat(self.top_predictions), torch.cat(self.targets)
        return (top[:, 0] == targets).double().mean().item()

    def compute(self) -> dict[str, float]:
        top, targets = torch.cat(self.top_predictions), torch.cat(self.targets)
        precision, recall = macro_precision_recall(top[:, 0], targets, self.num_labels)
        return {
            "accuracy": (top[:, 0] == targets).double().mean().item(),
            "top5": (top == targets[:, None]).any(dim=1).double().mean().item(),
            "precision": precision,
            "recall": recall,
        }
