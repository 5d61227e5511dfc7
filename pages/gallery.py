"""Gallery: successful and failed predictions on the held-out test crops, per head."""

import streamlit as st

from autospecnet import ui
from autospecnet.gallery import DATA_ENV, find_manifest, load_gallery

ui.ensure_app_navigation()

COLUMNS = 4

model = ui.app_model()
st.title("Gallery")
st.caption("Predictions of the model on held-out test crops it never saw in training, right and wrong.")

model_folder = model.loaded.folder if model.loaded else None
manifest = find_manifest(model_folder, ui.ASSETS / "gallery" / "gallery.json")
if manifest is None:
    st.info("No gallery for this model yet. Make one with `python -m training.gallery` (see the README).")
    st.stop()
gallery = load_gallery(manifest, model_folder)

head = st.segmented_control(
    "Head", list(ui.HEAD_LABELS), format_func=ui.HEAD_LABELS.get, default="model", required=True
)
outcome = st.segmented_control("Outcome", ["all", "right", "wrong"], default="all", required=True,
                               format_func=str.capitalize)  # fmt: skip
items = gallery.select(head, None if outcome == "all" else outcome == "right")
with_images = sum(gallery.image_path(item) is not None for item in items)
if items and not with_images:
    st.info(
        f"The photos are not shipped with the app (the dataset's terms). Set `{DATA_ENV}` to your copy of "
        "Stanford Cars (the folder with `images/`), or use a model from the Hub that was published with "
        "its gallery thumbnails. The labels are shown below without them."
    )
st.caption(f"{len(items)} predictions from {gallery.meta.get('images_evaluated', '?')} test images.")

for start in range(0, len(items), COLUMNS):
    for column, item in zip(st.columns(COLUMNS), items[start : start + COLUMNS], strict=False):
        with column.container(border=True):
            path = gallery.image_path(item)
            if path is not None:
                st.image(str(path), width="stretch")
            predicted = item.predicted[head]
            mark = ":green[:material/check_circle:]" if item.correct else ":red[:material/cancel:]"
            st.markdown(f"{mark} **{predicted['label']}** ({predicted['prob']:.0%})")
            st.caption(f"True: {item.true[head]}" + ("" if head == "model" else f" · {item.true['model']}"))
