"""The Streamlit app, page by page, through streamlit.testing's AppTest."""

import dataclasses
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from autospecnet.app.experiments import Finding
from autospecnet.records.history import column as history_column
from tests.conftest import ROOT

HEADS = ("model", "year", "make", "type")


def jpeg(seed: int, size=(160, 90)) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def history_csv(final_val: float, epoch_seconds: tuple[float, ...] = (60, 60, 60)) -> str:
    lines = [
        "epoch,"
        + ",".join(
            history_column(part, h, m)
            for part in ("train", "val")
            for h in HEADS
            for m in ("acc", "precision", "recall")  # the names of histories written before "accuracy": both read
        )
        + ",epoch_time"
    ]
    for epoch, seconds in enumerate(epoch_seconds, 1):
        value = final_val * epoch / len(epoch_seconds)
        lines.append(f"{epoch}," + ",".join(f"{value:.3f}" for _ in range(24)) + f",{seconds}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def app_model_dir(random_model_dir, tmp_path_factory):
    """A model folder published with test metrics, a gallery (and its thumbnails) and experiment curves."""
    folder = tmp_path_factory.mktemp("app") / "model"
    shutil.copytree(random_model_dir, folder)
    metrics = {h: {"accuracy": 0.5, "top5": 0.8, "precision": 0.5, "recall": 0.5} for h in HEADS}
    (folder / "test_metrics.json").write_text(json.dumps({"split": "test", "images": 10, "heads": metrics}))
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# Test model card\n\nMade for the tests.\n")

    thumbnails = folder / "gallery" / "thumbnails"
    thumbnails.mkdir(parents=True)
    items = []
    for i, correct in enumerate([True, True, False]):
        (thumbnails / f"{i:05d}.jpg").write_bytes(jpeg(i))
        truth = {"model": "BMW M3 Coupe 2012", "year": "2012", "make": "BMW", "type": "Coupe"}
        predicted = {h: {"label": truth[h] if correct else "Audi", "prob": 0.9} for h in HEADS}
        for head in HEADS:
            items.append(
                {"head": head, "correct": correct, "file": f"images/{i:05d}.jpg", "true": truth, "predicted": predicted}
            )
    mistakes = {
        "model": [
            {"true": "BMW M3 Coupe 2012", "predicted": "Audi", "count": 1},
            {"true": "BMW M3 Coupe 2012", "predicted": "Audi", "count": "many"},
        ]
    }
    manifest = {"images_evaluated": 3, "items": items, "wrong": {"model": 1}, "mistakes": mistakes}
    (folder / "gallery" / "gallery.json").write_text(json.dumps(manifest))

    experiments = folder / "experiments"
    runs = {"size224-batch32-lr0.01": 0.4, "size400-batch32-lr0.01": 0.5}
    epoch_seconds = {"size224-batch32-lr0.01": (60, 66, 60), "size400-batch32-lr0.01": (60, 150, 90)}
    for name, final in runs.items():
        (experiments / name).mkdir(parents=True)
        (experiments / name / "history.csv").write_text(history_csv(final, epoch_seconds[name]))
        metadata = {
            "budget": {"epochs": 3, "subset": 0.2, "full_protocol": False},
            "hardware": "CPU: test",
            "data": {"parts": {"val": 2000}},
        }
        (experiments / name / "metadata.json").write_text(json.dumps(metadata))
    grid = {
        "runs": {
            "size224-batch32-lr0.01": {"image_size": 224, "batch_size": 32, "lr": 0.01},
            "size400-batch32-lr0.01": {"image_size": 400, "batch_size": 32, "lr": 0.01},
            "size224-batch16-lr0.01": {"image_size": 224, "batch_size": 16, "lr": 0.01},
            "size400-batch32-lr0.005": {"image_size": 400, "batch_size": 32, "lr": 0.005},
            "size400-batch32-lr0.05": {"image_size": 400, "batch_size": 32, "lr": 0.05},
        },
        "comparisons": {
            "image size": list(runs),
            "batch size": ["size224-batch16-lr0.01", "size224-batch32-lr0.01"],
            "learning rate": ["size400-batch32-lr0.005", "size400-batch32-lr0.05"],
        },
        "paper": {
            "image size": {"winner": "size400-batch32-lr0.01", "claim": "400 px beats 224 px"},
            "batch size": {"winner": "size224-batch32-lr0.01", "claim": "batch 32 beats 16"},
            "learning rate": {"winner": "size400-batch32-lr0.005", "claim": "lr 0.005 wins"},
        },
    }
    (experiments / "grid.json").write_text(json.dumps(grid))
    return folder


@pytest.fixture
def app(app_model_dir, monkeypatch, without_finder):
    """The app with the random model and no car finder: whole photos are classified."""
    monkeypatch.setenv("AUTOSPECNET_MODEL", str(app_model_dir))
    monkeypatch.delenv("AUTOSPECNET_DATA", raising=False)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()


def test_predict_page_renders_and_waits_for_a_photo(app, app_model_dir):
    assert not app.exception
    assert app.title[0].value == "What car is that?"
    assert any("No photo yet" in info.value for info in app.info)
    sidebar = " ".join(m.value for m in app.sidebar.markdown)
    assert "the configured model folder" in sidebar and "Car: **50.0%**" in sidebar
    assert str(app_model_dir) not in sidebar  # no path of the server is shown to visitors
    notices = [info.value for info in app.info if "car finder" in info.value]
    assert notices == [
        "The car finder is unavailable, so whole photos are classified. Crop your photos to the car "
        "for the best answers."
    ]  # the reason names a server path: it goes to the log


def test_uploaded_photo_gives_answer_and_four_charts(app):
    app.file_uploader[0].set_value(("car.jpg", jpeg(1), "image/jpeg")).run()
    assert not app.exception
    answer = app.subheader[0].value
    year, rest = answer.split(" ", 1)
    assert year.isdigit() and rest
    assert len(app.get("plotly_chart")) == 4
    assert app.metric[0].value.endswith("%")


def test_iphone_heic_photo_gets_an_answer(app):
    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg(4))).save(buffer, "HEIF")
    app.file_uploader[0].set_value(("IMG_0001.HEIC", buffer.getvalue(), "image/heic")).run()
    assert not app.exception and not app.error
    assert len(app.get("plotly_chart")) == 4


