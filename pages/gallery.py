"""Gallery: successful and failed predictions on the held-out test crops, per head."""

import pandas as pd
import streamlit as st

from autospecnet import ImageError, read_image
from autospecnet.app import ui
from autospecnet.app.gallery import find_manifest, load_gallery
from autospecnet.heads import DISPLAY_ORDER, HEAD_TITLES
from autospecnet.settings import DATA_ENV

ui.ensure_app_navigation()

COLUMNS = 4
THUMBNAIL_SIDE = 400

model = ui.app_model()
st.title("Gallery")
st.caption("Predictions of the model on held-out test crops it never saw in training, right and wrong.")

model_folder = model.loaded.folder if model.loaded else None
manifest = find_manifest(model_folder, is_bundled_model=model.loaded is not None and model.loaded.is_bundled)
if manifest is None:
    st.info("There is no gallery for this model. Make one with `python -m training.gallery` (see the README).")
    st.stop()
gallery = load_gallery(manifest, model_folder)
if gallery is None:
    st.warning("This model's gallery file could not be read, so there is nothing to show.")
    st.stop()
if gallery.skipped:
    st.caption(f"{gallery.skipped} gallery entries of another layout were skipped.")

head = st.segmented_control("Head", list(DISPLAY_ORDER), format_func=HEAD_TITLES.get, default="model", required=True)
outcome = st.segmented_control(
    "Outcome", ["all", "right", "wrong"], default="all", required=True, format_func=str.capitalize
)
items = gallery.select(head, None if outcome == "all" else outcome == "right")
with_images = sum(gallery.image_path(item) is not None for item in items)
if items and not with_images:
    st.info(
        f"The photos are not shipped with the app (the dataset's terms). Set `{DATA_ENV}` to your copy of "
        "Stanford Cars (the folder with `images/`), or use a model from the Hub that was published with "
        "its gallery thumbnails. The labels are shown below without them."
    )
st.caption(f"{len(items)} predictions from {gallery.manifest.images_evaluated or '?'} test images.")

for start in range(0, len(items), COLUMNS):
    for column, item in zip(st.columns(COLUMNS), items[start : start + COLUMNS], strict=False):
        with column.container(border=True):
            path = gallery.image_path(item)
            if path is not None:
                try:
                    photo = read_image(path)
                    photo.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
                    st.image(photo, width="stretch")
                except ImageError:
                    st.caption(":material/broken_image: This photo could not be read.")
            predicted = item.predicted[head]
            mark = ":green[:material/check_circle:]" if item.correct else ":red[:material/cancel:]"
            st.markdown(f"{mark} **{predicted['label']}** ({predicted['prob']:.0%})")
            st.caption(f"True: {item.true[head]}" + ("" if head == "model" else f" · {item.true['model']}"))

mistakes = gallery.mistakes.get(head)
if mistakes:
    st.subheader("Most frequent mistakes")
    evaluated, wrong = gallery.manifest.images_evaluated, gallery.wrong.get(head)
    if evaluated is not None and wrong is not None:
        st.caption(
            f"{HEAD_TITLES[head]}: {wrong} mistake{'' if wrong == 1 else 's'} on {evaluated} test images; "
            "the most frequent:"
        )
    table = pd.DataFrame([{"true": m.true, "predicted as": m.predicted, "times": m.count} for m in mistakes])
    st.dataframe(table, hide_index=True)
