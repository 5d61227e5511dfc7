"""Turn photos into per-head probabilities with a model folder's network (ONNX Runtime or torch).

from autospecnet import Predictor
predictor = Predictor.from_source("assets/model")      # or "owner/name@rev" on the Hub; backend="torch" to choose
result = predictor.predict("car.jpg", top_k=3)
print(result.answer, f"{result.confidence:.0%}")      # 2012 BMW M3 Coupe 87%
print(result.heads["make"].top.label)                 # BMW

This module imports no torch: the torch backend imports it only when it is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from autospecnet.backends import TorchBackend
from autospecnet.heads import HEADS
from autospecnet.images import ImageSource, read_image
from autospecnet.labels import parse_class_name
from autospecnet.preprocess import to_model_input


@dataclass(frozen=True)
class LabelProbability:
    label: str
    prob: float


@dataclass(frozen=True)
class HeadPrediction:
    """One head's labels, most probable first (the ``top_k`` best of them)."""

    head: str
    labels: tuple[LabelProbability, ...]

    @property
    def top(self) -> LabelProbability:
        return self.labels[0]


@dataclass(frozen=True)
class Prediction:
    class_name: str  # the 196-class head's best class, "BMW M3 Coupe 2012"
    answer: str  # the same, as a person says it: "2012 BMW M3 Coupe"
    confidence: float
    heads: dict[str, HeadPrediction] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "answer": self.answer,
            "heads": {h: [{"label": p.label, "prob": p.prob} for p in self.heads[h].labels] for h in HEADS},
        }


class Predictor:
    """A model's network with its preprocessing, loaded once; ``predict`` may be called from many threads.

    ``Predictor(loaded)`` takes a ``LoadedModel`` (see ``autospecnet.sources``) and runs it on
    ``backend`` ("onnxruntime" or "torch"; default: ONNX Runtime when the folder has model.onnx);
    ``Predictor(model)`` takes an ``AutoSpecNet`` in memory and runs it with torch.
    """

    def __init__(self, model, backend: str | None = None, device: str = "cpu"):
        from autospecnet.sources import LoadedModel

        if isinstance(model, LoadedModel):
            self.loaded = model
            self.config = model.config
            self.backend = model.backend(backend, device=device)
        else:  # an AutoSpecNet in memory (training, tests)
            from autospecnet.config import ModelConfig

            if backend not in (None, "torch"):
                raise ValueError("a model in memory runs with the torch backend only")
            self.loaded = None
            self.config = ModelConfig.from_dict(model._hub_mixin_config)
            self.backend = TorchBackend(model, device=device)
        self.vocabularies = self.config.vocabularies
        self.image_size = self.config.image_size

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @classmethod
    def from_source(cls, source: str | None = None, backend: str | None = None, device: str = "cpu") -> Predictor:
        from autospecnet.sources import load_model

        return cls(load_model(source), backend=backend, device=device)

    def preprocess(self, image: Image.Image | ImageSource) -> np.ndarray:
        if not isinstance(image, Image.Image):
            image = read_image(image)
        return to_model_input(image, self.config.image_size, self.config.mean, self.config.std)

    def probabilities(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Each head's probabilities for a preprocessed batch, calibrated as the model's config says."""
        return self.backend.probabilities(batch)

    def predict(self, image: Image.Image | ImageSource, top_k: int | None = 5) -> Prediction:
        return self.predict_batch([image], top_k=top_k)[0]

    def predict_batch(self, images: list[Image.Image | ImageSource], top_k: int | None = 5) -> list[Prediction]:
        if not images:
            return []
        probs = self.probabilities(np.stack([self.preprocess(image) for image in images]))
        return [self._prediction({head: p[i] for head, p in probs.items()}, top_k) for i in range(len(images))]

    def _prediction(self, probs: dict[str, np.ndarray], top_k: int | None) -> Prediction:
        heads = {}
        for head in HEADS:
            labels = self.vocabularies[head]
            k = len(labels) if top_k is None else max(1, min(top_k, len(labels)))
            order = np.argsort(-probs[head], kind="stable")[:k]
            heads[head] = HeadPrediction(head, tuple(LabelProbability(labels[i], float(probs[head][i])) for i in order))
        best = heads["model"].top
        return Prediction(
            class_name=best.label, answer=parse_class_name(best.label).answer, confidence=best.prob, heads=heads
        )
