"""``training_args.json``: how a model was trained, every ``python -m training.train`` setting and where it ran.

    {"image_size": 400, "epochs": 6, "lr": 0.005, ..., "init_from": "assets/model", "train_images": 5707,
     "argv": ["...train.py", "--data", ...], "environment": {"hardware", "processes", "software", "git_commit"},
     "warm_start": {"training_args": {...the donor's own record...}, "epochs_run": 16, "hours": 1.5},
     "teachers": [{"training_args": {...}, "epochs_run": 40, "hours": 6.1}, ...]}

``warm_start`` is there when the run started from a trained model (``--init-from``): how that model
was trained, so that the record still tells the whole recipe once the donor folder is gone or replaced;
``teachers`` likewise, one record per ``--teacher`` model, when the run learnt from them (``training.distill``).

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
    warm_start: dict | None = None  # the donor's {"training_args", "epochs_run", "hours"}, after --init-from
    teachers: list[dict] | None = None  # the same for each --teacher

    def get(self, key: str, default=None):
        return self.settings.get(key, default)

    def to_dict(self) -> dict:
        record = {**self.settings, "argv": self.argv, "environment": self.environment}
        if self.warm_start:
            record["warm_start"] = self.warm_start
        if self.teachers:
            record["teachers"] = self.teachers
        return record

    def donor(self) -> TrainingArgs | None:
        """How the model this run started from was trained, when it started from one."""
        return TrainingArgs.from_dict(self.warm_start["training_args"]) if self.warm_start else None

    def teacher_records(self) -> list[TrainingArgs]:
        """How each model this run learnt from (--teacher) was trained."""
        return [TrainingArgs.from_dict(teacher["training_args"]) for teacher in self.teachers or []]

    @classmethod
    def from_dict(cls, raw: dict) -> TrainingArgs:
        settings = {k: v for k, v in raw.items() if k not in ("argv", "environment", "warm_start", "teachers")}
        argv, environment, warm_start = raw.get("argv", []), raw.get("environment", {}), raw.get("warm_start")
        teachers = raw.get("teachers")
        if not isinstance(argv, list) or not isinstance(environment, dict):
            raise RecordError(f"not the layout of {FILE}")
        if warm_start is not None and not _is_model_record(warm_start):
            raise RecordError(f"not the layout of {FILE} (warm_start)")
        if teachers is not None and not (isinstance(teachers, list) and all(map(_is_model_record, teachers))):
            raise RecordError(f"not the layout of {FILE} (teachers)")
        return cls(settings, argv, environment, warm_start, teachers)

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


def _is_model_record(record) -> bool:
    return isinstance(record, dict) and isinstance(record.get("training_args"), dict)
