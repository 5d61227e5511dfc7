"""AutoSpecNet demo: ``streamlit run app.py``. Pages live in pages/ and hold UI only."""

import streamlit as st

from autospecnet import ui

st.set_page_config(page_title="AutoSpecNet: what car is that?", page_icon="🚗", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/predict.py", title="Predict", icon="🔍", default=True),
        st.Page("pages/gallery.py", title="Gallery", icon="🖼️"),
        st.Page("pages/experiments.py", title="Experiments", icon="📈"),
        st.Page("pages/about.py", title="About the model", icon="ℹ️"),
    ]
)
ui.sidebar(ui.app_model())
navigation.run()
