"""Command line: ``python -m autospecnet predict PHOTO... [--model SOURCE] [--top-k K] [--json]``.

With ``--json``, one JSON object a line per photo (a stable format that other tools read):
``{"file": ..., "answer": "2012 BMW M3 Coupe", "heads": {"year": [{"label": ..., "prob": ...}, ...],
"make": [...], "type": [...], "model": [...]}}``, or ``{"file": ..., "error": "..."}`` for a photo
that cannot be read. The exit status is 1 if any photo failed, 2 if the model could not be loaded.
"""

from __future__ import annotations

import argparse
import json
import sys

from autospecnet.images import ImageError
from autospecnet.sources import MODEL_ENV, ModelLoadError, default_source, load_model

HEAD_TITLES = {"model": "Car", "year": "Year", "make": "Make", "type": "Body type"}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autospecnet", description="Recognise cars in photos.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="predict make, body type, year and model of car photos")
    predict.add_argument("photos", nargs="+", metavar="PHOTO")
    predict.add_argument(
        "--model",
        default=None,
        help=f"a model folder or Hub repo 'owner/name[@rev]' (default: ${MODEL_ENV} or the bundled model)",
    )
    predict.add_argument("--top-k", type=int, default=3, help="labels to list per head (default 3)")
    predict.add_argument("--json", action="store_true", help="one JSON object per photo, one a line")
    return parser


def _print_human(file: str, prediction) -> None:
    print(f"{file}: {prediction.answer} ({prediction.confidence:.1%})")
    for head in ("make", "type", "year", "model"):
        labels = ", ".join(f"{p.label} {p.prob:.1%}" for p in prediction.heads[head].labels)
        print(f"  {HEAD_TITLES[head]:<9} {labels}")


def predict_command(args) -> int:
    try:
        loaded = load_model(args.model or default_source())
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from autospecnet.predict import Predictor

    predictor = Predictor(loaded.model)
    failed = 0
    for file in args.photos:
        try:
            prediction = predictor.predict(file, top_k=max(1, args.top_k))
        except ImageError as error:
            failed += 1
            if args.json:
                print(json.dumps({"file": file, "error": str(error)}), flush=True)
            else:
                print(f"{file}: error: {error}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": file, **prediction.to_dict()}), flush=True)
        else:
            _print_human(file, prediction)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    return predict_command(args)


if __name__ == "__main__":
    sys.exit(main())
