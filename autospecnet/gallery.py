"""The gallery manifest: successful and failed test predictions per head, and where their images are."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "AUTOSPECNET_DATA"


@dataclass(frozen=True)
class GalleryItem:
    head: str
    correct: bool
    file: str  # path inside the dataset, e.g. images/00012.jpg
    true: dict[str, str]
    predicted: dict[str, dict]  # head -> {"label", "prob"}


@dataclass(frozen=True)
class Gallery:
    items: list[GalleryItem]
    meta: dict
    image_dirs: list[Path]  # where to look for images, best first

    def select(self, head: str, correct: bool | None = None) -> list[GalleryItem]:
        return [i for i in self.items if i.head == head and (correct is None or i.correct == correct)]

    def image_path(self, item: GalleryItem) -> Path | None:
        for folder in self.image_dirs:
            for candidate in (folder / item.file, folder / Path(item.file).name):
                if candidate.is_file():
                    return candidate
        return None


def find_manifest(model_folder: Path | None, bundled: Path) -> Path | None:
    """The model's own gallery (published with it) before the one bundled with the app."""
    candidates = [model_folder / "gallery" / "gallery.json"] if model_folder else []
    candidates.append(bundled)
    return next((c for c in candidates if c.is_file()), None)


def load_gallery(manifest: Path, model_folder: Path | None = None, data_dir: str | None = None) -> Gallery:
    meta = json.loads(manifest.read_text())
    items = [
        GalleryItem(head=i["head"], correct=i["correct"], file=i["file"], true=i["true"], predicted=i["predicted"])
        for i in meta.pop("items")
    ]
    image_dirs = []
    data_dir = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if data_dir:
        image_dirs.append(Path(data_dir).expanduser())
    thumbnails = meta.get("thumbnail_folder", "thumbnails")
    image_dirs.append(manifest.parent / thumbnails)
    if model_folder:
        image_dirs.append(model_folder / "gallery" / thumbnails)
    return Gallery(items, meta, image_dirs)
