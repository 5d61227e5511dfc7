"""Turn photos into per-head probabilities with a model folder's network (ONNX Runtime or torch).

from autospecnet import Predictor
predictor = Predictor.from_source("assets/model")      # or "owner/name@rev" on the Hub; backend="torch" to choose
result = predictor.predict("car.jpg", top_k=3)
print(result.answer, f"{result.confidence:.0%}")      # 2012 BMW M3 Coupe 87%: the best guess, always
print(result.headline)                                # what it is sure of: "A Mitsubishi SUV — not one of ..."
print(result.heads["make"].top.label, result.heads["make"].sure)   # BMW True
result = predictor.predict("car.jpg", explain=True)   # and result.heads["make"].heatmap: where it looked

This module imports no torch: the torch backend imports it only when it is chosen.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from autospecnet.backends import TorchBackend
from autospecnet.config import ModelConfig
from autospecnet.explain import Explainer
from autospecnet.heads import HEAD_LAYERS, HEADS
from autospecnet.images import ImageSource, read_image
from autospecnet.labels import parse_class_name
from autospecnet.preprocess import to_model_input
from autospecnet.sources import WEIGHTS_FILE, LoadedModel, load_model

EXPLAIN_UNAVAILABLE = (
    "This model's model.onnx gives no feature map, so it cannot show what it looked at: export it again with "
    "python -m training.onnx_export, or use the torch backend."
)


class ExplainUnavailableError(RuntimeError):
    """The model cannot show what it looked at (its graph gives no feature map); ``str(error)`` says why."""


def _layer(model, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A torch model's Linear layer ``name`` ("make_head.1") as numpy (weight, bias)."""
    module = model.get_submodule(name)
    return module.weight.detach().cpu().numpy(), module.bias.detach().cpu().numpy()


@dataclass(frozen=True)
class LabelProbability:
    label: str
    prob: float


@dataclass(frozen=True)
class HeadPrediction:
    """One head's labels, most probable first (the ``top_k`` best of them); whether its answer is sure
    (``autospecnet.sure``); and, when asked for, where it looked (``autospecnet.explain``)."""

    head: str
    labels: tuple[LabelProbability, ...]
    sure: bool = False
    heatmap: np.ndarray | None = field(default=None, compare=False)  # h x w from 0 to 1, top row first

    @property
    def top(self) -> LabelProbability:
        return self.labels[0]


@dataclass(frozen=True)
class Prediction:
    class_name: str  # the 196-class head's best class, "BMW M3 Coupe 2012"
    answer: str  # the same, as a person says it: "2012 BMW M3 Coupe"; the best guess, sure or not
    confidence: float
    heads: dict[str, HeadPrediction] = field(default_factory=dict)
    headline: str = ""  # what the model is sure of, in words (``say``)
    has_sure_rule: bool = False  # False: the model has no fitted thresholds, and is never sure
    known: bool | None = None  # whether the car looks like one of the classes it knows; None: no rule

    @property
    def sure(self) -> dict[str, bool]:
        return {head: self.heads[head].sure for head in HEADS}

    def to_dict(self) -> dict:
        """The command line's JSON for one car (README): answer, heads, sure, and heatmaps when explained."""
        result = {
            "answer": self.answer,
            "heads": {h: [{"label": p.label, "prob": p.prob} for p in self.heads[h].labels] for h in HEADS},
            "sure": self.sure,
        }
        if all(self.heads[h].heatmap is not None for h in HEADS):
            result["heatmaps"] = {h: np.round(self.heads[h].heatmap, 4).tolist() for h in HEADS}
        return result


def _article(words: str) -> str:
    return "An" if words[:1].upper() in "AEIOU" or words.startswith("SUV") else "A"


def _body(label: str) -> str:
    return label if label.isupper() else label.lower()  # "SUV", "sedan"


def say(heads: dict[str, HeadPrediction], known: bool | None, classes: int, newest_year: str) -> str:
    """The headline: the full name when the 196-class answer is sure; else what is sure of the make and body
    type, and why there is no name."""
    if heads["model"].sure:
        return parse_class_name(heads["model"].top.label).answer
    make, body = heads["make"].top.label, _body(heads["type"].top.label)
    if heads["make"].sure:
        what = f"{make} {body}" if heads["type"].sure else make
        reason = (
            f"not one of the {classes} models I know (cars up to {newest_year})"
            if not known
            else "not sure which model"
        )
        return f"{_article(what)} {what} — {reason}"
    if heads["type"].sure:
        return f"{_article(body)} {body} I can't name"
    return "A car I can't name"


