"""The stored experiment runs: per-epoch histories and what each run was (hyperparameters, budget, hardware)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class ExperimentRun:
    name: str
    history: pd.DataFrame
    metadata: dict

    @property
    def reduced_budget(self) -> bool:
        return not self.metadata.get("budget", {}).get("full_protocol", False)

    def summary(self) -> dict:
        m, budget, hp = self.metadata, self.metadata.get("budget", {}), self.metadata.get("hyperparameters", {})
        test = m.get("test", {}).get("heads", {})
        return {
            "run": self.name,
            "image size": hp.get("image_size"),
            "batch": hp.get("batch_size"),
            "lr": hp.get("lr"),
            "epochs": budget.get("epochs"),
            "training images": budget.get("train_images"),
            "subset": budget.get("subset"),
            "best val acc": float(self.history["val_acc"].max()) if "val_acc" in self.history else None,
            "test acc": test.get("model", {}).get("accuracy"),
            "hardware": m.get("hardware"),
            "wall time (min)": round(m["wall_seconds"] / 60, 1) if "wall_seconds" in m else None,
            "protocol": "reduced budget" if self.reduced_budget else "paper (40 epochs, all data)",
        }


@dataclass(frozen=True)
class Experiments:
    runs: dict[str, ExperimentRun]
    comparisons: dict[str, list[str]]


def find_experiments(model_folder: Path | None, bundled: Path) -> Path | None:
    """The model's own experiments (published with it) before the ones bundled with the app."""
    candidates = [model_folder / "experiments"] if model_folder else []
    candidates.append(bundled)
    return next((c for c in candidates if c.is_dir() and any(c.glob("*/history.csv"))), None)


def load_experiments(folder: Path) -> Experiments:
    grid = json.loads((folder / "grid.json").read_text()) if (folder / "grid.json").is_file() else {}
    runs = {}
    for run_dir in sorted(p for p in folder.iterdir() if (p / "history.csv").is_file()):
        metadata_file = run_dir / "metadata.json"
        metadata = json.loads(metadata_file.read_text()) if metadata_file.is_file() else {}
        runs[run_dir.name] = ExperimentRun(run_dir.name, pd.read_csv(run_dir / "history.csv"), metadata)
    comparisons = {name: [r for r in members if r in runs] for name, members in grid.get("comparisons", {}).items()}
    return Experiments(runs, {k: v for k, v in comparisons.items() if v})
