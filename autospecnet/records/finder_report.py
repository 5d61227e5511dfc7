"""``finder.json``: what ``python -m training.finder`` chose for the car finder, and what it measured.

The score threshold and crop margin chosen on the validation part (``chosen``), the grid they were
chosen from, the whole pipeline's figures on the validation and test parts (``PartFigures``), and
the checks that do not depend on the classifier's split (boxes, street scenes, photos without a car).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from autospecnet.records.atomic import save_json_atomic
from autospecnet.records.reading import RecordError, read_object

FILE = "finder.json"


@dataclass(frozen=True)
class Choice:
    threshold: float
    margin: float
    close_up_pad: float


@dataclass(frozen=True)
class PartFigures:
    crops: int
    crops_classifier_alone: float  # 196-class accuracy
    crops_pipeline: float
    crops_no_car: int
    crops_found_first_pass: int
    whole_photos: int
    whole_photos_classifier_alone: float
    whole_photos_official_box: float
    whole_photos_pipeline: float


@dataclass(frozen=True)
class FinderReport:
    chosen: Choice
    choice: str  # how it was chosen, in words
    grid: list[dict]  # threshold, margin, no_car_rate, val_crops, val_whole
    val: PartFigures
    test: PartFigures
    whole_photos_main_box_iou50: float
    whole_photos: int
    street_scenes: int
    street_largest_car_found: float
    street_largest_car_first: float
    no_car_photos: int
    no_car_answered_no_car: float
    model: str
    backend: str

    @classmethod
    def load_file(cls, path: Path) -> FinderReport:
        raw = read_object(Path(path))
        try:
            values = {key: raw[key] for key in cls.__dataclass_fields__}
            values["chosen"] = Choice(**raw["chosen"])
            values["val"], values["test"] = PartFigures(**raw["val"]), PartFigures(**raw["test"])
        except (KeyError, TypeError) as error:
            raise RecordError(f"not the layout of {FILE} ({error})") from None
        return cls(**values)

    def save_file(self, path: Path) -> None:
        save_json_atomic(asdict(self), Path(path))
