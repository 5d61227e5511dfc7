"""``calibration.json``: what ``training.calibrate`` fitted on the validation part, and what it changed.

    {"temperatures": {"model": 0.65, ...}, "marginal_weights": {"year": 1.0, "make": 0.75, "type": 0.75},
     "val": {"before": {"model": {"accuracy", "nll", "ece"}, ...}, "after": {...}}, "test": {...},
     "sure": {"rule": {...}, "known_keep", "precision_goals", "val": {head: {"sure", "right_when_sure", "images"}},
              "test": {...}}}

The fitted values themselves live in ``config.json``, where the model reads them; this file is the record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from autospecnet.records.atomic import save_json_atomic
from autospecnet.records.reading import RecordError, read_object

FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    temperatures: dict[str, float]  # head -> softmax temperature
    marginal_weights: dict[str, float]  # attribute head -> weight of the class head's probabilities
    val: dict[str, dict[str, dict[str, float]]]  # "before"/"after" -> head -> accuracy, nll, ece
    test: dict[str, dict[str, dict[str, float]]]
    sure: dict | None = None  # the rule, its goals, and per part and head: how often sure, how often right then
    flip_average: bool = False  # the logits averaged over each image and its mirror

    @classmethod
    def load(cls, folder: Path) -> Calibration:
        raw = read_object(Path(folder) / FILE)
        try:
            optional = {"sure": raw.get("sure"), "flip_average": raw.get("flip_average") is True}
            return cls(**{key: raw[key] for key in cls.__dataclass_fields__ if key not in optional}, **optional)
        except KeyError as error:
            raise RecordError(f"not the layout of {FILE} (no {error})") from None

    def save(self, folder: Path) -> None:
        save_json_atomic(asdict(self), Path(folder) / FILE)
