"""``gallery.json``: right and wrong predictions of a model per head, and each head's most frequent mistakes.

    {"model": ..., "part": "test", "images_evaluated": 1218, "per_head": 12, "seed": 0,
     "thumbnail_folder": "thumbnails", "wrong": {"model": 171, ...},
     "mistakes": {"model": [{"true", "predicted", "count"}, ...], ...},
     "items": [{"head", "correct", "file", "true": {head: label}, "predicted": {head: {"label", "prob"}}}, ...]}

Items name dataset files by their path in the dataset (``images/00012.jpg``). A model folder
publishes its gallery as ``gallery/gallery.json`` with the thumbnails beside it. A manifest comes
from outside: items and mistakes of another layout are left out when read (counted in ``skipped``),
and a thumbnail folder that leads outside the manifest's folder is refused.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autospecnet.heads import HEADS
from autospecnet.records.atomic import save_json_atomic
from autospecnet.records.reading import is_count, is_number, is_subfolder, read_json

FILE = "gallery.json"
FOLDER = "gallery"  # a model folder's gallery: FOLDER/FILE, FOLDER/THUMBNAILS/
THUMBNAILS = "thumbnails"
log = logging.getLogger("autospecnet")


@dataclass(frozen=True)
class GalleryItem:
    head: str
    correct: bool
    file: str  # path inside the dataset, e.g. images/00012.jpg
    true: dict[str, str]  # head -> label
    predicted: dict[str, dict]  # head -> {"label", "prob"}


@dataclass(frozen=True)
class Mistake:
    true: str
    predicted: str
    count: int  # how often the part's images of ``true`` were named ``predicted``


@dataclass(frozen=True)
class GalleryManifest:
    items: list[GalleryItem]
    model: str | None = None
    part: str | None = None
    images_evaluated: int | None = None
    per_head: int | None = None
    seed: int | None = None
    thumbnail_folder: str = THUMBNAILS
    wrong: dict[str, int] = field(default_factory=dict)  # head -> mistakes over the whole part
    mistakes: dict[str, list[Mistake]] = field(default_factory=dict)  # head -> most frequent first
    skipped: int = 0  # items of another layout, left out when read

    def to_dict(self) -> dict:
        raw = asdict(self)
        del raw["skipped"]
        return raw

    def save(self, path: Path) -> None:
        save_json_atomic(self.to_dict(), Path(path))

    @classmethod
    def read(cls, path: Path) -> GalleryManifest | None:
        """The manifest, or None (logged) when the file is not a readable gallery."""
        raw = read_json(Path(path))
        if not isinstance(raw, dict) or not isinstance(raw.get("items"), list):
            if raw is not None:
                log.warning("skipped %s: not a gallery manifest", Path(path).name)
            return None
        items = [item for item in map(_item, raw["items"]) if item is not None]
        skipped = len(raw["items"]) - len(items)
        if skipped:
            log.warning("skipped %d gallery items of another layout", skipped)
        thumbnails = raw.get("thumbnail_folder", THUMBNAILS)
        if not isinstance(thumbnails, str) or not is_subfolder(Path(path).parent, thumbnails):
            log.warning("refused the thumbnail folder %r: it leads outside the gallery", thumbnails)
            thumbnails = THUMBNAILS
        return cls(
            items,
            model=_text(raw.get("model")),
            part=_text(raw.get("part")),
            images_evaluated=raw.get("images_evaluated") if is_count(raw.get("images_evaluated")) else None,
            per_head=raw.get("per_head") if is_count(raw.get("per_head")) else None,
            seed=raw.get("seed") if is_count(raw.get("seed")) else None,
            thumbnail_folder=thumbnails,
            wrong=_counts(raw.get("wrong")),
            mistakes=_mistakes(raw.get("mistakes")),
            skipped=skipped,
        )


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _item(raw) -> GalleryItem | None:
    try:
        item = GalleryItem(
            head=raw["head"], correct=raw["correct"], file=raw["file"], true=raw["true"], predicted=raw["predicted"]
        )
        ok = (
            item.head in HEADS
            and isinstance(item.correct, bool)
            and isinstance(item.file, str)
            and all(isinstance(item.true.get(h), str) for h in HEADS)
            and isinstance(item.predicted[item.head]["label"], str)
            and is_number(item.predicted[item.head]["prob"])
        )
    except (KeyError, TypeError, AttributeError):
        return None
    return item if ok else None


def _mistakes(raw) -> dict[str, list[Mistake]]:
    """Per head, the mistakes listed; entries of another layout are left out."""
    if not isinstance(raw, dict):
        return {}
    return {
        head: [
            Mistake(e["true"], e["predicted"], e["count"])
            for e in entries
            if isinstance(e, dict)
            and isinstance(e.get("true"), str)
            and isinstance(e.get("predicted"), str)
            and is_count(e.get("count"))
            and e["count"] > 0
        ]
        for head, entries in raw.items()
        if head in HEADS and isinstance(entries, list)
    }


def _counts(raw) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {h: n for h, n in raw.items() if h in HEADS and is_count(n)}
