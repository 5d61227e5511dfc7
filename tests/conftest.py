"""Shared fixtures. Data from ../shared comes through environment variables that CI sets:

- ``AUTOSPECNET_TEST_DATA``: the Stanford Cars folder (images/, labels.csv, class_names.txt);
- ``AUTOSPECNET_TEST_WEIGHTS``: the offline ImageNet MobileNetV2 safetensors;
- ``AUTOSPECNET_TEST_FINDER``: the car finder (yolox_nano.onnx);
- ``AUTOSPECNET_TEST_SHARED``: the shared folder, for the whole photos and street scenes.

Tests that need them skip, saying which variable is missing, where they are not set. No test
downloads anything: ``AUTOSPECNET_FINDER`` points at the shared car finder, or at a file
that does not exist (the finder is then unavailable, as for a user offline without a copy).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from autospecnet.labels import Taxonomy, read_class_names
from autospecnet.model import AutoSpecNet

ROOT = Path(__file__).resolve().parent.parent


def _env_path(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value) if value and Path(value).exists() else None


def _required_path(variable: str, what: str, ci_value: str) -> Path:
    path = _env_path(variable)
    if path is None:
        pytest.skip(f"needs {what}: set {variable} (CI sets {ci_value})")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _required_path("AUTOSPECNET_TEST_DATA", "the Stanford Cars data", "../shared/data/stanford-cars-train")


@pytest.fixture(scope="session")
def imagenet_weights() -> Path:
    return _required_path("AUTOSPECNET_TEST_WEIGHTS", "the offline ImageNet weights", "../shared/weights/...")


@pytest.fixture(scope="session")
def finder_file() -> Path:
    return _required_path("AUTOSPECNET_TEST_FINDER", "the car finder", "../shared/weights/yolox_nano.onnx")


@pytest.fixture(scope="session")
def shared_folder() -> Path:
    return _required_path("AUTOSPECNET_TEST_SHARED", "the whole photos and street scenes", "../shared")


NO_FINDER = "/nonexistent/autospecnet-test/yolox_nano.onnx"
# Every test, and every process a test starts, sees the shared car finder or none: nothing is downloaded.
os.environ["AUTOSPECNET_FINDER"] = str(_env_path("AUTOSPECNET_TEST_FINDER") or NO_FINDER)


@pytest.fixture
def without_finder(monkeypatch):
    monkeypatch.setenv("AUTOSPECNET_FINDER", NO_FINDER)


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return Taxonomy.from_class_names(read_class_names())


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory, taxonomy) -> Path:
    """A saved AutoSpecNet with seeded random weights: the real file format, without training."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("random-model")
    model = AutoSpecNet.from_taxonomy(taxonomy, image_size=96)
    # Random BatchNorm statistics, so that different photos give visibly different outputs.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def random_onnx_model_dir(random_model_dir, tmp_path_factory) -> Path:
    """The random model with its model.onnx, as training.publish writes it."""
    import shutil

    from autospecnet.sources import load_model
    from training.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("random-onnx-model") / "model"
    shutil.copytree(random_model_dir, folder)
    export_onnx(load_model(folder).model, folder)
    return folder


def run_python(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in the project root, as a user would, with extra environment variables."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(args: list[str], ready_url: str, log_path: Path, env: dict | None = None, timeout: float = 120):
    """Run ``python ARGS`` in the project root until ``ready_url`` answers; stop it afterwards."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    urllib.request.urlopen(ready_url, timeout=2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.time() > deadline:
                        pytest.fail(f"{' '.join(args)} did not start; see {log_path}")
                    time.sleep(0.5)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
