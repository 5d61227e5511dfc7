"""``open_set.json``: how well each score tells the cars a model knows from the ones it does not.

    {"protocol": {...how the classes were held out, what was trained, on what...},
     "known_classes": [...], "unknown_classes": [...],
     "scores": {"<name>": {"val": {"auroc", "unknown_rejected_at_90"}, "test": {...}}, ...},
     "chosen": {"score": "<name>", "why": ..., "test": {...}, "sure": {...}}}

``python -m training.open_set`` writes it (``assets/open_set.json``); the model card and the About
page read it to say what "sure" means and how well it works.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from autospecnet.records.atomic import save_json_atomic
from autospecnet.records.reading import RecordError, read_json, read_object

FILE = "open_set.json"


@dataclass(frozen=True)
class OpenSetReport:
    protocol: dict  # seed, held-out shares, the training budget, the parts measured
    known_classes: list[str]
    unknown_classes: list[str]
    scores: dict[str, dict]  # score -> part -> figures
    chosen: dict  # the score chosen on validation, its test figures, and the "sure" rule measured on it

    def save_file(self, path: Path) -> None:
        save_json_atomic(asdict(self), Path(path))

    @classmethod
    def load_file(cls, path: Path) -> OpenSetReport:
        raw = read_object(Path(path))
        try:
            report = cls(**{key: raw[key] for key in cls.__dataclass_fields__})
        except KeyError as error:
            raise RecordError(f"not the layout of {FILE} (no {error})") from None
        if not all(isinstance(v, dict) for v in (report.protocol, report.scores, report.chosen)):
            raise RecordError(f"not the layout of {FILE}")
        return report

    @classmethod
    def read(cls, path: Path) -> OpenSetReport | None:
        """The report, or None when there is none readable: a page can do without."""
        if read_json(Path(path)) is None:
            return None
        try:
            return cls.load_file(path)
        except RecordError:
            return None