def test_bad_file_shows_a_message_and_the_good_one_still_works(app):
    app.file_uploader[0].set_value(
        [("broken.jpg", b"\xff\xd8\xff garbage", "image/jpeg"), ("car.jpg", jpeg(2), "image/jpeg")]
    ).run()
    assert not app.exception
    assert "broken.jpg" in app.error[0].value and "not an image we can read" in app.error[0].value
    assert len(app.get("plotly_chart")) == 4
    table = app.dataframe[0].value
    assert list(table["file"]) == ["broken.jpg", "car.jpg"]
    assert table["error"].notna().tolist() == [True, False]


def test_top_k_changes_the_bars(app):
    app.file_uploader[0].set_value(("car.jpg", jpeg(3), "image/jpeg")).run()
    app.select_slider[0].set_value(10).run()
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert len(figure["data"][0]["y"]) == 10


def test_gallery_page_filters_by_outcome(app, app_model_dir):
    app.switch_page("pages/gallery.py").run()
    assert not app.exception
    assert len(app.get("image")) == 3  # thumbnails published with the model
    app.segmented_control[1].set_value("wrong").run()
    marks = [m.value for m in app.markdown if m.value.startswith((":green[", ":red["))]
    assert marks and all(m.startswith(":red[:material/cancel:]") for m in marks)
    mistakes = app.dataframe[0].value  # the manifest's second entry is malformed: left out
    assert mistakes.to_dict("records") == [{"true": "BMW M3 Coupe 2012", "predicted as": "Audi", "times": 1}]
    assert any("1 mistake on 3 test images" in c.value for c in app.caption)


def test_gallery_without_images_says_how_to_get_them(app, app_model_dir, tmp_path, monkeypatch):
    shutil.rmtree(app_model_dir / "gallery" / "thumbnails", ignore_errors=False)
    try:
        app.switch_page("pages/gallery.py").run()
        assert not app.exception
        assert any("AUTOSPECNET_DATA" in info.value for info in app.info)
    finally:
        (app_model_dir / "gallery" / "thumbnails").mkdir()
        for i in range(3):
            (app_model_dir / "gallery" / "thumbnails" / f"{i:05d}.jpg").write_bytes(jpeg(i))


@pytest.mark.parametrize(("images", "outcome"), [(100, "too close"), (2000, "opposite"), (None, "opposite")])
def test_a_lead_within_sampling_noise_is_too_close_to_call(images, outcome):
    runs = ["size224-batch16-lr0.01", "size224-batch32-lr0.01"]
    finding = Finding(
        "batch size",
        "batch 32 beats 16",
        runs[1],
        dict(zip(runs, (0.81, 0.77), strict=True)),
        {runs[0]: "batch 16", runs[1]: "batch 32"},
        [],
        {r: images for r in runs} if images else {},
    )
    assert finding.outcome == outcome  # a 4-point lead: 100 images cannot tell, 2,000 can; unknown: taken as is
    if images == 100:
        assert finding.sentence("6 epochs").endswith(
            "too close to call (a lead of 4.0 points over batch 32, within the ±11.3 points that sampling 100 "
            "validation images alone gives)."
        )


