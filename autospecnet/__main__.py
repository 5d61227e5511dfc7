"""Command line: ``python -m autospecnet predict PHOTO... [--model SOURCE] [--top-k K] [--json] [--whole] [--explain]``.

Each photo goes through the car finder (every car, largest first) and the classifier. With
``--json``, one JSON object a line per photo (a stable format that other tools read):
``{"file": ..., "answer": "2012 BMW M3 Coupe", "heads": {"year": [{"label": ..., "prob": ...}, ...],
"make": [...], "type": [...], "model": [...]}, "sure": {"model": bool, "make": bool, "type": bool,
"year": bool}, "box": [x1, y1, x2, y2], "others": [{"box": ..., "answer": ..., "heads": ...,
"sure": ...}, ...]}`` for the main (largest) car and the others (``answer`` is the best guess;
``sure`` says which heads' answers the model is sure of, all false for a model without fitted
thresholds); with ``--explain`` each car also has ``"heatmaps": {"model": grid, "make": grid,
"type": grid, "year": grid}``, each grid a list of rows, top to bottom, of floats from 0 to 1 over
the car's crop, for that head's top answer; ``"box": null``
when the whole photo was classified (``--whole``, or the finder unavailable);
``{"file": ..., "no_car": true, "message": "..."}`` for a photo without a car; and
``{"file": ..., "error": "..."}`` for a file that is not a readable photo.

Exit status: 0 when every photo was answered ("no car" is an answer), 1 when a photo could not
be read, 2 for a usage error, 3 when the model could not be loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autospecnet.backends import BACKENDS
from autospecnet.heads import DISPLAY_ORDER, HEAD_TITLES
from autospecnet.images import PHOTO_TYPES, ImageError
from autospecnet.predict import EXPLAIN_UNAVAILABLE
from autospecnet.recognise import PhotoResult, Recognizer
from autospecnet.settings import MODEL_ENV
from autospecnet.sources import ModelLoadError, default_source, load_model

EXIT_PHOTO_FAILED = 1
EXIT_MODEL_NOT_LOADED = 3


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autospecnet",
        description="Recognise cars in photos.",
        epilog="Exit status: 0 every photo answered, 1 a photo could not be read, 2 usage error, "
        "3 the model could not be loaded.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="find the cars in photos and name their make, body type, year and model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    predict.add_argument("photos", nargs="+", metavar="PHOTO", help="photo files, or folders of photos")
    predict.add_argument(
        "--model",
        default=None,
        help=f"a model folder or Hub repo 'owner/name[@rev]' (default: ${MODEL_ENV} or the bundled model)",
    )
    predict.add_argument("--top-k", type=int, default=3, help="labels to list per head")
    predict.add_argument("--json", action="store_true", help="one JSON object per photo, one a line")
    predict.add_argument("--whole", action="store_true", help="classify each whole photo: skip the car finder")
    predict.add_argument(
        "--explain", action="store_true", help="add each head's heatmap (where it looked) to every car in the JSON"
    )
    predict.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="default: onnxruntime when the model has model.onnx, else torch",
    )
    return parser


def _print_human(file: str, result: PhotoResult) -> None:
    if result.no_car:
        print(f"{file}: no car found")
        return
    for number, car in enumerate(result.cars, 1):
        where = f" at {list(car.box)}" if car.box else ""
        name = f"{file}" + (f" car {number}" if len(result.cars) > 1 else "")
        prediction = car.prediction
        print(f"{name}{where}: {prediction.headline} (best guess: {prediction.answer}, {prediction.confidence:.1%})")
        for head in DISPLAY_ORDER:
            labels = ", ".join(f"{p.label} {p.prob:.1%}" for p in prediction.heads[head].labels)
            mark = "sure " if prediction.heads[head].sure else "guess"
            print(f"  {HEAD_TITLES[head]:<10} {mark} {labels}")
    if result.cars and not result.cars[0].prediction.has_sure_rule:
        print("  (this model has no fitted thresholds: every answer is a guess)")


def expand_folders(paths: list[str]) -> list[str]:
    """Each folder becomes the photos directly inside it, in name order; files stay as given."""
    files = []
    for path in paths:
        folder = Path(path)
        if folder.is_dir():
            files += sorted(
                str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower().lstrip(".") in PHOTO_TYPES
            )
        else:
            files.append(path)
    return files


def predict_command(args) -> int:
    try:
        recognizer = Recognizer.from_loaded(
            load_model(args.model or default_source()), backend=args.backend, use_finder=not args.whole
        )
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MODEL_NOT_LOADED
    if recognizer.finder_error:
        print(f"note: {recognizer.finder_error}", file=sys.stderr)
    if args.explain and not recognizer.predictor.can_explain:
        print(f"error: {EXPLAIN_UNAVAILABLE}", file=sys.stderr)
        return EXIT_MODEL_NOT_LOADED
    failed = 0
    photos = expand_folders(args.photos)
    if not photos:
        print(f"error: no photos ({', '.join(PHOTO_TYPES)}) in {', '.join(args.photos)}", file=sys.stderr)
        return EXIT_PHOTO_FAILED
    for file in photos:
        try:
            result = recognizer.recognise(
                file, top_k=max(1, args.top_k), use_finder=not args.whole, explain=args.explain
            )
        except ImageError as error:
            failed += 1
            if args.json:
                print(json.dumps({"file": file, "error": str(error)}), flush=True)
            else:
                print(f"{file}: error: {error}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": file, **result.to_dict()}), flush=True)
        else:
            _print_human(file, result)
    return EXIT_PHOTO_FAILED if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.explain and not args.json:
        parser.error("--explain adds heatmaps to the JSON: use it with --json")
    return predict_command(args)


if __name__ == "__main__":
    sys.exit(main())
