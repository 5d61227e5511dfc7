"""Read a model folder's card (README.md) for display, without its YAML front matter."""

from __future__ import annotations

from pathlib import Path


def card_body(folder: Path) -> str | None:
    path = folder / "README.md"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            text = text[end + 4 :]
    return text.strip() or None
