"""What the Gallery page (and the Gradio app's examples) show: a model's gallery manifest and where its
photos are on this machine.

The photos are not shipped with the app (the dataset's terms): they are looked up under
``$AUTOSPECNET_DATA`` (a copy of Stanford Cars), then among the thumbnails published with the
manifest. A path is followed only when it stays inside the folder it is looked up in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from autospecnet.records import gallery as manifest_file
from autospecnet.records.gallery import GalleryItem, GalleryManifest, Mistake
from autospecnet.records.reading import inside
from autospecnet.settings import DATA_ENV
from autospecnet.sources import ASSETS_DIR

BUNDLED_MANIFEST = ASSETS_DIR / manifest_file.FOLDER / manifest_file.FILE
__all__ = ["Gallery", "GalleryItem", "Mistake", "find_manifest", "load_gallery"]


@dataclass(frozen=True)
class Gallery:
    manifest: GalleryManifest
    image_dirs: list[Path]  # where to look for images, best first

    @property
    def items(self) -> list[GalleryItem]:
        return self.manifest.items

    @property
    def skipped(self) -> int:
        return self.manifest.skipped

    @property
    def mistakes(self) -> dict[str, list[Mistake]]:
        return self.manifest.mistakes

    @property
    def wrong(self) -> dict[str, int]:
        return self.manifest.wrong

    def select(self, head: str, correct: bool | None = None) -> list[GalleryItem]:
        return [i for i in self.items if i.head == head and (correct is None or i.correct == correct)]

    def image_path(self, item: GalleryItem) -> Path | None:
        for folder in self.image_dirs:
            for relative in (item.file, Path(item.file).name):
                candidate = inside(folder, relative)
                if candidate is not None:
                    return candidate
        return None


def find_manifest(model_folder: Path | None, is_bundled_model: bool = True) -> Path | None:
    """The model's own gallery (published with it); the one bundled with the app only for the bundled model."""
    candidates = [model_folder / manifest_file.FOLDER / manifest_file.FILE] if model_folder else []
    if is_bundled_model:
        candidates.append(BUNDLED_MANIFEST)
    return next((c for c in candidates if c.is_file()), None)


def load_gallery(manifest: Path, model_folder: Path | None = None, data_dir: str | None = None) -> Gallery | None:
    """The manifest's items and where their photos are, or None (logged) when it is not a readable gallery."""
    read = GalleryManifest.read(manifest)
    if read is None:
        return None
    image_dirs = []
    data_dir = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if data_dir:
        image_dirs.append(Path(data_dir).expanduser())
    image_dirs.append(manifest.parent / read.thumbnail_folder)
    if model_folder:
        image_dirs.append(model_folder / manifest_file.FOLDER / read.thumbnail_folder)
    return Gallery(read, image_dirs)
