"""The Predict page with the car finder: whole photos, several cars, no car, the switch and the camera (AppTest)."""

import io
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from autospecnet import Predictor, Recognizer
from autospecnet.sources import BUNDLED_MODEL_DIR
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def jpeg_of(path: Path) -> bytes:
    buffer = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def app(finder_file, monkeypatch):
    monkeypatch.setenv("AUTOSPECNET_MODEL", str(BUNDLED_MODEL_DIR))
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()


def drop(app, *photos: tuple[str, bytes]):
    app.file_uploader[0].set_value([(name, data, "image/jpeg") for name, data in photos]).run()
    assert not app.exception
    return app


def test_a_whole_photo_shows_its_car_and_the_answer(app, shared_folder):
    photo = shared_folder / "data" / "stanford-cars-whole" / "images" / "00028.jpg"
    drop(app, ("driveway.jpg", jpeg_of(photo)))
    assert app.get("image")[0].proto.imgs[0].caption == "driveway.jpg: 1 car found"
    expected = Recognizer.from_source(str(BUNDLED_MODEL_DIR)).recognise(jpeg_of(photo)).main.prediction
    assert app.subheader[0].value == expected.headline  # the name when sure, else what it is sure of
    assert len(app.get("plotly_chart")) == 4


def test_several_cars_are_numbered_and_the_csv_has_a_row_per_car(app, shared_folder):
    street = shared_folder / "data" / "street-scenes" / "images" / "00003.jpg"
    whole = shared_folder / "data" / "stanford-cars-whole" / "images" / "00028.jpg"
    drop(app, ("street.jpg", jpeg_of(street)), ("driveway.jpg", jpeg_of(whole)))
    assert app.subheader[0].value.startswith("Car 1: ")
    others = [m.value for m in app.markdown if m.value.startswith("**Car ")]
    assert others and others[0].startswith("**Car 2: ")
    table = app.dataframe[0].value
    street_rows = table[table["file"] == "street.jpg"]
    assert list(street_rows["car"]) == list(range(1, len(others) + 2))
    assert street_rows["box"].str.fullmatch(r"\d+ \d+ \d+ \d+").all()
    assert list(table[table["file"] == "driveway.jpg"]["car"]) == [1]


def test_a_photo_without_a_car_says_so_and_can_be_classified_anyway(app):
    skimage = pytest.importorskip("skimage", reason="sample photos without a car come with scikit-image")
    drop(app, ("cat.jpg", jpeg_of(Path(skimage.__file__).parent / "data" / "chelsea.png")))
    assert app.subheader[0].value == "No car found"
    assert not app.get("plotly_chart")
    app.button(key="whole-0").click().run()
    assert not app.exception
    cat = Predictor.from_source(str(BUNDLED_MODEL_DIR)).predict(
        jpeg_of(Path(skimage.__file__).parent / "data" / "chelsea.png")
    )
    assert app.subheader[0].value == cat.headline
    assert len(app.get("plotly_chart")) == 4


def test_the_switch_turns_the_finder_off(app, shared_folder):
    street = shared_folder / "data" / "street-scenes" / "images" / "00003.jpg"
    drop(app, ("street.jpg", jpeg_of(street)))
    app.toggle[0].set_value(False).run()
    assert not app.subheader[0].value.startswith("Car 1")
    assert not [m.value for m in app.markdown if m.value.startswith("**Car ")]


def test_the_camera_is_asked_for_only_when_chosen(app):
    assert not app.get("camera_input")
    app.toggle[1].set_value(True).run()
    assert len(app.get("camera_input")) == 1
