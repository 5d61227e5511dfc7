import json

import pytest
import torch
from safetensors.torch import load_file
from torchvision.models import mobilenet_v2

from autospecnet.labels import LabelError
from autospecnet.model import AutoSpecNet
from training.backbone import init_backbone


@pytest.fixture(scope="module")
def model(taxonomy):
    torch.manual_seed(0)
    return AutoSpecNet.from_taxonomy(taxonomy).eval()


@pytest.mark.parametrize("batch, size", [(1, 224), (8, 224), (1, 400), (8, 400)])
def test_output_shapes(model, batch, size):
    with torch.inference_mode():
        logits = model(torch.randn(batch, 3, size, size))
    assert {k: tuple(v.shape) for k, v in logits.items()} == {
        "model": (batch, 196),
        "year": (batch, 16),
        "make": (batch, 49),
        "type": (batch, 9),
    }


def test_architecture_follows_the_paper(model):
    for head in (model.year_head, model.make_head, model.type_head):
        assert isinstance(head[0], torch.nn.Dropout) and head[0].p == 0.2
        assert head[1].in_features == 1280
    dropout, relu, linear = model.model_head
    assert isinstance(dropout, torch.nn.Dropout) and isinstance(relu, torch.nn.ReLU)
    assert linear.in_features == 1280 + 16 + 49 + 9 and linear.out_features == 196


def test_save_and_load_give_identical_logits(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert len(config["class_names"]) == 196 and config["image_size"] == 224
    assert config["mean"] == pytest.approx([0.485, 0.456, 0.406]) and len(config["makes"]) == 49
    loaded = AutoSpecNet.from_pretrained(tmp_path)
    images = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        expected, actual = model(images), loaded(images)
    for head in expected:
        assert torch.equal(expected[head], actual[head])


def test_config_vocabularies_must_match_class_names(taxonomy):
    with pytest.raises(LabelError, match="vocabularies"):
        AutoSpecNet(
            list(taxonomy.class_names), list(taxonomy.years), list(taxonomy.makes)[:-1], list(taxonomy.body_types)
        )


def test_offline_imagenet_backbone_loads_strictly(taxonomy, imagenet_weights):
    model = AutoSpecNet.from_taxonomy(taxonomy)
    init_backbone(model, str(imagenet_weights))
    donor = mobilenet_v2()
    donor.load_state_dict(load_file(imagenet_weights), strict=True)
    for name, tensor in donor.features.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], tensor), name


def test_missing_backbone_file_is_a_clear_error(taxonomy, tmp_path):
    with pytest.raises(FileNotFoundError, match="backbone weights not found"):
        init_backbone(AutoSpecNet.from_taxonomy(taxonomy), str(tmp_path / "nope.safetensors"))


def test_fused_model_gives_the_same_outputs(random_model_dir):
    model = AutoSpecNet.from_pretrained(random_model_dir)  # BatchNorm statistics randomised by the fixture
    fused = model.fused_for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    images = torch.randn(3, 3, 96, 96)
    with torch.inference_mode():
        expected, actual = model(images), fused(images)
    for head in expected:
        torch.testing.assert_close(actual[head], expected[head], rtol=1e-4, atol=1e-4)


def test_log_probabilities_mix_heads_with_the_class_marginal(taxonomy):
    torch.manual_seed(1)
    model = AutoSpecNet.from_taxonomy(taxonomy)
    logits = {
        "model": torch.randn(2, 196),
        "year": torch.randn(2, 16),
        "make": torch.randn(2, 49),
        "type": torch.randn(2, 9),
    }
    paper = model.log_probabilities(logits)
    for head in logits:
        torch.testing.assert_close(paper[head], logits[head].log_softmax(1))

    marginal_only = model.with_calibration({"model": 2.0}, {"year": 1.0, "make": 1.0, "type": 1.0})
    result = marginal_only.log_probabilities(logits)
    class_probs = (logits["model"] / 2.0).softmax(1)
    bmw = [i for i, name in enumerate(taxonomy.class_names) if name.startswith("BMW ")]
    assert result["make"].exp()[:, taxonomy.makes.index("BMW")] == pytest.approx(class_probs[:, bmw].sum(1), abs=1e-5)
    for head in logits:
        assert result[head].exp().sum(1) == pytest.approx(torch.ones(2), abs=1e-5)

    half = model.with_calibration({}, {"make": 0.5}).log_probabilities(logits)["make"]
    make_of_class = torch.nn.functional.one_hot(model.class_to_heads[:, 1], 49).float()
    marginal = logits["model"].softmax(1) @ make_of_class
    torch.testing.assert_close(half, (0.5 * logits["make"].log_softmax(1) + 0.5 * marginal.log()).log_softmax(1))
