"""What a model sees, with Pillow and numpy only: the photo squashed to its square input size, normalised.

The same operations as the torchvision transform the model was evaluated with during
training (``Resize((size, size), antialias=True)`` on a PIL image is Pillow's bilinear
resize, then ``ToDtype(scale=True)`` and ``Normalize``), so that the ONNX Runtime and
torch backends see identical inputs. ``tests/test_backends.py`` checks the two agree.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# The ImageNet statistics every torchvision backbone is normalised with; config.json may name others.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_model_input(image: Image.Image, image_size: int, mean, std) -> np.ndarray:
    """A 3 x size x size float32 array (channels first) of an RGB image."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    pixels = np.asarray(image.resize((image_size, image_size), Image.Resampling.BILINEAR))
    # (x / 255 - mean) / std as one multiply-add per channel, written straight into channels-first order.
    scale = 1.0 / (255.0 * np.asarray(std, dtype=np.float64))
    offset = -np.asarray(mean, dtype=np.float64) / np.asarray(std, dtype=np.float64)
    result = np.empty((3, image_size, image_size), dtype=np.float32)
    for channel in range(3):
        np.multiply(pixels[:, :, channel], np.float32(scale[channel]), out=result[channel], dtype=np.float32)
        result[channel] += np.float32(offset[channel])
    return result
