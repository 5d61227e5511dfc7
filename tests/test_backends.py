"""ONNX Runtime and torch: which one serves, that they agree, and that serving on ONNX imports no torch."""

import json

import numpy as np
import pytest
from PIL import Image

from autospecnet import HEADS, ModelFilesError, Predictor, load_model
from autospecnet.preprocess import to_model_input
from tests.conftest import run_python


def photo(seed: int, size=(150, 90)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def test_default_backend_is_onnxruntime_when_the_folder_has_model_onnx(random_onnx_model_dir, random_model_dir):
    assert Predictor.from_source(str(random_onnx_model_dir)).backend_name == "onnxruntime"
    assert Predictor.from_source(str(random_model_dir)).backend_name == "torch"
    assert Predictor.from_source(str(random_onnx_model_dir), backend="torch").backend_name == "torch"


def test_onnxruntime_without_model_onnx_is_a_clear_error(random_model_dir):
    with pytest.raises(ModelFilesError, match="no model.onnx"):
        Predictor.from_source(str(random_model_dir), backend="onnxruntime")


def test_numpy_preprocessing_equals_the_torchvision_transform_of_training():
    from training.data import eval_transform

    for seed, size in ((1, (150, 90)), (2, (37, 300)), (3, (640, 480))):
        image = photo(seed, size)
        expected = eval_transform(96, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))(image).numpy()
        np.testing.assert_allclose(to_model_input(image, 96, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)), expected, atol=1e-5)


def test_both_backends_give_the_same_probabilities(random_onnx_model_dir):
    loaded = load_model(random_onnx_model_dir)
    onnx, torch_ = Predictor(loaded, backend="onnxruntime"), Predictor(loaded, backend="torch")
    images = [photo(seed, (120 + seed, 80)) for seed in range(8)]
    for a, b in zip(onnx.predict_batch(images, top_k=None), torch_.predict_batch(images, top_k=None), strict=True):
        assert a.class_name == b.class_name
        for head in HEADS:
            pa = {p.label: p.prob for p in a.heads[head].labels}
            pb = {p.label: p.prob for p in b.heads[head].labels}
            assert max(abs(pa[k] - pb[k]) for k in pa) < 1e-4


def test_onnx_graph_with_nan_outputs_is_refused(random_onnx_model_dir, tmp_path):
    import shutil

    import onnx

    folder = tmp_path / "model"
    shutil.copytree(random_onnx_model_dir, folder)
    graph = onnx.load(folder / "model.onnx")
    for initializer in graph.graph.initializer:
        array = onnx.numpy_helper.to_array(initializer)
        if array.dtype == np.float32 and array.size > 1000:
            initializer.CopyFrom(onnx.numpy_helper.from_array(np.full_like(array, np.nan), initializer.name))
            break
    onnx.save(graph, folder / "model.onnx")
    with pytest.raises(ModelFilesError, match="no valid probabilities"):
        Predictor.from_source(str(folder))


CLI_AND_MODULES = """
import json, sys
from autospecnet.__main__ import main
code = main(["predict", "--json", sys.argv[1], "--model", sys.argv[2]])
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "torchvision": "torchvision" in sys.modules}))
"""


def test_cli_prediction_on_onnxruntime_imports_no_torch(random_onnx_model_dir, tmp_path):
    path = tmp_path / "car.png"
    photo(5).save(path)
    result = run_python("-c", CLI_AND_MODULES, str(path), str(random_onnx_model_dir))
    assert result.returncode == 0, result.stderr
    *answers, modules = result.stdout.strip().splitlines()
    assert json.loads(modules) == {"code": 0, "torch": False, "torchvision": False}
    assert "answer" in json.loads(answers[0]) or json.loads(answers[0]).get("no_car")


@pytest.mark.slow
def test_bundled_model_ships_an_onnx_graph_that_agrees_with_torch():
    from autospecnet.sources import BUNDLED_MODEL_DIR

    loaded = load_model(BUNDLED_MODEL_DIR)
    assert (loaded.folder / "model.onnx").is_file()
    onnx, torch_ = Predictor(loaded, backend="onnxruntime"), Predictor(loaded, backend="torch")
    batch = np.stack([onnx.preprocess(photo(seed)) for seed in range(4)])
    a, b = onnx.probabilities(batch), torch_.probabilities(batch)
    for head in HEADS:
        assert np.abs(a[head] - b[head]).max() < 1e-4


@pytest.mark.slow
def test_both_backends_agree_on_the_test_crops(shared_data):
    """The bundled model on every crop of its test part: the same 196-class answer for at least 99.5 % of them,
    and no probability of any head more than 0.01 apart."""
    from autospecnet.sources import BUNDLED_MODEL_DIR

    loaded = load_model(BUNDLED_MODEL_DIR)
    files = json.loads((BUNDLED_MODEL_DIR / "split.json").read_text())["test"]
    onnx, torch_ = Predictor(loaded, backend="onnxruntime"), Predictor(loaded, backend="torch")
    same_answer, largest_gap = 0, 0.0
    for start in range(0, len(files), 32):
        with_pixels = []
        for file in files[start : start + 32]:
            with Image.open(shared_data / file) as image:
                with_pixels.append(onnx.preprocess(image.convert("RGB")))
        batch = np.stack(with_pixels)
        a, b = onnx.probabilities(batch), torch_.probabilities(batch)
        same_answer += int((a["model"].argmax(1) == b["model"].argmax(1)).sum())
        largest_gap = max(largest_gap, *(float(np.abs(a[h] - b[h]).max()) for h in HEADS))
    assert same_answer / len(files) >= 0.995 and largest_gap <= 0.01, (same_answer, len(files), largest_gap)
