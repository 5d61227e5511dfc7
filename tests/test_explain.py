"""Heatmaps: exact for a linear head, equal to a torch autograd reference, and faithful on real crops."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from autospecnet import HEADS, Predictor, load_model
from autospecnet.heads import ATTRIBUTE_HEADS
from autospecnet.sources import BUNDLED_MODEL_DIR
from training.onnx_export import export_onnx

CALIBRATION = ({"model": 0.7, "year": 1.3, "make": 0.6, "type": 0.9}, {"year": 0.5, "make": 1.0, "type": 0.25})


def photo(seed: int, size=(150, 90)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def calibrated_copy(random_model_dir, folder, flip_average: bool = False):
    load_model(random_model_dir).model.with_calibration(*CALIBRATION, flip_average=flip_average).save_pretrained(folder)
    export_onnx(load_model(folder).model, folder)
    return folder


@pytest.fixture(scope="module")
def calibrated_model_dir(random_model_dir, tmp_path_factory):
    """The random model with temperatures and marginal weights, so that every path of the gradient is taken."""
    return calibrated_copy(random_model_dir, tmp_path_factory.mktemp("calibrated") / "model")


@pytest.fixture(scope="module")
def flip_model_dir(random_model_dir, tmp_path_factory):
    """The same, averaging its logits over each image and its mirror."""
    return calibrated_copy(random_model_dir, tmp_path_factory.mktemp("flip") / "model", flip_average=True)


def torch_heatmap(model, batch: np.ndarray, head: str, label: int) -> np.ndarray:
    """The reference: autograd of the shown log-probability with respect to the feature map (both maps for a model
    that averages over the mirror too), applied cell by cell (HiResCAM), negative cells set to zero, scaled to a
    largest value of 1."""
    model = model.eval()
    images = torch.from_numpy(batch)
    maps = [model.backbone(images).detach().requires_grad_(True)]
    if model.flip_average:
        maps.append(model.backbone(images.flip(3)).detach().requires_grad_(True))
    passes = [model.heads_of(model.pool(feature_map)) for feature_map in maps]
    logits = {h: sum(p[h] for p in passes) / len(passes) for h in passes[0]}
    model.log_probabilities(logits)[head][0, label].backward()
    cells = (maps[0].grad[0] * maps[0][0]).sum(dim=0)
    if len(maps) == 2:  # the mirror's cells, flipped back to where they are on the image
        cells = cells + (maps[1].grad[0] * maps[1][0]).sum(dim=0).flip(1)
    cells = cells.clamp_min(0).detach().numpy()
    return cells / cells.max() if cells.max() > 0 else cells


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's, over the cells; 1 for two maps without evidence anywhere (all zero)."""
    if not a.any() and not b.any():
        return 1.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_a_linear_heads_map_averages_to_its_logit(calibrated_model_dir):
    predictor = Predictor.from_source(str(calibrated_model_dir), backend="onnxruntime")
    outputs = predictor.backend.run(predictor.preprocess(photo(3))[None])
    feature_map = outputs["feature_map"][0]
    for head in ATTRIBUTE_HEADS:
        bias = predictor.explainer.layers[head][1]
        for label in (0, len(bias) - 1):
            cam = predictor.explainer.logit_map(head, feature_map, label)
            assert cam.mean() + bias[label] == pytest.approx(outputs[f"{head}_logits"][0][label], rel=1e-5, abs=1e-5)
    with pytest.raises(ValueError, match="linear"):
        predictor.explainer.logit_map("model", feature_map, 0)


@pytest.mark.parametrize("model_dir", ["calibrated_model_dir", "flip_model_dir"])
def test_heatmaps_equal_the_torch_reference_on_both_backends(model_dir, request):
    model_dir = request.getfixturevalue(model_dir)
    model = load_model(model_dir).model
    for backend in ("onnxruntime", "torch"):
        predictor = Predictor.from_source(str(model_dir), backend=backend)
        for seed in range(3):
            image = photo(seed, (120 + 10 * seed, 90))
            prediction = predictor.predict(image, explain=True)
            batch = predictor.preprocess(image)[None]
            for head in HEADS:
                label = predictor.vocabularies[head].index(prediction.heads[head].top.label)
                served, expected = prediction.heads[head].heatmap, torch_heatmap(model, batch, head, label)
                assert served.shape == expected.shape and served.min() >= 0 and served.max() <= 1
                assert correlation(served, expected) >= 0.999, (backend, head)


