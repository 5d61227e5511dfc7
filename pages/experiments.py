"""Experiments: accuracy over epochs for the paper's image size, batch size and learning rate runs."""

import pandas as pd
import streamlit as st

from autospecnet import charts, ui
from autospecnet.experiments import find_experiments, load_experiments
from autospecnet.heads import DISPLAY_ORDER, HEAD_LONG_TITLES, METRIC_NAMES

ui.ensure_app_navigation()

st.title("Experiments")
st.caption("Accuracy over epochs of the paper's three comparisons, as stored with the app.")

model = ui.app_model()
folder = find_experiments(model.loaded.folder if model.loaded else None, ui.ASSETS / "experiments")
experiments = load_experiments(folder) if folder else None
if not experiments or not experiments.runs:
    st.info("No experiment runs are stored yet. Run `python -m training.experiments` (see the README).")
    st.stop()

reduced = [run for run in experiments.runs.values() if run.reduced_budget]
if reduced:
    budget = reduced[0].metadata.get("budget", {})
    st.warning(
        f"{len(reduced)} of {len(experiments.runs)} runs used a **reduced budget** "
        f"({budget.get('epochs', '?')} epochs on {budget.get('subset', 1):.0%} of the training part), not the "
        "paper's protocol (40 epochs, all data): compare them with each other, not with the paper's numbers."
    )

choices = list(experiments.comparisons) + ["pick runs"]
comparison = st.segmented_control("Comparison", choices, default=choices[0], required=True,
                                  format_func=str.capitalize)  # fmt: skip
if comparison == "pick runs":
    selected = st.multiselect("Runs", list(experiments.runs), default=list(experiments.runs)[:2])
else:
    selected = experiments.comparisons[comparison]
left, middle, right = st.columns(3)
head = left.selectbox("Head", list(DISPLAY_ORDER), format_func=HEAD_LONG_TITLES.get)
metric = middle.selectbox("Metric", ["acc", "precision", "recall"], format_func=METRIC_NAMES.get)
parts = right.multiselect("Parts", ["train", "val"], default=["train", "val"], format_func=charts.PART_TITLES.get)

histories = {name: experiments.runs[name].history for name in selected}
st.plotly_chart(charts.history_curves(histories, head, parts, metric), key="curves")

st.subheader("Runs")
st.dataframe(pd.DataFrame([run.summary() for run in experiments.runs.values()]), hide_index=True)
