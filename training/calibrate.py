"""Make the probabilities honest and say when the model is sure, all fitted on the validation part.

    python -m training.calibrate --model runs/bundled/best --data ../shared/data/stanford-cars-train
    python -m training.calibrate --model ... --data ... --sure-score class_mean_cosine   # the open-set protocol's pick

0. Test-time flip (``--flip auto``): each head's logits averaged over the image and its mirror,
   when that raises the 196-class accuracy on the **validation** part (it doubles the classifier's
   time: ``python -m autospecnet.benchmark`` says whether that fits the budget; ``--flip off`` if not).
1. Temperature scaling (Guo et al., 2017): one scalar per head divides its logits, fitted by
   minimising the negative log-likelihood (NLL) on **validation** images.
2. Each attribute head's probabilities are mixed (geometric mean, weight w) with the class head's
   probabilities summed over the classes of each label: w = 0 is the paper's head alone, w = 1
   the class head alone; w is chosen from 0, 0.25, ..., 1 by validation NLL.
3. The "sure" rule (``autospecnet.sure``): the known score (``--sure-score``; by default the one
   ``python -m training.open_set`` chose, ``assets/open_set.json``) must keep ``KNOWN_KEEP`` of the
   validation crops; then per head the least probability, never below ``MIN_SURE_PROBABILITY`` (even
   odds), whose sure answers are right at least ``PRECISION[head]`` of the time on validation. A feature
   score's class means (and neighbours) come from the training part's features and go to ``sure.safetensors``.

The model folder is rewritten with all three in ``config.json``; ``calibration.json`` records
them with accuracy, NLL and expected calibration error (15 bins) before and after, and how often
each head is sure and right, on validation and test; ``test_metrics.json`` holds the calibrated
model's test metrics (no choice looks at test). Run it again whenever the model is retrained.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file
from tqdm import tqdm

from autospecnet.backends import ONNX_FILE
from autospecnet.config import CONFIG_FILE
from autospecnet.heads import ATTRIBUTE_HEADS, HEADS
from autospecnet.records.atomic import replace_folder_atomic
from autospecnet.records.calibration import Calibration, SureFigures, SureRecord
from autospecnet.records.open_set import OpenSetReport
from autospecnet.records.test_metrics import PartMetrics
from autospecnet.sources import ASSETS_DIR
from autospecnet.sure import MIN_SURE_PROBABILITY, SCORES, STATS_FILE, SureRule, known_score
from training.data import DataError
from training.evaluate import load_for_evaluation, model_and_data_parser, part_loader
from training.metrics import HeadMetrics
from training.onnx_export import export_onnx

MARGINAL_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
KNOWN_KEEP = 0.95  # share of the validation crops (all of known classes) whose known score passes
PRECISION = {"model": 0.96, "make": 0.985, "type": 0.98, "year": 0.97}  # right when sure, on validation
MIN_SURE = 20  # a threshold rests on at least this many validation crops
OPEN_SET_REPORT = ASSETS_DIR / "open_set.json"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Fit temperatures, marginal weights and the 'sure' rule on the validation part (--model: a "
        "local folder, rewritten in place)",
        parents=[model_and_data_parser()],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--flip",
        choices=("auto", "on", "off"),
        default="auto",
        help="average each head's logits over the image and its mirror (twice the classifier's time): auto, when "
        "it raises the 196-class accuracy on the validation part",
    )
    p.add_argument(
        "--sure-score",
        choices=SCORES,
        default=None,
        help=f"the known score of the 'sure' rule (None: the one chosen in {OPEN_SET_REPORT.name}, else max_softmax)",
    )
    return p


@dataclass
class PartOutputs:
    """What a model gives for one part's images (CPU tensors): each head's logits, the pooled features, the targets."""

    logits: dict[str, torch.Tensor]
    features: torch.Tensor
    targets: dict[str, torch.Tensor]


@torch.no_grad()  # not inference_mode: the temperature fit differentiates through these logits
def collect(model, loader, desc: str = "outputs") -> PartOutputs:
    model.eval()
    device = next(model.parameters()).device
    logits, features, targets = {h: [] for h in HEADS}, [], {h: [] for h in HEADS}
    for images, classes, _ in tqdm(loader, desc=desc, leave=False):
        out, pooled, _ = model.look(images.to(device, memory_format=torch.channels_last))
        truth = model.head_targets(classes.to(device))
        features.append(pooled.float().cpu())
        for head in HEADS:
            logits[head].append(out[head].float().cpu())
            targets[head].append(truth[head].cpu())
    return PartOutputs(
        {h: torch.cat(v) for h, v in logits.items()}, torch.cat(features), {h: torch.cat(v) for h, v in targets.items()}
    )


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def fit_calibration(raw, val: PartOutputs) -> tuple[dict[str, float], dict[str, float]]:
    """(temperatures, marginal weights) by validation NLL, for a model without calibration."""
    temperatures = {head: fit_temperature(val.logits[head], val.targets[head]) for head in HEADS}
    weights = {}
    for head in ATTRIBUTE_HEADS:

        def val_nll(weight, head=head):
            mixed = raw.with_calibration(temperatures, {head: weight}).log_probabilities(val.logits)[head]
            return F.nll_loss(mixed, val.targets[head]).item()

        weights[head] = min(MARGINAL_WEIGHTS, key=val_nll)
    return temperatures, weights


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor, bins: int = 15) -> float:
    confidence, prediction = probs.max(dim=1)
    correct = (prediction == targets).double()
    edges = torch.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.double().mean().item() * abs(
                confidence[in_bin].double().mean().item() - correct[in_bin].mean().item()
            )
    return error


def scores(log_probs: dict, targets: dict) -> dict:
    return {
        head: {
            "accuracy": (log_probs[head].argmax(1) == targets[head]).double().mean().item(),
            "nll": F.nll_loss(log_probs[head], targets[head]).item(),
            "ece": expected_calibration_error(log_probs[head].exp(), targets[head]),
        }
        for head in HEADS
    }


# The "sure" rule


def serving_outputs(model, part: PartOutputs) -> dict[str, np.ndarray]:
    """What the serving graph returns for these images: calibrated probabilities, logits and features."""
    with torch.no_grad():
        probs = {head: lp.exp().numpy() for head, lp in model.log_probabilities(part.logits).items()}
    return probs | {f"{head}_logits": part.logits[head].numpy() for head in HEADS} | {"features": part.features.numpy()}


def correct_answers(outputs: dict[str, np.ndarray], targets: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {head: outputs[head].argmax(axis=1) == targets[head].numpy() for head in HEADS}


def feature_stats(train: PartOutputs, classes: int, score: str) -> dict[str, np.ndarray]:
    """What a feature score compares with: the mean direction of each class's training features, and for the
    nearest-neighbour score the training features themselves (unit length, float16)."""
    unit = F.normalize(train.features, dim=1)
    sums = torch.zeros(classes, unit.shape[1]).index_add_(0, train.targets["model"], unit)
    stats = {"class_means": F.normalize(sums, dim=1).numpy().astype(np.float32)}
    if score.startswith("knn_cosine"):
        stats["knn_bank"] = unit.numpy().astype(np.float16)
    return stats


def precision_threshold(
    confidence: np.ndarray, correct: np.ndarray, target: float, floor: float = MIN_SURE_PROBABILITY
) -> float:
    """The least confidence, at least ``floor``, whose answers at or above it are right at least ``target`` of
    the time, with the most answers (at least MIN_SURE); above every confidence when none is."""
    considered = confidence >= floor
    confidence, correct = confidence[considered], correct[considered]
    order = np.argsort(-confidence, kind="stable")
    right = np.cumsum(correct[order])
    precision = right / np.arange(1, len(order) + 1)
    good = np.flatnonzero((precision >= target) & (np.arange(1, len(order) + 1) >= MIN_SURE))
    return float(confidence[order][good[-1]]) if len(good) else float(np.nextafter(1.0, 2.0))


def fit_sure_rule(score: str, outputs: dict, correct: dict, stats: dict, class_makes) -> SureRule:
    known = np.sort(known_score(score, outputs, stats, class_makes))
    known_threshold = known[int((1 - KNOWN_KEEP) * len(known))]
    if not np.isfinite(known_threshold):  # more heads disagree than KNOWN_KEEP leaves out: every agreeing crop passes
        known_threshold = known[np.isfinite(known)].min() if np.isfinite(known).any() else 0.0
    passes = known_score(score, outputs, stats, class_makes) >= known_threshold
    thresholds = {}
    for head in HEADS:
        among = passes if head == "model" else np.ones_like(passes)
        confidence = outputs[head].max(axis=1)
        thresholds[head] = precision_threshold(confidence[among], correct[head][among], PRECISION[head])
    return SureRule(score, float(known_threshold), thresholds)


def sure_figures(rule: SureRule, outputs: dict, correct: dict, stats: dict, class_makes) -> dict[str, SureFigures]:
    """Per head: the share of the images with a sure answer, and how often those are right."""
    sure = rule.decide(outputs, stats, class_makes)
    return {
        head: SureFigures(
            sure=float(sure[head].mean()) if len(sure[head]) else 0.0,
            images=int(len(sure[head])),
            right_when_sure=float(correct[head][sure[head]].mean()) if sure[head].any() else None,
        )
        for head in HEADS
    }


def default_sure_score() -> str:
    report = OpenSetReport.read(OPEN_SET_REPORT)
    return report.chosen.score if report and report.chosen.score in SCORES else "max_softmax"


def main(args) -> Calibration:
    loaded, dataset, split = load_for_evaluation(args)
    if loaded.kind != "local":
        raise SystemExit("--model must be a local folder: calibration rewrites its config.json")
    score = args.sure_score or default_sure_score()
    device = next(loaded.model.parameters()).device
    raw, flip_raw = (loaded.model.with_calibration({}, {}, flip_average=f).to(device) for f in (False, True))
    val = collect(raw, part_loader(raw, dataset, split["val"], args), "val")
    flip = args.flip == "on"
    if args.flip == "auto":
        flipped = collect(flip_raw, part_loader(raw, dataset, split["val"], args), "val, mirrored too")
        accuracy = {
            f: (p.logits["model"].argmax(1) == p.targets["model"]).double().mean().item()
            for f, p in ((False, val), (True, flipped))
        }
        flip = accuracy[True] > accuracy[False]
        print(f"validation accuracy without and with the mirror: {accuracy[False]:.4f}, {accuracy[True]:.4f}")
        val = flipped if flip else val
    raw = flip_raw if flip else raw
    parts = {"val": val, "test": collect(raw, part_loader(raw, dataset, split["test"], args), "test")}
    temperatures, weights = fit_calibration(raw, parts["val"])
    calibrated = raw.with_calibration(temperatures, weights, flip_average=flip)
    before_after = {
        part: {
            "before": scores(raw.log_probabilities(p.logits), p.targets),
            "after": scores(calibrated.log_probabilities(p.logits), p.targets),
        }
        for part, p in parts.items()
    }

    class_makes = calibrated.class_to_heads[:, ATTRIBUTE_HEADS.index("make")].cpu().numpy()
    stats = {}
    if score.removesuffix("+agreement") in ("class_mean_cosine", "knn_cosine"):
        train = collect(raw, part_loader(raw, dataset, split["train"], args), "train features")
        stats = feature_stats(train, len(calibrated.vocabularies["model"]), score)
    outputs = {part: serving_outputs(calibrated, p) for part, p in parts.items()}
    correct = {part: correct_answers(outputs[part], p.targets) for part, p in parts.items()}
    rule = fit_sure_rule(score, outputs["val"], correct["val"], stats, class_makes)
    sure = {part: sure_figures(rule, outputs[part], correct[part], stats, class_makes) for part in parts}
    record = SureRecord(rule.to_config(), KNOWN_KEEP, PRECISION, sure["val"], sure["test"])
    report = Calibration(temperatures, weights, before_after["val"], before_after["test"], record, flip)
    final = calibrated.with_calibration(temperatures, weights, sure=rule.to_config(), flip_average=flip)

    metrics = {head: HeadMetrics(len(labels)) for head, labels in final.vocabularies.items()}
    for head, log_probs in final.log_probabilities(parts["test"].logits).items():
        metrics[head].update(log_probs, parts["test"].targets[head])
    test_stats = {"images": len(parts["test"].targets["model"]), **{h: m.compute() for h, m in metrics.items()}}

    folder = Path(args.model)

    def fill(tmp: Path) -> None:
        ignored = shutil.ignore_patterns(CONFIG_FILE, ONNX_FILE, STATS_FILE)
        shutil.copytree(folder, tmp, dirs_exist_ok=True, ignore=ignored)
        final.save_pretrained(tmp)
        if stats:
            save_file(stats, tmp / STATS_FILE)
        report.save(tmp)
        PartMetrics.from_stats("test", test_stats).save(tmp)
        export_onnx(final, tmp)  # the serving graph holds the calibration too

    replace_folder_atomic(folder, fill)
    for head in HEADS:
        before, after = report.val["before"][head], report.val["after"][head]
        print(
            f"{head:<6} T={temperatures[head]:.3f} w={weights.get(head, 0):.2f}  validation: accuracy "
            f"{before['accuracy']:.4f} -> {after['accuracy']:.4f}, NLL {before['nll']:.3f} -> {after['nll']:.3f}, "
            f"ECE {before['ece']:.3f} -> {after['ece']:.3f}"
        )
    for part in parts:
        shown = ", ".join(
            f"{h} {f.sure:.1%} sure, {f.right_when_sure or 0:.1%} of those right" for h, f in sure[part].items()
        )
        print(f"sure ({score}), {part}: {shown}")
    return report


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except DataError as error:
        sys.exit(f"error: {error}")
