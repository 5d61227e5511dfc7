"""The same recogniser as a Gradio app, which also gives scripts an HTTP API.

    python -m autospecnet.app.gradio                      # http://127.0.0.1:7860
    python -m autospecnet.app.gradio --model owner/name@v1 --host 0.0.0.0 --port 7860

From another program (``pip install gradio_client``):

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    cars, answer, car, make, body_type, year, sure, heatmap = client.predict(
        handle_file("car.jpg"), "make", api_name="/predict")   # heatmap of the make head; "none": no heatmap

``cars`` is the photo with each car's box and answer (``{"image": ..., "annotations": [{"image": ...,
"label": "1: 2012 BMW M3 Coupe"}, ...]}``); ``answer`` what the model is sure of, in words ("A
Mitsubishi SUV — not one of the 196 models I know (cars up to 2012)"); ``car``, ``make``,
``body_type`` and ``year`` are the main (largest) car's labels with their probabilities (the best
guesses); ``sure`` is ``{"model": bool, "make": bool, "type": bool, "year": bool}``, as in the
command line's JSON; ``heatmap`` the chosen head's heatmap over the main car's crop (an image; None
for "none"). A photo without a car gives ``answer = "No car found in this photo."``. The upload is
read as a file by ``autospecnet.read_image``: the same limits and messages as the page and the
command line. The model source is the app's: ``--model``, else ``$AUTOSPECNET_MODEL``, else the
bundled model.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio reads it; a user's setting wins

import gradio as gr  # noqa: E402

from autospecnet.app.annotate import heatmap_overlay  # noqa: E402
from autospecnet.app.gallery import find_manifest, load_gallery  # noqa: E402
from autospecnet.heads import DISPLAY_ORDER, HEAD_TITLES  # noqa: E402
from autospecnet.images import MAX_FILE_BYTES, PHOTO_FORMATS, ImageError  # noqa: E402
from autospecnet.recognise import FINDER_UNAVAILABLE, NO_CAR_MESSAGE, Recognizer  # noqa: E402
from autospecnet.settings import MODEL_ENV  # noqa: E402
from autospecnet.sources import BUNDLED_MODEL_DIR, ModelLoadError, default_source, load_model  # noqa: E402

TOP_K = 5
MAX_EXAMPLES = 8
SHOWN_SIDE = 1024
UPLOAD_CLEANUP = (600, 600)  # every 10 minutes, delete uploads older than 10 minutes

log = logging.getLogger("autospecnet")


def build_demo(source: str | None = None) -> gr.Interface:
    loaded = load_model(source or default_source())
    recognizer = Recognizer.from_loaded(loaded)
    if recognizer.finder_error:
        log.warning(recognizer.finder_error)

    can_explain = recognizer.predictor.can_explain
    choices = ["none", *DISPLAY_ORDER] if can_explain else ["none"]

    def predict(photo: str | None, heatmap_head: str = "none"):
        if not photo:
            raise gr.Error("Add a photo of a car first.")
        explain = heatmap_head in DISPLAY_ORDER and can_explain
        try:
            result = recognizer.recognise(photo, top_k=TOP_K, explain=explain)
        except ImageError as error:
            raise gr.Error(str(error)) from None
        shown = result.image.copy()
        shown.thumbnail((SHOWN_SIDE, SHOWN_SIDE))
        scale = shown.width / result.image.width
        boxes = [
            (tuple(round(v * scale) for v in car.box), f"{number}: {car.prediction.headline}")
            for number, car in enumerate(result.cars, 1)
            if car.box
        ]
        if result.no_car:
            return (shown, []), NO_CAR_MESSAGE, None, None, None, None, None, None
        main = result.main
        prediction = main.prediction
        labels = ({p.label: p.prob for p in prediction.heads[head].labels} for head in DISPLAY_ORDER)
        overlay = None
        if explain:
            crop = result.image.crop(main.box) if main.box else result.image
            overlay = heatmap_overlay(crop, prediction.heads[heatmap_head].heatmap)
        return (shown, boxes), prediction.headline, *labels, prediction.sure, overlay

    note = f" {FINDER_UNAVAILABLE}." if recognizer.finder_error else ""  # the reason, maybe with paths, is in the log
    if not recognizer.predictor.has_sure_rule:
        note += " This model has no fitted thresholds: every answer is a guess."
    return gr.Interface(
        fn=predict,
        inputs=[
            gr.File(label="Car photo", type="filepath"),
            gr.Radio(choices, value="none", label="Show what it looked at, for", info="a heatmap over the main car"),
        ],
        outputs=[gr.AnnotatedImage(label="Cars found"), gr.Textbox(label="What it is sure of")]
        + [gr.Label(num_top_classes=TOP_K, label=f"{HEAD_TITLES[head]} (best guesses)") for head in DISPLAY_ORDER]
        + [gr.JSON(label="Sure, per head"), gr.Image(label="Where it looked", type="pil")],
        examples=[[path, "none"] for (path,) in _examples(loaded.folder)] or None,
        title="AutoSpecNet: what car is that?",
        description="Finds each car in a photo and names the largest one's make, body type, model year and model "
        f"(one of 196 cars up to 2012), and says when it is not sure. {PHOTO_FORMATS} photos up to "
        f"{MAX_FILE_BYTES >> 20} MB.{note}",
        api_name="predict",
        flagging_mode="never",
        analytics_enabled=False,
        delete_cache=UPLOAD_CLEANUP,
    )


def _examples(model_folder: Path) -> list[list[str]]:
    """Gallery photos that are on this machine (published thumbnails or $AUTOSPECNET_DATA)."""
    is_bundled = model_folder.resolve() == BUNDLED_MODEL_DIR.resolve()
    manifest = find_manifest(model_folder, is_bundled_model=is_bundled)
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
    parser = argparse.ArgumentParser(prog="python -m autospecnet.app.gradio", description=__doc__.splitlines()[0])
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
