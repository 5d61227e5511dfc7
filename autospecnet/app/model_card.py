"""The About page's text: a model folder's card (README.md, without its YAML front matter), and what "sure"
means for the model, with the figures measured for it (the card written by ``training.card`` holds the same)."""

from __future__ import annotations

import logging
from pathlib import Path

from huggingface_hub import ModelCard

from autospecnet.heads import DISPLAY_ORDER, HEAD_LONG_TITLES, HEADS
from autospecnet.records import open_set
from autospecnet.records.calibration import Calibration
from autospecnet.records.open_set import OpenSetReport
from autospecnet.records.reading import RecordError
from autospecnet.sources import ASSETS_DIR
from autospecnet.sure import MIN_SURE_PROBABILITY, SureRule

log = logging.getLogger("autospecnet")
MAX_CARD_BYTES = 1 << 20
BUNDLED_OPEN_SET = ASSETS_DIR / open_set.FILE
SURE_HEADING = "## When it is sure"
SCORE_WORDS = {
    "max_softmax": "the 196-class head's largest probability",
    "max_logit": "the 196-class head's largest logit",
    "energy": "the log-sum-exp of the 196-class head's logits",
    "class_mean_cosine": "the cosine similarity of its features to the nearest class's mean features",
    "knn_cosine": "the cosine similarity of its features to the 10th nearest training crop's",
    "max_softmax*agreement": "the 196-class head's largest probability times the make head's own probability "
    "of that class's make",
}


def card_body(folder: Path) -> str | None:
    """The card's Markdown body, or None (logged) when there is none or it cannot be read."""
    path = folder / "README.md"
    try:
        if not path.is_file() or path.stat().st_size > MAX_CARD_BYTES:
            return None
        text = ModelCard.load(path, ignore_metadata_errors=True).text
    except (OSError, UnicodeDecodeError, ValueError) as error:
        log.warning("skipped the model card of %s: %s", folder.name, error)
        return None
    return text.strip() or None


def score_words(score: str) -> str:
    base, _, gate = score.partition("+")
    words = SCORE_WORDS.get(base, base)
    return words + (", and the make head's own answer must be the make of the 196-class answer" if gate else "")


def _share(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def sure_section(calibration: Calibration | None, open_set: OpenSetReport | None, classes: int = 196) -> str:
    """Markdown: what "sure" means for this model, how often each head is sure on the test part and how often
    right then, and what the open-set protocol measured for cars it has never seen. Empty without a rule."""
    if calibration is None or calibration.sure is None:
        return ""
    sure = calibration.sure
    rule = SureRule.from_config(sure.rule, HEADS)
    rows = ["| head | sure on the test crops | right when sure | goal on validation |", "|---|---|---|---|"]
    floored = min(rule.thresholds.values()) >= MIN_SURE_PROBABILITY  # rules fitted before the floor may not be
    floor = f", and never under {MIN_SURE_PROBABILITY:.0%}" if floored else ""
    for head in DISPLAY_ORDER:
        figures = sure.test[head]
        rows.append(
            f"| {HEAD_LONG_TITLES[head]} | {_share(figures.sure)} | {_share(figures.right_when_sure)} "
            f"| {sure.precision_goals[head]:.1%} |"
        )
    text = f"""{SURE_HEADING}

Every answer comes with the model's best guess for each head, and with whether it is **sure** of it.
For make, body type and model year, sure means that the head's probability is at least a threshold
fitted on the validation part, the lowest at which its sure answers were right at least as often as
the goal below{floor}. For the car itself (one of {classes} classes), sure also needs the car to look like
one the model knows: its known score, {score_words(rule.score)}, must reach the threshold that
keeps {sure.known_keep:.0%} of the validation crops. Otherwise the app says what it is sure of
("A Mitsubishi SUV — not one of the {classes} models I know") and shows its guesses as guesses.
Fitted by `python -m training.calibrate`, measured on the {sure.test["model"].images} test crops (known cars):

{chr(10).join(rows)}
"""
    if open_set is not None:
        text += "\n" + open_set_paragraph(open_set) + "\n"
    return text


def open_set_paragraph(report: OpenSetReport) -> str:
    protocol, chosen = report.protocol, report.chosen
    unknown = chosen.sure.unknown_test
    msp = report.scores.get("max_softmax")
    versus = (
        "" if chosen.score == "max_softmax" or msp is None else f" (the largest probability alone: {msp.auroc:.3f})"
    )
    return (
        f"**Cars it has never seen** (`python -m training.open_set`): {protocol.held_out} of the "
        f"{protocol.classes} classes were held out (seed {protocol.seed}; {len(protocol.makes_held_out_whole)} makes "
        f"entirely, the others single models of makes it knows), and the same recipe trained on the rest "
        f"({protocol.training.get('epochs')} epochs at 224 px). On the test part, "
        f"{protocol.parts['known']['test']} crops of known classes against {protocol.parts['unknown']['test']} of "
        f"held-out ones, the chosen score ({score_words(chosen.score)}, chosen on validation) separates them with an "
        f"AUROC of {chosen.auroc:.3f}{versus}; at the threshold that keeps 90 % of the known crops it rejects "
        f"{chosen.unknown_rejected:.1%} of the held-out ones. With the sure rule fitted on that model's validation "
        f"part as above, it was sure of a (necessarily wrong) name for {_share(unknown.model_sure)} of the held-out "
        f"test crops, and sure of the make for {_share(unknown.seen_make_sure)} of those of a make it knows, right "
        f"{_share(unknown.seen_make_right_when_sure)} of those times."
    )


def about_sure(folder: Path, bundled_report: Path = BUNDLED_OPEN_SET) -> str:
    """The sure section for a model folder: its calibration record, and the open-set report published with it
    (else the one bundled with the app)."""
    try:
        calibration = Calibration.load(folder)
    except RecordError:
        return ""
    report = OpenSetReport.read(folder / open_set.FILE) or OpenSetReport.read(bundled_report)
    return sure_section(calibration, report)