class Predictor:
    """A model's network with its preprocessing, loaded once; ``predict`` may be called from many threads.

    ``Predictor(loaded)`` takes a ``LoadedModel`` (see ``autospecnet.sources``) and runs it on
    ``backend`` ("onnxruntime" or "torch"; default: ONNX Runtime when the folder has model.onnx);
    ``Predictor(model)`` takes an ``AutoSpecNet`` in memory and runs it with torch.
    """

    def __init__(self, model, backend: str | None = None, device: str = "cpu"):
        if isinstance(model, LoadedModel):
            self.loaded = model
            self.config = model.config
            self.backend = model.backend(backend, device=device)
        else:  # an AutoSpecNet in memory (training, tests)
            if backend not in (None, "torch"):
                raise ValueError("a model in memory runs with the torch backend only")
            self.loaded = None
            self.config = ModelConfig.from_dict(model._hub_mixin_config)
            self.backend = TorchBackend(model, device=device)
        self.vocabularies = self.config.vocabularies
        self._class_makes = np.asarray(self.config.taxonomy.head_targets()["make"])

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @classmethod
    def from_source(cls, source: str | None = None, backend: str | None = None, device: str = "cpu") -> Predictor:
        return cls(load_model(source), backend=backend, device=device)

    def preprocess(self, image: Image.Image | ImageSource) -> np.ndarray:
        if not isinstance(image, Image.Image):
            image = read_image(image)
        return to_model_input(image, self.config.image_size, self.config.mean, self.config.std)

    def probabilities(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Each head's probabilities for a preprocessed batch, calibrated as the model's config says."""
        return self.backend.probabilities(batch)

    @property
    def has_sure_rule(self) -> bool:
        return self.sure_rule is not None

    @property
    def sure_rule(self):
        """The model's "sure" rule; None when it has none (or, for a model in memory, none it can apply here)."""
        rule = self.config.sure
        return None if rule is None or (self.loaded is None and rule.needs_stats) else rule

    @property
    def can_explain(self) -> bool:
        """Whether heatmaps can be had: the backend gives the feature map (an older model.onnx does not)."""
        return "feature_map" in self.backend.extras and self.explainer is not None

    @functools.cached_property
    def explainer(self) -> Explainer | None:
        if self.loaded is not None:
            return Explainer.from_weights_file(self.loaded.folder / WEIGHTS_FILE, self.config)
        model = self.backend.model
        layers = {head: _layer(model, name) for head, name in HEAD_LAYERS.items()}
        return Explainer(layers, self.config)

    def predict(self, image: Image.Image | ImageSource, top_k: int | None = 5, explain: bool = False) -> Prediction:
        return self.predict_batch([image], top_k=top_k, explain=explain)[0]

    def predict_batch(
        self, images: list[Image.Image | ImageSource], top_k: int | None = 5, explain: bool = False
    ) -> list[Prediction]:
        """``explain``: also each head's heatmap for its top answer (``ExplainUnavailableError`` when the model's
        graph does not give the feature map)."""
        if not images:
            return []
        if explain and not self.can_explain:
            raise ExplainUnavailableError(EXPLAIN_UNAVAILABLE)
        outputs = self.backend.run(np.stack([self.preprocess(image) for image in images]))
        rule, stats = self.sure_rule, self.loaded.sure_stats if self.loaded is not None else {}
        sure = rule.decide(outputs, stats, self._class_makes) if rule else None
        return [
            self._prediction(
                {name: values[i] for name, values in outputs.items()},
                {head: bool(sure[head][i]) for head in HEADS} if sure else dict.fromkeys(HEADS, False),
                bool(sure["known"][i]) if sure else None,
                top_k,
                explain,
            )
            for i in range(len(images))
        ]

    def _prediction(self, outputs: dict, sure: dict, known: bool | None, top_k: int | None, explain: bool):
        heads = {}
        for head in HEADS:
            labels, probs = self.vocabularies[head], outputs[head]
            k = len(labels) if top_k is None else max(1, min(top_k, len(labels)))
            order = np.argsort(-probs, kind="stable")[:k]
            maps = [outputs[name] for name in ("feature_map", "feature_map_mirrored") if name in outputs]
            heatmap = self.explainer.heatmap(head, maps, int(order[0])) if explain else None
            ranked = tuple(LabelProbability(labels[i], float(probs[i])) for i in order)
            heads[head] = HeadPrediction(head, ranked, sure[head], heatmap)
        best = heads["model"].top
        best_answer = parse_class_name(best.label).answer
        taxonomy = self.config.taxonomy
        return Prediction(
            class_name=best.label,
            answer=best_answer,
            confidence=best.prob,
            heads=heads,
            # Without fitted thresholds the model cannot say what it is sure of: its best guess, as it always did.
            headline=say(heads, known, len(taxonomy.class_names), max(taxonomy.years))
            if self.sure_rule
            else best_answer,
            has_sure_rule=self.sure_rule is not None,
            known=known,
        )
