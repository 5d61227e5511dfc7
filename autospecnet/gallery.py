"""The gallery manifest: successful and failed test predictions per head, and where their images are.

A manifest comes with a model (a folder, a Hub repo): its contents are checked like any outside
data. Items that are not of this layout are skipped; image paths are followed only when they
are relative and stay inside the folder they are looked up in (``optional_files.inside``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from autospecnet.heads import HEADS
from autospecnet.optional_files import inside, is_count, read_json

DATA_ENV = "AUTOSPECNET_DATA"
log = logging.getLogger("autospecnet")


@dataclass(frozen=True)
class GalleryItem:
    head: str
    correct: bool
    file: str  # path inside the dataset, e.g. images/00012.jpg
    true: dict[str, str]
    predicted: dict[str, dict]  # head -> {"label", "prob"}


@dataclass(frozen=True)
class Mistake:
    true: str
    predicted: str
    count: int  # how often the part's images of ``true`` were named ``predicted``


@dataclass(frozen=True)
class Gallery:
    items: list[GalleryItem]
    meta: dict
    image_dirs: list[Path]  # where to look for images, best first
    skipped: int = 0  # items of another layout
    mistakes: dict[str, list[Mistake]] = field(default_factory=dict)  # head -> most frequent first
    wrong: dict[str, int] = field(default_factory=dict)  # head -> mistakes over the whole part

    def select(self, head: str, correct: bool | None = None) -> list[GalleryItem]:
        return [i for i in self.items if i.head == head and (correct is None or i.correct == correct)]

    def image_path(self, item: GalleryItem) -> Path | None:
        for folder in self.image_dirs:
            for relative in (item.file, Path(item.file).name):
                candidate = inside(folder, relative)
                if candidate is not None:
                    return candidate
        return None


def find_manifest(model_folder: Path | None, bundled: Path, is_bundled_model: bool = True) -> Path | None:
    """The model's own gallery (published with it); the one bundled with the app only for the bundled model."""
    candidates = [model_folder / "gallery" / "gallery.json"] if model_folder else []
    if is_bundled_model:
        candidates.append(bundled)
    return next((c for c in candidates if c.is_file()), None)


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
            and isinstance(item.predicted[item.head]["prob"], int | float)
        )
    except (KeyError, TypeError, AttributeError):
        return None
    return item if ok else None


def _mistakes(raw) -> dict[str, list[Mistake]]:
    """Per head, the mistakes listed in the manifest; entries of another layout are left out."""
    if not isinstance(raw, dict):
        return {}
    result = {}
    for head, entries in raw.items():
        if head not in HEADS or not isinstance(entries, list):
            continue
        result[head] = [
            Mistake(e["true"], e["predicted"], e["count"])
            for e in entries
            if isinstance(e, dict)
            and isinstance(e.get("true"), str)
            and isinstance(e.get("predicted"), str)
            and is_count(e.get("count"))
            and e["count"] > 0
        ]
    return result


def _counts(raw) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {h: n for h, n in raw.items() if h in HEADS and is_count(n)}


def load_gallery(manifest: Path, model_folder: Path | None = None, data_dir: str | None = None) -> Gallery | None:
    """The manifest's items, or None (logged) when the file is not a readable gallery."""
    meta = read_json(manifest)
    if not isinstance(meta, dict) or not isinstance(meta.get("items"), list):
        if meta is not None:
            log.warning("skipped %s: not a gallery manifest", manifest.name)
        return None
    raw_items = meta.pop("items")
    items = [item for item in map(_item, raw_items) if item is not None]
    if len(items) < len(raw_items):
        log.warning("skipped %d gallery items of another layout", len(raw_items) - len(items))
    image_dirs = []
    data_dir = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if data_dir:
        image_dirs.append(Path(data_dir).expanduser())
    thumbnails = meta.get("thumbnail_folder", "thumbnails")
    if not isinstance(thumbnails, str) or not _is_subfolder(manifest.parent, thumbnails):
        log.warning("refused the thumbnail folder %r: it leads outside the gallery", thumbnails)
        thumbnails = "thumbnails"
    image_dirs.append(manifest.parent / thumbnails)
    if model_folder:
        image_dirs.append(model_folder / "gallery" / thumbnails)
    return Gallery(
        items,
        meta,
        image_dirs,
        skipped=len(raw_items) - len(items),
        mistakes=_mistakes(meta.pop("mistakes", None)),
        wrong=_counts(meta.pop("wrong", None)),
    )


def _is_subfolder(folder: Path, relative: str) -> bool:
    if Path(relative).is_absolute():
        return False
    root = folder.resolve()
    return (root / relative).resolve().is_relative_to(root)