def test_without_explain_there_are_no_heatmaps(calibrated_model_dir):
    prediction = Predictor.from_source(str(calibrated_model_dir)).predict(photo(1))
    assert all(prediction.heads[h].heatmap is None for h in HEADS) and "heatmaps" not in prediction.to_dict()
    explained = Predictor.from_source(str(calibrated_model_dir)).predict(photo(1), explain=True).to_dict()
    grid = explained["heatmaps"]["make"]
    assert set(explained["heatmaps"]) == set(HEADS) and len(grid) == 3 and all(len(row) == 3 for row in grid)
    assert json.loads(json.dumps(explained)) == explained  # plain JSON: lists of rows of floats


# On real crops, with the bundled model


def val_crops(shared_data, count: int) -> list[Image.Image]:
    split = json.loads((BUNDLED_MODEL_DIR / "split.json").read_text())
    files = split["val"][:: max(1, len(split["val"]) // count)][:count]
    return [Image.open(shared_data / f).convert("RGB") for f in files]


@pytest.mark.slow
def test_served_heatmaps_equal_the_reference_on_real_crops(shared_data):
    predictor = Predictor.from_source(str(BUNDLED_MODEL_DIR))
    if not predictor.can_explain:
        pytest.fail("the bundled model's model.onnx gives no feature map: export it again")
    model = load_model(BUNDLED_MODEL_DIR).model
    for image in val_crops(shared_data, 12):
        prediction = predictor.predict(image, explain=True)
        batch = predictor.preprocess(image)[None]
        for head in HEADS:
            label = predictor.vocabularies[head].index(prediction.heads[head].top.label)
            assert correlation(prediction.heads[head].heatmap, torch_heatmap(model, batch, head, label)) >= 0.99


def greyed(batch: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The input with the pixels under the given cells (of an h x w grid) set to the normalisation's mean: grey."""
    result = batch.copy()
    size, (h, w) = batch.shape[-1], cells.shape
    for i, j in zip(*np.nonzero(cells), strict=True):
        result[..., i * size // h : (i + 1) * size // h, j * size // w : (j + 1) * size // w] = 0.0
    return result


@pytest.mark.slow
def test_greying_the_hottest_quarter_hurts_more_than_the_coldest(shared_data):
    predictor = Predictor.from_source(str(BUNDLED_MODEL_DIR))
    faithful = total = 0
    for image in val_crops(shared_data, 40):
        prediction = predictor.predict(image, explain=True)
        batch = predictor.preprocess(image)[None]
        heatmap = prediction.heads["model"].heatmap
        order = np.argsort(heatmap.ravel())
        quarter = max(1, heatmap.size // 4)
        coldest, hottest = np.zeros(heatmap.size, bool), np.zeros(heatmap.size, bool)
        coldest[order[:quarter]], hottest[order[-quarter:]] = True, True
        label = predictor.vocabularies["model"].index(prediction.heads["model"].top.label)
        after_hot = predictor.probabilities(greyed(batch, hottest.reshape(heatmap.shape)))["model"][0, label]
        after_cold = predictor.probabilities(greyed(batch, coldest.reshape(heatmap.shape)))["model"][0, label]
        faithful += after_hot < after_cold
        total += 1
    assert faithful / total >= 0.8, f"{faithful} of {total}"


def test_a_graph_exported_before_the_feature_map_still_serves(calibrated_model_dir, tmp_path):
    """A model.onnx with the four probabilities only (as published before): answers as before, no heatmaps."""
    import shutil

    import onnx

    from autospecnet.predict import ExplainUnavailableError

    folder = tmp_path / "older"
    shutil.copytree(calibrated_model_dir, folder)
    graph = onnx.load(folder / "model.onnx")
    kept = [output for output in graph.graph.output if output.name in HEADS]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    onnx.save(graph, folder / "model.onnx")
    older, current = Predictor.from_source(str(folder)), Predictor.from_source(str(calibrated_model_dir))
    assert older.backend_name == "onnxruntime" and not older.can_explain and current.can_explain
    assert older.predict(photo(4)).heads["make"] == current.predict(photo(4)).heads["make"]
    with pytest.raises(ExplainUnavailableError, match="export it again"):
        older.predict(photo(4), explain=True)


def test_a_flip_averaging_model_answers_a_mirrored_photo_alike(flip_model_dir):
    image = photo(6, (160, 96))
    mirrored = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for backend in ("onnxruntime", "torch"):
        predictor = Predictor.from_source(str(flip_model_dir), backend=backend)
        a, b = predictor.predict(image, top_k=None), predictor.predict(mirrored, top_k=None)
        for head in HEADS:
            pa, pb = ({p.label: p.prob for p in x.heads[head].labels} for x in (a, b))
            assert max(abs(pa[k] - pb[k]) for k in pa) < 1e-4
        explained = predictor.predict(image, explain=True).heads["model"].heatmap
        assert np.allclose(
            predictor.predict(mirrored, explain=True).heads["model"].heatmap, explained[:, ::-1], atol=1e-4
        )
