"""Read a model folder's card (README.md) for display, without its YAML front matter."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("autospecnet")
MAX_CARD_BYTES = 1 << 20


def card_body(folder: Path) -> str | None:
    """The card's Markdown body, or None (logged) when there is none or it cannot be read."""
    from huggingface_hub import ModelCard

    path = folder / "README.md"
    try:
        if not path.is_file() or path.stat().st_size > MAX_CARD_BYTES:
            return None
        text = ModelCard.load(path, ignore_metadata_errors=True).text
    except (OSError, UnicodeDecodeError, ValueError) as error:
        log.warning("skipped the model card of %s: %s", folder.name, error)
        return None
    return text.strip() or None