def test_a_run_clearly_behind_two_that_are_too_close_is_named():
    runs = ["size400-batch32-lr0.005", "size400-batch32-lr0.01", "size400-batch32-lr0.05"]
    finding = Finding(
        "learning rate",
        "lr 0.01 beats 0.005 and 0.05",
        runs[1],
        dict(zip(runs, (0.83, 0.84, 0.60), strict=True)),
        dict(zip(runs, ("lr 0.005", "lr 0.01", "lr 0.05"), strict=True)),
        [],
        dict.fromkeys(runs, 1219),
    )
    assert finding.outcome == "too close" and finding.clearly_behind == [runs[2]]
    assert finding.sentence("6 epochs").endswith(
        "too close to call (a lead of 1.0 points over lr 0.005, within the ±2.9 points that sampling 1,219 "
        "validation images alone gives); lr 0.05 is clearly behind (24.0 points, beyond ±3.4)."
    )
    nearly_tied = dataclasses.replace(finding, accuracies=dict(zip(runs, (0.83, 0.84, 0.82), strict=True)))
    assert nearly_tied.clearly_behind == []  # 2 points behind the winner: within the noise too


def test_experiments_page_shows_curves_and_the_budget(app):
    app.switch_page("pages/experiments.py").run()
    assert not app.exception
    assert "reduced budget" in app.warning[0].value and "3 epochs" in app.warning[0].value
    claims = [m.value for m in app.markdown if "Paper:" in m.value]
    assert claims[0].endswith(
        "**Image size.** Paper: 400 px beats 224 px. Here, at 3 epochs: 224 px reaches 40.0%, 400 px reaches "
        "50.0% (best validation accuracy) — same direction (a lead of 10.0 points over 224 px, beyond the ±3.1 "
        "points that sampling 2,000 validation images alone gives)."
    )
    assert claims[1].endswith("batch 32 reaches 40.0%; batch 16 not run yet.")  # planned, its result not stored
    assert claims[2].endswith("Here, at 3 epochs: not run yet (lr 0.005, lr 0.05).")
    over_time = json.loads(app.get("plotly_chart")[1].proto.spec)
    assert over_time["layout"]["xaxis"]["title"]["text"].startswith("wall-clock minutes")
    upper_bounds = [c.value for c in app.caption if "upper bounds" in c.value]
    assert len(upper_bounds) == 1 and upper_bounds[0].endswith(": size400-batch32-lr0.01 (1.0–2.5 min an epoch).")
    assert {trace["legendgroup"].split(",")[0] for trace in over_time["data"]} >= {
        "size224-batch32-lr0.01",
        "size400-batch32-lr0.01",
    }
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    lines = {trace["legendgroup"].split(",")[0] for trace in figure["data"]}
    reference = {line for line in lines if line.startswith("bundled model (other recipe: ")}
    assert len(reference) == 1 and lines - reference == {"size224-batch32-lr0.01", "size400-batch32-lr0.01"}
    app.toggle[0].set_value(False).run()  # the reference curve off
    app.segmented_control[0].set_value("batch size").run()
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert {trace["legendgroup"].split(",")[0] for trace in figure["data"]} == {"size224-batch32-lr0.01"}
    runs_table = app.dataframe[0].value
    assert list(runs_table["epoch (min)"]) == ["1.0–1.1", "1.0–2.5"]


def test_about_page_shows_the_model_card(app):
    app.switch_page("pages/about.py").run()
    assert not app.exception
    assert [t.value for t in app.title] == ["Test model card"]  # the card's heading is the page's one title
    text = " ".join(m.value for m in app.markdown)
    assert "Made for the tests." in text and "license: mit" not in text


