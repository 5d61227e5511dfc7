"""Split Stanford Cars class names into make, model, body type and year.

Every one of the 196 names ends in a four-digit year. Most put the body type
just before it ("BMW M3 Coupe 2012"); the rest name a trim instead
("Dodge Challenger SRT8 2011") and get their body type from
``BODY_TYPE_BY_NAME``, a table checked by hand. A name that matches neither
raises ``LabelError``: guessing would silently teach the model a wrong label.

Body types (``BODY_TYPES``):

- Convertible, Coupe, Hatchback, Minivan, Sedan, SUV, Van, Wagon: as the name says.
- Pickup: every "... Cab" name (Crew, Extended, Regular, Quad, Club Cab and
  Ford's "SuperCab"). The cab style stays in the model name
  ("Silverado 1500 Regular Cab"), where it tells classes apart.

"Van" covers full-size vans ("Express Cargo Van", "E-Series Wagon Van");
"Ram C/V Cargo Van Minivan" is a Minivan, as its name ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BODY_TYPES = ("Convertible", "Coupe", "Hatchback", "Minivan", "Pickup", "Sedan", "SUV", "Van", "Wagon")

MULTI_WORD_MAKES = ("AM General", "Aston Martin", "Land Rover")

# The last words before the year that name the body type.
_BODY_WORDS = frozenset(BODY_TYPES) - {"Pickup"}
_PICKUP_WORD = re.compile(r"^(Cab|SuperCab)$")

# Names whose last word before the year is a trim, not a body type.
BODY_TYPE_BY_NAME = {
    "Acura TL Type-S 2008": "Sedan",
    "Acura Integra Type R 2001": "Coupe",
    "Buick Regal GS 2012": "Sedan",
    "Chevrolet Corvette ZR1 2012": "Coupe",
    "Chevrolet Corvette Ron Fellows Edition Z06 2007": "Coupe",
    "Chevrolet HHR SS 2010": "Wagon",
    "Chevrolet Cobalt SS 2010": "Coupe",
    "Chevrolet TrailBlazer SS 2009": "SUV",
    "Chrysler 300 SRT-8 2010": "Sedan",
    "Dodge Challenger SRT8 2011": "Coupe",
    "Dodge Charger SRT-8 2009": "Sedan",
    "FIAT 500 Abarth 2012": "Hatchback",
    "Infiniti G Coupe IPL 2012": "Coupe",
    "Jaguar XK XKR 2012": "Coupe",
    "Lamborghini Gallardo LP 570-4 Superleggera 2012": "Coupe",
}

_YEAR = re.compile(r"^(19|20)\d\d$")


class LabelError(ValueError):
    """A class name that cannot be split into make, model, body type and year."""


@dataclass(frozen=True)
class CarLabel:
    name: str
    make: str
    model: str
    body_type: str
    year: str

    @property
    def answer(self) -> str:
        """The name as a person says it: "2012 BMW M3 Coupe"."""
        return f"{self.year} {self.name.rsplit(' ', 1)[0]}"


def parse_class_name(name: str) -> CarLabel:
    words = name.split()
    if len(words) < 3:
        raise LabelError(f"{name!r}: expected '<make> <model> [<body type>] <year>'")
    year = words[-1]
    if not _YEAR.match(year):
        raise LabelError(f"{name!r}: does not end in a year (19xx or 20xx)")

    make = next((m for m in MULTI_WORD_MAKES if name.startswith(m + " ")), words[0])
    model_words = words[len(make.split()) : -1]
    if not model_words:
        raise LabelError(f"{name!r}: no model between make {make!r} and year {year}")

    last = model_words[-1]
    if name in BODY_TYPE_BY_NAME:
        body_type = BODY_TYPE_BY_NAME[name]
    elif last in _BODY_WORDS and len(model_words) > 1:
        body_type = last
        model_words = model_words[:-1]
    elif _PICKUP_WORD.match(last):
        body_type = "Pickup"
    else:
        raise LabelError(
            f"{name!r}: no body type found (expected one of {', '.join(BODY_TYPES)} "
            "before the year, or an entry in BODY_TYPE_BY_NAME)"
        )
    return CarLabel(name=name, make=make, model=" ".join(model_words), body_type=body_type, year=year)


@dataclass(frozen=True)
class Taxonomy:
    """The 196 class names and the sorted vocabularies of the three attribute heads."""

    class_names: tuple[str, ...]
    years: tuple[str, ...]
    makes: tuple[str, ...]
    body_types: tuple[str, ...]

    @classmethod
    def from_class_names(cls, class_names: list[str] | tuple[str, ...]) -> Taxonomy:
        labels = [parse_class_name(n) for n in class_names]
        if len(set(class_names)) != len(class_names):
            raise LabelError("class names must be unique")
        return cls(
            class_names=tuple(class_names),
            years=tuple(sorted({label.year for label in labels})),
            makes=tuple(sorted({label.make for label in labels}, key=str.casefold)),
            body_types=tuple(sorted({label.body_type for label in labels}, key=str.casefold)),
        )

    @property
    def vocabularies(self) -> dict[str, tuple[str, ...]]:
        """Each head's labels, in the order of its outputs."""
        return {"model": self.class_names, "year": self.years, "make": self.makes, "type": self.body_types}

    def check_vocabularies(self, years, makes, body_types) -> None:
        """``LabelError`` unless the given vocabularies (a config's) are the ones of these class names."""
        if (tuple(years), tuple(makes), tuple(body_types)) != (self.years, self.makes, self.body_types):
            raise LabelError("year, make and body-type vocabularies do not match its class names")

    def labels(self) -> list[CarLabel]:
        return [parse_class_name(n) for n in self.class_names]

    def head_targets(self) -> dict[str, list[int]]:
        """For each attribute head, the index of each class's label in its vocabulary."""
        labels = self.labels()
        return {
            "year": [self.years.index(label.year) for label in labels],
            "make": [self.makes.index(label.make) for label in labels],
            "type": [self.body_types.index(label.body_type) for label in labels],
        }


STANFORD_CARS_CLASSES_FILE = Path(__file__).with_name("stanford_cars_classes.txt")


def read_class_names(path=STANFORD_CARS_CLASSES_FILE) -> list[str]:
    """Class names, one a line; by default the 196 Stanford Cars names in the devkit's order."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]
