"""When the model is sure: per head, whether its answer is likely right, and for the 196-class head whether
the car is likely one of the 196 at all. numpy only: the serving path runs it without torch.

``training.calibrate`` fits the rule on the validation part and stores it in ``config.json``:

    "sure": {"score": "class_mean_cosine", "known_threshold": 0.62,
             "thresholds": {"model": 0.81, "year": 0.86, "make": 0.9, "type": 0.88}}

- make, body type, model year: sure when the head's (calibrated) probability of its answer is at
  least its threshold (fitted never below ``MIN_SURE_PROBABILITY``: a sure answer is at least even odds);
- the car (196 classes): sure when, besides, the car looks like one of the classes the model knows:
  its known score (``score``, one of ``SCORES``) is at least ``known_threshold``.

Feature scores compare the pooled features with the training part's: the class means (and, for
``knn_cosine``, a bank of training features) ship in the model folder as ``sure.safetensors``.
A score ending in ``+agreement`` also requires the make head's own answer to be the make of the
196-class answer; ``max_softmax*agreement`` is the largest probability times the make head's own
probability of that make. A model without a rule is never sure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BASE_SCORES = ("max_softmax", "max_logit", "energy", "class_mean_cosine", "knn_cosine")
AGREEMENT = "+agreement"  # gated: the make head's own answer must be the make of the 196-class answer
SOFT_AGREEMENT = "max_softmax*agreement"  # the largest probability times the make head's own for that make
SCORES = BASE_SCORES + tuple(score + AGREEMENT for score in BASE_SCORES) + (SOFT_AGREEMENT,)
FEATURE_SCORES = ("class_mean_cosine", "knn_cosine")  # need sure.safetensors
STATS_FILE = "sure.safetensors"
KNN_K = 10
# Below even odds an answer is never sure, however right such answers were on the validation crops: its
# calibrated probability says it is more likely wrong than right.
MIN_SURE_PROBABILITY = 0.5


class SureRuleError(ValueError):
    """A rule in config.json that cannot be applied; ``str(error)`` says why."""


def _normalised(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def _logsumexp(values: np.ndarray) -> np.ndarray:
    top = values.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(values - top).sum(axis=1, keepdims=True)))[:, 0]


def known_score(name: str, outputs: dict[str, np.ndarray], stats: dict[str, np.ndarray], class_makes) -> np.ndarray:
    """How much each image looks like a car of the classes the model knows (higher: more), by score ``name``.

    ``outputs``: the serving graph's ``model`` (probabilities), ``model_logits``, ``make_logits`` and
    ``features`` for a batch; ``stats``: ``class_means`` (and ``knn_bank``) for feature scores;
    ``class_makes``: each class's index in the make vocabulary."""
    base = name.removesuffix(AGREEMENT)
    if name == SOFT_AGREEMENT:
        make_logits = outputs["make_logits"].astype(np.float64)
        own = np.exp(make_logits - _logsumexp(make_logits)[:, None])  # the make head's own probabilities
        winner_make = np.asarray(class_makes)[outputs["model"].argmax(axis=1)]
        return outputs["model"].max(axis=1) * own[np.arange(len(own)), winner_make]
    if base == "max_softmax":
        score = outputs["model"].max(axis=1)
    elif base == "max_logit":
        score = outputs["model_logits"].max(axis=1)
    elif base == "energy":
        score = _logsumexp(outputs["model_logits"].astype(np.float64))
    elif base == "class_mean_cosine":
        score = (_normalised(outputs["features"]) @ _normalised(stats["class_means"]).T).max(axis=1)
    elif base == "knn_cosine":
        similarities = _normalised(outputs["features"]) @ _normalised(stats["knn_bank"]).T
        k = min(KNN_K, similarities.shape[1])
        score = -np.partition(-similarities, k - 1, axis=1)[:, k - 1]  # the k-th most similar training crop
    else:
        raise SureRuleError(f"unknown score {name!r}")
    score = np.asarray(score, dtype=np.float64)
    if name.endswith(AGREEMENT):
        agree = outputs["make_logits"].argmax(axis=1) == np.asarray(class_makes)[outputs["model"].argmax(axis=1)]
        score = np.where(agree, score, -np.inf)
    return score


@dataclass(frozen=True)
class SureRule:
    score: str
    known_threshold: float
    thresholds: dict[str, float]  # head -> the least probability of its answer that is sure

    @classmethod
    def from_config(cls, raw, heads) -> SureRule | None:
        """The rule of a config's ``sure`` entry (None when there is none); ``SureRuleError`` when it is broken."""
        if raw is None:
            return None
        try:
            rule = cls(str(raw["score"]), raw["known_threshold"], dict(raw["thresholds"]))
        except (KeyError, TypeError, ValueError):
            raise SureRuleError("its sure rule needs a score, a known_threshold and thresholds per head") from None
        if rule.score not in SCORES:
            raise SureRuleError(f"its sure rule's score {rule.score!r} is not one of {', '.join(SCORES)}")
        numbers = [rule.known_threshold, *rule.thresholds.values()]
        if set(rule.thresholds) != set(heads) or not all(_finite(v) for v in numbers):
            raise SureRuleError(f"its sure rule needs a finite threshold for each of {', '.join(heads)}")
        return cls(rule.score, float(rule.known_threshold), {h: float(v) for h, v in rule.thresholds.items()})

    def to_config(self) -> dict:
        return {"score": self.score, "known_threshold": self.known_threshold, "thresholds": dict(self.thresholds)}

    @property
    def needs_stats(self) -> bool:
        return self.score.removesuffix(AGREEMENT) in FEATURE_SCORES

    @property
    def outputs_needed(self) -> tuple[str, ...]:
        """What the score reads of the serving graph's outputs besides the probabilities."""
        base = self.score.removesuffix(AGREEMENT)
        needed = (
            ("features",) if base in FEATURE_SCORES else ("model_logits",) if base in ("max_logit", "energy") else ()
        )
        agreement = self.score.endswith(AGREEMENT) or self.score == SOFT_AGREEMENT
        return needed + (("make_logits",) if agreement else ())

    def decide(self, outputs: dict[str, np.ndarray], stats: dict, class_makes) -> dict[str, np.ndarray]:
        """Per head, a boolean per image of the batch: is its answer sure? And under "known": does the car look
        like one of the classes the model knows?"""
        sure = {head: outputs[head].max(axis=1) >= t for head, t in self.thresholds.items()}
        sure["known"] = known_score(self.score, outputs, stats, class_makes) >= self.known_threshold
        sure["model"] = sure["model"] & sure["known"]
        return sure


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
