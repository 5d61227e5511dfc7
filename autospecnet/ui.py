"""Streamlit glue shared by the app's pages: the model (loaded once per process), the sidebar, cached predictions."""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

from autospecnet.model import HEADS
from autospecnet.predict import Prediction, Predictor
from autospecnet.sources import ASSETS_DIR, BUNDLED_MODEL_DIR, MODEL_ENV, LoadedModel, ModelLoadError, load_model

ASSETS = ASSETS_DIR
HEAD_LABELS = {"model": "Car", "make": "Make", "type": "Body type", "year": "Year"}


@dataclass(frozen=True)
class AppModel:
    loaded: LoadedModel | None
    predictor: Predictor | None
    notice: str | None  # why the configured model is not the one in use
    error: str | None  # why no model could be loaded at all


@st.cache_resource(show_spinner="Loading the model…")
def get_app_model(configured: str | None) -> AppModel:
    """The configured source (``$AUTOSPECNET_MODEL``), falling back to the bundled model; one per process."""
    notice = None
    if configured:
        try:
            loaded = load_model(configured)
            return AppModel(loaded, Predictor(loaded.model), None, None)
        except ModelLoadError as error:
            notice = f"Could not load the model `{configured}`: {error} Using the bundled model instead."
    try:
        loaded = load_model(BUNDLED_MODEL_DIR)
    except ModelLoadError as error:
        hint = f"Set {MODEL_ENV} to a model folder or Hub repo, or train one (see the README)."
        return AppModel(None, None, notice, f"No model could be loaded. {error} {hint}")
    return AppModel(loaded, Predictor(loaded.model), notice, None)


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
    return get_app_model(os.environ.get(MODEL_ENV) or None)


@st.cache_data(max_entries=256, show_spinner=False)
def predict_photo(_predictor: Predictor, model_key: str, data: bytes, top_k: int) -> Prediction:
    """Prediction for a photo's bytes, cached by content: reruns of the page cost nothing."""
    return _predictor.predict(data, top_k=top_k)


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
                st.markdown("**Source:** the bundled model (`assets/model`)")
            else:
                st.markdown(
                    f"**Source:** `{loaded.source}` ({'Hugging Face Hub' if loaded.kind == 'hub' else 'folder'})"
                )
            if loaded.revision:
                st.markdown(f"**Revision:** `{loaded.revision[:12]}`")
            metrics = loaded.test_metrics
            if metrics:
                heads = metrics["heads"]
                st.caption(f"Test accuracy ({metrics['images']} held-out crops):")
                st.markdown("\n".join(f"- {HEAD_LABELS[h]}: **{heads[h]['accuracy']:.1%}**" for h in HEADS))
            else:
                st.caption("No test metrics were published with this model.")
        if model.notice:
            st.warning(model.notice)
            if st.button("Try again", help="Reload the configured model"):
                get_app_model.clear()
                st.rerun()
