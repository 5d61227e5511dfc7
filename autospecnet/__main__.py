"""Command line: ``python -m autospecnet predict PHOTO... [--model SOURCE] [--top-k K] [--json] [--whole]``.

Each photo goes through the car finder (every car, largest first) and the classifier. With
``--json``, one JSON object a line per photo (a stable format that other tools read):
``{"file": ..., "answer": "2012 BMW M3 Coupe", "heads": {"year": [{"label": ..., "prob": ...}, ...],
"make": [...], "type": [...], "model": [...]}, "box": [x1, y1, x2, y2], "others": [{"box": ...,
"answer": ..., "heads": ...}, ...]}`` for the main (largest) car and the others; ``"box": null``
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
from autospecnet.recognise import PhotoResult
from autospecnet.sources import MODEL_ENV, ModelLoadError, default_source, load_model

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
        print(f"{name}{where}: {car.prediction.answer} ({car.prediction.confidence:.1%})")
        for head in DISPLAY_ORDER:
            labels = ", ".join(f"{p.label} {p.prob:.1%}" for p in car.prediction.heads[head].labels)
            print(f"  {HEAD_TITLES[head]:<10} {labels}")


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
    from autospecnet.predict import Predictor
    from autospecnet.recognise import Recognizer, load_finder

    try:
        predictor = Predictor(load_model(args.model or default_source()), backend=args.backend)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MODEL_NOT_LOADED
    finder, finder_error = (None, None) if args.whole else load_finder()
    if finder_error:
        print(f"note: {finder_error}", file=sys.stderr)
    recognizer = Recognizer(predictor, finder, finder_error)
    failed = 0
    photos = expand_folders(args.photos)
    if not photos:
        print(f"error: no photos ({', '.join(PHOTO_TYPES)}) in {', '.join(args.photos)}", file=sys.stderr)
        return EXIT_PHOTO_FAILED
    for file in photos:
        try:
            result = recognizer.recognise(file, top_k=max(1, args.top_k), use_finder=not args.whole)
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
    args = get_args_parser().parse_args(argv)
    return predict_command(args)


if __name__ == "__main__":
    sys.exit(main())
