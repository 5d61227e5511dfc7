"""The environment variables the package reads: the one list of a user's settings.

- ``AUTOSPECNET_MODEL``: the model, a folder or a Hub repo ``owner/name[@revision]`` (default: the bundled one).
- ``AUTOSPECNET_HUB_TIMEOUT``: seconds to wait for the Hugging Face Hub (default 30).
- ``AUTOSPECNET_FINDER``: the car finder's ONNX file (default: the user's cache, downloaded once);
  ``AUTOSPECNET_DETECTOR``, its earlier name, is still read.
- ``AUTOSPECNET_DATA``: a copy of Stanford Cars, for training and for the Gallery's photos.

huggingface_hub's own (``HF_HOME``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_TOKEN``) apply to Hub downloads.
"""

from __future__ import annotations

import os

MODEL_ENV = "AUTOSPECNET_MODEL"
HUB_TIMEOUT_ENV = "AUTOSPECNET_HUB_TIMEOUT"
FINDER_ENV = "AUTOSPECNET_FINDER"
FINDER_ENV_BEFORE = "AUTOSPECNET_DETECTOR"
DATA_ENV = "AUTOSPECNET_DATA"


def finder_setting() -> str | None:
    """The car finder's path as set, under its name or its earlier one; None when unset."""
    return os.environ.get(FINDER_ENV) or os.environ.get(FINDER_ENV_BEFORE) or None
