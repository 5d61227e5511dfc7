"""The stored experiment runs: per-epoch histories, what each run was, and what they say about the paper's claims.

``assets/experiments/`` holds one folder per budget (``6-epochs/``, ``40-epochs/``...), each with the
grid's ``grid.json`` (runs, comparisons, the paper's findings) and a folder per run
(``history.csv``, ``metadata.json``). A folder that holds runs itself is one budget too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from autospecnet.heads import history_column
from autospecnet.optional_files import read_json

log = logging.getLogger("autospecnet")
SETTING_NAMES = {"image_size": "{} px", "batch_size": "batch {}", "lr": "lr {}"}


@dataclass(frozen=True)
class ExperimentRun:
    name: str
    history: pd.DataFrame
    metadata: dict

    @property
    def reduced_budget(self) -> bool:
        return not self.metadata.get("budget", {}).get("full_protocol", False)

    def best(self, head: str = "model", metric: str = "acc") -> float | None:
        column = history_column("val", head, metric)
        return float(self.history[column].max()) if column in self.history and len(self.history) else None

    def summary(self) -> dict:
        m, budget, hp = self.metadata, self.metadata.get("budget", {}), self.metadata.get("hyperparameters", {})
        test = m.get("test", {}).get("heads", {})
        return {
            "run": self.name,
            "image size": hp.get("image_size"),
            "batch": hp.get("batch_size"),
            "lr": hp.get("lr"),
            "lr milestones": " ".join(map(str, hp.get("lr_milestones") or [])) or None,
            "epochs": budget.get("epochs"),
            "training images": budget.get("train_images"),
            "best val acc": self.best(),
            "test acc": test.get("model", {}).get("accuracy"),
            "img/s": m.get("train_images_per_second"),
            "wall time (min)": round(m["wall_seconds"] / 60, 1) if m.get("wall_seconds") else None,
            "hardware": m.get("hardware"),
        }


@dataclass(frozen=True)
class Finding:
    """One of the paper's questions, answered by the stored runs."""

    question: str
    paper_claim: str
    paper_winner: str
    accuracies: dict[str, float]  # run name -> best validation accuracy (196 classes), runs that exist
    labels: dict[str, str]  # run name -> the setting it varies, "400 px"
    missing: list[str]

    @property
    def winner(self) -> str | None:
        return max(self.accuracies, key=self.accuracies.get) if self.accuracies and not self.missing else None

    @property
    def agrees(self) -> bool | None:
        return None if self.winner is None else self.winner == self.paper_winner

    def sentence(self, budget: str) -> str:
        reached = ", ".join(f"{self.labels[r]} reaches {a:.1%}" for r, a in self.accuracies.items())
        if self.winner is None:
            waiting = ", ".join(self.labels[r] for r in self.missing)
            if not reached:
                return f"Here, at {budget}: not run yet ({waiting})."
            return f"Here, at {budget}: {reached}; {waiting} not run yet."
        verdict = "same direction" if self.agrees else f"the opposite: {self.labels[self.winner]} is best"
        return f"Here, at {budget}: {reached} (best validation accuracy) — {verdict}."


@dataclass(frozen=True)
class Experiments:
    runs: dict[str, ExperimentRun]
    comparisons: dict[str, list[str]]  # the grid's comparisons, with the runs that are stored
    planned: dict[str, list[str]]  # the grid's comparisons, every run
    settings: dict[str, dict]  # run name -> its image_size, batch_size, lr
    paper: dict[str, dict]  # comparison -> {"winner", "claim"}

    @property
    def budget(self) -> str:
        """The runs' shared budget in words: "6 epochs on 5,707 training crops"."""
        budgets = {(r.metadata.get("budget", {}).get("epochs"), r.metadata.get("budget", {}).get("train_images"))
                   for r in self.runs.values()}  # fmt: skip
        if len(budgets) != 1:
            return "mixed budgets"
        epochs, images = budgets.pop()
        return f"{epochs} epochs on {images:,} training crops" if images else f"{epochs} epochs"

    def findings(self) -> list[Finding]:
        result = []
        for question, members in self.planned.items():
            claim = self.paper.get(question)
            if not claim:
                continue
            varied = [k for k in SETTING_NAMES if len({self.settings.get(r, {}).get(k) for r in members}) > 1]
            labels = {r: ", ".join(SETTING_NAMES[k].format(self.settings[r][k]) for k in varied) or r for r in members}
            accuracies = {r: self.runs[r].best() for r in members if r in self.runs and self.runs[r].best() is not None}
            missing = [r for r in members if r not in accuracies]
            result.append(Finding(question, claim["claim"], claim["winner"], accuracies, labels, missing))
        return result


def experiment_folders(root: Path) -> dict[str, Path]:
    """Budget name -> folder: ``root`` itself when it holds runs, and each subfolder that does."""
    candidates = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    return {(p.name if p != root else "runs"): p for p in candidates if p.is_dir() and any(p.glob("*/history.csv"))}


def find_experiments(model_folder: Path | None, bundled: Path) -> Path | None:
    """The model's own experiments (published with it) before the ones bundled with the app."""
    candidates = [model_folder / "experiments"] if model_folder else []
    candidates.append(bundled)
    return next((c for c in candidates if experiment_folders(c)), None)


def load_experiments(folder: Path) -> Experiments:
    grid = read_json(folder / "grid.json")
    grid = grid if isinstance(grid, dict) else {}
    runs = {}
    for run_dir in sorted(p for p in folder.iterdir() if (p / "history.csv").is_file()):
        metadata = read_json(run_dir / "metadata.json")
        try:
            history = pd.read_csv(run_dir / "history.csv")
        except (OSError, ValueError) as error:
            log.warning("skipped the run %s: %s", run_dir.name, error)
            continue
        runs[run_dir.name] = ExperimentRun(run_dir.name, history, metadata if isinstance(metadata, dict) else {})
    planned = grid.get("comparisons", {})
    comparisons = {name: [r for r in members if r in runs] for name, members in planned.items()}
    return Experiments(
        runs,
        {k: v for k, v in comparisons.items() if v},
        planned,
        grid.get("runs", {}),
        grid.get("paper", {}),
    )
