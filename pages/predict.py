"""Predict: upload or take photos; the answer in words and one probability chart per head."""

import pandas as pd
import streamlit as st

from autospecnet import ImageError, charts, read_image, ui

ui.ensure_app_navigation()

PHOTO_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
DISPLAY_SIDE = 800

model = ui.app_model()
st.title("What car is that?")
st.caption(
    "Drop a photo of a car: AutoSpecNet names its make, body type, model year and the model itself "
    "(one of 196 cars up to 2012). It works best on a photo cropped to the car."
)
if model.error:
    st.error(model.error)
    st.stop()

upload_tab, camera_tab = st.tabs(["Upload photos", "Take a photo"])
with upload_tab:
    uploads = st.file_uploader("Drag and drop car photos here, or browse", type=PHOTO_TYPES, accept_multiple_files=True)
with camera_tab:
    shot = st.camera_input("Take a photo of a car")
top_k = st.select_slider("Labels per chart", options=[3, 5, 10], value=5)

photos = [(f.name, f.getvalue()) for f in uploads or []]
if shot is not None:
    photos.append(("camera photo", shot.getvalue()))
if not photos:
    st.info("No photo yet. Try one of a car seen from the front, side or back, cropped close.")
    st.stop()

rows = []
for index, (name, data) in enumerate(photos):
    try:
        prediction = ui.predict_photo(model.predictor, ui.model_key(model), data, top_k)
        shown = read_image(data)
    except ImageError as error:
        st.error(f"**{name}**: {error}")
        rows.append({"file": name, "error": str(error)})
        continue
    heads = prediction.heads
    rows.append(
        {"file": name, "answer": prediction.answer, "confidence": round(prediction.confidence, 4)}
        | {f"{h}": heads[h].top.label for h in ("make", "type", "year")}
        | {f"{h} probability": round(heads[h].top.prob, 4) for h in ("make", "type", "year")}
    )
    with st.container(border=True):
        picture, verdict = st.columns([1, 2])
        shown.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE))
        picture.image(shown, caption=name, width="stretch")
        verdict.subheader(prediction.answer)
        verdict.metric("Confidence", f"{prediction.confidence:.0%}")
        verdict.markdown(
            " · ".join(
                f"{ui.HEAD_LABELS[h]}: **{heads[h].top.label}** ({heads[h].top.prob:.0%})"
                for h in ("make", "type", "year")
            )  # fmt: skip
        )
        if prediction.confidence < 0.3:
            verdict.warning(
                "Not sure about this one. The model knows 196 cars up to 2012 and works best on close crops; "
                "the make, body type and year may still be right."
            )
        for row in (("model", "make"), ("type", "year")):
            for column, head in zip(st.columns(2), row, strict=True):
                column.plotly_chart(charts.probability_bars(heads[head]), key=f"chart-{index}-{head}")

if len(photos) > 1:
    st.subheader("All results")
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True)
    st.download_button("Download as CSV", table.to_csv(index=False), "autospecnet-results.csv", "text/csv")
