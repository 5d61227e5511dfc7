"""``checkpoint.pt``: where a run stands, for ``--resume`` (torch's format, written and read here alone).

    {"model", "optimizer", "scheduler": state dicts, "average": the weights' moving average's (None: off),
     "epoch": the last complete epoch (0-based; -1: none), "best_val_accuracy": of the best epoch so far
     (-1: none), "args": the run's settings,
     "partial": None, or within an epoch {"lr", "progress": EpochProgress.state_dict(), "rng", "cuda_rng"}}

Only tensors and plain containers: read back with ``weights_only=True``. Checkpoints written before
the accuracy key had its current name call it ``best_val_acc``; both are read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from autospecnet.records.atomic import write_atomic

FILE = "checkpoint.pt"


def save(state: dict, run_folder: Path) -> None:
    write_atomic(Path(run_folder) / FILE, lambda tmp: torch.save(state, tmp))


def load(run_folder: Path) -> dict | None:
    """The run folder's checkpoint, or None when it has none."""
    path = Path(run_folder) / FILE
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "best_val_acc" in state:
        state["best_val_accuracy"] = state.pop("best_val_acc")
    return state


def where(state: dict) -> str:
    """How far the run has come: "3 of 6 epochs done, 40 batches into epoch 4 (best val accuracy 0.8123)"."""
    done, partial = state["epoch"] + 1, state.get("partial")
    within = f", {partial['progress']['batches']} batches into epoch {done + 1}" if partial else ""
    best = f" (best val accuracy {state['best_val_accuracy']:.4f})" if state["best_val_accuracy"] >= 0 else ""
    return f"{done} of {state['args']['epochs']} epochs done{within}{best}"
