"""Files a model folder may carry besides its network (metrics, card, gallery), read defensively.

They come from outside like the weights, but a page can do without each of them: a file that is
missing, unreadable or of another layout gives ``None`` (logged), never an exception. Paths they
name are followed only when they stay inside their own folder.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from autospecnet.heads import HEADS

log = logging.getLogger("autospecnet")
MAX_JSON_BYTES = 20 << 20


def read_json(path: Path) -> object | None:
    """The JSON in ``path``, or None (logged) when it is missing, too large or unreadable."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            log.warning("skipped %s: larger than %d MB", path.name, MAX_JSON_BYTES >> 20)
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        log.warning("skipped %s: %s", path.name, error)
        return None


def _fraction(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


def is_count(value) -> bool:
    """A whole number of things, 0 or more (JSON's true and false are not counts)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_test_metrics(folder: Path) -> dict | None:
    """``test_metrics.json`` when it holds an accuracy between 0 and 1 for each of the four heads."""
    metrics = read_json(folder / "test_metrics.json")
    try:
        if isinstance(metrics["images"], int) and all(_fraction(metrics["heads"][h]["accuracy"]) for h in HEADS):
            return metrics
    except (KeyError, TypeError):
        pass
    if metrics is not None:
        log.warning("skipped test_metrics.json of %s: not the layout this app reads", folder.name)
    return None


def inside(folder: Path, relative: str) -> Path | None:
    """``folder / relative`` if that is a file inside ``folder`` (symbolic links resolved), else None (logged)."""
    if not isinstance(relative, str) or not relative or Path(relative).is_absolute() or "\\" in relative:
        log.warning("refused the path %r: only relative paths inside %s are read", relative, folder.name)
        return None
    root = folder.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        log.warning("refused the path %r: it leads outside %s", relative, folder.name)
        return None
    return candidate if candidate.is_file() else None
