"""What a result was measured on: hardware, software and code version."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch


def hardware(device: str = "cpu") -> str:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {torch.get_num_threads()} threads"


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    ).stdout.strip()
    return result.stdout.strip() + ("-dirty" if dirty else "")


def software() -> str:
    import torchvision

    return f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}"


def portable(value, prefix: str):
    """A value of a run's record as shown off the training machine: an absolute path as ``prefix`` and its
    name, list items one by one, anything else as it is."""
    if isinstance(value, list):
        return [portable(item, prefix) for item in value]
    if isinstance(value, str) and Path(value).is_absolute():
        return prefix + Path(value).name
    return value
