"""``history.csv``: a training run, one row an epoch, written as it goes.

Columns: ``epoch``, ``lr``, then for ``train`` and ``val``: ``<part>_loss``, ``<part>_top5`` and each
head's accuracy, macro precision and macro recall (``val_accuracy`` for the 196-class head,
``val_make_accuracy``, ``train_year_recall``...: ``column``), then ``epoch_time`` (training and
validation, seconds) and ``train_time`` (training alone). Files written before the accuracy
columns were named so end them in ``_acc`` (the paper's code); both are read.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from autospecnet.heads import HEADS
from autospecnet.records.atomic import save_csv_atomic

FILE = "history.csv"
METRICS = ("accuracy", "precision", "recall")
METRIC_NAMES = {"accuracy": "accuracy", "precision": "macro precision", "recall": "macro recall"}
PART_TITLES = {"train": "train", "val": "validation"}
_EARLIER_SUFFIX, _SUFFIX = "_acc", "_accuracy"


def column(part: str, head: str, metric: str = "accuracy") -> str:
    """``val_accuracy`` for the 196-class head, ``train_make_accuracy``, ``val_type_recall``..."""
    return f"{part}_{'' if head == 'model' else head + '_'}{metric}"


def _current_name(name: str) -> str:
    return name[: -len(_EARLIER_SUFFIX)] + _SUFFIX if name.endswith(_EARLIER_SUFFIX) else name


def row(epoch: int, lr: float, train: dict, val: dict, seconds: float, train_seconds: float) -> dict:
    """One epoch's row from the training and validation statistics (``loss`` and per head each metric, ``top5``)."""
    result = {"epoch": epoch + 1, "lr": lr}
    for part, stats in (("train", train), ("val", val)):
        result[f"{part}_loss"] = stats["loss"]
        for metric in METRICS:
            for head in HEADS:
                result[column(part, head, metric)] = stats[head][metric]
        result[f"{part}_top5"] = stats["model"]["top5"]
    result["epoch_time"] = seconds
    result["train_time"] = train_seconds
    return result


def read_rows(path: Path) -> list[dict]:
    """The rows as strings, columns under their current names; empty when there is no file."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return [{_current_name(k): v for k, v in r.items()} for r in csv.DictReader(f)]


def save_rows(rows: list[dict], path: Path) -> None:
    save_csv_atomic(rows, path)


def read_frame(path: Path) -> pd.DataFrame:
    """The history as a table, columns under their current names (``OSError``/``ValueError`` when unreadable)."""
    frame = pd.read_csv(path)
    return frame.rename(columns=_current_name)


def seconds(rows: list[dict]) -> float:
    """The time the epochs took, training and validation, in seconds."""
    return sum(float(r.get("epoch_time") or 0) for r in rows)


def best_epoch(rows: list[dict]) -> dict:
    """The row of the epoch with the best validation accuracy (196 classes): the one a run keeps."""
    return max(rows, key=lambda r: float(r[column("val", "model")]))
