"""The four heads: their names for people, and what the weights file calls their layers."""

from __future__ import annotations

HEADS = ("model", "year", "make", "type")
ATTRIBUTE_HEADS = ("year", "make", "type")  # the attribute heads, in the order the class head reads them
HEAD_TITLES = {"model": "Car", "make": "Make", "type": "Body type", "year": "Model year"}
HEAD_LONG_TITLES = {**HEAD_TITLES, "model": "Car (196 classes)"}
DISPLAY_ORDER = ("model", "make", "type", "year")  # how pages, charts and the CLI list them

FEATURE_DIM = 1280  # MobileNetV2's pooled features, which every head reads
# Each head's last Linear layer in model.safetensors: the attribute heads read the features, the class
# head reads the features and the three attribute heads' logits, in ATTRIBUTE_HEADS order, through a ReLU.
HEAD_LAYERS = {"year": "year_head.1", "make": "make_head.1", "type": "type_head.1", "model": "model_head.2"}
