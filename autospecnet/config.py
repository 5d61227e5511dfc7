"""A model folder's ``config.json``, read and checked without torch: what the model is and how to feed it.

Every value comes from outside (a folder, a Hub repo), so each is checked before anything is
sized from it: an ``image_size`` of 100000 or a NaN in ``mean`` is a ``ConfigError``, not a
process killed for memory or a page of "nan%".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from autospecnet.heads import ATTRIBUTE_HEADS, HEADS
from autospecnet.labels import LabelError, Taxonomy
from autospecnet.preprocess import IMAGENET_MEAN, IMAGENET_STD
from autospecnet.sure import SureRule, SureRuleError

CONFIG_FILE = "config.json"
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024
MAX_CONFIG_BYTES = 1 << 20


class ConfigError(ValueError):
    """config.json is missing, unreadable or not a sane AutoSpecNet config; ``str(error)`` says which."""


@dataclass(frozen=True)
class ModelConfig:
    class_names: tuple[str, ...]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    taxonomy: Taxonomy = field(repr=False)
    raw: dict = field(repr=False)  # the file as read: the torch model's constructor arguments
    sure: SureRule | None = None  # when each head's answer is sure; None: the model has no fitted thresholds

    @property
    def vocabularies(self) -> dict[str, tuple[str, ...]]:
        """Each head's labels, in the order of its outputs."""
        return self.taxonomy.vocabularies

    @classmethod
    def read(cls, folder: Path) -> ModelConfig:
        path = Path(folder) / CONFIG_FILE
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError(f"its {CONFIG_FILE} is larger than {MAX_CONFIG_BYTES // 1024} kB")
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"it has no {CONFIG_FILE}") from None
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise ConfigError(f"its {CONFIG_FILE} is unreadable ({error})") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw) -> ModelConfig:
        if not isinstance(raw, dict) or not isinstance(raw.get("class_names"), list):
            raise ConfigError(f"its {CONFIG_FILE} is not an AutoSpecNet config (no class_names)")
        try:
            taxonomy = Taxonomy.from_class_names([str(n) for n in raw["class_names"]])
        except LabelError as error:
            raise ConfigError(f"its class names do not parse ({error})") from None
        try:
            taxonomy.check_vocabularies(*(raw.get(key, ()) for key in ("years", "makes", "body_types")))
        except LabelError as error:
            raise ConfigError(f"its {error}") from None
        image_size = raw.get("image_size", 224)
        if (
            not isinstance(image_size, int)
            or isinstance(image_size, bool)
            or not (MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE)
        ):
            raise ConfigError(
                f"its image_size {image_size!r} is not a whole number from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}"
            )
        mean = _triple(raw.get("mean", list(IMAGENET_MEAN)), "mean", low=-10.0)
        std = _triple(raw.get("std", list(IMAGENET_STD)), "std", low=1e-6)
        for key, heads in (("temperatures", HEADS), ("marginal_weights", ATTRIBUTE_HEADS)):
            values = raw.get(key) or {}
            if not isinstance(values, dict) or set(values) - set(heads):
                raise ConfigError(f"its {key} must map {', '.join(heads)} to numbers")
            low, high = (1e-3, 1e3) if key == "temperatures" else (0.0, 1.0)
            for head, value in values.items():
                if not _number_in(value, low, high):
                    raise ConfigError(f"its {key}[{head!r}] = {value!r} is not a number from {low:g} to {high:g}")
        if not isinstance(raw.get("flip_average", False), bool):
            raise ConfigError("its flip_average must be true or false")
        try:
            sure = SureRule.from_config(raw.get("sure"), HEADS)
        except SureRuleError as error:
            raise ConfigError(str(error)) from None
        return cls(taxonomy.class_names, image_size, mean, std, taxonomy, raw, sure)


def _number_in(value, low: float, high: float) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high
    )


def _triple(values, name: str, low: float) -> tuple[float, float, float]:
    if not isinstance(values, list) or len(values) != 3 or not all(_number_in(v, low, 10.0) for v in values):
        raise ConfigError(f"its {name} must be three finite numbers from {low:g} to 10 (one per colour channel)")
    return tuple(float(v) for v in values)
