"""Streamlit glue shared by the app's pages: the model and car finder (loaded once per process), the sidebar,
cached results."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image

from autospecnet.app.annotate import annotated_thumbnail
from autospecnet.heads import HEAD_TITLES, HEADS
from autospecnet.recognise import FINDER_UNAVAILABLE, Car, Recognizer
from autospecnet.settings import MODEL_ENV, finder_setting
from autospecnet.sources import BUNDLED_MODEL_DIR, LoadedModel, ModelLoadError, load_model

DISPLAY_SIDE = 800
CROP_SIDE = 400
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


def _recognizer(loaded: LoadedModel) -> Recognizer:
    recognizer = Recognizer.from_loaded(loaded)
    if recognizer.finder_error:
        log.warning(recognizer.finder_error)
    return recognizer


@st.cache_resource(show_spinner="Loading the model…")
def get_app_model(configured: str | None, finder_setting: str | None = None) -> AppModel:
    """The configured source (``$AUTOSPECNET_MODEL``), falling back to the bundled model, and the car finder
    (``$AUTOSPECNET_FINDER`` or the cache); one per process and setting."""
    failure = None
    if configured:
        try:
            loaded = load_model(configured, label=source_label(configured))
            return AppModel(loaded, _recognizer(loaded), None, None)
        except ModelLoadError as error:
            failure = f"Could not load {source_label(configured)}: {error}"
    try:
        loaded = load_model(BUNDLED_MODEL_DIR, label="the bundled model")
        recognizer = _recognizer(loaded)
    except ModelLoadError as error:
        hint = f"Set {MODEL_ENV} to a model folder or Hub repo, or train one (see the README)."
        return AppModel(None, None, None, " ".join(filter(None, [failure, f"No model could be loaded: {error}", hint])))
    notice = f"{failure} Using the bundled model instead." if failure else None
    return AppModel(loaded, recognizer, notice, None)


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
    return get_app_model(os.environ.get(MODEL_ENV) or None, finder_setting())


@dataclass(frozen=True)
class ShownPhoto:
    """A photo's result as a page shows it: the cars (largest first), the photo with their boxes, each car's crop."""

    cars: tuple[Car, ...]
    no_car: bool
    picture: Image.Image  # at most DISPLAY_SIDE pixels, boxes drawn and numbered
    crops: tuple[Image.Image, ...] = ()  # what the classifier saw of each car, at most CROP_SIDE pixels


@st.cache_data(max_entries=128, show_spinner=False)
def recognise_photo(
    _recognizer: Recognizer, model_key: str, data: bytes, top_k: int, use_finder: bool, explain: bool = False
) -> ShownPhoto:
    """Find and name the cars of a photo's bytes, decoded once; cached by content, so reruns cost nothing.
    ``explain``: each head's heatmap too (needs ``_recognizer.predictor.can_explain``)."""
    result = _recognizer.recognise(data, top_k=top_k, use_finder=use_finder, explain=explain)
    boxes = [car.box for car in result.cars if car.box]
    crops = []
    for car in result.cars:
        crop = result.image.crop(car.box) if car.box else result.image.copy()
        crop.thumbnail((CROP_SIDE, CROP_SIDE))
        crops.append(crop)
    return ShownPhoto(result.cars, result.no_car, annotated_thumbnail(result.image, boxes, DISPLAY_SIDE), tuple(crops))


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
            if loaded.is_bundled:
                st.markdown("**Source:** the bundled model")
            elif loaded.kind == "hub":
                st.markdown(f"**Source:** `{loaded.source}` (Hugging Face Hub)")
            else:
                st.markdown("**Source:** the configured model folder")
            if loaded.revision:
                st.markdown(f"**Revision:** `{loaded.revision[:12]}`")
            metrics = loaded.test_metrics
            if metrics:
                st.caption(f"Test accuracy ({metrics.images} held-out crops):")
                st.markdown("\n".join(f"- {HEAD_TITLES[h]}: **{metrics.heads[h].accuracy:.1%}**" for h in HEADS))
            else:
                st.caption("No test metrics were published with this model.")
        if model.notice:
            st.warning(model.notice)
            if st.button("Try again", help="Reload the configured model"):
                get_app_model.clear()
                st.rerun()
