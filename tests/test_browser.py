"""The real app in a real browser: ``streamlit run app.py``, Debian's Chromium driven by Playwright,
a car photo dropped onto the uploader, the bars and the answer checked, a screenshot kept.

Needs /usr/bin/chromium and the playwright package; skips without them unless
AUTOSPECNET_REQUIRE_BROWSER=1 (as CI sets), where their absence is a failure.
"""

from __future__ import annotations

import base64
import os
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autospecnet import Predictor, Recognizer
from autospecnet.sources import BUNDLED_MODEL_DIR
from tests.conftest import ROOT, free_port, serve

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("AUTOSPECNET_TEST_ARTIFACTS", ROOT / ".test-artifacts"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]

pytestmark = pytest.mark.slow


def _require_browser():
    missing = []
    if not Path(CHROMIUM).is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("AUTOSPECNET_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def model_source(random_model_dir) -> str:
    return str(BUNDLED_MODEL_DIR) if (BUNDLED_MODEL_DIR / "model.safetensors").is_file() else str(random_model_dir)


@pytest.fixture(scope="module")
def car_photo(tmp_path_factory) -> Path:
    """A JPEG made at test time: a whole photo of a car from the shared data when CI gives it, else generated."""
    target = tmp_path_factory.mktemp("photo") / "car.jpg"
    shared = os.environ.get("AUTOSPECNET_TEST_SHARED")
    source = Path(shared) / "data" / "stanford-cars-whole" / "images" / "00028.jpg" if shared else None
    if source is not None and source.is_file():
        with Image.open(source) as image:
            image.convert("RGB").save(target, "JPEG", quality=90)
    else:
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)).save(target, "JPEG")
    return target


def streamlit_app(port: int) -> list[str]:
    """The arguments of ``python`` that serve the app on a local port, headless."""
    serving = ["--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"]
    return ["-m", "streamlit", "run", "app.py", *serving]


@pytest.fixture(scope="module")
def server(model_source, tmp_path_factory):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = streamlit_app(port) + ["--browser.gatherUsageStats", "false"]
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with serve(args, f"{url}/_stcore/health", log, env={"AUTOSPECNET_MODEL": model_source}):
        yield url


DROP = """([selector, name, b64]) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
    const zone = document.querySelector(selector);
    for (const type of ["dragenter", "dragover", "drop"]) {
        zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
    }
}"""


def test_drop_a_photo_and_see_the_answer(server, car_photo, model_source):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    result = Recognizer.from_source(model_source).recognise(car_photo)
    expected = result.main.prediction if result.main else Predictor.from_source(model_source).predict(car_photo)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(server, wait_until="domcontentloaded")
            dropzone = '[data-testid="stFileUploaderDropzone"]'
            page.wait_for_selector(dropzone, timeout=60_000)
            page.evaluate(DROP, [dropzone, car_photo.name, base64.b64encode(car_photo.read_bytes()).decode()])

            expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=90_000)
            answer = page.locator("h3", has_text=re.compile(r"^\d{4} "))
            expect(answer.first).to_have_text(expected.answer, timeout=30_000)
            expect(page.get_by_text("Confidence")).to_be_visible()
            if result.finder_used and result.main:  # the shared car finder: the photo shows the car's box
                expect(page.get_by_text("1 car found", exact=False)).to_be_visible()
            page.wait_for_timeout(1000)  # let plotly finish drawing before the screenshot
            page.screenshot(path=str(ARTIFACTS / "predict-page.png"), full_page=True)
            assert "Traceback" not in page.content()
        finally:
            browser.close()
    assert (ARTIFACTS / "predict-page.png").stat().st_size > 10_000


def test_health_endpoint_for_docker_healthcheck(server):
    with urllib.request.urlopen(f"{server}/_stcore/health", timeout=5) as response:
        assert response.status == 200 and response.read() == b"ok"


def test_deep_link_as_the_first_request_gets_the_app_navigation(model_source, tmp_path):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    port = free_port()  # a fresh server: Streamlit treats the first request after start differently
    url = f"http://127.0.0.1:{port}"
    args = streamlit_app(port)
    log = tmp_path / "streamlit.log"
    with (
        serve(args, f"{url}/_stcore/health", log, env={"AUTOSPECNET_MODEL": model_source}),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/gallery", wait_until="domcontentloaded")
            expect(page.locator("h1").first).to_have_text("Gallery", timeout=60_000)
            navigation = page.locator('[data-testid="stSidebarNav"]')
            expect(navigation).to_contain_text("About the model", timeout=30_000)
            expect(page.get_by_text("Test accuracy", exact=False)).to_be_visible()
        finally:
            browser.close()
