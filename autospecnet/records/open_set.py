"""``open_set.json``: how well each score tells the cars a model knows from the ones it has never seen.

    {"protocol": {"seed", "classes", "held_out", "held_out_share", "makes_held_out_whole",
                  "makes_with_seen_and_held_out_models", "training": {...}, "parts": {...}, "operating_point", "model"},
     "known_classes": [...], "unknown_classes": [...],
     "scores": {"<name>": {"auroc", "unknown_rejected", "val": {...}, "test": {...},
                           "test_at_validation_threshold": {...}}, ...},
     "chosen": {"score": "<name>", "why", "beats_max_softmax", "auroc", "unknown_rejected",
                "sure": {"rule", "known_test": {head: {...}}, "unknown_test": {...}}}}

A score's ``auroc`` and ``unknown_rejected`` are its test figures (the choice looked at validation
only); ``ScoreFigures`` says what each figure is. ``python -m training.open_set`` writes it
(``assets/open_set.json``); the model card and the About page read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from autospecnet.records.atomic import save_json_atomic
from autospecnet.records.calibration import SureFigures
from autospecnet.records.reading import RecordError, read_json, read_object

FILE = "open_set.json"


@dataclass(frozen=True)
class ScoreFigures:
    """A score on one part: known crops against held-out ones."""

    auroc: float  # the chance that a known crop scores higher than a held-out one
    threshold: float  # the operating point: keeps KEEP_KNOWN of the known crops
    known_kept: float
    unknown_rejected: float  # the share of held-out crops below the threshold
    known_images: int
    unknown_images: int


@dataclass(frozen=True)
class ScoreReport:
    auroc: float  # on test
    unknown_rejected: float  # on test, at test's own operating point
    val: ScoreFigures
    test: ScoreFigures
    test_at_validation_threshold: ScoreFigures

    @classmethod
    def from_dict(cls, raw: dict) -> ScoreReport:
        parts = {k: ScoreFigures(**raw[k]) for k in ("val", "test", "test_at_validation_threshold")}
        return cls(raw["auroc"], raw["unknown_rejected"], **parts)


@dataclass(frozen=True)
class UnknownSure:
    """How often the sure rule was sure on held-out crops (the 196-class answer is then always wrong)."""

    images: int
    model_sure: float
    year_sure: float
    make_sure: float
    type_sure: float
    seen_make_images: int  # held-out models of makes the model knows
    seen_make_sure: float | None
    seen_make_right_when_sure: float | None
    unseen_make_images: int  # makes held out whole: a sure make is always wrong
    unseen_make_sure: float | None


@dataclass(frozen=True)
class SureOnProtocol:
    rule: dict  # as in config.json
    known_test: dict[str, SureFigures]
    unknown_test: UnknownSure

    @classmethod
    def from_dict(cls, raw: dict) -> SureOnProtocol:
        known = {h: SureFigures.from_dict(f) for h, f in raw["known_test"].items()}
        return cls(raw["rule"], known, UnknownSure(**raw["unknown_test"]))


@dataclass(frozen=True)
class Chosen:
    score: str
    why: str
    beats_max_softmax: bool
    auroc: float  # on test
    unknown_rejected: float
    sure: SureOnProtocol

    @classmethod
    def from_dict(cls, raw: dict) -> Chosen:
        values = {k: raw[k] for k in ("score", "why", "beats_max_softmax", "auroc", "unknown_rejected")}
        return cls(**values, sure=SureOnProtocol.from_dict(raw["sure"]))


@dataclass(frozen=True)
class Protocol:
    seed: int
    classes: int
    held_out: int
    held_out_share: float
    makes_held_out_whole: list[str]
    makes_with_seen_and_held_out_models: list[str]
    training: dict  # recipe, epochs, epochs_run, best_val_accuracy, hours
    parts: dict  # "known"/"unknown" -> part -> images
    operating_point: str
    model: str


@dataclass(frozen=True)
class OpenSetReport:
    protocol: Protocol
    known_classes: list[str]
    unknown_classes: list[str]
    scores: dict[str, ScoreReport]
    chosen: Chosen

    def save_file(self, path: Path) -> None:
        save_json_atomic(asdict(self), Path(path))

    @classmethod
    def load_file(cls, path: Path) -> OpenSetReport:
        raw = read_object(Path(path))
        try:
            return cls(
                Protocol(**raw["protocol"]),
                list(raw["known_classes"]),
                list(raw["unknown_classes"]),
                {name: ScoreReport.from_dict(figures) for name, figures in raw["scores"].items()},
                Chosen.from_dict(raw["chosen"]),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise RecordError(f"not the layout of {FILE} ({error})") from None

    @classmethod
    def read(cls, path: Path) -> OpenSetReport | None:
        """The report, or None when there is none readable: a page can do without."""
        if read_json(Path(path)) is None:
            return None
        try:
            return cls.load_file(path)
        except RecordError:
            return None
