"""The training package end to end on tiny synthetic datasets, and a few batches of the real data."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from autospecnet.model import AutoSpecNet
from autospecnet.records import history as history_file
from autospecnet.records.training_args import TrainingArgs
from tests.conftest import ROOT, run_python
from tests.synthetic import CLASSES, make_folder_layout, make_official_layout
from training import evaluate as evaluate_cli
from training import experiments, gallery, publish
from training.card import reproduce
from training.data import CarImages, load_dataset, make_split
from training.mixing import batch_mixer
from training.train import get_args_parser
from training.train import main as train

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
TINY = ["--image-size", "64", "--batch-size", "8", "--backbone-init", "none", "--workers", "0", "--seed", "3"]


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory) -> Path:
    return make_folder_layout(tmp_path_factory.mktemp("folder-layout"))


@pytest.fixture(scope="module")
def official_data(tmp_path_factory) -> Path:
    return make_official_layout(tmp_path_factory.mktemp("official-layout"))


def train_args(data: Path, out: Path, *extra: str):
    return get_args_parser().parse_args(["--data", str(data), "--output-dir", str(out), *TINY, *extra])


def history_without_times(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in ("epoch_time", "train_time")} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def finished_run(folder_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "uninterrupted"
    train(train_args(folder_data, run, "--epochs", "2"))
    return run


# The split


def test_split_is_stratified_seeded_and_keeps_duplicates_together(folder_data):
    dataset = load_dataset(folder_data)
    split = make_split(dataset, seed=0)
    parts = {p: set(split[p]) for p in ("train", "val", "test")}
    assert (
        not (parts["train"] & parts["val"])
        and not (parts["train"] & parts["test"])
        and not (parts["val"] & parts["test"])
    )
    assert set().union(*parts.values()) == {s.filename for s in dataset.samples}
    labels = {s.filename: s.label for s in dataset.samples}
    for part, expected in (("val", 0.15), ("test", 0.15)):
        for label in range(len(CLASSES)):
            count = sum(labels[f] == label for f in parts[part])
            assert abs(count - expected * 10) <= 1.5, (part, label, count)
    for sample in dataset.samples:
        if sample.duplicate_of:
            assert [p for p in parts if sample.filename in parts[p]] == [
                p for p in parts if sample.duplicate_of in parts[p]
            ]
    assert make_split(dataset, seed=0) == split
    assert make_split(dataset, seed=1)["test"] != split["test"]


def test_official_layout_matches_torchvision_and_keeps_its_test_split(official_data):
    from torchvision.datasets import StanfordCars

    dataset = load_dataset(official_data)
    for part in ("train", "test"):
        reference = StanfordCars(official_data, split=part)
        ours = sorted(
            (str(official_data / "stanford_cars" / s.filename), s.label)
            for s in dataset.samples
            if s.official_part == part
        )
        assert ours == sorted(reference._samples)
    split = make_split(dataset, seed=0)
    assert split.official_test and len(split["test"]) == 12 and all(f.startswith("cars_test/") for f in split["test"])
    assert all(f.startswith("cars_train/") for f in split["train"] + split["val"]) and len(split["val"]) == 4


def test_bounding_box_crop(official_data):
    dataset = load_dataset(official_data)
    files = [dataset.samples[0].filename]
    full = CarImages(dataset, files, lambda image: image)[0][0]
    cropped = CarImages(dataset, files, lambda image: image, crop=True)[0][0]
    assert full.size == (140, 100) and cropped.size == (96, 56)


# Metrics


def test_metrics_equal_a_hand_computation():
    from training.metrics import HeadMetrics, macro_precision_recall

    targets = torch.tensor([0, 0, 0, 1, 1, 2])
    predictions = torch.tensor([0, 0, 1, 1, 2, 2])
    precision, recall = macro_precision_recall(predictions, targets, num_labels=4)
    # class 0: P 2/2, R 2/3; class 1: P 1/2, R 1/2; class 2: P 1/2, R 1/1; class 3 absent everywhere
    assert precision == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert recall == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    metrics = HeadMetrics(num_labels=4, top_k=2)
    logits = torch.nn.functional.one_hot(predictions, 4).float()
    logits[:, 3] += 0.5  # every second guess is class 3
    metrics.update(logits, targets)
    result = metrics.compute()
    assert result["accuracy"] == pytest.approx(4 / 6) and result["top5"] == pytest.approx(4 / 6)


# Training runs


def test_training_writes_the_run_folder(finished_run):
    files = {"training_args.json", "split.json", "history.csv", "checkpoint.pt", "best", "test_metrics.json"}
    assert {p.name for p in finished_run.iterdir()} >= files
    rows = history_without_times(finished_run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for column in (
        "train_loss",
        "train_accuracy",
        "train_year_accuracy",
        "train_make_accuracy",
        "train_type_accuracy",
        "val_loss",
        "val_accuracy",
        "val_make_precision",
        "val_type_recall",
        "val_top5",
    ):
        assert column in rows[0]
    report = json.loads((finished_run / "test_metrics.json").read_text())
    assert report["part"] == "test" and report["images"] == len(
        json.loads((finished_run / "split.json").read_text())["test"]
    )
    assert set(report["heads"]) == {"model", "year", "make", "type"}
    assert (finished_run / "best" / "split.json").is_file()


def test_best_model_is_chosen_on_validation(finished_run):
    rows = history_without_times(finished_run)
    best_epoch = max(rows, key=lambda r: float(r["val_accuracy"]))
    checkpoint = torch.load(finished_run / "checkpoint.pt", weights_only=True)
    assert checkpoint["best_val_accuracy"] == pytest.approx(float(best_epoch["val_accuracy"]))


def test_resume_after_a_kill_gives_the_uninterrupted_result(folder_data, finished_run, tmp_path):
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "training.train", "--data", str(folder_data), "--output-dir", str(run), *TINY]
    command += ["--epochs", "2"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run / "checkpoint.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (run / "checkpoint.pt").exists()

    train(train_args(folder_data, run, "--epochs", "2", "--resume"))
    assert history_without_times(run) == history_without_times(finished_run)
    ours, theirs = load_file(run / "best" / "model.safetensors"), load_file(finished_run / "best" / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert json.loads((run / "test_metrics.json").read_text()) == json.loads(
        (finished_run / "test_metrics.json").read_text()
    )


def kill_after_the_second_batch(run: Path, folder_data: Path, monkeypatch, *extra: str) -> None:
    """Train with a checkpoint after every batch, and die right after the second one is written."""
    import training.checkpoint as checkpoint_module

    class Killed(Exception):
        pass

    write_atomic = checkpoint_module.write_atomic

    def write_then_die(path, fill):
        write_atomic(path, fill)
        partial = torch.load(path, weights_only=True)["partial"] if path.name == "checkpoint.pt" else None
        if partial and partial["progress"]["batches"] == 2:
            raise Killed

    monkeypatch.setattr(checkpoint_module, "write_atomic", write_then_die)
    with pytest.raises(Killed):
        train(train_args(folder_data, run, *extra, "--checkpoint-minutes", "1e-9"))
    monkeypatch.undo()


def test_resume_within_an_epoch_gives_the_uninterrupted_result(folder_data, finished_run, tmp_path, monkeypatch):
    """Killed right after a mid-epoch checkpoint (the sampler, the sums, the metrics and dropout's random numbers
    go on from there), the run ends as the uninterrupted one does."""
    run = tmp_path / "killed-within"
    kill_after_the_second_batch(run, folder_data, monkeypatch, "--epochs", "2")
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == -1 and checkpoint["partial"]["progress"]["batches"] == 2  # inside epoch 1
    assert experiments.run_status(run, 2) == "0 of 2 epochs done, 2 batches into epoch 1: resumable"

    train(train_args(folder_data, run, "--epochs", "2", "--resume"))
    assert history_without_times(run) == history_without_times(finished_run)
    ours, theirs = load_file(run / "best" / "model.safetensors"), load_file(finished_run / "best" / "model.safetensors")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["partial"] is None


def test_mixed_batches_give_every_head_the_mixed_targets(folder_data, finished_run):
    """CutMix and MixUp: each image's class target is split between two classes in the proportion of the
    mix, and each attribute head's target between those classes' labels; the same seed mixes the same way."""
    model = AutoSpecNet.from_pretrained(finished_run / "best")
    args = train_args(folder_data, finished_run, "--cutmix-alpha", "1.0", "--mixup-alpha", "0.2")
    mix = batch_mixer(args, len(CLASSES))
    images, classes = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    mixed, targets = mix(images, classes, 0, 0)
    again, same = mix(images, classes, 0, 0)
    assert torch.equal(mixed, again) and torch.equal(targets, same)
    assert not torch.equal(mix(images, classes, 0, 1)[1], targets)  # another batch, another draw
    share = targets[0, 0]
    assert 0 < share < 1 and torch.allclose(targets.sum(dim=1), torch.ones(4))
    assert torch.isclose(targets[0, 3], 1 - share)  # the first image with the last (the batch rolled by one)
    heads = model.head_targets(targets)
    hard = {head: model.head_targets(torch.tensor([0, 3]))[head] for head in heads}
    for head, probabilities in heads.items():
        expected = torch.zeros_like(probabilities[0])
        expected[hard[head][0]] += share
        expected[hard[head][1]] += 1 - share
        assert torch.allclose(probabilities[0], expected)
    assert batch_mixer(train_args(folder_data, finished_run), len(CLASSES)) is None


def test_the_weights_average_is_what_validation_keeps_and_a_resume_goes_on_with_it(folder_data, tmp_path, monkeypatch):
    """--ema-epochs: best/ holds the moving average of the weights, not the last step's weights, and a run
    killed within its epoch averages (and mixes its batches) on from its checkpoint to the uninterrupted run's
    average."""
    settings = ("--epochs", "1", "--ema-epochs", "0.5", "--cutmix-alpha", "1.0", "--mixup-alpha", "0.2")
    uninterrupted = tmp_path / "average"
    train(train_args(folder_data, uninterrupted, *settings))
    state = torch.load(uninterrupted / "checkpoint.pt", weights_only=True)
    average = {k.removeprefix("module."): v for k, v in state["average"].items() if k.startswith("module.")}
    best = load_file(uninterrupted / "best" / "model.safetensors")
    assert best.keys() == average.keys() and all(torch.equal(best[k], average[k]) for k in best)
    assert not torch.equal(best["model_head.2.weight"], state["model"]["model_head.2.weight"])
    assert state["average"]["n_averaged"] > 1  # one update a step

    run = tmp_path / "killed"
    kill_after_the_second_batch(run, folder_data, monkeypatch, *settings)
    with pytest.raises(SystemExit, match="ema_epochs"):
        train(train_args(folder_data, run, "--epochs", "1", "--resume"))
    train(train_args(folder_data, run, *settings, "--resume"))
    resumed = load_file(run / "best" / "model.safetensors")
    assert all(torch.equal(resumed[k], best[k]) for k in best)
    assert history_without_times(run) == history_without_times(uninterrupted)


def test_an_existing_run_needs_resume(folder_data, finished_run):
    with pytest.raises(SystemExit, match="--resume"):
        train(train_args(folder_data, finished_run, "--epochs", "2"))


def test_resume_refuses_changed_settings(folder_data, finished_run):
    with pytest.raises(SystemExit, match="batch_size"):
        train(train_args(folder_data, finished_run, "--epochs", "2", "--resume", "--batch-size", "4"))


def test_official_layout_trains_with_cropping(official_data, tmp_path):
    report = train(train_args(official_data, tmp_path / "run", "--epochs", "1", "--crop"))
    assert report.images == 12


@pytest.mark.slow
def test_dry_run_on_the_real_data(shared_data, imagenet_weights, tmp_path):
    command = ["-m", "training.train", "--data", str(shared_data), "--output-dir", str(tmp_path / "dry"), "--dry-run"]
    command += ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--backbone-init", str(imagenet_weights)]
    result = run_python(*command, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    split = json.loads((tmp_path / "dry" / "split.json").read_text())
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (5707, 1219, 1218)
    assert json.loads((tmp_path / "dry" / "test_metrics.json").read_text())["images"] == 16


# Evaluation, gallery, publishing, experiments


def test_evaluate_reproduces_the_run_test_metrics(folder_data, finished_run, capsys):
    args = evaluate_cli.get_args_parser().parse_args(
        [
            "--model",
            str(finished_run / "best"),
            "--data",
            str(folder_data),
            "--part",
            "test",
            "--json",
            "--workers",
            "0",
        ]
    )
    evaluate_cli.main(args)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = json.loads((finished_run / "test_metrics.json").read_text())
    assert printed["images"] == expected["images"]
    for head in expected["heads"]:
        assert printed["heads"][head] == pytest.approx(expected["heads"][head])


def test_gallery_picks_are_balanced_and_reproducible(folder_data, finished_run, tmp_path):
    def run(output: Path, thumbnails: Path | None = None) -> dict:
        argv = ["--model", str(finished_run / "best"), "--data", str(folder_data), "--output", str(output)]
        argv += ["--per-head", "3", "--workers", "0"]
        if thumbnails:
            argv += ["--thumbnails", str(thumbnails)]
        return gallery.main(gallery.get_args_parser().parse_args(argv)).to_dict()

    first = run(tmp_path / "a" / "gallery.json", tmp_path / "a" / "thumbnails")
    assert run(tmp_path / "b" / "gallery.json")["items"] == first["items"]
    test_files = set(json.loads((finished_run / "split.json").read_text())["test"])
    for head in ("model", "year", "make", "type"):
        for correct in (True, False):
            picks = [i for i in first["items"] if i["head"] == head and i["correct"] == correct]
            assert len(picks) <= 3 and all(i["file"] in test_files for i in picks)
            assert all((i["predicted"][head]["label"] == i["true"][head]) == correct for i in picks)
            if len(picks) > 1:  # one per true label before a second of the same
                labels = [i["true"][head] for i in picks]
                assert len(set(labels)) == min(len(labels), len({i["true"][head] for i in picks}))
    assert {p.name for p in (tmp_path / "a" / "thumbnails").iterdir()} == {Path(i["file"]).name for i in first["items"]}
    metrics = json.loads((finished_run / "test_metrics.json").read_text())
    for head in ("model", "year", "make", "type"):
        assert first["wrong"][head] == round((1 - metrics["heads"][head]["accuracy"]) * metrics["images"])
        counts = [m["count"] for m in first["mistakes"][head]]
        assert counts == sorted(counts, reverse=True) and sum(counts) <= first["wrong"][head]
        assert all(m["true"] != m["predicted"] for m in first["mistakes"][head])
        assert bool(counts) == (first["wrong"][head] > 0)


def test_publish_dry_run_assembles_a_checked_model_folder(finished_run, tmp_path):
    folder = tmp_path / "publish"
    publish.main(
        publish.get_args_parser().parse_args(["--run", str(finished_run), "--folder", str(folder), "--dry-run"])
    )
    model_files = {"README.md", "config.json", "model.safetensors", "model.onnx"}
    records = {"test_metrics.json", "split.json", "history.csv", "training_args.json"}
    assert {p.name for p in folder.iterdir()} == model_files | records
    card = (folder / "README.md").read_text()
    accuracy = json.loads((finished_run / "test_metrics.json").read_text())["heads"]["model"]["accuracy"]
    assert f"{accuracy:.2%}" in card and "64 x 64 px" in card and "2 epochs" in card and "bounding box" in card
    assert publish.check(folder) == []

    from huggingface_hub import ModelCard

    data = ModelCard.load(folder / "README.md").data
    assert {r.metric_name: r.metric_value for r in data.eval_results}["Car (196 classes) accuracy"] == round(
        accuracy, 4
    )
    assert "pytorch_model_hub_mixin" in data.tags and "repo_url" not in card

    # The card's Reproduce command gives back the run's recipe, every flag included.
    command = next(line for line in card.splitlines() if line.startswith("python -m training.train "))
    reproduced = vars(get_args_parser().parse_args(command.split()[3:]))
    stored = json.loads((finished_run / "training_args.json").read_text())
    for key in ("image_size", "batch_size", "epochs", "lr", "lr_milestones", "lambda_year", "crop", "amp", "subset"):
        assert reproduced[key] == stored[key], key


def test_the_card_shows_the_training_machines_files_as_paths_to_fill_in(finished_run, tmp_path):
    weights = tmp_path / "weights" / "mobilenet_v2_imagenet.safetensors"
    record = TrainingArgs.load(finished_run)
    record = dataclasses.replace(record, settings={**record.settings, "backbone_init": str(weights)})
    command = reproduce(record)
    assert "--backbone-init PATH/TO/mobilenet_v2_imagenet.safetensors" in command and str(tmp_path) not in command
    relative = dataclasses.replace(record, settings={**record.settings, "backbone_init": "weights/mine.safetensors"})
    assert "--backbone-init weights/mine.safetensors" in reproduce(relative)  # a path to run from, kept as it is


def test_publish_refuses_an_unfinished_run(finished_run, tmp_path):
    with pytest.raises(SystemExit, match="not a finished run"):
        argv = ["--run", str(tmp_path), "--folder", str(tmp_path / "x"), "--dry-run"]
        publish.main(publish.get_args_parser().parse_args(argv))


def test_experiment_grid_exports_histories_and_skips_finished_runs(folder_data, tmp_path, capsys):
    argv = ["--data", str(folder_data), "--runs-dir", str(tmp_path / "runs"), "--output-dir", str(tmp_path / "out")]
    argv += ["--epochs", "4", "--subset", "0.5", "--backbone-init", "none", "--workers", "0"]
    argv += ["--only", "size224-batch16-lr0.01"]
    experiments.main(experiments.get_args_parser().parse_args(argv))
    exported = tmp_path / "out" / "size224-batch16-lr0.01"
    metadata = json.loads((exported / "metadata.json").read_text())
    assert metadata["hyperparameters"]["image_size"] == 224 and metadata["hyperparameters"]["batch_size"] == 16
    run_args = json.loads((tmp_path / "runs" / "size224-batch16-lr0.01" / "training_args.json").read_text())
    # What the run really used, read from its own stored arguments (the milestones derived from --epochs too).
    assert metadata["hyperparameters"]["lr_milestones"] == run_args["lr_milestones"] == [2, 3]
    assert metadata["budget"] == {
        "epochs": 4,
        "epochs_run": 4,
        "subset": 0.5,
        "train_images": run_args["train_images"],
        "full_protocol": False,
        "dry_run": False,
    }
    assert metadata["hardware"] == run_args["environment"]["hardware"] and metadata["wall_seconds"] > 0
    assert metadata["train_images_per_second"] > 0 and "test" in metadata
    assert metadata["command"].startswith("python -m training.train --output-dir ")
    assert (exported / "history.csv").read_text().count("\n") == 5
    grid = json.loads((tmp_path / "out" / "grid.json").read_text())
    assert "size224-batch16-lr0.01" in grid["comparisons"]["batch size"] and "batch size" in grid["paper"]

    capsys.readouterr()
    experiments.main(experiments.get_args_parser().parse_args(argv))
    assert "finished already, skipped" in capsys.readouterr().out
    experiments.main(experiments.get_args_parser().parse_args([*argv[:4], "--epochs", "4", "--status"]))
    assert capsys.readouterr().out.splitlines() == [
        f"{name}: {'finished' if name == 'size224-batch16-lr0.01' else 'not started'}" for name in experiments.RUNS
    ]


def test_a_reduced_budget_keeps_every_class_share(folder_data):
    from training.data import subset_files

    dataset = load_dataset(folder_data)
    labels = {s.filename: s.label for s in dataset.samples}
    files = sorted(labels)
    half = subset_files(files, labels, 0.5, seed=0)
    for label in set(labels.values()):
        members = [f for f in files if labels[f] == label]
        assert sum(labels[f] == label for f in half) == max(1, round(len(members) * 0.5))
    assert half == subset_files(files, labels, 0.5, seed=0) != subset_files(files, labels, 0.5, seed=1)
    assert subset_files(files, labels, 1.0, seed=0) == files


def test_module_docstrings_give_the_commands():
    for module in ("train", "evaluate", "experiments", "gallery", "publish"):
        doc = __import__(f"training.{module}", fromlist=["x"]).__doc__
        assert f"python -m training.{module}" in doc


def test_training_never_imported_by_autospecnet():
    for path in (ROOT / "autospecnet").rglob("*.py"):
        assert "import training" not in path.read_text() and "from training" not in path.read_text(), path


def test_calibration_fits_on_validation_and_rewrites_the_model(folder_data, finished_run, tmp_path):
    import shutil

    from autospecnet import Predictor, load_model
    from training import calibrate

    folder = tmp_path / "model"
    shutil.copytree(finished_run / "best", folder)
    photo = str(folder_data / "images" / "00001.jpg")
    before = Predictor(load_model(folder).model).predict(photo, top_k=None)
    argv = ["--model", str(folder), "--data", str(folder_data), "--workers", "0", "--sure-score", "class_mean_cosine"]
    report = dataclasses.asdict(calibrate.main(calibrate.get_args_parser().parse_args(argv)))

    config = json.loads((folder / "config.json").read_text())
    assert config["temperatures"] == pytest.approx(report["temperatures"])
    assert config["marginal_weights"] == report["marginal_weights"]
    assert set(report["marginal_weights"]) == {"year", "make", "type"}
    assert all(w in calibrate.MARGINAL_WEIGHTS for w in report["marginal_weights"].values())
    model = load_model(folder).model
    assert model.temperatures == pytest.approx(report["temperatures"])
    for head in ("model", "year", "make", "type"):  # fitted by NLL on validation: never worse there
        assert report["val"]["after"][head]["nll"] <= report["val"]["before"][head]["nll"] + 1e-6
    assert report["val"]["after"]["model"]["accuracy"] == report["val"]["before"]["model"]["accuracy"]

    test_metrics = json.loads((folder / "test_metrics.json").read_text())
    assert test_metrics["images"] == len(json.loads((folder / "split.json").read_text())["test"])
    assert test_metrics["heads"]["make"]["accuracy"] == pytest.approx(report["test"]["after"]["make"]["accuracy"])

    # The serving graph was written again with the calibration: both backends give the calibrated probabilities.
    onnx = Predictor.from_source(str(folder), backend="onnxruntime").predict(photo, top_k=None)
    calibrated = Predictor(model).predict(photo, top_k=None)
    assert onnx.class_name == calibrated.class_name
    assert onnx.heads["make"].top.prob == pytest.approx(calibrated.heads["make"].top.prob, abs=1e-4)

    # The sure rule: fitted on validation, stored in config.json with the class means it compares with.
    assert config["sure"]["score"] == "class_mean_cosine" and config["sure"] == report["sure"]["rule"]
    assert set(config["sure"]["thresholds"]) == {"model", "year", "make", "type"}
    assert (folder / "sure.safetensors").is_file() and load_model(folder).sure_stats["class_means"].shape[0] == 4
    for part in ("val", "test"):
        for figures in report["sure"][part].values():
            assert 0 <= figures["sure"] <= 1 and (
                figures["right_when_sure"] is None or 0 <= figures["right_when_sure"] <= 1
            )
    served = Predictor.from_source(str(folder)).predict(photo)
    assert served.has_sure_rule and all(isinstance(v, bool) for v in served.sure.values())

    after = Predictor(model).predict(photo, top_k=None)
    assert after.class_name == before.class_name
    assert after.confidence != pytest.approx(before.confidence, abs=1e-6)
    for head in ("model", "year", "make", "type"):
        assert sum(p.prob for p in after.heads[head].labels) == pytest.approx(1.0, abs=1e-5)


# Several processes (torchrun)


def torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [*TORCHRUN, *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def kill_processes_of(run: Path) -> None:
    """SIGKILL every process whose command line names ``run`` (torchrun's workers outlive their launcher)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(run).encode() in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass  # gone already


@pytest.mark.slow
def test_two_processes_with_torchrun_see_what_one_process_sees(folder_data, tmp_path):
    """DistributedDataParallel on CPU (gloo), with the learning rate at 0 so that float rounding cannot grow: the same
    batches, per-item augmentations, global-batch BatchNorm statistics, losses and metrics as one process; only the
    first process writes; --resume continues from a mid-epoch checkpoint. (Gradients:
    test_gradients_of_two_processes_are_those_of_one.)"""
    common = ["--data", str(folder_data), *TINY, "--epochs", "2", "--dropout", "0", "--lr", "0"]
    one, two = tmp_path / "one", tmp_path / "two"
    train(get_args_parser().parse_args([*common, "--output-dir", str(one)]))
    command = [
        *TORCHRUN,
        "-m",
        "training.train",
        *common,
        "--output-dir",
        str(two),
        "--checkpoint-minutes",
        "1e-9",
    ]
    started = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (two / "checkpoint.pt").exists() and started.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    kill_processes_of(two)  # both training processes, right after the first mid-epoch checkpoint
    started.wait()
    resumed = torchrun("-m", "training.train", *common, "--output-dir", str(two), "--resume")
    assert resumed.stdout.count("Resuming") == 1 and "batches into epoch 1" in resumed.stdout  # one writer
    assert resumed.stdout.count("epoch 2/2:") == 1
    assert json.loads((two / "training_args.json").read_text())["environment"]["processes"] == 2

    a, b = history_without_times(one), history_without_times(two)
    assert len(a) == len(b) == 2
    for row_a, row_b in zip(a, b, strict=True):
        for key in row_a:
            assert float(row_a[key]) == pytest.approx(float(row_b[key]), rel=1e-4, abs=1e-5), key
    state_a = torch.load(one / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    state_b = torch.load(two / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    running = [k for k in state_a if "running_" in k]
    assert running and state_a.keys() == state_b.keys()
    for key in running:  # BatchNorm's running statistics: those of the global batches
        torch.testing.assert_close(state_a[key], state_b[key], rtol=1e-3, atol=1e-3, msg=key)


GRADIENTS = """
import sys, torch, torch.distributed as dist
from training import distributed
distributed.setup("cpu")
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU6(inplace=True),
                          torch.nn.Conv2d(8, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU6(inplace=True),
                          torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5))
model = distributed.wrap(net, torch.device("cpu"))
x, y = torch.randn(8, 3, 12, 12, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 5
share = slice(distributed.rank(), None, distributed.world_size())
torch.nn.functional.cross_entropy(model(x[share]), y[share]).backward()
if distributed.rank() == 0:
    torch.save({n: p.grad for n, p in net.named_parameters()}, sys.argv[1])
distributed.teardown()
"""


@pytest.mark.slow
def test_gradients_of_two_processes_are_those_of_one(tmp_path):
    """Each process takes half of a batch; with global-batch BatchNorm and DDP's averaging, the gradients equal
    those of one process on the whole batch."""
    script = tmp_path / "gradients.py"
    script.write_text(GRADIENTS)
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one.pt")],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    two_processes = subprocess.run(
        [
            *TORCHRUN,
            str(script),
            str(tmp_path / "two.pt"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert two_processes.returncode == 0, two_processes.stderr[-3000:]  # say why, if torchrun fails
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    for name in one:
        torch.testing.assert_close(one[name], two[name], rtol=1e-4, atol=1e-6, msg=name)


def test_offline_without_backbone_weights_says_what_works(folder_data, tmp_path):
    """torchvision's ImageNet weights cannot be downloaded (a proxy that refuses every connection): one clear
    message naming the offline options, not a urllib traceback."""
    dead_proxy = "http://127.0.0.1:9"  # the discard port: nothing listens
    env = {
        "TORCH_HOME": str(tmp_path / "torch"),
        "HTTPS_PROXY": dead_proxy,
        "https_proxy": dead_proxy,
        "HTTP_PROXY": dead_proxy,
        "http_proxy": dead_proxy,
        "NO_PROXY": "",
        "no_proxy": "",
    }
    result = run_python(
        "-m",
        "training.train",
        "--data",
        str(folder_data),
        "--output-dir",
        str(tmp_path / "run"),
        "--image-size",
        "64",
        "--workers",
        "0",
        "--epochs",
        "1",
        env=env,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Could not download torchvision's ImageNet weights" in result.stderr
    assert "--backbone-init PATH" in result.stderr and "--backbone-init none" in result.stderr


# Warm starts, known classes only, the open-set protocol


def test_a_warm_start_takes_every_weight_and_its_donors_split(folder_data, finished_run, tmp_path):
    run = tmp_path / "warm"
    train(train_args(folder_data, run, "--epochs", "1", "--init-from", str(finished_run / "best"), "--dry-run"))
    assert json.loads((run / "split.json").read_text()) == json.loads((finished_run / "split.json").read_text())
    record = TrainingArgs.load(run)
    assert record.get("init_from") == str(finished_run / "best")
    assert record.donor() == TrainingArgs.load(finished_run) and record.warm_start["epochs_run"] == 2
    commands = reproduce(record).splitlines()  # the card's: the donor's training first, then this one from it
    assert len(commands) == 2 and "--init-from" not in commands[0]
    assert commands[1].endswith("--init-from runs/model-warm-start/best") and "--dry-run" not in commands[1]
    leaky = make_split(load_dataset(folder_data), seed=5)  # another split: some of the donor's training images
    leaky.save(tmp_path)  # are in its validation or test part
    with pytest.raises(SystemExit, match="training images are in this run's validation or test part"):
        extra = [
            "--epochs",
            "1",
            "--init-from",
            str(finished_run / "best"),
            "--split-file",
            str(tmp_path / "split.json"),
        ]
        train(train_args(folder_data, tmp_path / "leak", *extra))


def test_bfloat16_autocast_on_the_cpu_trains_like_float32(folder_data, finished_run, tmp_path):
    """--amp on a CPU: the same epoch from the same weights, in bfloat16, keeps finite float32 weights, with
    about the float32 run's loss, and its 196-class head learns in the same direction. (The first layers of
    this tiny, barely trained network move differently: bfloat16 rounds their small gradients.)"""
    runs = {name: tmp_path / name for name in ("float32", "bfloat16")}
    for name, run in runs.items():
        extra = ["--amp"] if name == "bfloat16" else []
        train(train_args(folder_data, run, "--epochs", "1", "--init-from", str(finished_run / "best"), *extra))
    assert TrainingArgs.load(runs["bfloat16"]).get("amp") is True
    donor = load_file(finished_run / "best" / "model.safetensors")
    weights = {name: load_file(run / "best" / "model.safetensors") for name, run in runs.items()}
    assert all(v.dtype == donor[k].dtype and torch.isfinite(v).all() for k, v in weights["bfloat16"].items())
    step = {name: (w["model_head.2.weight"] - donor["model_head.2.weight"]).flatten() for name, w in weights.items()}
    assert step["float32"].norm() > 0
    assert torch.nn.functional.cosine_similarity(step["float32"], step["bfloat16"], dim=0) > 0.5
    losses = {
        name: float(history_file.read_rows(run / history_file.FILE)[0]["train_loss"]) for name, run in runs.items()
    }
    assert losses["bfloat16"] != losses["float32"]  # it did compute in bfloat16
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=0.05)


def test_the_distillation_loss_is_nil_at_the_teachers_answer_and_a_step_moves_towards_it(finished_run):
    """Every head's KL divergence from the teachers' averaged probabilities: none when the student answers as
    the ensemble does, and a gradient step on it brings the student's answer closer."""
    from autospecnet.heads import HEADS
    from training.distill import Teachers, distillation_loss

    first = AutoSpecNet.from_pretrained(finished_run / "best")
    torch.manual_seed(0)
    second = AutoSpecNet.from_taxonomy(first.taxonomy, image_size=first.image_size)  # another network
    teachers = Teachers([first, second], temperature=2.0)
    images = torch.rand(3, 3, 64, 64)
    averaged = teachers.probabilities(images)
    with torch.no_grad():
        each = [model.eval()(images) for model in (first, second)]
    for head in HEADS:
        expected = sum(torch.softmax(logits[head] / 2.0, dim=1) for logits in each) / 2
        assert torch.allclose(averaged[head], expected, atol=1e-6)
    lambdas = {"year": 0.1, "make": 0.1, "type": 0.1}
    own = {head: (averaged[head].log() * 2.0).detach() for head in HEADS}  # the ensemble's own logits, x T
    assert distillation_loss(own, averaged, 2.0, lambdas).item() == pytest.approx(0.0, abs=1e-5)
    student = {head: torch.randn_like(own[head], requires_grad=True) for head in HEADS}
    loss = distillation_loss(student, averaged, 2.0, lambdas)
    assert loss.item() > 0.01
    loss.backward()
    with torch.no_grad():
        stepped = {head: student[head] - 0.5 * student[head].grad for head in HEADS}
    assert distillation_loss(stepped, averaged, 2.0, lambdas) < loss


def test_a_distilled_run_learns_its_teachers_answers_and_records_them(folder_data, finished_run, tmp_path):
    """--teacher: with all the weight on the teacher, a student that starts as the teacher has almost nothing
    to learn (dropout aside), unlike with the labels; the record tells how the teacher was trained, and the
    card's commands train it first."""
    from training.card import loss_line

    donor = str(finished_run / "best")
    labelled, distilled = tmp_path / "labels", tmp_path / "distilled"
    train(train_args(folder_data, labelled, "--epochs", "1", "--init-from", donor))
    train(
        train_args(
            folder_data,
            distilled,
            "--epochs",
            "1",
            "--init-from",
            donor,
            "--teacher",
            donor,
            "--distill-weight",
            "1",
            "--distill-temperature",
            "2",
        )
    )
    losses = {
        run.name: float(history_file.read_rows(run / history_file.FILE)[0]["train_loss"])
        for run in (labelled, distilled)
    }
    assert losses["distilled"] < 0.25 * losses["labels"]
    record = TrainingArgs.load(distilled)
    assert record.get("teacher") == [donor] and record.teacher_records() == [TrainingArgs.load(finished_run)]
    assert record.teachers[0]["epochs_run"] == 2
    commands = reproduce(record).splitlines()  # the warm start's training, the teacher's, then this run
    assert len(commands) == 3 and commands[2].count("--teacher ") == 1
    assert "--teacher runs/model-teacher-1/best" in commands[2] and "--output-dir runs/model-teacher-1" in commands[1]
    assert "distillation" in loss_line(record, "...") and "distillation" not in loss_line(
        TrainingArgs.load(labelled), ""
    )
    with pytest.raises(SystemExit, match="distill_weight"):
        train(train_args(folder_data, distilled, "--epochs", "2", "--init-from", donor, "--teacher", donor, "--resume"))


def test_a_teacher_must_match_the_run(folder_data, finished_run, tmp_path):
    """A teacher at another input size, or one that trained on this run's validation or test images, is refused."""
    donor = str(finished_run / "best")
    with pytest.raises(SystemExit, match="trained at 64 px, this run at 96"):
        train(train_args(folder_data, tmp_path / "size", "--epochs", "1", "--teacher", donor, "--image-size", "96"))
    make_split(load_dataset(folder_data), seed=5).save(tmp_path)  # another split: the teacher saw some of its images
    with pytest.raises(SystemExit, match="--teacher .* validation or test part"):
        extra = ["--epochs", "1", "--teacher", donor, "--split-file", str(tmp_path / "split.json")]
        train(train_args(folder_data, tmp_path / "leak", *extra))


def test_training_on_some_classes_keeps_their_images_of_the_whole_split(folder_data, tmp_path):
    from tests.synthetic import CLASSES

    (tmp_path / "classes.txt").write_text("\n".join(CLASSES[1:]) + "\n")
    run = tmp_path / "some"
    train(train_args(folder_data, run, "--epochs", "1", "--classes", str(tmp_path / "classes.txt")))
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["class_names"] == CLASSES[1:]
    whole = make_split(load_dataset(folder_data), seed=3)
    labels = {s.filename: s.label for s in load_dataset(folder_data).samples}
    split = json.loads((run / "split.json").read_text())
    for part in ("train", "val", "test"):
        assert split[part] == [f for f in whole[part] if labels[f] != 0]


def test_the_open_set_protocol_reports_every_score(folder_data, tmp_path):
    from autospecnet.records.open_set import OpenSetReport
    from autospecnet.sure import SCORES
    from training import open_set

    argv = ["--data", str(folder_data), "--run-dir", str(tmp_path / "run"), "--output", str(tmp_path / "report.json")]
    argv += ["--epochs", "2", "--backbone-init", "none", "--workers", "0", "--batch-size", "8", "--seed", "1"]
    report = open_set.main(open_set.get_args_parser().parse_args(argv))
    assert OpenSetReport.load_file(tmp_path / "report.json") == report
    assert set(report.known_classes).isdisjoint(report.unknown_classes)
    assert len(report.unknown_classes) >= 0.2 * 4 and report.protocol.makes_held_out_whole
    assert set(report.scores) == set(SCORES) and report.chosen.score in SCORES
    for figures in report.scores.values():
        for part in (figures.val, figures.test):
            assert 0 <= part.auroc <= 1 and part.known_kept >= 0.9
        assert figures.auroc == figures.test.auroc
    chosen = report.scores[report.chosen.score].val.auroc
    assert chosen == max(f.val.auroc for f in report.scores.values())  # chosen on validation
    assert set(report.chosen.sure.known_test) == {"model", "year", "make", "type"}
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert config["class_names"] == report.known_classes
    # Run again: the finished training is not repeated, and the report is the same.
    assert open_set.main(open_set.get_args_parser().parse_args(argv)).scores == report.scores
