"""The four heads, their names for people, and the history columns that record them: one table for all."""

from __future__ import annotations

HEADS = ("model", "year", "make", "type")
ATTRIBUTE_HEADS = ("year", "make", "type")  # the attribute heads, in the order the class head reads them
HEAD_TITLES = {"model": "Car", "make": "Make", "type": "Body type", "year": "Model year"}
HEAD_LONG_TITLES = {**HEAD_TITLES, "model": "Car (196 classes)"}
DISPLAY_ORDER = ("model", "make", "type", "year")  # how pages, charts and the CLI list them
METRICS = ("acc", "precision", "recall")
METRIC_NAMES = {"acc": "accuracy", "precision": "macro precision", "recall": "macro recall"}
PART_TITLES = {"train": "train", "val": "validation"}


def history_column(part: str, head: str, metric: str = "acc") -> str:
    """The ``history.csv`` column: ``val_acc`` for the 196-class head (the paper's name), ``train_make_acc``..."""
    return f"{part}_{'' if head == 'model' else head + '_'}{metric}"
