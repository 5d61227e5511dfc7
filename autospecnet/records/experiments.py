"""The experiment grid's files: ``grid.json`` for a budget's folder, ``metadata.json`` (and ``history.csv``,
``autospecnet.records.history``) for each run in it.

    <budget>/grid.json            {"runs": {name: {"image_size", "batch_size", "lr"}}, "comparisons": {question:
                                  [run, ...]}, "paper": {question: {"winner", "claim"}}}
    <budget>/<run>/metadata.json  {"name", "hyperparameters", "budget": {"epochs", "epochs_run", "subset",
                                  "train_images", "full_protocol", "dry_run"}, "data", "hardware", "software",
                                  "git_commit", "wall_seconds", "train_images_per_second", "command", "test"}

``training.experiments`` writes them; the Experiments page reads them, and does without any value
that is missing or of another type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from autospecnet.records.atomic import save_json_atomic
from autospecnet.records.reading import read_json

FOLDER = "experiments"  # in a model folder and in assets/: one subfolder per budget
GRID_FILE = "grid.json"
METADATA_FILE = "metadata.json"


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Grid:
    runs: dict[str, dict] = field(default_factory=dict)  # run name -> its image_size, batch_size, lr
    comparisons: dict[str, list[str]] = field(default_factory=dict)  # question -> the runs it compares
    paper: dict[str, dict] = field(default_factory=dict)  # question -> {"winner": run, "claim": words}

    def save(self, folder: Path) -> None:
        save_json_atomic(asdict(self), Path(folder) / GRID_FILE)

    @classmethod
    def read(cls, folder: Path) -> Grid:
        """The budget's grid; an empty one when the file is missing or not of this layout."""
        raw = _dict(read_json(Path(folder) / GRID_FILE))
        return cls(_dict(raw.get("runs")), _dict(raw.get("comparisons")), _dict(raw.get("paper")))


@dataclass(frozen=True)
class Budget:
    epochs: int | None = None
    epochs_run: int | None = None
    subset: float | None = None
    train_images: int | None = None
    full_protocol: bool = False  # the paper's: 40 epochs on all the training data
    dry_run: bool = False


@dataclass(frozen=True)
class RunMetadata:
    name: str
    hyperparameters: dict = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    data: dict = field(default_factory=dict)  # dataset, split_seed, parts: {part: images}
    hardware: str | None = None
    software: str | None = None
    git_commit: str | None = None
    wall_seconds: float | None = None
    train_images_per_second: float | None = None
    command: str | None = None  # the recipe, as a python -m training.train command
    test: dict = field(default_factory=dict)  # the run's test_metrics.json

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, run_folder: Path) -> None:
        save_json_atomic(self.to_dict(), Path(run_folder) / METADATA_FILE)

    @classmethod
    def read(cls, run_folder: Path) -> RunMetadata:
        """The run's metadata; what is missing or of another type is left at its default."""
        raw = _dict(read_json(Path(run_folder) / METADATA_FILE))
        budget = _dict(raw.get("budget"))
        return cls(
            name=_of(raw.get("name"), str) or Path(run_folder).name,
            hyperparameters=_dict(raw.get("hyperparameters")),
            budget=Budget(
                epochs=_of(budget.get("epochs"), int),
                epochs_run=_of(budget.get("epochs_run"), int),
                subset=_of(budget.get("subset"), int | float),
                train_images=_of(budget.get("train_images"), int),
                full_protocol=budget.get("full_protocol") is True,
                dry_run=budget.get("dry_run") is True,
            ),
            data=_dict(raw.get("data")),
            hardware=_of(raw.get("hardware"), str),
            software=_of(raw.get("software"), str),
            git_commit=_of(raw.get("git_commit"), str),
            wall_seconds=_of(raw.get("wall_seconds"), int | float),
            train_images_per_second=_of(raw.get("train_images_per_second"), int | float),
            command=_of(raw.get("command"), str),
            test=_dict(raw.get("test")),
        )


def _of(value, kind):
    """``value`` when it is of ``kind`` (JSON's true and false are not numbers), else None."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None
