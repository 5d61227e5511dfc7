"""When the model is sure: the known scores, the rule in config.json, the decisions and the words for them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

from autospecnet import ModelFilesError, Predictor, load_model
from autospecnet.heads import FEATURE_DIM, HEADS
from autospecnet.predict import HeadPrediction, LabelProbability, say
from autospecnet.sure import MIN_SURE_PROBABILITY, SCORES, STATS_FILE, SureRule, known_score
from training.calibrate import precision_threshold

RULE = {"score": "max_softmax", "known_threshold": 0.0, "thresholds": dict.fromkeys(HEADS, 0.0)}


def photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (90, 150, 3), dtype=np.uint8), "RGB")


def with_rule(source, target, rule: dict | None, stats: dict | None = None):
    """A copy of a model folder whose config.json holds ``rule`` (and sure.safetensors holds ``stats``)."""
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config["sure"] = rule
    (target / "config.json").write_text(json.dumps(config))
    if stats is not None:
        save_file(stats, target / STATS_FILE)
    return target


def outputs_of(probs, logits, features, make_logits):
    return {
        "model": np.asarray(probs, dtype=np.float64),
        "model_logits": np.asarray(logits, dtype=np.float64),
        "features": np.asarray(features, dtype=np.float64),
        "make_logits": np.asarray(make_logits, dtype=np.float64),
    }


def test_known_scores_by_hand():
    outputs = outputs_of(
        probs=[[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]],
        logits=[[2.0, 1.0, 0.0], [0.5, 0.4, 0.1]],
        features=[[1.0, 0.0], [1.0, 1.0]],
        make_logits=[[3.0, 0.0], [3.0, 0.0]],
    )
    stats = {"class_means": np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), "knn_bank": np.eye(2)}
    class_makes = [0, 1, 1]
    np.testing.assert_allclose(known_score("max_softmax", outputs, stats, class_makes), [0.7, 0.4])
    np.testing.assert_allclose(known_score("max_logit", outputs, stats, class_makes), [2.0, 0.5])
    np.testing.assert_allclose(
        known_score("energy", outputs, stats, class_makes), np.log(np.exp(outputs["model_logits"]).sum(axis=1))
    )
    np.testing.assert_allclose(known_score("class_mean_cosine", outputs, stats, class_makes), [1.0, 2**-0.5])
    # Two training crops in the bank: the 10th nearest is the farthest of the two.
    np.testing.assert_allclose(known_score("knn_cosine", outputs, stats, class_makes), [0.0, 2**-0.5])
    # Both images' make head says make 0; the class head's answers are class 0 (make 0) and class 0 again.
    assert np.isfinite(known_score("max_softmax+agreement", outputs, stats, class_makes)).all()
    own = np.exp(3.0) / (np.exp(3.0) + 1)  # the make head's own probability of make 0
    np.testing.assert_allclose(
        known_score("max_softmax*agreement", outputs, stats, class_makes), [0.7 * own, 0.4 * own]
    )
    outputs["make_logits"][1] = [0.0, 3.0]  # now the second image's heads disagree
    gated = known_score("max_softmax+agreement", outputs, stats, class_makes)
    assert gated[0] == pytest.approx(0.7) and gated[1] == -np.inf


def test_precision_threshold_keeps_the_most_answers_that_are_right_often_enough():
    confidence = np.linspace(1.0, 0.01, 100)
    correct = np.ones(100, dtype=bool)
    correct[[60, 70, 80, 90]] = False  # every mistake is below 0.4
    threshold = precision_threshold(confidence, correct, 0.98, floor=0.0)
    sure = confidence >= threshold
    assert correct[sure].mean() >= 0.98 and sure.sum() >= 60
    assert precision_threshold(confidence, np.zeros(100, dtype=bool), 0.9) > 1.0  # never right: never sure


def test_an_answer_below_even_odds_is_never_sure_however_right_such_answers_were():
    confidence = np.linspace(1.0, 0.01, 100)
    correct = np.ones(100, dtype=bool)  # every answer right: without the floor, all 100 would be sure
    threshold = precision_threshold(confidence, correct, 0.98)
    assert threshold == pytest.approx(confidence[confidence >= MIN_SURE_PROBABILITY].min())
    assert (confidence >= threshold).sum() == (confidence >= MIN_SURE_PROBABILITY).sum() == 51  # 1.0 down to 0.5


def test_the_rule_round_trips_through_config_json(random_model_dir, tmp_path):
    rule = {"score": "energy+agreement", "known_threshold": 1.5, "thresholds": {h: 0.5 for h in HEADS}}
    folder = with_rule(random_model_dir, tmp_path / "model", rule)
    loaded = load_model(folder)
    assert loaded.config.sure == SureRule.from_config(rule, HEADS) and loaded.config.sure.to_config() == rule
    # Saved again by the torch model (training.calibrate's way), the rule is the same.
    loaded.model.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["sure"] == rule


def test_a_model_without_fitted_thresholds_loads_and_is_never_sure(random_model_dir):
    prediction = Predictor.from_source(str(random_model_dir)).predict(photo(1))
    assert not prediction.has_sure_rule and prediction.sure == dict.fromkeys(HEADS, False)
    assert prediction.headline == prediction.answer  # its best guess, said as before


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"score": "vibes", "known_threshold": 0, "thresholds": dict.fromkeys(HEADS, 0.5)}, "is not one of"),
        ({"score": "energy", "known_threshold": float("nan"), "thresholds": dict.fromkeys(HEADS, 0.5)}, "finite"),
        ({"score": "energy", "known_threshold": 0, "thresholds": {"model": 0.5}}, "each of"),
        ({"score": "energy"}, "needs a score"),
    ],
)
def test_a_broken_rule_is_refused_with_a_message(random_model_dir, tmp_path, rule, message):
    folder = with_rule(random_model_dir, tmp_path / "model", rule)
    with pytest.raises(ModelFilesError, match=message):
        load_model(folder)


def test_a_feature_score_needs_its_class_means(random_model_dir, tmp_path):
    rule = {"score": "class_mean_cosine", "known_threshold": 0.5, "thresholds": dict.fromkeys(HEADS, 0.5)}
    with pytest.raises(ModelFilesError, match="no sure.safetensors"):
        load_model(with_rule(random_model_dir, tmp_path / "none", rule))
    wrong = {"class_means": np.ones((3, FEATURE_DIM), dtype=np.float32)}
    with pytest.raises(ModelFilesError, match="class_means of shape"):
        load_model(with_rule(random_model_dir, tmp_path / "wrong", rule, wrong))
    broken = tmp_path / "broken"
    with_rule(random_model_dir, broken, rule)
    (broken / STATS_FILE).write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFilesError, match="corrupt"):
        load_model(broken)
    means = np.random.default_rng(0).normal(size=(196, FEATURE_DIM)).astype(np.float32)
    loaded = load_model(with_rule(random_model_dir, tmp_path / "good", rule, {"class_means": means}))
    assert loaded.sure_stats["class_means"].shape == (196, FEATURE_DIM)


def test_decisions_follow_the_rule_on_both_backends(random_onnx_model_dir, tmp_path):
    always = {"score": "max_softmax", "known_threshold": -1.0, "thresholds": dict.fromkeys(HEADS, 0.0)}
    never_known = {**always, "known_threshold": 2.0}
    for name, rule in (("always", always), ("never-known", never_known)):
        folder = with_rule(random_onnx_model_dir, tmp_path / name, rule)
        for backend in ("onnxruntime", "torch"):
            prediction = Predictor.from_source(str(folder), backend=backend).predict(photo(2))
            assert prediction.has_sure_rule
            assert prediction.sure == {"model": name == "always", "year": True, "make": True, "type": True}
            assert prediction.known is (name == "always")
            if name == "never-known":  # the make and body type are sure, the model is not one it knows
                make, body = prediction.heads["make"].top.label, prediction.heads["type"].top.label
                assert prediction.headline.startswith(("A ", "An ")) and make in prediction.headline
                assert (
                    body.lower() in prediction.headline.lower() and "not one of the 196 models" in prediction.headline
                )


def heads_for(make_sure: bool, type_sure: bool, model_sure: bool = False) -> dict[str, HeadPrediction]:
    def head(name, label, sure):
        return HeadPrediction(name, (LabelProbability(label, 0.9),), sure)

    return {
        "model": head("model", "Mitsubishi Lancer Sedan 2012", model_sure),
        "year": head("year", "2012", False),
        "make": head("make", "Mitsubishi", make_sure),
        "type": head("type", "SUV", type_sure),
    }


def test_the_headline_says_what_is_sure():
    assert say(heads_for(True, True, model_sure=True), True, 196, "2012") == "2012 Mitsubishi Lancer Sedan"
    assert say(heads_for(True, True), False, 196, "2012") == (
        "A Mitsubishi SUV — not one of the 196 models I know (cars up to 2012)"
    )
    assert say(heads_for(True, False), True, 196, "2012") == "A Mitsubishi — not sure which model"
    assert say(heads_for(False, True), False, 196, "2012") == "An SUV I can't name"
    assert say(heads_for(False, False), False, 196, "2012") == "A car I can't name"


def test_every_score_is_known_to_the_rule():
    for score in SCORES:
        assert SureRule.from_config(
            {"score": score, "known_threshold": 0, "thresholds": dict.fromkeys(HEADS, 1)}, HEADS
        )