def test_unloadable_configured_model_falls_back_with_a_notice(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOSPECNET_MODEL", str(tmp_path / "missing-model"))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not app.exception
    warning = app.sidebar.warning[0].value
    assert "Could not load the configured model folder" in warning and str(tmp_path) not in warning
    from autospecnet.sources import BUNDLED_MODEL_DIR

    if (BUNDLED_MODEL_DIR / "model.safetensors").is_file():
        assert "the bundled model" in " ".join(m.value for m in app.sidebar.markdown)
    else:
        assert "No model could be loaded" in app.error[0].value


def test_curves_over_time_use_the_runs_cumulative_epoch_time():
    import pandas as pd

    from autospecnet.app import charts

    history = pd.DataFrame({"epoch": [1, 2, 3], "val_accuracy": [0.1, 0.2, 0.3], "epoch_time": [60.0, 120.0, 60.0]})
    figure = charts.history_curves({"run": history}, "model", ["val"], x="minutes")
    assert list(figure.data[0].x) == [1.0, 3.0, 4.0]
    reference = ("bundled", history.assign(val_accuracy=[0.5, 0.6, 0.7]))
    figure = charts.history_curves({"run": history}, "model", ["val"], reference=reference)
    assert [trace.line.dash for trace in figure.data] == ["solid", "dot"]


def test_photos_lost_in_a_server_restart_are_asked_for_again(app_model_dir, monkeypatch, without_finder):
    monkeypatch.setenv("AUTOSPECNET_MODEL", str(app_model_dir))
    restarted = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    restarted.query_params["photos"] = "2"  # the mark a page with photos leaves in its address
    restarted.run()
    assert not restarted.exception
    assert "drop them again" in restarted.warning[0].value and "photos" not in restarted.query_params


def test_removing_the_photos_is_not_a_restart(app):
    app.file_uploader[0].set_value(("car.jpg", jpeg(5), "image/jpeg")).run()
    assert app.query_params["photos"] == "1"
    app.file_uploader[0].set_value([]).run()
    assert not app.exception and not app.warning and "photos" not in app.query_params


def chart_titles(app) -> list[str]:
    return [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in app.get("plotly_chart")]


@pytest.fixture
def unsure_app(app_model_dir, tmp_path, monkeypatch, without_finder):
    """The app with a model whose rule finds every car unknown, and is never sure of the year."""
    folder = tmp_path / "unsure"
    shutil.copytree(app_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["sure"] = {"score": "max_softmax", "known_threshold": 2.0, "thresholds": {h: 0.0 for h in HEADS}}
    config["sure"]["thresholds"]["year"] = 1.5
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("AUTOSPECNET_MODEL", str(folder))
    monkeypatch.delenv("AUTOSPECNET_DATA", raising=False)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()


def test_an_unknown_car_gets_what_is_sure_instead_of_a_name(unsure_app):
    app = unsure_app.file_uploader[0].set_value(("car.jpg", jpeg(1), "image/jpeg")).run()
    assert not app.exception
    headline = app.subheader[0].value
    assert headline.startswith(("A ", "An ")) and "not one of the 196 models I know (cars up to 2012)" in headline
    assert not app.metric  # no confidence for a name it does not give
    assert any(m.value.startswith("Best guess: 20") and "not sure" in m.value for m in app.markdown)
    titles = chart_titles(app)
    assert titles == ["Car — a guess", "Make", "Body type", "Model year — a guess"]
    assert not any("no fitted thresholds" in i.value for i in app.info)


def test_a_model_without_thresholds_says_so(app):
    app.file_uploader[0].set_value(("car.jpg", jpeg(1), "image/jpeg")).run()
    assert any("no fitted thresholds" in i.value for i in app.info)
    assert all(title.endswith("— a guess") for title in chart_titles(app))


def test_the_heatmap_switch_shows_where_each_head_looked(app):
    app.file_uploader[0].set_value(("car.jpg", jpeg(1), "image/jpeg")).run()
    assert len(app.get("image")) == 1  # the photo alone: heatmaps are off by default
    switch = next(t for t in app.toggle if t.label == "Show what it looked at")
    switch.set_value(True).run()
    assert not app.exception
    images = app.get("image")
    assert len(images) == 5  # the photo, and a heatmap under each of the four charts
    captions = [image.proto.imgs[0].caption for image in images]
    assert sum(c.startswith("Where it saw ") for c in captions) == 4


def test_the_about_page_says_what_sure_means_and_how_often_it_is_right(unsure_app, tmp_path, monkeypatch):
    folder = tmp_path / "unsure"
    figures = {h: {"sure": 0.8, "right_when_sure": 0.97, "images": 10} for h in HEADS}
    record = {
        "rule": json.loads((folder / "config.json").read_text())["sure"],
        "known_keep": 0.95,
        "precision_goals": {h: 0.96 for h in HEADS},
        "val": figures,
        "test": figures,
    }
    (folder / "calibration.json").write_text(
        json.dumps({"temperatures": {}, "marginal_weights": {}, "val": {}, "test": {}, "sure": record})
    )
    app = unsure_app.switch_page("pages/about.py").run()
    assert not app.exception
    text = "\n".join(m.value for m in app.markdown)
    assert "## When it is sure" in text and "| Car (196 classes) | 80.0% | 97.0% | 96.0% |" in text
    assert "largest probability" in text  # the known score, in words
