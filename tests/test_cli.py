"""``python -m autospecnet predict``, run as a user runs it."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_python


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)).save(folder / "car.jpg")
    Image.fromarray(rng.integers(0, 256, (70, 140, 3), dtype=np.uint8)).save(folder / "car.png")
    (folder / "notes.txt").write_text("not a photo")
    return folder


@pytest.mark.slow
def test_json_lines_format(random_model_dir, photos):
    result = run_python(
        "-m", "autospecnet", "predict", str(photos / "car.jpg"), str(photos / "car.png"),
        "--model", str(random_model_dir), "--top-k", "2", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(photos / "car.jpg"), str(photos / "car.png")]
    for line in lines:
        assert set(line) == {"file", "answer", "heads"}
        assert set(line["heads"]) == {"year", "make", "type", "model"}
        for entries in line["heads"].values():
            assert len(entries) == 2 and set(entries[0]) == {"label", "prob"}
            assert entries[0]["prob"] >= entries[1]["prob"]
        best = line["heads"]["model"][0]["label"]
        assert line["answer"] == f"{best.rsplit(' ', 1)[1]} {best.rsplit(' ', 1)[0]}"


@pytest.mark.slow
def test_a_bad_photo_is_reported_and_the_rest_still_run(random_model_dir, photos):
    result = run_python(
        "-m", "autospecnet", "predict", str(photos / "notes.txt"), str(photos / "car.jpg"), str(photos / "gone.jpg"),
        "--model", str(random_model_dir), "--json",
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"file": str(photos / "notes.txt"), "error": lines[0]["error"]}
    assert "not an image" in lines[0]["error"]
    assert "answer" in lines[1]
    assert "Cannot open gone.jpg" in lines[2]["error"]


@pytest.mark.slow
def test_human_output(random_model_dir, photos):
    result = run_python("-m", "autospecnet", "predict", str(photos / "car.jpg"), "--model", str(random_model_dir))
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith(f"{photos / 'car.jpg'}: ") and first.endswith("%)")
    assert [line.split()[0] for line in rest] == ["Make", "Body", "Year", "Car"]


@pytest.mark.slow
def test_missing_model_is_a_message_not_a_traceback(photos, tmp_path):
    result = run_python("-m", "autospecnet", "predict", str(photos / "car.jpg"), "--model", str(tmp_path / "none"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: No model folder") and "Traceback" not in result.stderr
