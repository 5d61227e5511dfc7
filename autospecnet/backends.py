"""Two ways to run a model folder's network, with the same inputs and outputs (numpy arrays):

- ``onnxruntime``: the folder's ``model.onnx`` (the fused network, the four heads and the calibrated
  probabilities in one graph); no torch is imported. The default when the file and onnxruntime are there.
- ``torch``: ``model.safetensors`` in an ``AutoSpecNet`` (BatchNorm folded, channels_last).

Both take a batch of preprocessed images (N x 3 x S x S float32). ``run`` returns ``OUTPUTS``: each
head's calibrated probabilities, its logits, the pooled features and the backbone's last feature map
(a graph exported before these were added has the probabilities only: ``extras`` says which it has);
``probabilities`` the probabilities alone.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from autospecnet.config import ModelConfig
from autospecnet.heads import FEATURE_DIM, HEADS

ONNX_FILE = "model.onnx"
BACKENDS = ("onnxruntime", "torch")
LOGITS = tuple(f"{head}_logits" for head in HEADS)
# N x labels, N x FEATURE_DIM, N x FEATURE_DIM x h x w; with the test-time flip, the mirror's map too (flipped back)
EXTRAS = (*LOGITS, "features", "feature_map", "feature_map_mirrored")
OUTPUTS = (*HEADS, *EXTRAS)


class BackendError(RuntimeError):
    """The chosen backend cannot run this model (file missing, package missing, graph that does not fit)."""


def default_backend(folder: Path) -> str:
    """ONNX Runtime when the folder has model.onnx and onnxruntime is installed; torch otherwise."""
    if (Path(folder) / ONNX_FILE).is_file() and importlib.util.find_spec("onnxruntime") is not None:
        return "onnxruntime"
    return "torch"


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, config: ModelConfig, threads: int | None = None):
        try:
            import onnxruntime
        except ImportError:
            raise BackendError("The onnxruntime backend needs onnxruntime: pip install onnxruntime.") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime has its own exception types for unreadable graphs
            raise BackendError(f"its {ONNX_FILE} cannot be loaded ({str(error)[:300]})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        sizes = {head: len(labels) for head, labels in config.vocabularies.items()}
        expected = sizes | {f"{head}_logits": size for head, size in sizes.items()} | {"features": FEATURE_DIM}
        actual = {o.name: o.shape[1] if len(o.shape) > 1 else None for o in outputs}
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [3, config.image_size, config.image_size]:
            raise BackendError(f"its {ONNX_FILE} does not take {config.image_size} px images as config.json says")
        if set(actual) - set(OUTPUTS) or any(actual.get(name, size) != size for name, size in expected.items()):
            raise BackendError(f"the outputs of its {ONNX_FILE} do not match the labels of config.json")
        if not set(HEADS) <= set(actual):
            raise BackendError(f"its {ONNX_FILE} does not give the probabilities of every head")
        self.extras = tuple(name for name in EXTRAS if name in actual)
        self.input_name = inputs[0].name
        self._lock = threading.Lock()  # parallel runs would only fight over the same cores

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        names = [*HEADS, *self.extras]
        with self._lock:
            outputs = self.session.run(names, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        return dict(zip(names, outputs, strict=True))

    def probabilities(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {head: values for head, values in self.run(batch).items() if head in HEADS}


class TorchBackend:
    name = "torch"

    def __init__(self, model, device: str = "cpu"):
        import torch

        self._torch = torch
        self.device = torch.device(device)
        # channels_last: oneDNN's fastest layout for MobileNetV2 on CPUs, and good on GPUs.
        self.model = model.fused_for_inference().to(self.device, memory_format=torch.channels_last)
        self._lock = threading.Lock()

    @property
    def extras(self) -> tuple[str, ...]:
        return EXTRAS if self.model.flip_average else EXTRAS[:-1]

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with torch.inference_mode(), self._lock:
            logits, features, feature_maps = self.model.look(tensor.to(self.device, memory_format=torch.channels_last))
            log_probs = self.model.log_probabilities(logits)
            outputs = {head: log_probs[head].exp() for head in HEADS}
            outputs |= {f"{head}_logits": logits[head] for head in HEADS}
            outputs |= {"features": features}
            outputs |= {name: fm.contiguous() for name, fm in zip(EXTRAS[-2:], feature_maps, strict=False)}
            return {name: value.float().cpu().numpy() for name, value in outputs.items()}

    def probabilities(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {head: values for head, values in self.run(batch).items() if head in HEADS}
