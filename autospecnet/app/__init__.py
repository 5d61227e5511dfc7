"""The apps on top of the recognition library: what only the Streamlit pages and the Gradio app use.

``ui`` (the model and car finder loaded once per process, the sidebar, cached results), ``charts``
(plotly figures), ``annotate`` (the photo with its boxes), ``gallery`` and ``experiments`` (what the
Gallery and Experiments pages show from their stored files), ``model_card`` (the About page) and
``gradio`` (``python -m autospecnet.app.gradio``).
"""
