"""``test_metrics.json``: a model's per-head scores on one part of its split (the test part, once).

    {"part": "test", "images": 1218, "heads": {"model": {"accuracy", "top5", "precision", "recall"}, ...}}

``python -m training.evaluate --json`` prints the same object. Files written before the key was
named ``part`` call it ``split``; both are read.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from autospecnet.heads import HEADS
from autospecnet.records.atomic import save_json_atomic
from autospecnet.records.reading import RecordError, is_count, is_fraction, read_json, read_object

FILE = "test_metrics.json"
log = logging.getLogger("autospecnet")


@dataclass(frozen=True)
class HeadScores:
    accuracy: float
    top5: float
    precision: float  # macro, over the head's labels
    recall: float


@dataclass(frozen=True)
class PartMetrics:
    part: str  # "train", "val" or "test"
    images: int
    heads: dict[str, HeadScores]

    @classmethod
    def from_stats(cls, part: str, stats: dict) -> PartMetrics:
        """From an evaluation's statistics: ``images`` and, per head, the four scores (and maybe more)."""
        heads = {h: HeadScores(**{k: float(stats[h][k]) for k in HeadScores.__dataclass_fields__}) for h in HEADS}
        return cls(part, int(stats["images"]), heads)

    def to_dict(self) -> dict:
        return {"part": self.part, "images": self.images, "heads": {h: asdict(s) for h, s in self.heads.items()}}

    @classmethod
    def from_dict(cls, raw) -> PartMetrics:
        try:
            heads = {h: HeadScores(**{k: raw["heads"][h][k] for k in HeadScores.__dataclass_fields__}) for h in HEADS}
            part = raw.get("part", raw.get("split"))
            ok = (
                is_count(raw["images"])
                and isinstance(part, str)
                and all(is_fraction(s.accuracy) for s in heads.values())
            )
        except (KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise RecordError(f"not the layout of {FILE}")
        return cls(part, raw["images"], heads)

    @classmethod
    def load(cls, folder: Path) -> PartMetrics:
        return cls.from_dict(read_object(Path(folder) / FILE))

    @classmethod
    def read(cls, folder: Path) -> PartMetrics | None:
        """The folder's metrics, or None (logged) when it has none of this layout: a page can do without."""
        raw = read_json(Path(folder) / FILE)
        if raw is None:
            return None
        try:
            return cls.from_dict(raw)
        except RecordError:
            log.warning("skipped %s of %s: not the layout this app reads", FILE, Path(folder).name)
            return None

    def save(self, folder: Path) -> None:
        save_json_atomic(self.to_dict(), Path(folder) / FILE)
