"""Why this answer: a heatmap per head over the image the model saw, in numpy, without torch.

Every head reads the backbone's pooled features: the mean over the cells of its last feature map
(1280 x h x w). For a head that is that pooling and a linear layer, the class activation map
(Zhou et al., 2016) is exact: the answer's weights applied to each cell, whose mean plus the bias is
the logit (``logit_map``). What the app shows is more than a logit: each probability is calibrated,
the year, make and body-type probabilities mix in the 196-class head's, and the 196-class head
reads the features through a ReLU together with the three heads' logits. For those the heatmap is
the exact local linearisation at the input (HiResCAM, Draper et al., 2022; Grad-CAM's gradient
applied cell by cell): the gradient of the shown log-probability with respect to the pooled
features, computed here in closed form from the heads' weights in ``model.safetensors``, applied to
each cell; its negative cells (evidence against the answer) are set to zero, and the map is scaled
to a largest value of 1. A model that averages its logits over the image and its mirror
(``flip_average``) gives both feature maps: each pass's gradient goes on its own cells, summed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autospecnet.config import ModelConfig
from autospecnet.heads import ATTRIBUTE_HEADS, FEATURE_DIM, HEAD_LAYERS


def _log_softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max()
    return shifted - np.log(np.exp(shifted).sum())


class Explainer:
    """The heads' last layers of one model, and its calibration: enough to explain any of its answers."""

    def __init__(self, layers: dict[str, tuple[np.ndarray, np.ndarray]], config: ModelConfig):
        self.layers = {head: (w.astype(np.float64), b.astype(np.float64)) for head, (w, b) in layers.items()}
        raw = config.raw
        self.temperatures = {head: float((raw.get("temperatures") or {}).get(head, 1.0)) for head in HEAD_LAYERS}
        self.marginal_weights = {h: float((raw.get("marginal_weights") or {}).get(h, 0.0)) for h in ATTRIBUTE_HEADS}
        targets = config.taxonomy.head_targets()
        vocabularies = config.vocabularies
        # Per attribute head: which of its labels each class has (classes x labels, one 1 a row).
        self.membership = {head: np.eye(len(vocabularies[head]))[np.asarray(targets[head])] for head in ATTRIBUTE_HEADS}

    @classmethod
    def from_weights_file(cls, path: Path, config: ModelConfig) -> Explainer:
        from safetensors import safe_open

        layers = {}
        with safe_open(str(path), framework="numpy") as f:
            for head, name in HEAD_LAYERS.items():
                layers[head] = (f.get_tensor(f"{name}.weight"), f.get_tensor(f"{name}.bias"))
        return cls(layers, config)

    def logits(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Each head's logits for one image's pooled features, as the network computes them."""
        out = {head: self.layers[head][0] @ features + self.layers[head][1] for head in ATTRIBUTE_HEADS}
        inner = np.concatenate([features, *(out[h] for h in ATTRIBUTE_HEADS)])
        out["model"] = self.layers["model"][0] @ np.maximum(inner, 0.0) + self.layers["model"][1]
        return out

    def logit_map(self, head: str, feature_map: np.ndarray, label: int) -> np.ndarray:
        """An attribute head's class activation map (h x w): its mean plus the bias is the label's logit."""
        if head not in ATTRIBUTE_HEADS:
            raise ValueError("only the year, make and body-type heads are pooling and a linear layer")
        return np.tensordot(self.layers[head][0][label], feature_map.astype(np.float64), axes=1)

    def by_logits(self, head: str, logits: dict[str, np.ndarray], label: int) -> dict[str, np.ndarray]:
        """d log P(label) / d each head's logits: the shown (calibrated, mixed) log-probability of ``label``."""
        t_model = self.temperatures["model"]
        class_probs = np.exp(_log_softmax(logits["model"] / t_model))
        result = {h: np.zeros_like(logits[h]) for h in ATTRIBUTE_HEADS}
        result["model"] = np.zeros_like(logits["model"])
        if head == "model":
            result["model"] = (np.eye(len(class_probs))[label] - class_probs) / t_model
            return result
        t, weight = self.temperatures[head], self.marginal_weights[head]
        own = _log_softmax(logits[head] / t)
        if weight > 0:
            marginal = class_probs @ self.membership[head]
            shown = _log_softmax((1 - weight) * own + weight * np.log(np.maximum(marginal, 1e-12)))
        else:
            shown = own
        delta = np.eye(len(shown))[label] - np.exp(shown)  # d y / d (the mixed scores)
        result[head] = (1 - weight) * delta / t
        if weight > 0:
            by_probs = self.membership[head] @ (weight * delta / np.maximum(marginal, 1e-12))
            result["model"] = class_probs * (by_probs - class_probs @ by_probs) / t_model
        return result

    def through_heads(self, features: np.ndarray, by_logits: dict[str, np.ndarray]) -> np.ndarray:
        """d y / d features, from d y / d each head's logits at these features (the class head's input is
        ReLU(features, year, make, type logits))."""
        features = features.astype(np.float64)
        logits = self.logits(features)
        inner = np.concatenate([features, *(logits[h] for h in ATTRIBUTE_HEADS)])
        by_inner = (self.layers["model"][0].T @ by_logits["model"]) * (inner > 0)
        gradient = by_inner[:FEATURE_DIM].copy()
        start = FEATURE_DIM
        for h in ATTRIBUTE_HEADS:
            size = len(logits[h])
            gradient += self.layers[h][0].T @ (by_logits[h] + by_inner[start : start + size])
            start += size
        return gradient

    def gradient(self, head: str, features: np.ndarray, label: int) -> np.ndarray:
        """d log P(label) / d features, for one pass over one image's pooled features."""
        return self.through_heads(features, self.by_logits(head, self.logits(features.astype(np.float64)), label))

    def heatmap(self, head: str, feature_maps: list[np.ndarray], label: int) -> np.ndarray:
        """Where the evidence for ``label`` is (h x w, from 0 to 1, top row first), from one image's feature map,
        or its maps over several passes whose logits are averaged (the image and its mirror, the mirror's map
        flipped back): each pass's gradient on its own cells, summed."""
        features = [fm.astype(np.float64).mean(axis=(1, 2)) for fm in feature_maps]
        passes = [self.logits(f) for f in features]
        averaged = {h: sum(p[h] for p in passes) / len(passes) for h in passes[0]}
        by_logits = self.by_logits(head, averaged, label)
        cells = sum(
            np.tensordot(self.through_heads(f, by_logits) / len(passes), fm.astype(np.float64), axes=1)
            for f, fm in zip(features, feature_maps, strict=True)
        )
        cells = np.maximum(cells, 0.0)
        top = cells.max()
        return (cells / top if top > 0 else cells).astype(np.float32)
