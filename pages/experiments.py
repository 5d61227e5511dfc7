"""Experiments: the paper's image size, batch size and learning rate runs, what they found, at what cost."""

import pandas as pd
import streamlit as st

from autospecnet.app import charts, ui
from autospecnet.app.experiments import bundled_reference, experiment_folders, find_experiments, load_experiments
from autospecnet.heads import DISPLAY_ORDER, HEAD_LONG_TITLES
from autospecnet.records.history import METRIC_NAMES, METRICS, PART_TITLES

ui.ensure_app_navigation()

st.title("Experiments")
st.caption("The paper's three comparisons, re-run with its recipe: accuracy over epochs and over time.")

model = ui.app_model()
root = find_experiments(model.loaded.folder if model.loaded else None)
budgets = experiment_folders(root) if root else {}
if not budgets:
    st.info("No experiment runs are stored yet. Run `python -m training.experiments` (see the README).")
    st.stop()
budget_name = (
    st.segmented_control("Budget", list(budgets), default=next(iter(budgets)), required=True)
    if len(budgets) > 1
    else next(iter(budgets))
)
experiments = load_experiments(budgets[budget_name])
if not experiments.runs:
    st.info("This budget's runs could not be read.")
    st.stop()

reduced = [run for run in experiments.runs.values() if run.reduced_budget]
if reduced:
    st.warning(
        f"{len(reduced)} of {len(experiments.runs)} runs used a **reduced budget** ({experiments.budget}), not the "
        "paper's protocol (40 epochs, all data): compare them with each other, not with the paper's numbers."
    )

st.subheader("What the paper found, and what these runs say")
OUTCOME_ICONS = {
    "same": ":material/check_circle:",
    "opposite": ":material/swap_horiz:",
    "too close": ":material/balance:",
    "waiting": ":material/hourglass_top:",
}
findings = experiments.findings()
for finding in findings:
    icon = OUTCOME_ICONS[finding.outcome]
    st.markdown(
        f"{icon} **{finding.question.capitalize()}.** Paper: {finding.paper_claim}. "
        + finding.sentence(experiments.budget)
    )

choices = list(experiments.comparisons) + ["pick runs"]
comparison = st.segmented_control("Comparison", choices, default=choices[0], required=True, format_func=str.capitalize)
if comparison == "pick runs":
    selected = st.multiselect("Runs", list(experiments.runs), default=list(experiments.runs)[:2])
else:
    selected = experiments.comparisons[comparison]
left, middle, right = st.columns(3)
head = left.selectbox("Head", list(DISPLAY_ORDER), format_func=HEAD_LONG_TITLES.get)
metric = middle.selectbox("Metric", list(METRICS), format_func=METRIC_NAMES.get)
parts = right.multiselect("Parts", list(PART_TITLES), default=["val"], format_func=PART_TITLES.get)

reference = bundled_reference()
if reference and not st.toggle("Show the bundled model's training as a reference", value=True):
    reference = None

histories = {name: experiments.runs[name].history for name in selected}
by_epoch, by_time = st.tabs(["Over epochs", "Over wall-clock time"])
by_epoch.plotly_chart(charts.history_curves(histories, head, parts, metric, reference=reference), key="curves")
by_time.plotly_chart(
    charts.history_curves(histories, head, parts, metric, x="minutes", reference=reference), key="curves-time"
)
by_time.caption("Minutes of training and validation per run, as measured on the hardware in each run's metadata.")
uneven_runs = [experiments.runs[name] for name in selected if experiments.runs[name].uneven_epochs]
uneven = ["{} ({:.1f}–{:.1f} min an epoch)".format(run.name, *run.epoch_minutes) for run in uneven_runs]
if uneven:
    by_time.caption(
        "Epochs of very different lengths: the machine was also doing other work, so these runs' times are upper "
        f"bounds: {'; '.join(uneven)}."
    )

st.subheader("Runs")
percent = st.column_config.NumberColumn(format="percent")
summaries = pd.DataFrame([run.summary() for run in experiments.runs.values()])
st.dataframe(summaries, hide_index=True, column_config={"best val accuracy": percent, "test accuracy": percent})
for name, run in experiments.runs.items():
    with st.expander(f"{name}: metadata"):
        st.json(run.metadata.to_dict(), expanded=False)
