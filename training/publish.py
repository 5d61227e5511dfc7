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
import json
import shutil
from pathlib import Path

from autospecnet.sources import ModelLoadError, load_model
from training import runinfo
from training.atomic import replace_folder_atomic
from training.card import model_card
from training.onnx_export import export_onnx

MODEL_FILES = ("config.json", "model.safetensors")
RECORD_FILES = {"test_metrics.json": "test_metrics.json", "split.json": "split.json", "history.csv": "history.csv",
                "args.json": "training_args.json"}  # fmt: skip
MAX_MODEL_MB = 16


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Assemble, check and publish a trained AutoSpecNet")
    p.add_argument("--run", required=True, help="a training run folder (with best/, history.csv, ...)")
    p.add_argument("--folder", required=True, help="where to assemble the model folder (replaced)")
    p.add_argument("--experiments", default=None, help="experiments folder to include (histories + metadata)")
    p.add_argument("--gallery", default=None, help="gallery folder to include (gallery.json, thumbnails/)")
    p.add_argument("--hardware", default=None, help="what trained it, for the card (default: this machine)")
    p.add_argument("--finder-report", default=None, help="training.finder's report for this model, for the card")
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
    finder_report: dict | None = None,
) -> None:
    missing = [f for f in MODEL_FILES if not (run / "best" / f).is_file()]
    missing += [f for f in RECORD_FILES if not (run / f).is_file()]
    if missing:
        raise SystemExit(f"{run} is not a finished run: missing {', '.join(missing)}")

    def fill(tmp: Path) -> None:
        for name in MODEL_FILES:
            shutil.copy(run / "best" / name, tmp / name)
        if (run / "best" / "calibration.json").is_file():
            shutil.copy(run / "best" / "calibration.json", tmp / "calibration.json")
        for source, target in RECORD_FILES.items():
            shutil.copy(run / source, tmp / target)
        if (run / "best" / "test_metrics.json").is_file():  # written by training.calibrate: the calibrated model's
            shutil.copy(run / "best" / "test_metrics.json", tmp / "test_metrics.json")
        (tmp / "README.md").write_text(model_card(run, hardware, finder_report))
        export_onnx(load_model(tmp).model, tmp)  # the serving graph, checked against the weights
        if experiments:
            shutil.copytree(experiments, tmp / "experiments")
        if gallery:
            shutil.copytree(gallery, tmp / "gallery")

    replace_folder_atomic(folder, fill)


def check(folder: Path) -> list[str]:
    """Problems that would make the folder a bad model repo; empty when it is fine."""
    problems = []
    try:
        load_model(folder)
    except ModelLoadError as error:
        problems.append(str(error))
    size_mb = (folder / "model.safetensors").stat().st_size / 2**20
    if size_mb > MAX_MODEL_MB:
        problems.append(f"model.safetensors is {size_mb:.1f} MB, over {MAX_MODEL_MB} MB")
    card = (folder / "README.md").read_text()
    test = json.loads((folder / "test_metrics.json").read_text())
    if f"{test['heads']['model']['accuracy']:.2%}" not in card:
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
    finder_report = json.loads(Path(args.finder_report).read_text()) if args.finder_report else None
    assemble(run, folder, args.experiments and Path(args.experiments), args.gallery and Path(args.gallery),
             args.hardware or runinfo.hardware(), finder_report)  # fmt: skip
    problems = check(folder)
    if problems:
        raise SystemExit("not publishable:\n- " + "\n- ".join(problems))
    print(f"{folder}: assembled and checked ({', '.join(sorted(p.name for p in folder.iterdir()))})")
    if args.dry_run:
        return
    if not args.repo_id:
        raise SystemExit("--repo-id is needed to publish (or pass --dry-run)")
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(args.repo_id, private=args.private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=args.repo_id, folder_path=folder, commit_message=f"Upload AutoSpecNet from {run.name}"
    )
    print(f"published to {url} ({commit.oid})")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
