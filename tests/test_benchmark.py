"""The benchmark's stable JSON: every figure there, measured, on the bundled model (speed goals are not
asserted: they live in the printed figures, README "Speed and memory")."""

from __future__ import annotations

import json
import math

from autospecnet.sources import load_model
from tests.conftest import run_python
from tests.synthetic import car_image


def test_the_benchmark_ends_with_its_stable_json_figures(tmp_path):
    photo = tmp_path / "car.jpg"
    car_image(3, 0, size=(448, 215)).save(photo)
    result = run_python("-m", "autospecnet.benchmark", str(photo), "--runs", "4", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])

    assert set(figures["backends"]) == {"onnxruntime", "torch"}
    for times in figures["backends"].values():
        assert 0 < times["p50_ms"] <= times["p95_ms"]
    assert figures["default_backend"] == "onnxruntime" and figures["torch_imported_when_serving"] is False
    assert figures["cold_start_s"] > 0 and figures["peak_rss_mb"] > 0 and figures["answer"]
    assert figures["image_size"] == load_model(None).config.image_size and figures["runs"] == 4
    assert figures["bare_mobilenet_v2_p50_ms"] > 0 and figures["heatmaps_p50_ms"] > 0
    assert math.isfinite(figures["explain_ms_per_car"])  # a difference of times: noise can make it negative
    finder = (figures["detector_p50_ms"], figures["photo_p50_ms"])  # both measured, or both null without it
    assert finder == (None, None) or min(finder) > 0
