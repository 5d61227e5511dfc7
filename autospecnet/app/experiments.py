"""The stored experiment runs: per-epoch histories, what each run was, and what they say about the paper's claims.

``assets/experiments/`` holds one folder per budget (``6-epochs/``, ``40-epochs/``...), each with the
grid's ``grid.json`` and a folder per run (``history.csv``, ``metadata.json``; their layouts:
``autospecnet.records.experiments`` and ``autospecnet.records.history``). A folder that holds runs
itself is one budget too.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from autospecnet.records import experiments as experiments_files
from autospecnet.records import history as history_file
from autospecnet.records.experiments import Grid, RunMetadata
from autospecnet.records.reading import is_count
from autospecnet.records.training_args import TrainingArgs
from autospecnet.sources import ASSETS_DIR, BUNDLED_MODEL_DIR

BUNDLED_EXPERIMENTS = ASSETS_DIR / experiments_files.FOLDER
log = logging.getLogger("autospecnet")
SETTING_NAMES = {"image_size": "{} px", "batch_size": "batch {}", "lr": "lr {}"}
Z_95 = 1.96
UNEVEN_EPOCHS = 1.3  # slowest over fastest epoch beyond which other work evidently shared the machine


@dataclass(frozen=True)
class ExperimentRun:
    name: str
    history: pd.DataFrame
    metadata: RunMetadata

    @property
    def reduced_budget(self) -> bool:
        return not self.metadata.budget.full_protocol

    def best(self, head: str = "model", metric: str = "accuracy") -> float | None:
        column = history_file.column("val", head, metric)
        return float(self.history[column].max()) if column in self.history and len(self.history) else None

    @property
    def epoch_minutes(self) -> tuple[float, float] | None:
        """The fastest and the slowest epoch (training and validation), in minutes."""
        if "epoch_time" not in self.history:
            return None
        seconds = pd.to_numeric(self.history["epoch_time"], errors="coerce").dropna()
        return (seconds.min() / 60, seconds.max() / 60) if len(seconds) and seconds.min() > 0 else None

    @property
    def uneven_epochs(self) -> bool:
        """Epochs of the same work that took very different times: the run shared its machine, so its wall
        time is an upper bound of what the recipe costs there."""
        return self.epoch_minutes is not None and self.epoch_minutes[1] > UNEVEN_EPOCHS * self.epoch_minutes[0]

    @property
    def val_images(self) -> int | None:
        parts = self.metadata.data.get("parts")
        count = parts.get("val") if isinstance(parts, dict) else None
        return count if is_count(count) and count > 0 else None

    def summary(self) -> dict:
        m, hp = self.metadata, self.metadata.hyperparameters
        heads = m.test.get("heads") if isinstance(m.test.get("heads"), dict) else {}
        test = heads.get("model") if isinstance(heads.get("model"), dict) else {}
        return {
            "run": self.name,
            "best val accuracy": self.best(),
            "test accuracy": test.get("accuracy"),
            "image size": hp.get("image_size"),
            "batch": hp.get("batch_size"),
            "lr": hp.get("lr"),
            "lr milestones": " ".join(map(str, hp.get("lr_milestones") or [])) or None,
            "epochs": m.budget.epochs,
            "training images": m.budget.train_images,
            "img/s": m.train_images_per_second,
            "wall time (min)": round(m.wall_seconds / 60, 1) if m.wall_seconds else None,
            "epoch (min)": "{:.1f}–{:.1f}".format(*self.epoch_minutes) if self.epoch_minutes else None,
            "hardware": m.hardware,
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
    val_images: dict[str, int] = field(default_factory=dict)  # run name -> images its accuracy is measured on

    @property
    def winner(self) -> str | None:
        return max(self.accuracies, key=self.accuracies.get) if self.accuracies and not self.missing else None

    @property
    def runner_up(self) -> str | None:
        ranked = sorted(self.accuracies, key=self.accuracies.get, reverse=True)
        return ranked[1] if self.winner and len(ranked) > 1 else None

    def noise_between(self, first: str, second: str) -> float | None:
        """Half-width of the 95 % interval of the difference of two runs' accuracies that sampling the validation
        images alone gives (two independent proportions: conservative, as both runs are measured on the same
        images); None when the runs do not say how many images they were measured on."""
        if first not in self.val_images or second not in self.val_images:
            return None
        variance = sum(self.accuracies[r] * (1 - self.accuracies[r]) / self.val_images[r] for r in (first, second))
        return Z_95 * math.sqrt(variance)

    @property
    def noise(self) -> float | None:
        """The sampling noise of the winner's lead over the runner-up."""
        return self.noise_between(self.winner, self.runner_up) if self.runner_up else None

    def lead_over(self, run: str) -> float:
        return self.accuracies[self.winner] - self.accuracies[run]

    @property
    def clearly_behind(self) -> list[str]:
        """When the first two are too close to call: the other runs, whose gap to the winner is beyond the noise."""
        if self.outcome != "too close":
            return []
        others = [r for r in self.accuracies if r not in (self.winner, self.runner_up)]
        return [
            r for r in others if (noise := self.noise_between(self.winner, r)) is not None and self.lead_over(r) > noise
        ]

    @property
    def outcome(self) -> str:
        """ "waiting" (runs missing), "too close" (the lead is within the noise), "same" or "opposite" (to the
        paper)."""
        if self.winner is None:
            return "waiting"
        if self.noise is not None and self.lead_over(self.runner_up) <= self.noise:
            return "too close"
        return "same" if self.winner == self.paper_winner else "opposite"

    def sentence(self, budget: str) -> str:
        reached = ", ".join(f"{self.labels[r]} reaches {a:.1%}" for r, a in self.accuracies.items())
        if self.outcome == "waiting":
            waiting = ", ".join(self.labels[r] for r in self.missing)
            if not reached:
                return f"Here, at {budget}: not run yet ({waiting})."
            return f"Here, at {budget}: {reached}; {waiting} not run yet."
        verdict = {
            "same": "same direction",
            "opposite": f"the opposite: {self.labels[self.winner]} is best",
            "too close": "too close to call",
        }[self.outcome]
        if self.noise is not None:
            images = self.val_images[self.winner]
            relation = "within" if self.outcome == "too close" else "beyond"
            verdict += (
                f" (a lead of {self.lead_over(self.runner_up) * 100:.1f} points over {self.labels[self.runner_up]}, "
                f"{relation} the ±{self.noise * 100:.1f} points that sampling {images:,} validation images "
                "alone gives)"
            )
        for run in self.clearly_behind:
            verdict += (
                f"; {self.labels[run]} is clearly behind ({self.lead_over(run) * 100:.1f} points, beyond "
                f"±{self.noise_between(self.winner, run) * 100:.1f})"
            )
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
        budgets = {(r.metadata.budget.epochs, r.metadata.budget.train_images) for r in self.runs.values()}
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
            images = {r: self.runs[r].val_images for r in accuracies if self.runs[r].val_images}
            result.append(Finding(question, claim["claim"], claim["winner"], accuracies, labels, missing, images))
        return result


