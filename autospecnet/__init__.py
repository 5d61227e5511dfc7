"""AutoSpecNet: recognise a car's make, body type, model year and full name from a photo."""

from autospecnet.images import ImageError, read_image
from autospecnet.labels import CarLabel, LabelError, Taxonomy, parse_class_name
from autospecnet.model import HEADS, AutoSpecNet
from autospecnet.predict import HeadPrediction, LabelProbability, Prediction, Predictor
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
    "AutoSpecNet",
    "CarLabel",
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
    "Prediction",
    "Predictor",
    "Taxonomy",
    "load_model",
    "parse_class_name",
    "read_image",
]
