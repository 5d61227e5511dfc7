"""AutoSpecNet: recognise a car's make, body type, model year and full name from a photo.

This package is the recognition library; ``autospecnet.app`` holds what only the apps use, and
``autospecnet.records`` the layout of every file the project stores. Serving (``Predictor``,
``Recognizer``, ``load_model``) imports no torch when the model runs on
ONNX Runtime; ``AutoSpecNet``, the torch network, is imported on first use.
"""

from autospecnet.finder import CarFinder, FinderUnavailableError
from autospecnet.heads import HEAD_TITLES, HEADS
from autospecnet.images import ImageError, read_image
from autospecnet.labels import CarLabel, LabelError, Taxonomy, parse_class_name
from autospecnet.predict import ExplainUnavailableError, HeadPrediction, LabelProbability, Prediction, Predictor
from autospecnet.recognise import Car, PhotoResult, Recognizer
from autospecnet.sources import (
    HubUnreachableError,
    LoadedModel,
    ModelConfigMismatchError,
    ModelFilesError,
    ModelLoadError,
    ModelNotFoundError,
    load_model,
)

__all__ = [
    "HEADS",
    "HEAD_TITLES",
    "AutoSpecNet",
    "Car",
    "CarFinder",
    "CarLabel",
    "ExplainUnavailableError",
    "FinderUnavailableError",
    "HeadPrediction",
    "HubUnreachableError",
    "ImageError",
    "LabelError",
    "LabelProbability",
    "LoadedModel",
    "ModelConfigMismatchError",
    "ModelFilesError",
    "ModelLoadError",
    "ModelNotFoundError",
    "PhotoResult",
    "Prediction",
    "Predictor",
    "Recognizer",
    "Taxonomy",
    "load_model",
    "parse_class_name",
    "read_image",
]


def __getattr__(name: str):
    if name == "AutoSpecNet":  # imports torch
        from autospecnet.model import AutoSpecNet

        return AutoSpecNet
    raise AttributeError(f"module 'autospecnet' has no attribute {name!r}")
