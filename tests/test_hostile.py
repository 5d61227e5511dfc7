"""A model source and an upload are data from outside: hostile paths, a stalled Hub, broken or absurd files."""

import json
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from streamlit.testing.v1 import AppTest

from autospecnet.app.gallery import find_manifest, load_gallery
from autospecnet.sources import ModelFilesError, ModelNotFoundError, load_model
from tests.conftest import ROOT, run_python
from tests.test_app import jpeg


@pytest.fixture
def model_copy(random_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(random_model_dir, folder)
    return folder


def app_with(folder, monkeypatch):
    monkeypatch.setenv("AUTOSPECNET_MODEL", str(folder))
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()


TRAVERSALS = ["/etc/passwd", "../../../etc/passwd", "/proc/self/environ", "thumbnails/../../../../etc/hostname"]


def gallery_listing(folder, files):
    truth = {"model": "BMW M3 Coupe 2012", "year": "2012", "make": "BMW", "type": "Coupe"}
    items = [
        {
            "head": "model",
            "correct": True,
            "file": f,
            "true": truth,
            "predicted": {"model": {"label": truth["model"], "prob": 0.9}},
        }
        for f in files
    ]
    (folder / "gallery").mkdir(exist_ok=True)
    (folder / "gallery" / "gallery.json").write_text(json.dumps({"images_evaluated": len(files), "items": items}))


def test_gallery_paths_outside_their_folder_are_refused(model_copy, caplog):
    thumbnails = model_copy / "gallery" / "thumbnails"
    thumbnails.mkdir(parents=True)
    (thumbnails / "00001.jpg").write_bytes(jpeg(1))
    (thumbnails / "link.jpg").symlink_to("/etc/passwd")
    gallery_listing(model_copy, [*TRAVERSALS, "link.jpg", "images/00001.jpg"])
    gallery = load_gallery(model_copy / "gallery" / "gallery.json", model_copy, data_dir=str(model_copy / "data"))
    paths = [gallery.image_path(item) for item in gallery.items]
    assert paths[:-1] == [None] * (len(TRAVERSALS) + 1)
    assert paths[-1] == (thumbnails / "00001.jpg").resolve()
    assert "refused the path '/etc/passwd'" in caplog.text


def test_gradio_offers_no_outside_file_as_an_example(model_copy):
    pytest.importorskip("gradio")
    from autospecnet.app.gradio import _examples

    gallery_listing(model_copy, TRAVERSALS)
    assert _examples(model_copy) == []


def test_the_gallery_page_shows_no_outside_file(model_copy, monkeypatch, without_finder):
    gallery_listing(model_copy, TRAVERSALS)
    app = app_with(model_copy, monkeypatch).switch_page("pages/gallery.py").run()
    assert not app.exception
    assert not app.get("image")


class StalledHub:
    """Accepts connections on the loopback address and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.held = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self):
        while not self.stop:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.stop = True
        self.sock.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def stalled_hub():
    hub = StalledHub()
    yield hub
    hub.close()


@pytest.mark.slow
def test_a_hub_that_never_answers_ends_the_cli_in_bounded_time(stalled_hub, tmp_path):
    photo = tmp_path / "car.jpg"
    photo.write_bytes(jpeg(1))
    env = {"HF_ENDPOINT": stalled_hub.endpoint, "HF_HOME": str(tmp_path / "hf"), "AUTOSPECNET_HUB_TIMEOUT": "3"}
    started = time.monotonic()
    result = run_python("-m", "autospecnet", "predict", str(photo), "--model", "acme/cars", env=env, timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 3
    assert "did not answer within 3 s" in result.stderr and "Traceback" not in result.stderr


APP_IN_A_FRESH_PROCESS = """
import json, sys
from streamlit.testing.v1 import AppTest
app = AppTest.from_file(sys.argv[1], default_timeout=120).run()
print(json.dumps({"exception": bool(app.exception), "warnings": [w.value for w in app.sidebar.warning],
                  "errors": [e.value for e in app.error], "title": app.title[0].value}))
"""


@pytest.mark.slow
def test_a_hub_that_never_answers_falls_back_to_the_bundled_model(stalled_hub, tmp_path):
    # A fresh process: huggingface_hub reads HF_ENDPOINT when it is imported.
    env = {
        "HF_ENDPOINT": stalled_hub.endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "AUTOSPECNET_HUB_TIMEOUT": "3",
        "AUTOSPECNET_MODEL": "acme/stalled",
    }
    result = run_python("-c", APP_IN_A_FRESH_PROCESS, str(ROOT / "app.py"), env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout.strip().splitlines()[-1])
    assert not page["exception"] and not page["errors"] and page["title"] == "What car is that?"
    (warning,) = page["warnings"]
    assert (
        "`acme/stalled`" in warning and "did not answer within 3 s" in warning and "Using the bundled model" in warning
    )


def test_broken_optional_files_are_skipped_page_by_page(model_copy, monkeypatch, without_finder):
    (model_copy / "test_metrics.json").write_text('{"heads": {}}')
    (model_copy / "README.md").write_bytes(b"---\nlicense: mit\n---\n# Card \xff\xfe broken\n")
    (model_copy / "gallery").mkdir()
    (model_copy / "gallery" / "gallery.json").write_text("{not json")
    app = app_with(model_copy, monkeypatch)
    assert not app.exception
    assert any("No test metrics" in c.value for c in app.sidebar.caption)
    app.switch_page("pages/about.py").run()
    assert not app.exception and any("could not be read" in i.value for i in app.info)
    app.switch_page("pages/gallery.py").run()
    assert not app.exception and any("could not be read" in w.value for w in app.warning)
    app.switch_page("pages/predict.py").run()
    app.file_uploader[0].set_value(("car.jpg", jpeg(4), "image/jpeg")).run()
    assert not app.exception and len(app.get("plotly_chart")) == 4


def test_one_unreadable_photo_does_not_empty_the_gallery(model_copy, monkeypatch, without_finder):
    thumbnails = model_copy / "gallery" / "thumbnails"
    thumbnails.mkdir(parents=True)
    (thumbnails / "00001.jpg").write_bytes(jpeg(1))
    (thumbnails / "00002.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    gallery_listing(model_copy, ["images/00001.jpg", "images/00002.jpg"])
    app = app_with(model_copy, monkeypatch).switch_page("pages/gallery.py").run()
    assert not app.exception
    assert len(app.get("image")) == 1
    assert any("could not be read" in c.value for c in app.caption)


def test_a_model_without_a_gallery_does_not_borrow_the_bundled_one(model_copy, monkeypatch, without_finder):
    assert find_manifest(model_copy, is_bundled_model=False) is None
    app = app_with(model_copy, monkeypatch).switch_page("pages/gallery.py").run()
    assert any("no gallery for this model" in i.value for i in app.info)


def test_nan_weights_are_refused_at_load(model_copy):
    tensors = load_file(model_copy / "model.safetensors")
    tensors["backbone.0.0.weight"][0, 0, 0, 0] = np.nan
    save_file(tensors, model_copy / "model.safetensors")
    with pytest.raises(ModelFilesError, match="NaN"):
        load_model(model_copy)


@pytest.mark.slow
def test_the_cli_says_so_for_nan_weights_and_prints_no_nan(model_copy, tmp_path):
    tensors = load_file(model_copy / "model.safetensors")
    tensors["model_head.2.bias"][:] = np.inf
    save_file(tensors, model_copy / "model.safetensors")
    photo = tmp_path / "car.jpg"
    photo.write_bytes(jpeg(2))
    result = run_python("-m", "autospecnet", "predict", "--json", str(photo), "--model", str(model_copy))
    assert result.returncode == 3 and "NaN or infinite" in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "change, message",
    [
        ({"image_size": 100000}, "image_size 100000"),
        ({"image_size": "224"}, "image_size"),
        ({"mean": [0.5, float("nan"), 0.5]}, "mean must be three finite numbers"),
        ({"std": [0.2, 0.0, 0.2]}, "std must be three finite numbers"),
        ({"temperatures": {"model": -1}}, "temperatures"),
        ({"marginal_weights": {"make": 7}}, "marginal_weights"),
    ],
)
def test_absurd_config_values_are_refused_at_load(model_copy, change, message):
    config = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ModelFilesError, match=message):
        load_model(model_copy)


@pytest.mark.parametrize("source", ["acme/cars@../../etc", "acme/cars@main/../../x", "acme/cars@-rf"])
def test_revisions_with_paths_are_refused(source):
    with pytest.raises(ModelNotFoundError, match="not a valid revision"):
        load_model(source)


def test_one_message_when_nothing_loads(monkeypatch, tmp_path, without_finder):
    empty_bundle = tmp_path / "bundle"
    empty_bundle.mkdir()
    monkeypatch.setattr("autospecnet.app.ui.BUNDLED_MODEL_DIR", empty_bundle)
    from autospecnet.app import ui

    model = (
        ui.get_app_model.__wrapped__(str(tmp_path / "missing"), None)
        if hasattr(ui.get_app_model, "__wrapped__")
        else None
    )
    if model is None:
        pytest.skip("st.cache_resource hides the wrapped function in this Streamlit version")
    assert (
        model.notice is None and "No model could be loaded" in model.error and "configured model folder" in model.error
    )
