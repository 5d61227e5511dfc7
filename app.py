"""AutoSpecNet demo: ``streamlit run app.py``. Pages live in pages/ and hold UI only."""

import streamlit as st

from autospecnet.app import ui

st.set_page_config(page_title="AutoSpecNet: what car is that?", page_icon="🚗", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/predict.py", title="Predict", icon=":material/search:", default=True),
        st.Page("pages/gallery.py", title="Gallery", icon=":material/photo_library:"),
        st.Page("pages/experiments.py", title="Experiments", icon=":material/monitoring:"),
        st.Page("pages/about.py", title="About the model", icon=":material/info:"),
    ]
)
ui.sidebar(ui.app_model())
navigation.run()
