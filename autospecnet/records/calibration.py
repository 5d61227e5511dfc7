"""``calibration.json``: what ``training.calibrate`` fitted on the validation part, and what it changed.

    {"temperatures": {"model": 0.65, ...}, "marginal_weights": {"year": 1.0, "make": 0.75, "type": 0.75},
     "val": {"before": {"model": {"accuracy", "nll", "ece"}, ...}, "after": {...}}, "test": {...},
     "sure": {"rule": {...}, "known_keep", "precision_goals", "val": {head: {"sure", "right_when_sure", "images"}},
              "test": {...}}}

The fitted values themselves live in ``config.json``, where the model reads them; this file is the record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from autospecnet.records.atomic import save_json_atomic
from autospecnet.records.reading import RecordError, read_object

FILE = "calibration.json"


@dataclass(frozen=True)
class SureFigures:
    """How one head's "sure" answers did on one part."""

    sure: float  # the share of the images whose answer was sure
    images: int
    right_when_sure: float | None = None  # None when none was sure

    @classmethod
    def from_dict(cls, raw: dict) -> SureFigures:
        return cls(raw["sure"], raw["images"], raw.get("right_when_sure"))


@dataclass(frozen=True)
class SureRecord:
    """The "sure" rule as fitted (``autospecnet.sure.SureRule.to_config``), what it aimed at, and how it did."""

    rule: dict
    known_keep: float  # the share of the validation crops the known score lets through
    precision_goals: dict[str, float]  # head -> how often its sure answers must be right on validation
    val: dict[str, SureFigures] = field(default_factory=dict)  # head -> figures
    test: dict[str, SureFigures] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict) -> SureRecord:
        parts = {part: {h: SureFigures.from_dict(f) for h, f in raw[part].items()} for part in ("val", "test")}
        return cls(raw["rule"], raw["known_keep"], raw["precision_goals"], **parts)


@dataclass(frozen=True)
class Calibration:
    temperatures: dict[str, float]  # head -> softmax temperature
    marginal_weights: dict[str, float]  # attribute head -> weight of the class head's probabilities
    val: dict[str, dict[str, dict[str, float]]]  # "before"/"after" -> head -> accuracy, nll, ece
    test: dict[str, dict[str, dict[str, float]]]
    sure: SureRecord | None = None
    flip_average: bool = False  # the logits averaged over each image and its mirror

    @classmethod
    def load(cls, folder: Path) -> Calibration:
        raw = read_object(Path(folder) / FILE)
        try:
            sure = SureRecord.from_dict(raw["sure"]) if raw.get("sure") else None
            optional = {"sure": sure, "flip_average": raw.get("flip_average") is True}
            return cls(**{key: raw[key] for key in cls.__dataclass_fields__ if key not in optional}, **optional)
        except (KeyError, TypeError, AttributeError) as error:
            raise RecordError(f"not the layout of {FILE} ({error})") from None

    def save(self, folder: Path) -> None:
        save_json_atomic(asdict(self), Path(folder) / FILE)
