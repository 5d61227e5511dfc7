"""The tensors a model sees: resize to its square input size and normalise as its config says."""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def to_normalized_tensor(mean, std) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def eval_transform(image_size: int, mean, std) -> v2.Compose:
    """The paper's preprocessing: squash the (cropped) car to image_size x image_size."""
    return v2.Compose([v2.Resize((image_size, image_size), antialias=True), *to_normalized_tensor(mean, std)])
