"""``python -m autospecnet predict``, run as a user runs it."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, run_python


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)).save(folder / "car.jpg")
    Image.fromarray(rng.integers(0, 256, (70, 140, 3), dtype=np.uint8)).save(folder / "car.png")
    (folder / "notes.txt").write_text("not a photo")
    return folder


@pytest.mark.slow
def test_json_lines_format(random_model_dir, photos, without_finder):
    result = run_python(
        "-m",
        "autospecnet",
        "predict",
        str(photos / "car.jpg"),
        str(photos / "car.png"),
        "--model",
        str(random_model_dir),
        "--top-k",
        "2",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("car finder is unavailable") == 1  # said once, plainly
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(photos / "car.jpg"), str(photos / "car.png")]
    for line in lines:
        assert set(line) == {"file", "answer", "heads", "sure", "box", "others"}
        assert line["sure"] == {"model": False, "year": False, "make": False, "type": False}  # no fitted thresholds
        assert line["box"] is None and line["others"] == []  # the whole photo was classified
        assert set(line["heads"]) == {"year", "make", "type", "model"}
        for entries in line["heads"].values():
            assert len(entries) == 2 and set(entries[0]) == {"label", "prob"}
            assert entries[0]["prob"] >= entries[1]["prob"]
        best = line["heads"]["model"][0]["label"]
        assert line["answer"] == f"{best.rsplit(' ', 1)[1]} {best.rsplit(' ', 1)[0]}"


@pytest.mark.slow
def test_a_bad_photo_is_reported_and_the_rest_still_run(random_model_dir, photos, without_finder):
    result = run_python(
        "-m",
        "autospecnet",
        "predict",
        str(photos / "notes.txt"),
        str(photos / "car.jpg"),
        str(photos / "gone.jpg"),
        "--model",
        str(random_model_dir),
        "--json",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"file": str(photos / "notes.txt"), "error": lines[0]["error"]}
    assert "not an image" in lines[0]["error"]
    assert "answer" in lines[1]
    assert "Cannot open gone.jpg" in lines[2]["error"]


@pytest.mark.slow
def test_a_folder_means_the_photos_in_it(random_model_dir, photos, tmp_path, without_finder):
    result = run_python("-m", "autospecnet", "predict", str(photos), "--model", str(random_model_dir), "--json")
    assert result.returncode == 0, result.stderr  # notes.txt is not a photo: left out, not an error
    assert [json.loads(line)["file"] for line in result.stdout.splitlines()] == [
        str(photos / "car.jpg"),
        str(photos / "car.png"),
    ]
    empty = run_python("-m", "autospecnet", "predict", str(tmp_path), "--model", str(random_model_dir))
    assert empty.returncode == 1 and "no photos (jpg, jpeg, png" in empty.stderr and "Traceback" not in empty.stderr


@pytest.mark.slow
def test_human_output(random_model_dir, photos, without_finder):
    result = run_python("-m", "autospecnet", "predict", str(photos / "car.jpg"), "--model", str(random_model_dir))
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith(f"{photos / 'car.jpg'}: ") and first.endswith("%)")
    heads, note = rest[:4], rest[4:]
    assert [line.split()[0] for line in heads] == ["Car", "Make", "Body", "Model"]
    assert all(" guess " in line for line in heads) and "no fitted thresholds" in note[0]


@pytest.mark.slow
def test_missing_model_is_a_message_not_a_traceback(photos, tmp_path):
    result = run_python("-m", "autospecnet", "predict", str(photos / "car.jpg"), "--model", str(tmp_path / "none"))
    assert result.returncode == 3  # its own status: 2 is argparse's usage error
    assert result.stderr.startswith("error: No model folder") and "Traceback" not in result.stderr


def predict_json(*args: str) -> tuple[int, list[dict], str]:
    result = run_python("-m", "autospecnet", "predict", "--json", *args)
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def box_iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.slow
def test_a_whole_photo_gets_the_box_of_its_car_and_an_answer(shared_folder, finder_file):
    import csv

    whole = shared_folder / "data" / "stanford-cars-whole"
    with open(whole / "labels.csv", newline="") as f:
        row = next(csv.DictReader(f))
    code, (line,), stderr = predict_json(str(whole / "images" / row["filename"]))
    assert code == 0 and "unavailable" not in stderr
    assert set(line) == {"file", "answer", "heads", "sure", "box", "others"}
    official = [float(row[k]) for k in ("x1", "y1", "x2", "y2")]
    assert box_iou(line["box"], official) >= 0.7 and all(isinstance(v, int) for v in line["box"])
    assert line["answer"].split(" ", 1)[0].isdigit()


@pytest.mark.slow
def test_a_street_photo_lists_every_car_largest_first(shared_folder, finder_file):
    photo = shared_folder / "data" / "street-scenes" / "images" / "00003.jpg"
    code, (line,), _ = predict_json(str(photo))
    assert code == 0 and line["others"]
    boxes = [line["box"]] + [other["box"] for other in line["others"]]
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    assert areas == sorted(areas, reverse=True) and len(boxes) <= 5
    for other in line["others"]:
        assert set(other) == {"box", "answer", "heads", "sure"} and set(other["heads"]) == {
            "year",
            "make",
            "type",
            "model",
        }
        assert set(other["sure"]) == {"year", "make", "type", "model"} and all(
            isinstance(v, bool) for v in other["sure"].values()
        )


@pytest.mark.slow
def test_a_photo_without_a_car_is_an_answer_not_an_error(finder_file, tmp_path):
    skimage = pytest.importorskip("skimage", reason="sample photos without a car come with scikit-image")
    photo = Path(skimage.__file__).parent / "data" / "chelsea.png"
    code, (line,), _ = predict_json(str(photo))
    assert code == 0
    assert line == {"file": str(photo), "no_car": True, "message": line["message"]} and "No car" in line["message"]


@pytest.mark.slow
def test_whole_skips_the_finder(shared_folder, finder_file):
    photo = shared_folder / "data" / "street-scenes" / "images" / "00003.jpg"
    code, (line,), _ = predict_json(str(photo), "--whole")
    assert code == 0 and line["box"] is None and line["others"] == []


@pytest.mark.slow
def test_explain_adds_a_heatmap_per_head_to_every_car(shared_folder, finder_file):
    photo = shared_folder / "data" / "street-scenes" / "images" / "00003.jpg"
    code, (line,), stderr = predict_json(str(photo), "--explain")
    assert code == 0, stderr
    for car in [line, *line["others"]]:
        assert set(car["heatmaps"]) == {"year", "make", "type", "model"}
        for grid in car["heatmaps"].values():
            assert grid and len({len(row) for row in grid}) == 1  # rows of the same length, top to bottom
            assert all(0 <= value <= 1 for row in grid for value in row) and max(max(row) for row in grid) == 1
    _, (plain,), _ = predict_json(str(photo))
    assert "heatmaps" not in plain and plain["answer"] == line["answer"]  # without --explain: as before


@pytest.mark.slow
def test_a_known_crop_gets_a_sure_answer(shared_data):
    split = json.loads((ROOT / "assets" / "model" / "split.json").read_text())
    code, lines, stderr = predict_json(*(str(shared_data / f) for f in split["test"][:20]), "--whole")
    assert code == 0, stderr
    assert sum(line["sure"]["model"] for line in lines) >= 10  # most known crops: a sure name


def test_explain_without_json_is_a_usage_error(random_model_dir, photos):
    result = run_python("-m", "autospecnet", "predict", str(photos / "car.jpg"), "--explain")
    assert result.returncode == 2 and "--explain" in result.stderr and "--json" in result.stderr
