"""Plotly figures for the app: per-head probability bars and accuracy-over-epoch curves."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from autospecnet.heads import HEAD_TITLES
from autospecnet.predict import HeadPrediction
from autospecnet.records import history as history_file
from autospecnet.records.history import METRIC_NAMES, PART_TITLES


def probability_bars(prediction: HeadPrediction, guess: bool = False) -> go.Figure:
    """Horizontal bars, most probable on top, labelled with percentages; ``guess``: the title says the answer
    is a guess, and the bars are grey."""
    labels = [p.label for p in prediction.labels][::-1]
    probs = [p.prob for p in prediction.labels][::-1]
    top = "#8a8f98" if guess else "#1f5fbf"
    colours = ["#c9ccd1" if guess else "#9db4d8"] * (len(labels) - 1) + [top]
    figure = go.Figure(
        go.Bar(
            x=probs,
            y=labels,
            orientation="h",
            marker_color=colours,
            text=[f"{p:.1%}" for p in probs],
            textposition="auto",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    figure.update_layout(
        title=HEAD_TITLES.get(prediction.head, prediction.head) + (" — a guess" if guess else ""),
        xaxis={"range": [0, 1], "tickformat": ".0%", "title": None},
        yaxis={"title": None, "automargin": True, "type": "category"},
        height=90 + 28 * len(labels),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        showlegend=False,
    )
    return figure


def history_curves(
    histories: dict[str, pd.DataFrame],
    head: str,
    parts: list[str],
    metric: str = "accuracy",
    x: str = "epoch",
    reference: tuple[str, pd.DataFrame] | None = None,
) -> go.Figure:
    """One line per run and part, dashed for train, solid for validation; ``x`` is "epoch" or "minutes"
    (the run's cumulative epoch time); ``reference`` adds a (label, history) drawn dotted in grey."""
    frames = []
    lines = list(histories.items()) + ([reference] if reference else [])
    for run, history in lines:
        for part in parts:
            column = history_file.column(part, head, metric)
            if column not in history or (x == "minutes" and "epoch_time" not in history):
                continue
            position = history["epoch"] if x == "epoch" else history["epoch_time"].cumsum() / 60
            frames.append(
                pd.DataFrame({"x": position, "value": history[column], "run": run, "part": PART_TITLES[part]})
            )
    data = pd.concat(frames) if frames else pd.DataFrame(columns=["x", "value", "run", "part"])
    dashes = {"train": "dash", "validation": "solid"}
    figure = px.line(data, x="x", y="value", color="run", line_dash="part", markers=True, line_dash_map=dashes)
    if reference:
        figure.update_traces(
            selector=lambda trace: trace.legendgroup.startswith(reference[0]), line_color="#9aa0a6", line_dash="dot"
        )
    x_title = "epoch" if x == "epoch" else "wall-clock minutes (training and validation)"
    figure.update_layout(
        yaxis={
            "tickformat": ".0%",
            "title": f"{HEAD_TITLES.get(head, head)} {METRIC_NAMES[metric]}",
            "rangemode": "tozero",
        },
        xaxis={"title": x_title, **({"dtick": 1} if x == "epoch" else {})},
        legend={"title": None, "orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},  # long run names: below
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        height=520,
    )
    return figure