def experiment_folders(root: Path) -> dict[str, Path]:
    """Budget name -> folder: ``root`` itself when it holds runs, and each subfolder that does."""
    candidates = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    return {
        (p.name if p != root else "runs"): p for p in candidates if p.is_dir() and any(p.glob(f"*/{history_file.FILE}"))
    }


def find_experiments(model_folder: Path | None, bundled: Path = BUNDLED_EXPERIMENTS) -> Path | None:
    """The model's own experiments (published with it) before the ones bundled with the app."""
    candidates = [model_folder / experiments_files.FOLDER] if model_folder else []
    candidates.append(bundled)
    return next((c for c in candidates if experiment_folders(c)), None)


def load_experiments(folder: Path) -> Experiments:
    grid = Grid.read(folder)
    runs = {}
    for run_dir in sorted(p for p in folder.iterdir() if (p / history_file.FILE).is_file()):
        try:
            history = history_file.read_frame(run_dir / history_file.FILE)
        except (OSError, ValueError) as error:
            log.warning("skipped the run %s: %s", run_dir.name, error)
            continue
        runs[run_dir.name] = ExperimentRun(run_dir.name, history, RunMetadata.read(run_dir))
    comparisons = {name: [r for r in members if r in runs] for name, members in grid.comparisons.items()}
    return Experiments(runs, {k: v for k, v in comparisons.items() if v}, grid.comparisons, grid.runs, grid.paper)


def bundled_reference() -> tuple[str, pd.DataFrame] | None:
    """The bundled model's own training (label, history), drawn beside the runs as a reference; None without it."""
    path = BUNDLED_MODEL_DIR / history_file.FILE
    if not path.is_file():
        return None
    try:
        history = history_file.read_frame(path)
    except (OSError, ValueError) as error:
        log.warning("skipped the bundled model's history: %s", error)
        return None
    args = TrainingArgs.read(BUNDLED_MODEL_DIR)
    recipe = (
        f"{args.get('epochs', '?')} epochs at {args.get('image_size', '?')} px, {args.get('augment', '?')} augmentation"
    )
    start = ", warm-started from a trained model" if args.get("init_from") else ""
    return f"bundled model (other recipe: {recipe}{start})", history
