"""``split.json``: which images of the dataset are in each part (train, validation, test) of a run's split.

    {"seed": 0, "val_fraction": 0.15, "test_fraction": 0.15, "official_test": false,
     "train": ["images/00001.jpg", ...], "val": [...], "test": [...]}

A run folder and the model folder made from it both carry it: a model names the images it was
trained, chosen and tested on. ``training.data.make_split`` makes one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from autospecnet.records.atomic import save_json_atomic
from autospecnet.records.reading import RecordError, read_object

FILE = "split.json"
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    seed: int
    val_fraction: float
    test_fraction: float
    official_test: bool  # the dataset's own test split is the test part
    train: list[str]  # file names relative to the dataset root, sorted
    val: list[str]
    test: list[str]

    def __getitem__(self, part: str) -> list[str]:
        """The files of one part: ``split["val"]``."""
        if part not in PARTS:
            raise KeyError(f"no part {part!r}: the parts are {', '.join(PARTS)}")
        return getattr(self, part)

    def counts(self) -> dict[str, int]:
        return {part: len(self[part]) for part in PARTS}

    def restricted(self, keep) -> Split:
        """The same split with only the files for which ``keep(file)`` is true."""
        parts = ([f for f in self[part] if keep(f)] for part in PARTS)
        return Split(self.seed, self.val_fraction, self.test_fraction, self.official_test, *parts)

    @classmethod
    def from_dict(cls, raw: dict) -> Split:
        try:
            split = cls(**{key: raw[key] for key in cls.__dataclass_fields__})
        except (KeyError, TypeError) as error:
            raise RecordError(f"not the layout of {FILE} ({error})") from None
        if not all(isinstance(split[part], list) for part in PARTS):
            raise RecordError(f"not the layout of {FILE}: its parts are not lists of files")
        return split

    @classmethod
    def load(cls, folder: Path) -> Split:
        return cls.load_file(Path(folder) / FILE)

    @classmethod
    def load_file(cls, path: Path) -> Split:
        return cls.from_dict(read_object(Path(path)))

    def save(self, folder: Path) -> None:
        save_json_atomic(asdict(self), Path(folder) / FILE)
