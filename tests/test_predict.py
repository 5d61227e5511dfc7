import threading

import numpy as np
import pytest
from PIL import Image

from autospecnet import HEADS, ImageError, Predictor, load_model


def photo(seed: int, size=(120, 80)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="module", params=["onnxruntime", "torch"])
def predictor(request, random_onnx_model_dir):
    predictor = Predictor(load_model(random_onnx_model_dir), backend=request.param)
    assert predictor.backend_name == request.param
    return predictor


def test_probabilities_sum_to_one_per_head(predictor):
    prediction = predictor.predict(photo(1), top_k=None)
    sizes = {"model": 196, "year": 16, "make": 49, "type": 9}
    for head in HEADS:
        probs = [p.prob for p in prediction.heads[head].labels]
        assert len(probs) == sizes[head]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert probs == sorted(probs, reverse=True)


def test_top_k_and_answer(predictor):
    prediction = predictor.predict(photo(2), top_k=3)
    assert all(len(prediction.heads[h].labels) == 3 for h in HEADS)
    assert prediction.class_name == prediction.heads["model"].top.label
    year = prediction.class_name.rsplit(" ", 1)[1]
    assert prediction.answer == f"{year} {prediction.class_name.rsplit(' ', 1)[0]}"
    assert prediction.confidence == prediction.heads["model"].top.prob
    assert len(predictor.predict(photo(2), top_k=500).heads["type"].labels) == 9


def test_same_input_same_output(predictor):
    assert predictor.predict(photo(3)) == predictor.predict(photo(3))
    assert predictor.predict(photo(3)) != predictor.predict(photo(4))


def test_batch_equals_one_by_one(predictor):
    images = [photo(i, size=(100 + 10 * i, 70)) for i in range(5)]
    batch = predictor.predict_batch(images, top_k=None)
    for image, batched in zip(images, batch, strict=True):
        single = predictor.predict(image, top_k=None)
        assert single.class_name == batched.class_name
        for head in HEADS:
            a = {p.label: p.prob for p in single.heads[head].labels}
            b = {p.label: p.prob for p in batched.heads[head].labels}
            assert a.keys() == b.keys()
            assert max(abs(a[k] - b[k]) for k in a) < 1e-5


def test_accepts_bytes_and_paths_and_refuses_bad_files(predictor, tmp_path):
    path = tmp_path / "car.png"
    photo(5).save(path)
    assert predictor.predict(path) == predictor.predict(path.read_bytes()) == predictor.predict(photo(5))
    with pytest.raises(ImageError):
        predictor.predict(b"not a photo")


def test_thread_safe(predictor):
    expected = predictor.predict(photo(6))
    results = []
    threads = [threading.Thread(target=lambda: results.append(predictor.predict(photo(6)))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 6


def test_preprocessing_uses_the_model_config(predictor):
    array = predictor.preprocess(photo(7))
    assert array.shape == (3, 96, 96) and array.dtype == np.float32
