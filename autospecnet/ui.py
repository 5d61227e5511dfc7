"""Streamlit glue shared by the app's pages: the model and car finder (loaded once per process), the sidebar,
cached results."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image

from autospecnet.annotate import annotated_thumbnail
from autospecnet.detector import DETECTOR_ENV
from autospecnet.heads import HEAD_TITLES, HEADS
from autospecnet.predict import Predictor
from autospecnet.recognise import FINDER_UNAVAILABLE, Car, Recognizer, load_finder
from autospecnet.sources import ASSETS_DIR, BUNDLED_MODEL_DIR, MODEL_ENV, LoadedModel, ModelLoadError, load_model

ASSETS = ASSETS_DIR
DISPLAY_SIDE = 800
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppModel:
    loaded: LoadedModel | None
    recognizer: Recognizer | None
    notice: str | None  # why the configured model is not the one in use
    error: str | None  # why no model could be loaded at all

    @property
    def finder_notice(self) -> str | None:
        """What visitors are told when there is no car finder; the reason, which may name server paths, is
        in the server's log."""
        return FINDER_UNAVAILABLE if self.recognizer and self.recognizer.finder_error else None


def source_label(source: str) -> str:
    """How a page names a model source: a Hub id as it is, never a path of this server."""
    path = Path(source).expanduser()
    if path.exists() or source.startswith((".", "/", "~")) or os.path.isabs(source):
        return "the configured model folder"
    return f"`{source}`"


@st.cache_resource(show_spinner="Loading the model…")
def get_app_model(configured: str | None, detector_setting: str | None = None) -> AppModel:
    """The configured source (``$AUTOSPECNET_MODEL``), falling back to the bundled model, and the car finder
    (``$AUTOSPECNET_DETECTOR`` or the cache); one per process and setting."""
    finder, finder_error = load_finder()
    if finder_error:
        log.warning(finder_error)
    failure = None
    if configured:
        try:
            loaded = load_model(configured, label=source_label(configured))
            return AppModel(loaded, Recognizer(Predictor(loaded), finder, finder_error), None, None)
        except ModelLoadError as error:
            failure = f"Could not load {source_label(configured)}: {error}"
    try:
        loaded = load_model(BUNDLED_MODEL_DIR, label="the bundled model")
        predictor = Predictor(loaded)
    except ModelLoadError as error:
        hint = f"Set {MODEL_ENV} to a model folder or Hub repo, or train one (see the README)."
        return AppModel(None, None, None, " ".join(filter(None, [failure, f"No model could be loaded: {error}", hint])))
    notice = f"{failure} Using the bundled model instead." if failure else None
    return AppModel(loaded, Recognizer(predictor, finder, finder_error), notice, None)


def ensure_app_navigation() -> None:
    """Send a page through app.py's ``st.navigation``.

    While a folder named ``pages/`` sits beside app.py, Streamlit runs the first request after
    it starts the old multipage way when that request is a deep link (``/gallery``): the page
    file alone, without app.py's navigation and sidebar. Switching that mode off and rerunning
    gives the same page through app.py.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def app_model() -> AppModel:
    return get_app_model(os.environ.get(MODEL_ENV) or None, os.environ.get(DETECTOR_ENV))


@dataclass(frozen=True)
class ShownPhoto:
    """A photo's result as a page shows it: the cars (largest first) and the photo with their boxes."""

    cars: tuple[Car, ...]
    no_car: bool
    picture: Image.Image  # at most DISPLAY_SIDE pixels, boxes drawn and numbered


@st.cache_data(max_entries=128, show_spinner=False)
def recognise_photo(_recognizer: Recognizer, model_key: str, data: bytes, top_k: int, use_finder: bool) -> ShownPhoto:
    """Find and name the cars of a photo's bytes, decoded once; cached by content, so reruns cost nothing."""
    result = _recognizer.recognise(data, top_k=top_k, use_finder=use_finder)
    boxes = [car.box for car in result.cars if car.box]
    return ShownPhoto(result.cars, result.no_car, annotated_thumbnail(result.image, boxes, DISPLAY_SIDE))


def model_key(model: AppModel) -> str:
    loaded = model.loaded
    return f"{loaded.source}@{loaded.revision}" if loaded else "none"


def sidebar(model: AppModel) -> None:
    with st.sidebar:
        st.subheader("Model")
        if model.loaded is None:
            st.error("No model loaded.")
        else:
            loaded = model.loaded
            if loaded.folder.resolve() == BUNDLED_MODEL_DIR.resolve():
                st.markdown("**Source:** the bundled model")
            elif loaded.kind == "hub":
                st.markdown(f"**Source:** `{loaded.source}` (Hugging Face Hub)")
            else:
                st.markdown("**Source:** the configured model folder")
            if loaded.revision:
                st.markdown(f"**Revision:** `{loaded.revision[:12]}`")
            metrics = loaded.test_metrics
            if metrics:
                heads = metrics["heads"]
                st.caption(f"Test accuracy ({metrics['images']} held-out crops):")
                st.markdown("\n".join(f"- {HEAD_TITLES[h]}: **{heads[h]['accuracy']:.1%}**" for h in HEADS))
            else:
                st.caption("No test metrics were published with this model.")
        if model.notice:
            st.warning(model.notice)
            if st.button("Try again", help="Reload the configured model"):
                get_app_model.clear()
                st.rerun()
