"""The same predictor as a Gradio app, which also gives scripts an HTTP API.

    python -m autospecnet.gradio                      # http://127.0.0.1:7860
    python -m autospecnet.gradio --model owner/name@v1 --host 0.0.0.0 --port 7860

From another program (``pip install gradio_client``):

    from gradio_client import Client, handle_file
    car, make, body_type, year = Client("http://127.0.0.1:7860/").predict(handle_file("car.jpg"), api_name="/predict")

The model source is the app's: ``--model``, else ``$AUTOSPECNET_MODEL``, else the bundled model.
"""

from __future__ import annotations

import argparse
import os

import gradio as gr

from autospecnet.gallery import find_manifest, load_gallery
from autospecnet.images import ImageError
from autospecnet.predict import Predictor
from autospecnet.sources import ASSETS_DIR, MODEL_ENV, ModelLoadError, default_source, load_model

HEAD_ORDER = (("model", "Car"), ("make", "Make"), ("type", "Body type"), ("year", "Model year"))
TOP_K = 5
MAX_EXAMPLES = 8


def build_demo(source: str | None = None) -> gr.Interface:
    loaded = load_model(source or default_source())
    predictor = Predictor(loaded.model)

    def predict(photo: str | None):
        if photo is None:
            raise gr.Error("Add a photo of a car first.")
        try:
            prediction = predictor.predict(photo, top_k=TOP_K)
        except ImageError as error:
            raise gr.Error(str(error)) from None
        return tuple({p.label: p.prob for p in prediction.heads[head].labels} for head, _ in HEAD_ORDER)

    return gr.Interface(
        fn=predict,
        inputs=gr.Image(type="filepath", label="Car photo", sources=["upload", "webcam", "clipboard"]),
        outputs=[gr.Label(num_top_classes=TOP_K, label=title) for _, title in HEAD_ORDER],
        examples=_examples(loaded.folder) or None,
        title="AutoSpecNet: what car is that?",
        description="Make, body type, model year and model (one of 196 cars up to 2012) of a car photo. "
        "Works best on a photo cropped to the car.",
        api_name="predict",
        flagging_mode="never",
    )


def _examples(model_folder) -> list[list[str]]:
    """Gallery photos that are on this machine (published thumbnails or $AUTOSPECNET_DATA)."""
    manifest = find_manifest(model_folder, ASSETS_DIR / "gallery" / "gallery.json")
    if manifest is None:
        return []
    gallery = load_gallery(manifest, model_folder)
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
    try:
        demo = build_demo(args.model)
    except ModelLoadError as error:
        raise SystemExit(f"error: {error}") from None
    demo.launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
