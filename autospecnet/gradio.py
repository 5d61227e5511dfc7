"""The same recogniser as a Gradio app, which also gives scripts an HTTP API.

    python -m autospecnet.gradio                      # http://127.0.0.1:7860
    python -m autospecnet.gradio --model owner/name@v1 --host 0.0.0.0 --port 7860

From another program (``pip install gradio_client``):

    from gradio_client import Client, handle_file
    cars, car, make, body_type, year = Client("http://127.0.0.1:7860/").predict(handle_file("car.jpg"), api_name="/predict")

``cars`` is the photo with each car's box and answer (``{"image": ..., "annotations": [{"image": ...,
"label": "1: 2012 BMW M3 Coupe"}, ...]}``); ``car``, ``make``, ``body_type`` and ``year`` are the main
(largest) car's labels with their probabilities. A photo without a car gives ``car = {"label": "No car
found"}``. The upload is read as a file by ``autospecnet.read_image``: the same limits and messages as
the page and the command line. The model source is the app's: ``--model``, else ``$AUTOSPECNET_MODEL``,
else the bundled model.
"""

from __future__ import annotations

import argparse
import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio reads it; a user's setting wins

import gradio as gr  # noqa: E402

from autospecnet.gallery import find_manifest, load_gallery  # noqa: E402
from autospecnet.heads import DISPLAY_ORDER, HEAD_TITLES  # noqa: E402
from autospecnet.images import MAX_FILE_BYTES, PHOTO_FORMATS, ImageError  # noqa: E402
from autospecnet.predict import Predictor  # noqa: E402
from autospecnet.recognise import FINDER_UNAVAILABLE, NO_CAR_MESSAGE, Recognizer, load_finder  # noqa: E402
from autospecnet.sources import ASSETS_DIR, MODEL_ENV, ModelLoadError, default_source, load_model  # noqa: E402

TOP_K = 5
MAX_EXAMPLES = 8
SHOWN_SIDE = 1024
UPLOAD_CLEANUP = (600, 600)  # every 10 minutes, delete uploads older than 10 minutes

log = logging.getLogger("autospecnet")


def build_demo(source: str | None = None) -> gr.Interface:
    loaded = load_model(source or default_source())
    finder, finder_error = load_finder()
    if finder_error:
        log.warning(finder_error)
    recognizer = Recognizer(Predictor(loaded), finder, finder_error)

    def predict(photo: str | None):
        if not photo:
            raise gr.Error("Add a photo of a car first.")
        try:
            result = recognizer.recognise(photo, top_k=TOP_K)
        except ImageError as error:
            raise gr.Error(str(error)) from None
        shown = result.image.copy()
        shown.thumbnail((SHOWN_SIDE, SHOWN_SIDE))
        scale = shown.width / result.image.width
        boxes = [
            (tuple(round(v * scale) for v in car.box), f"{number}: {car.prediction.answer}")
            for number, car in enumerate(result.cars, 1)
            if car.box
        ]
        if result.no_car:
            return (shown, []), NO_CAR_MESSAGE, None, None, None
        heads = result.main.prediction.heads
        return (shown, boxes), *({p.label: p.prob for p in heads[head].labels} for head in DISPLAY_ORDER)

    note = f" {FINDER_UNAVAILABLE}." if finder_error else ""  # the reason, maybe with paths, is in the log
    return gr.Interface(
        fn=predict,
        inputs=gr.File(label="Car photo", type="filepath"),
        outputs=[gr.AnnotatedImage(label="Cars found")]
        + [gr.Label(num_top_classes=TOP_K, label=HEAD_TITLES[head]) for head in DISPLAY_ORDER],
        examples=_examples(loaded.folder) or None,
        title="AutoSpecNet: what car is that?",
        description="Finds each car in a photo and names the largest one's make, body type, model year and model "
        f"(one of 196 cars up to 2012). {PHOTO_FORMATS} photos up to {MAX_FILE_BYTES >> 20} MB.{note}",
        api_name="predict",
        flagging_mode="never",
        analytics_enabled=False,
        delete_cache=UPLOAD_CLEANUP,
    )


def _examples(model_folder) -> list[list[str]]:
    """Gallery photos that are on this machine (published thumbnails or $AUTOSPECNET_DATA)."""
    manifest = find_manifest(model_folder, ASSETS_DIR / "gallery" / "gallery.json")
    gallery = load_gallery(manifest, model_folder) if manifest else None
    if gallery is None:
        return []
    paths = []
    for item in gallery.select("model", correct=True):
        path = gallery.image_path(item)
        if path is not None and str(path) not in paths:
            paths.append(str(path))
    return [[p] for p in paths[:MAX_EXAMPLES]]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m autospecnet.gradio", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help=f"model folder or Hub repo (default: ${MODEL_ENV} or bundled)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        demo = build_demo(args.model)
    except ModelLoadError as error:
        raise SystemExit(f"error: {error}") from None
    demo.launch(server_name=args.host, server_port=args.port, show_error=True, max_file_size=MAX_FILE_BYTES)


if __name__ == "__main__":
    main()
