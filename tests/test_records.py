"""The stored files: each module writes what it reads, and reads the names files written before had."""

from __future__ import annotations

import json

import pytest

from autospecnet.records import history
from autospecnet.records.calibration import Calibration, SureFigures, SureRecord
from autospecnet.records.experiments import Budget, Grid, RunMetadata
from autospecnet.records.gallery import GalleryItem, GalleryManifest, Mistake
from autospecnet.records.open_set import (
    Chosen,
    OpenSetReport,
    Protocol,
    ScoreFigures,
    ScoreReport,
    SureOnProtocol,
    UnknownSure,
)
from autospecnet.records.reading import RecordError
from autospecnet.records.split import Split
from autospecnet.records.test_metrics import HeadScores, PartMetrics
from autospecnet.records.training_args import TrainingArgs
from autospecnet.settings import finder_setting

HEADS = ("model", "year", "make", "type")


def test_each_record_reads_back_what_it_wrote(tmp_path):
    metrics = PartMetrics("test", 12, {h: HeadScores(0.5, 0.9, 0.4, 0.3) for h in HEADS})
    metrics.save(tmp_path)
    assert PartMetrics.load(tmp_path) == metrics == PartMetrics.read(tmp_path)
    split = Split(0, 0.15, 0.15, False, ["a.jpg"], ["b.jpg"], ["c.jpg", "d.jpg"])
    split.save(tmp_path)
    assert Split.load(tmp_path) == split and split["test"] == ["c.jpg", "d.jpg"] and split.counts()["test"] == 2
    args = TrainingArgs({"epochs": 3, "init_from": "assets/model"}, ["train.py"], {"hardware": "CPU"})
    args.save(tmp_path)
    assert TrainingArgs.load(tmp_path) == args == TrainingArgs.read(tmp_path)
    record = SureRecord({"score": "x"}, 0.95, {"make": 0.98}, {"make": SureFigures(0.9, 10, 0.99)}, {})
    calibration = Calibration({"model": 0.7}, {"make": 0.5}, {"before": {}}, {"after": {}}, record, True)
    calibration.save(tmp_path)
    assert Calibration.load(tmp_path) == calibration
    item = GalleryItem("make", True, "images/1.jpg", dict.fromkeys(HEADS, "x"), {"make": {"label": "x", "prob": 0.9}})
    manifest = GalleryManifest([item], images_evaluated=3, mistakes={"make": [Mistake("a", "b", 2)]})
    manifest.save(tmp_path / "gallery.json")
    assert GalleryManifest.read(tmp_path / "gallery.json") == manifest
    Grid({"run": {"lr": 0.01}}, {"q": ["run"]}, {"q": {"winner": "run", "claim": "c"}}).save(tmp_path)
    assert Grid.read(tmp_path).comparisons == {"q": ["run"]}
    metadata = RunMetadata("run", {"lr": 0.01}, Budget(epochs=6, epochs_run=6), wall_seconds=60.0)
    metadata.save(tmp_path)
    assert RunMetadata.read(tmp_path) == metadata
    figures = ScoreFigures(0.8, 0.5, 0.9, 0.4, 10, 5)
    unknown = UnknownSure(5, 0.2, 0.4, 0.3, 0.3, 3, 0.5, 0.9, 2, 0.1)
    sure = SureOnProtocol({"score": "energy"}, {"make": SureFigures(0.7, 10, 0.99)}, unknown)
    report = OpenSetReport(
        Protocol(0, 4, 1, 0.25, ["Audi"], [], {"epochs": 2}, {"known": {"test": 10}}, "keeps 90 %", "run/best"),
        ["a"],
        ["b"],
        {"energy": ScoreReport(0.8, 0.4, figures, figures, figures)},
        Chosen("energy", "the best", True, 0.8, 0.4, sure),
    )
    report.save_file(tmp_path / "open_set.json")
    assert OpenSetReport.load_file(tmp_path / "open_set.json") == report


def test_earlier_names_are_still_read(tmp_path, monkeypatch):
    heads = {h: {"accuracy": 0.5, "top5": 0.9, "precision": 0.4, "recall": 0.3} for h in HEADS}
    (tmp_path / "test_metrics.json").write_text(json.dumps({"split": "test", "images": 4, "heads": heads}))
    assert PartMetrics.load(tmp_path).part == "test"
    (tmp_path / "args.json").write_text(json.dumps({"epochs": 2, "argv": [], "environment": {}}))
    assert TrainingArgs.load(tmp_path).get("epochs") == 2  # a run folder written before training_args.json
    (tmp_path / "history.csv").write_text("epoch,val_acc,val_make_acc,val_make_precision\n1,0.5,0.6,0.7\n")
    assert history.read_rows(tmp_path / "history.csv") == [
        {"epoch": "1", "val_accuracy": "0.5", "val_make_accuracy": "0.6", "val_make_precision": "0.7"}
    ]
    assert list(history.read_frame(tmp_path / "history.csv").columns) == [
        "epoch",
        "val_accuracy",
        "val_make_accuracy",
        "val_make_precision",
    ]
    monkeypatch.delenv("AUTOSPECNET_FINDER", raising=False)
    monkeypatch.setenv("AUTOSPECNET_DETECTOR", "/somewhere/yolox_nano.onnx")
    assert finder_setting() == "/somewhere/yolox_nano.onnx"  # the car finder's setting under its earlier name


def test_a_file_of_another_layout_is_refused_or_skipped(tmp_path):
    (tmp_path / "test_metrics.json").write_text(json.dumps({"images": "many"}))
    with pytest.raises(RecordError):
        PartMetrics.load(tmp_path)
    assert PartMetrics.read(tmp_path) is None  # where a page can do without it
    (tmp_path / "split.json").write_text("[1, 2]")
    with pytest.raises(RecordError):
        Split.load(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"budget": {"epochs": "six"}, "wall_seconds": True}))
    metadata = RunMetadata.read(tmp_path)
    assert metadata.budget.epochs is None and metadata.wall_seconds is None


def test_the_bundled_records_are_in_the_layout_their_modules_read():
    from autospecnet.app.model_card import BUNDLED_OPEN_SET

    report = OpenSetReport.load_file(BUNDLED_OPEN_SET)  # the About page and the card fall silent on a stale layout
    assert report.chosen.score in report.scores and report.protocol.held_out == len(report.unknown_classes)


def test_a_warm_start_is_recorded_with_its_donors_own_record(tmp_path):
    donor = TrainingArgs({"image_size": 224, "epochs": 16}, ["train.py"], {"hardware": "CPU"})
    args = TrainingArgs({"image_size": 400, "init_from": "assets/model"}, [], {}, {"training_args": donor.to_dict()})
    args.save(tmp_path)
    assert TrainingArgs.load(tmp_path) == args and TrainingArgs.load(tmp_path).donor() == donor
    (tmp_path / "training_args.json").write_text(json.dumps({"epochs": 2, "warm_start": "assets/model"}))
    with pytest.raises(RecordError, match="warm_start"):
        TrainingArgs.load(tmp_path)
