"""Make the probabilities honest: fit each head's temperature, and how much the year, make and
body-type heads should draw on the 196-class head, on the validation part.

    python -m training.calibrate --model runs/bundled/best --data ../shared/data/stanford-cars-train

1. Temperature scaling (Guo et al., 2017): one scalar per head divides its logits, fitted by
   minimising the negative log-likelihood (NLL) on **validation** images.
2. Each attribute head's probabilities are mixed (geometric mean, weight w) with the class head's
   probabilities summed over the classes of each label: w = 0 is the paper's head alone, w = 1
   the class head alone; w is chosen from 0, 0.25, ..., 1 by validation NLL.

The model folder is rewritten with both in ``config.json``; ``calibration.json`` records them
with accuracy, NLL and expected calibration error (15 bins) before and after, on validation and
test; ``test_metrics.json`` holds the calibrated model's test metrics (no choice looks at test).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from autospecnet.backends import ONNX_FILE
from autospecnet.heads import ATTRIBUTE_HEADS, HEADS
from training.atomic import replace_folder_atomic, save_json_atomic
from training.data import DataError
from training.engine import evaluation_report
from training.evaluate import load_for_evaluation, model_and_data_parser, part_loader
from training.metrics import HeadMetrics
from training.onnx_export import export_onnx


def get_args_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        description="Fit temperatures and marginal weights on the validation part (--model: a local folder, "
        "rewritten in place)",
        parents=[model_and_data_parser()],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


@torch.no_grad()  # not inference_mode: the temperature fit differentiates through these logits
def collect_logits(model, loader) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    model.eval()
    device = next(model.parameters()).device
    logits, targets = {h: [] for h in HEADS}, {h: [] for h in HEADS}
    for images, classes, _ in tqdm(loader, desc="logits", leave=False):
        classes = classes.to(device)
        out = model(images.to(device, memory_format=torch.channels_last))
        truth = model.head_targets(classes)
        for head in HEADS:
            logits[head].append(out[head].float())
            targets[head].append(truth[head])
    return {h: torch.cat(v).cpu() for h, v in logits.items()}, {h: torch.cat(v).cpu() for h, v in targets.items()}


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


MARGINAL_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def scores(log_probs: dict, targets: dict) -> dict:
    return {
        head: {
            "accuracy": (log_probs[head].argmax(1) == targets[head]).double().mean().item(),
            "nll": F.nll_loss(log_probs[head], targets[head]).item(),
            "ece": expected_calibration_error(log_probs[head].exp(), targets[head]),
        }
        for head in HEADS
    }


def main(args) -> dict:
    loaded, dataset, split = load_for_evaluation(args)
    if loaded.kind != "local":
        raise SystemExit("--model must be a local folder: calibration rewrites its config.json")
    raw = loaded.model.with_calibration({}, {}).to(next(loaded.model.parameters()).device)
    parts = {part: collect_logits(raw, part_loader(raw, dataset, split[part], args)) for part in ("val", "test")}
    val_logits, val_targets = parts["val"]

    temperatures = {head: fit_temperature(val_logits[head], val_targets[head]) for head in HEADS}
    weights = {}
    for head in ATTRIBUTE_HEADS:

        def val_nll(weight, head=head):
            mixed = raw.with_calibration(temperatures, {head: weight}).log_probabilities(val_logits)[head]
            return F.nll_loss(mixed, val_targets[head]).item()

        weights[head] = min(MARGINAL_WEIGHTS, key=val_nll)
    calibrated = raw.with_calibration(temperatures, weights)

    report = {"temperatures": temperatures, "marginal_weights": weights}
    for part, (logits, targets) in parts.items():
        report[part] = {"before": scores(raw.log_probabilities(logits), targets),
                        "after": scores(calibrated.log_probabilities(logits), targets)}  # fmt: skip
    test_logits, test_targets = parts["test"]
    metrics = {head: HeadMetrics(len(labels)) for head, labels in calibrated.vocabularies.items()}
    for head, log_probs in calibrated.log_probabilities(test_logits).items():
        metrics[head].update(log_probs, test_targets[head])
    stats = {"images": len(test_targets["model"]), **{h: m.compute() for h, m in metrics.items()}}

    folder = Path(args.model)

    def fill(tmp: Path) -> None:
        shutil.copytree(folder, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("config.json", ONNX_FILE))
        calibrated.save_pretrained(tmp)
        save_json_atomic(report, tmp / "calibration.json")
        save_json_atomic(evaluation_report("test", stats), tmp / "test_metrics.json")
        export_onnx(calibrated, tmp)  # the serving graph holds the calibration too

    replace_folder_atomic(folder, fill)
    for head in HEADS:
        before, after = report["val"]["before"][head], report["val"]["after"][head]
        print(f"{head:<6} T={temperatures[head]:.3f} w={weights.get(head, 0):.2f}  validation: accuracy "
              f"{before['accuracy']:.4f} -> {after['accuracy']:.4f}, NLL {before['nll']:.3f} -> {after['nll']:.3f}, "
              f"ECE {before['ece']:.3f} -> {after['ece']:.3f}")  # fmt: skip
    return report


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except DataError as error:
        sys.exit(f"error: {error}")
