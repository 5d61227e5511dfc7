"""The backbone's initialisation for training: ImageNet weights (torchvision's, or a file), or none."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from autospecnet.model import AutoSpecNet

BACKBONE_INIT_HELP = (
    "'imagenet' (torchvision's MobileNet_V2_Weights.IMAGENET1K_V2, downloaded on first use), "
    "'none' (random), or a path to a safetensors state dict of torchvision's mobilenet_v2"
)


def init_backbone(model: AutoSpecNet, weights: str) -> None:
    """Initialise the backbone: see ``BACKBONE_INIT_HELP``. The classifier of the donor is dropped."""
    if weights == "none":
        return
    if weights == "imagenet":
        donor = mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V2)
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights not found: {path} (expected {BACKBONE_INIT_HELP})")
        donor = mobilenet_v2()
        donor.load_state_dict(load_file(path), strict=True)
    model.backbone.load_state_dict(donor.features.state_dict(), strict=True)
