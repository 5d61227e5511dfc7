"""Assemble a run's best model with its records into a model folder, check it, and push it to the Hub.

    # assemble and check only (no network), e.g. the model bundled with the app:
    python -m training.publish --run runs/bundled --folder assets/model --dry-run
    # with the experiment curves and the gallery (manifest + thumbnails), pushed to the Hub:
    python -m training.publish --run runs/bundled --folder runs/bundled/publish \
        --experiments assets/experiments --gallery runs/bundled/gallery --repo-id owner/autospecnet [--private]

The folder holds ``model.safetensors``, ``model.onnx`` (the serving graph, checked against the
weights), ``config.json``, the model card ``README.md``
(data, split, image size, epochs, hardware, per-head test metrics, limits),
``test_metrics.json``, ``split.json``, ``history.csv`` and ``training_args.json``, plus
``experiments/`` and ``gallery/`` when given. The token comes from the usual places
(``HF_TOKEN``, ``hf auth login``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from huggingface_hub import HfApi

from autospecnet.config import CONFIG_FILE
from autospecnet.records import calibration, history, split, test_metrics
from autospecnet.records import experiments as experiments_files
from autospecnet.records import gallery as gallery_file
from autospecnet.records import open_set as open_set_file
from autospecnet.records.atomic import replace_folder_atomic
from autospecnet.records.finder_report import FinderReport
from autospecnet.records.open_set import OpenSetReport
from autospecnet.records.test_metrics import PartMetrics
from autospecnet.records.training_args import TrainingArgs
from autospecnet.sources import WEIGHTS_FILE, ModelLoadError, load_model
from autospecnet.sure import STATS_FILE
from training import runinfo
from training.card import model_card
from training.onnx_export import export_onnx

MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE)
RECORD_FILES = (test_metrics.FILE, split.FILE, history.FILE)  # besides training_args.json, read from the run
CALIBRATION_FILES = (calibration.FILE, test_metrics.FILE, STATS_FILE)
MAX_MODEL_MB = 16


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Assemble, check and publish a trained AutoSpecNet")
    p.add_argument("--run", required=True, help="a training run folder (with best/, history.csv, ...)")
    p.add_argument("--folder", required=True, help="where to assemble the model folder (replaced)")
    p.add_argument("--experiments", default=None, help="experiments folder to include (histories + metadata)")
    p.add_argument("--gallery", default=None, help="gallery folder to include (gallery.json, thumbnails/)")
    p.add_argument("--hardware", default=None, help="what trained it, for the card (default: this machine)")
    p.add_argument("--finder-report", default=None, help="training.finder's report for this model, for the card")
    p.add_argument("--open-set", default=None, help="training.open_set's report for this recipe: card and folder")
    p.add_argument("--repo-id", default=None, help="Hub repo to push to, owner/name")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private")
    p.add_argument("--dry-run", action="store_true", help="assemble and check; no network")
    return p


def assemble(
    run: Path,
    folder: Path,
    experiments: Path | None,
    gallery: Path | None,
    hardware: str,
    finder_report: FinderReport | None = None,
    open_set: Path | None = None,
) -> None:
    missing = [f for f in MODEL_FILES if not (run / "best" / f).is_file()]
    missing += [f for f in RECORD_FILES if not (run / f).is_file()]
    if missing:
        raise SystemExit(f"{run} is not a finished run: missing {', '.join(missing)}")

    def fill(tmp: Path) -> None:
        for name in MODEL_FILES:
            shutil.copy(run / "best" / name, tmp / name)
        for name in RECORD_FILES:
            shutil.copy(run / name, tmp / name)
        TrainingArgs.load(run).save(tmp)
        for name in CALIBRATION_FILES:  # training.calibrate's, when it ran: test_metrics.json of the calibrated model
            if (run / "best" / name).is_file():
                shutil.copy(run / "best" / name, tmp / name)
        report = OpenSetReport.load_file(open_set) if open_set else None
        if open_set:
            shutil.copy(open_set, tmp / open_set_file.FILE)
        (tmp / "README.md").write_text(model_card(run, hardware, finder_report, report))
        export_onnx(load_model(tmp).model, tmp)  # the serving graph, checked against the weights
        if experiments:
            shutil.copytree(experiments, tmp / experiments_files.FOLDER)
        if gallery:
            shutil.copytree(gallery, tmp / gallery_file.FOLDER)

    replace_folder_atomic(folder, fill)


def check(folder: Path) -> list[str]:
    """Problems that would make the folder a bad model repo; empty when it is fine."""
    problems = []
    try:
        load_model(folder)
    except ModelLoadError as error:
        problems.append(str(error))
    size_mb = (folder / WEIGHTS_FILE).stat().st_size / 2**20
    if size_mb > MAX_MODEL_MB:
        problems.append(f"{WEIGHTS_FILE} is {size_mb:.1f} MB, over {MAX_MODEL_MB} MB")
    card = (folder / "README.md").read_text()
    if f"{PartMetrics.load(folder).heads['model'].accuracy:.2%}" not in card:
        problems.append("the model card does not show the test accuracy")
    if list(folder.rglob("*.pt")) or list(folder.rglob("*.bin")) or list(folder.rglob("*.pkl")):
        problems.append("the folder holds pickle files")
    try:
        load_model(folder).backend("onnxruntime")
    except ModelLoadError as error:
        problems.append(str(error))
    return problems


def main(args) -> None:
    run, folder = Path(args.run), Path(args.folder)
    finder_report = FinderReport.load_file(Path(args.finder_report)) if args.finder_report else None
    experiments, gallery = args.experiments and Path(args.experiments), args.gallery and Path(args.gallery)
    open_set = Path(args.open_set) if args.open_set else None
    assemble(run, folder, experiments, gallery, args.hardware or runinfo.hardware(), finder_report, open_set)
    problems = check(folder)
    if problems:
        raise SystemExit("not publishable:\n- " + "\n- ".join(problems))
    print(f"{folder}: assembled and checked ({', '.join(sorted(p.name for p in folder.iterdir()))})")
    if args.dry_run:
        return
    if not args.repo_id:
        raise SystemExit("--repo-id is needed to publish (or pass --dry-run)")
    api = HfApi()
    url = api.create_repo(args.repo_id, private=args.private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=args.repo_id, folder_path=folder, commit_message=f"Upload AutoSpecNet from {run.name}"
    )
    print(f"published to {url} ({commit.oid})")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
