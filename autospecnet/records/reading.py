"""Reading stored files defensively: a file that is missing, too large or unreadable is None (logged), never
an exception, and paths a file names are followed only when they stay inside its own folder."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

log = logging.getLogger("autospecnet")
MAX_JSON_BYTES = 20 << 20


class RecordError(ValueError):
    """A stored file that is not of the layout its module writes; ``str(error)`` says which."""


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


def read_object(path: Path) -> dict:
    """The JSON object in ``path``; ``RecordError`` when it is missing, unreadable or not an object."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise RecordError(f"{path.name} is missing, unreadable or not a JSON object")
    return value


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_fraction(value) -> bool:
    return is_number(value) and 0 <= value <= 1


def is_count(value) -> bool:
    """A whole number of things, 0 or more (JSON's true and false are not counts)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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


def is_subfolder(folder: Path, relative: str) -> bool:
    """Whether ``folder / relative`` stays inside ``folder``."""
    if Path(relative).is_absolute():
        return False
    root = folder.resolve()
    return (root / relative).resolve().is_relative_to(root)
