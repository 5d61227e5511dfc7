"""Fit each head's softmax temperature on the validation part, so that its probabilities are honest.

    python -m training.calibrate --model runs/bundled/best --data ../shared/data/stanford-cars-train

Temperature scaling (Guo et al., 2017): one scalar per head divides the logits; it is fitted by
minimising the negative log-likelihood on **validation** images and never changes which label
is first. The model folder is rewritten with the temperatures in ``config.json``; the expected
calibration error (15 bins of top-1 confidence) before and after is printed for validation and,
for information only, test.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from autospecnet.model import HEADS
from training.data import DATA_ENV, save_json_atomic
from training.evaluate import load_for_evaluation, part_loader


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Fit per-head softmax temperatures on the validation part")
    p.add_argument("--model", required=True, help="a local model folder (rewritten in place)")
    p.add_argument("--data", default=None, help=f"dataset folder (default: ${DATA_ENV})")
    p.add_argument("--split-file", default=None, help="split.json (default: the model folder's)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p


@torch.no_grad()  # not inference_mode: the temperature fit differentiates through these logits
def collect_logits(model, loader) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    model.eval()
    device = next(model.parameters()).device
    logits, targets = {h: [] for h in HEADS}, {h: [] for h in HEADS}
    for images, classes, _ in tqdm(loader, desc="logits", leave=False):
        classes = classes.to(device)
        out = model(images.to(device, memory_format=torch.channels_last))
        head_targets = model.class_to_heads[classes]
        truth = {"model": classes, "year": head_targets[:, 0], "make": head_targets[:, 1], "type": head_targets[:, 2]}
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


def main(args) -> dict:
    loaded, dataset, split = load_for_evaluation(args)
    if loaded.kind != "local":
        raise SystemExit("--model must be a local folder: calibration rewrites its config.json")
    parts = {part: collect_logits(loaded.model, part_loader(loaded.model, dataset, split[part], args))
             for part in ("val", "test")}  # fmt: skip
    val_logits, val_targets = parts["val"]
    temperatures = {head: fit_temperature(val_logits[head], val_targets[head]) for head in HEADS}
    report = {"temperatures": temperatures}
    for part, (logits, targets) in parts.items():
        report[part] = {
            head: {
                "ece_before": expected_calibration_error(logits[head].softmax(1), targets[head]),
                "ece_after": expected_calibration_error((logits[head] / temperatures[head]).softmax(1), targets[head]),
            }
            for head in HEADS
        }

    folder = Path(args.model)
    tmp = folder.with_name(folder.name + ".calibrating")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp)
    (tmp / "config.json").unlink()
    loaded.model.with_temperatures(temperatures).save_pretrained(tmp)
    save_json_atomic(report, tmp / "calibration.json")
    shutil.rmtree(folder)
    tmp.rename(folder)
    for head in HEADS:
        print(f"{head:<6} T={temperatures[head]:.3f}  ECE validation {report['val'][head]['ece_before']:.3f} -> "
              f"{report['val'][head]['ece_after']:.3f}, test {report['test'][head]['ece_before']:.3f} -> "
              f"{report['test'][head]['ece_after']:.3f}")  # fmt: skip
    return report


if __name__ == "__main__":
    main(get_args_parser().parse_args())
