"""Predict: upload or take photos; each car found, its answer in words and one probability chart per head."""

import hashlib

import pandas as pd
import streamlit as st

from autospecnet import ImageError
from autospecnet.app import annotate, charts, ui
from autospecnet.heads import HEAD_TITLES
from autospecnet.images import MAX_FILE_BYTES, PHOTO_TYPES

ui.ensure_app_navigation()

MAX_PHOTOS = 10
ATTRIBUTES = ("make", "type", "year")
IN_FLIGHT = "photos"

model = ui.app_model()
st.title("What car is that?")
st.caption(
    "Drop a photo with a car in it: AutoSpecNet finds each car, then names its make, body type, model year "
    "and the model itself (one of 196 cars up to 2012)."
)
if model.error:
    st.error(model.error)
    st.stop()
if model.finder_notice:
    st.info(f"{model.finder_notice}. Crop your photos to the car for the best answers.")

uploads = st.file_uploader(
    "Drag and drop car photos here, or browse",
    type=PHOTO_TYPES,
    accept_multiple_files=True,
    help=f"Up to {MAX_PHOTOS} photos at a time, {MAX_FILE_BYTES >> 20} MB each.",
)
options = st.columns(4)
use_finder = options[0].toggle(
    "Find the cars in each photo",
    value=model.recognizer.finder is not None,
    disabled=model.recognizer.finder is None,
    help="Off: the whole photo goes to the classifier, as for a photo already cropped to the car.",
)
use_camera = options[1].toggle("Take a photo with the camera", help="The browser asks for the camera only now.")
explain = options[2].toggle(
    "Show what it looked at",
    disabled=not model.recognizer.predictor.can_explain,
    help="A heatmap over the car for each answer: where the evidence for it is.",
)
top_k = options[3].select_slider("Labels per chart", options=[3, 5, 10], value=5)
shot = st.camera_input("Take a photo of a car") if use_camera else None

photos = [(f.name, f.getvalue()) for f in uploads or []]
if shot is not None:
    photos.append(("camera photo", shot.getvalue()))
if len(photos) > MAX_PHOTOS:
    st.warning(f"{len(photos)} photos were dropped; the first {MAX_PHOTOS} are shown. Drop the rest separately.")
    photos = photos[:MAX_PHOTOS]
# Streamlit keeps uploads in the server's memory: a restart loses them while the browser still shows them. The
# address remembers that photos were in flight; a new session that finds that mark and no photos says so.
if photos:
    st.query_params[IN_FLIGHT] = str(len(photos))
    st.session_state[IN_FLIGHT] = True
elif IN_FLIGHT in st.query_params:
    if not st.session_state.get(IN_FLIGHT):
        st.warning("The server restarted and the photos you had dropped were lost with it: please drop them again.")
    del st.query_params[IN_FLIGHT]
    st.session_state[IN_FLIGHT] = False
if not photos:
    st.info("No photo yet. Try a photo of a car seen from the front, side or back.")
    st.stop()


def summary(car) -> str:
    heads = car.prediction.heads
    return " · ".join(
        f"{HEAD_TITLES[h]}: **{heads[h].top.label}** ({heads[h].top.prob:.0%}{'' if heads[h].sure else ', a guess'})"
        for h in ATTRIBUTES
    )


def result_row(name: str, number: int | None, car) -> dict:
    prediction = car.prediction
    heads = prediction.heads
    where = " ".join(map(str, car.box)) if car.box else "whole photo"
    answer = {
        "answer": prediction.headline,
        "best guess": prediction.answer,
        "confidence": round(prediction.confidence, 4),
    }
    return (
        {"file": name, "car": number, "box": where, **answer}
        | {h: heads[h].top.label for h in ATTRIBUTES}
        | {f"{h} probability": round(heads[h].top.prob, 4) for h in ATTRIBUTES}
        | {f"{h} sure": heads[h].sure for h in ("model", *ATTRIBUTES)}
    )


def head_chart(column, prediction, head: str, crop, key: str) -> None:
    """One head's probabilities (marked as a guess when it is not sure), and its heatmap over the crop when shown."""
    shown = prediction.heads[head]
    column.plotly_chart(charts.probability_bars(shown, guess=not shown.sure), key=key)
    if shown.heatmap is not None:
        column.image(
            annotate.heatmap_overlay(crop, shown.heatmap),
            caption=f"Where it saw {shown.top.label}: brighter is stronger evidence",
            width="stretch",
        )


rows = []
for index, (name, data) in enumerate(photos):
    whole_key = "whole:" + hashlib.sha1(data).hexdigest()
    try:
        finder_on = use_finder and not st.session_state.get(whole_key)
        shown = ui.recognise_photo(model.recognizer, ui.model_key(model), data, top_k, finder_on, explain)
    except ImageError as error:
        st.error(f"**{name}**: {error}")
        rows.append({"file": name, "error": str(error)})
        continue
    with st.container(border=True):
        picture, verdict = st.columns([1, 2])
        found = len(shown.cars) if shown.cars and shown.cars[0].box else 0
        caption = f"{name}: {found} car{'s' if found != 1 else ''} found" + (", numbered by size" if found > 1 else "")
        picture.image(shown.picture, caption=caption if use_finder else name, width="stretch")
        if shown.no_car:
            verdict.subheader("No car found")
            verdict.markdown("The car finder saw no car, bus or truck in this photo.")
            verdict.button(
                "Classify the whole photo anyway",
                key=f"whole-{index}",
                icon=":material/crop_free:",
                on_click=st.session_state.__setitem__,
                args=(whole_key, True),
            )
            rows.append({"file": name, "car": None, "answer": "no car"})
            continue
        main, others = shown.cars[0], shown.cars[1:]
        prediction = main.prediction
        verdict.subheader(("Car 1: " if others else "") + prediction.headline)
        if prediction.sure["model"] or not prediction.has_sure_rule:
            verdict.metric("Confidence", f"{prediction.confidence:.0%}")
        else:
            verdict.markdown(f"Best guess: {prediction.answer} ({prediction.confidence:.0%}), not sure.")
        verdict.markdown(summary(main))
        if not prediction.has_sure_rule:
            verdict.info(
                "This model has no fitted thresholds, so it cannot say when it is sure: every answer is a guess. "
                "Fit them with `python -m training.calibrate`."
            )
        if main.box is None and use_finder:
            verdict.caption("The whole photo was classified.")
        for row in (("model", "make"), ("type", "year")):
            for column, head in zip(st.columns(2), row, strict=True):
                head_chart(column, prediction, head, shown.crops[0], f"chart-{index}-{head}")
        for number, car in enumerate(others, 2):
            guess = "" if car.prediction.sure["model"] else f" (best guess: {car.prediction.answer})"
            st.markdown(f"**Car {number}: {car.prediction.headline}**{guess} — {summary(car)}")
        rows += [result_row(name, number, car) for number, car in enumerate(shown.cars, 1)]

if len(rows) > 1:
    st.subheader("All results")
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True)
    st.download_button("Download as CSV", table.to_csv(index=False), "autospecnet-results.csv", "text/csv")
