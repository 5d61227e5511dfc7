"""About: the model card of the model in use."""

import streamlit as st

from autospecnet.app import ui
from autospecnet.app.model_card import SURE_HEADING, about_sure, card_body

ui.ensure_app_navigation()

model = ui.app_model()
card = card_body(model.loaded.folder) if model.loaded else None
heading, _, rest = (card or "").partition("\n")
if heading.startswith("# "):  # the card's own title becomes the page's, not a second title under it
    st.title(heading[2:].strip())
    card = rest.strip()
else:
    st.title("About the model")
if model.loaded is None:
    st.error(model.error or "No model loaded.")
    st.stop()

if card:
    st.markdown(card)
elif card is None and (model.loaded.folder / "README.md").is_file():
    st.info("This model's card (README.md) could not be read.")
elif card is None:
    st.info("This model has no model card (README.md).")
if model.loaded.config.sure is None:
    st.info("This model has no fitted thresholds, so it cannot say when it is sure: every answer is a guess.")
elif SURE_HEADING not in (card or ""):
    st.markdown(about_sure(model.loaded.folder))
st.divider()
st.markdown(
    "**Retrain and publish:** `python -m training.train --help`, then `python -m training.publish` "
    "(see the README). The app loads any model folder or Hub repo set in `AUTOSPECNET_MODEL`."
)
