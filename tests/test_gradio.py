"""``python -m autospecnet.gradio`` served on a local port, called through gradio_client as a script would."""

import numpy as np
import pytest
from PIL import Image

from autospecnet import Predictor
from tests.conftest import free_port, serve

pytest.importorskip("gradio", reason="the Gradio app needs gradio (requirements-dev.txt)")
gradio_client = pytest.importorskip("gradio_client", reason="the API test needs gradio_client")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gradio_server(random_model_dir, tmp_path_factory):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {"AUTOSPECNET_MODEL": str(random_model_dir), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = tmp_path_factory.mktemp("gradio") / "gradio.log"
    with serve(["-m", "autospecnet.gradio", "--port", str(port)], url, log, env=env):
        yield url


def test_api_returns_one_label_per_head(gradio_server, random_model_dir, tmp_path):
    photo = tmp_path / "car.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)).save(photo)
    client = gradio_client.Client(gradio_server, verbose=False)
    car, make, body_type, year = client.predict(gradio_client.handle_file(str(photo)), api_name="/predict")

    expected = Predictor.from_source(str(random_model_dir)).predict(photo, top_k=5)
    for label, head in ((car, "model"), (make, "make"), (body_type, "type"), (year, "year")):
        assert label["label"] == expected.heads[head].top.label
        confidences = [c["confidence"] for c in label["confidences"]]
        assert len(confidences) == 5
        assert confidences == pytest.approx([p.prob for p in expected.heads[head].labels], abs=1e-4)


def test_api_explains_a_bad_photo(gradio_server, tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8)).save(tiny)
    client = gradio_client.Client(gradio_server, verbose=False)
    with pytest.raises(Exception, match="too small"):
        client.predict(gradio_client.handle_file(str(tiny)), api_name="/predict")
