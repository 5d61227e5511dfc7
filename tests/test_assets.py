"""What the app ships: the bundled model, the experiment curves and the gallery manifest."""

import json

import pytest

from autospecnet import load_model
from autospecnet.app.experiments import experiment_folders, load_experiments
from autospecnet.app.gallery import load_gallery
from autospecnet.heads import HEADS
from autospecnet.records.test_metrics import PartMetrics
from autospecnet.sources import ASSETS_DIR, BUNDLED_MODEL_DIR
from tests.conftest import run_python

GRID = {
    "size224-batch32-lr0.01",
    "size400-batch32-lr0.01",
    "size224-batch16-lr0.01",
    "size224-batch64-lr0.01",
    "size400-batch32-lr0.005",
    "size400-batch32-lr0.05",
}


@pytest.fixture(scope="module")
def test_metrics() -> dict:
    return json.loads((BUNDLED_MODEL_DIR / "test_metrics.json").read_text())


def test_bundled_model_loads_like_a_hub_repo_and_is_small():
    loaded = load_model(BUNDLED_MODEL_DIR)
    assert len(loaded.model.taxonomy.class_names) == 196
    assert (BUNDLED_MODEL_DIR / "model.safetensors").stat().st_size <= 16 * 2**20
    assert {p.name for p in BUNDLED_MODEL_DIR.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "README.md",
        "split.json",
        "history.csv",
        "test_metrics.json",
    }


def test_model_card_states_how_it_was_measured(test_metrics):
    card = (BUNDLED_MODEL_DIR / "README.md").read_text()
    split = json.loads((BUNDLED_MODEL_DIR / "split.json").read_text())
    for words in (
        "Stanford Cars",
        "bounding box",
        "2012 and earlier",
        "Hardware:",
        "epochs",
        "validation",
        f"{len(split['test'])} test images",
        "Calibration",
    ):
        assert words in card, words
    for head in HEADS:
        assert f"{test_metrics['heads'][head]['accuracy']:.2%}" in card
    assert test_metrics["images"] == len(split["test"])


@pytest.mark.slow
def test_evaluate_reproduces_the_card(shared_data, test_metrics):
    result = run_python(
        "-m",
        "training.evaluate",
        "--model",
        str(BUNDLED_MODEL_DIR),
        "--data",
        str(shared_data),
        "--part",
        "test",
        "--json",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["images"] == test_metrics["images"]
    for head in HEADS:
        assert report["heads"][head] == pytest.approx(test_metrics["heads"][head], abs=1e-6)


def test_each_stored_budget_is_one_budget_with_true_metadata():
    folders = experiment_folders(ASSETS_DIR / "experiments")
    assert folders, "the app ships experiment runs"
    for folder in folders.values():
        experiments = load_experiments(folder)
        assert set(experiments.runs) == GRID, "every shipped budget has the whole grid"
        budgets = {
            json.dumps({k: v for k, v in run.metadata.to_dict()["budget"].items() if k != "epochs_run"}, sort_keys=True)
            for run in experiments.runs.values()
        }
        assert len(budgets) == 1, budgets
        for run in experiments.runs.values():
            metadata = run.metadata.to_dict()
            hp, budget = metadata["hyperparameters"], metadata["budget"]
            assert len(run.history) == budget["epochs_run"] == budget["epochs"] and not budget["dry_run"]
            assert hp["lr_milestones"] and all(0 < m < budget["epochs"] for m in hp["lr_milestones"])
            assert f"--lr-milestones {' '.join(map(str, hp['lr_milestones']))}" in metadata["command"]
            assert metadata["hardware"] and metadata["wall_seconds"] > 0 and metadata["train_images_per_second"]
            assert budget["train_images"] == round(5707 * budget["subset"]) or budget["subset"] < 1
            assert "/root/" not in json.dumps(metadata) and "/work/" not in json.dumps(metadata)
        assert set(experiments.planned) == {"image size", "batch size", "learning rate"}
        assert [f.outcome for f in experiments.findings()].count("waiting") == 0 and len(experiments.findings()) == 3


def test_gallery_has_successes_and_failures_for_every_head():
    gallery = load_gallery(ASSETS_DIR / "gallery" / "gallery.json", BUNDLED_MODEL_DIR, data_dir="")
    test_files = set(json.loads((BUNDLED_MODEL_DIR / "split.json").read_text())["test"])
    for head in HEADS:
        for correct in (True, False):
            items = gallery.select(head, correct)
            assert len(items) >= 12, (head, correct)
            assert all(item.file in test_files for item in items)
        metrics = PartMetrics.read(BUNDLED_MODEL_DIR)
        assert gallery.wrong[head] == round((1 - metrics.heads[head].accuracy) * metrics.images)
        assert gallery.mistakes[head] and gallery.mistakes[head][0].count >= gallery.mistakes[head][-1].count
    assert not [p for p in ASSETS_DIR.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}]
