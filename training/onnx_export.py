"""Write ``model.onnx`` beside ``model.safetensors``: the graph the serving path runs on ONNX Runtime.

    python -m training.onnx_export assets/model          # adds assets/model/model.onnx, checked
    python -m training.onnx_export runs/paper/best

The graph holds everything between a preprocessed batch (N x 3 x S x S, normalised as
config.json says) and what users see: the network with BatchNorm folded into its
convolutions, the four heads, and each head's calibrated probabilities (temperatures and
the class-marginal mix of ``AutoSpecNet.log_probabilities``), named after the heads; then
what the "sure" rule and the heatmaps read: each head's logits (``model_logits``...), the
pooled features and the backbone's last feature map (``autospecnet.backends.OUTPUTS``). After
writing, the graph is run on ONNX Runtime against the torch model on the same inputs; a
difference above ``TOLERANCE`` is an error and the file is not kept.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autospecnet.backends import ONNX_FILE, OUTPUTS, OnnxBackend
from autospecnet.config import ModelConfig
from autospecnet.heads import HEADS
from autospecnet.model import AutoSpecNet
from autospecnet.sources import ModelLoadError, load_model

TOLERANCE = 1e-4  # largest difference of a probability between the graph and the torch model
OPSET = 18


class ServingGraph(nn.Module):
    """The fused network: its calibrated probabilities in the heads' order, then each head's logits, the pooled
    features and the backbone's last feature map (``OUTPUTS``: the "sure" rule and the heatmaps read them)."""

    def __init__(self, model: AutoSpecNet):
        super().__init__()
        self.model = model.fused_for_inference()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, features, feature_maps = self.model.look(images)
        log_probs = self.model.log_probabilities(logits)
        probabilities = tuple(log_probs[head].exp() for head in HEADS)
        return probabilities + tuple(logits[head] for head in HEADS) + (features, *feature_maps)


def export_onnx(model: AutoSpecNet, folder: Path) -> float:
    """Write ``folder/model.onnx`` for ``model`` and return its largest difference from torch."""
    folder = Path(folder)
    target, tmp = folder / ONNX_FILE, folder / (ONNX_FILE + ".tmp")
    graph = ServingGraph(model.cpu().eval()).eval()
    outputs = list(OUTPUTS if model.flip_average else OUTPUTS[:-1])  # the mirror's feature map with the flip only
    size = model.image_size
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    torch.onnx.export(
        graph,
        (example,),
        str(tmp),
        input_names=["images"],
        output_names=outputs,
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
        opset_version=OPSET,
        dynamo=True,
        external_data=False,
        optimize=True,
        verbose=False,
    )
    try:
        difference = _largest_difference(graph, tmp, ModelConfig.from_dict(model._hub_mixin_config))
        if difference > TOLERANCE:
            raise RuntimeError(f"the ONNX graph differs from the torch model by {difference:.2g} (> {TOLERANCE})")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return difference


def _largest_difference(graph: ServingGraph, path: Path, config: ModelConfig) -> float:
    """The largest difference of a probability, and of the features relative to their largest value."""
    generator = torch.Generator().manual_seed(1)
    batch = torch.randn(4, 3, config.image_size, config.image_size, generator=generator)
    with torch.inference_mode():
        computed = graph(batch)
        expected = dict(zip(OUTPUTS[: len(computed)], (e.numpy() for e in computed), strict=True))
    actual = OnnxBackend(path, config).run(batch.numpy())
    probabilities = max(float(np.abs(actual[h] - expected[h]).max()) for h in HEADS)
    features = max(
        float(np.abs(actual[name] - expected[name]).max() / max(1.0, np.abs(expected[name]).max()))
        for name in expected
        if name not in HEADS
    )
    return max(probabilities, features)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Add model.onnx (checked against the torch model) to a model folder",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", help="a model folder written by save_pretrained")
    return parser


def main(args) -> None:
    try:
        model = load_model(args.model).model
    except ModelLoadError as error:
        sys.exit(f"error: {error}")
    difference = export_onnx(model, Path(args.model))
    print(f"wrote {Path(args.model) / ONNX_FILE} (largest difference from torch: {difference:.1e})")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
