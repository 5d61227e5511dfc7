"""``training_args.json``: how a model was trained, every ``python -m training.train`` setting and where it ran.

    {"image_size": 400, "epochs": 6, "lr": 0.005, ..., "init_from": "assets/model", "train_images": 5707,
     "argv": ["...train.py", "--data", ...], "environment": {"hardware", "processes", "software", "git_commit"}}

The run folder holds it as training starts (with the values derived then, such as the LR milestones
and the number of training images); ``training.publish`` copies it into the model folder. Run folders
written before it had this name call it ``args.json``; it is still read there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autospecnet.records.atomic import save_json_atomic
from autospecnet.records.reading import RecordError, read_json, read_object

FILE = "training_args.json"
EARLIER_FILE = "args.json"


@dataclass(frozen=True)
class TrainingArgs:
    settings: dict  # flag name (argparse dest) -> value
    argv: list[str] = field(default_factory=list)
    environment: dict = field(default_factory=dict)

    def get(self, key: str, default=None):
        return self.settings.get(key, default)

    def to_dict(self) -> dict:
        return {**self.settings, "argv": self.argv, "environment": self.environment}

    @classmethod
    def from_dict(cls, raw: dict) -> TrainingArgs:
        settings = {k: v for k, v in raw.items() if k not in ("argv", "environment")}
        argv, environment = raw.get("argv", []), raw.get("environment", {})
        if not isinstance(argv, list) or not isinstance(environment, dict):
            raise RecordError(f"not the layout of {FILE}")
        return cls(settings, argv, environment)

    @classmethod
    def load(cls, folder: Path) -> TrainingArgs:
        folder = Path(folder)
        path = (
            folder / FILE
            if (folder / FILE).is_file() or not (folder / EARLIER_FILE).is_file()
            else folder / EARLIER_FILE
        )
        return cls.from_dict(read_object(path))

    @classmethod
    def read(cls, folder: Path) -> TrainingArgs:
        """The folder's record, or an empty one when it has none (a model from elsewhere): callers use defaults."""
        raw = read_json(Path(folder) / FILE)
        try:
            return cls.from_dict(raw) if isinstance(raw, dict) else cls({})
        except RecordError:
            return cls({})

    def save(self, folder: Path) -> None:
        save_json_atomic(self.to_dict(), Path(folder) / FILE)
