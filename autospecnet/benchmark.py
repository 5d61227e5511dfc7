"""Prediction speed and memory of each backend, measured side by side in one process. A benchmark, not a test.

    python -m autospecnet.benchmark PHOTO [--model SOURCE] [--runs 100] [--json]

Measures (1) the whole path of one photo (read and decode the file, preprocess, the four heads,
probabilities) on ONNX Runtime and on torch eager, alternating in blocks so that both see the same
machine load, p50 and p95; (2) a bare torchvision MobileNetV2 forward on a ready tensor, for scale; (3) the
car finder's time per photo; (4) cold start to first answer and peak memory of a fresh process that
serves the photo as the app does (car finder and classifier, default backend). Without ``--json`` it
prints a report; with it, the last line is one JSON object (a stable format for scripts):
``{"backends": {"onnxruntime": {"p50_ms", "p95_ms"}, "torch": {...}}, "bare_mobilenet_v2_p50_ms",
"explain_ms_per_car", "heatmaps_p50_ms" (null when the model cannot explain), "detector_p50_ms" and
"photo_p50_ms" (a whole photo: read, find, crop, classify; both null without the finder), "cold_start_s", "peak_rss_mb", "default_backend", "machine"}``; (5) the price of
``--explain`` per car: the whole path with the heatmaps minus without (the median over adjacent pairs of
calls), and the heatmaps alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from autospecnet.backends import BACKENDS
from autospecnet.images import read_image
from autospecnet.predict import Predictor
from autospecnet.recognise import Recognizer, load_finder
from autospecnet.sources import default_source, load_model

COLD_START = """
import sys, time
started = time.perf_counter()
from autospecnet.recognise import Recognizer
recognizer = Recognizer.from_source(sys.argv[1])
result = recognizer.recognise(sys.argv[2])
seconds = time.perf_counter() - started
import resource
answer = result.main.prediction.answer if result.main else "no car"
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{seconds:.3f} {peak_mb:.0f} {recognizer.predictor.backend_name} {'torch' in sys.modules} {answer}")
"""


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def interleaved_timings(functions: dict, runs: int, block: int = 10) -> dict[str, list[float]]:
    """Alternate the functions in blocks of ``block`` runs, so that all see the same machine load over time,
    and drop each block's first run, so that no function pays for the threads the one before left running
    (both runtimes keep their worker threads spinning for a moment after a call); milliseconds."""
    for function in functions.values():
        function()  # warm-up
    times = {name: [] for name in functions}
    while min(len(t) for t in times.values()) < runs:
        for name, function in functions.items():
            function()
            for _ in range(block):
                started = time.perf_counter()
                function()
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: t[:runs] for name, t in times.items()}


def paired_difference(plain, extra, runs: int) -> float:
    """The median over adjacent pairs of calls of ``extra``'s time minus ``plain``'s, in milliseconds: the two
    calls of a pair see the same machine load, which two medians taken apart do not; the order alternates."""
    plain(), extra()  # warm-up
    differences = []
    for run in range(runs):
        order = (plain, extra) if run % 2 == 0 else (extra, plain)
        seconds = {}
        for function in order:
            started = time.perf_counter()
            function()
            seconds[function] = time.perf_counter() - started
        differences.append((seconds[extra] - seconds[plain]) * 1000)
    return statistics.median(differences)


def bare_mobilenet_v2(image_size: int):
    """A bare torchvision MobileNetV2 forward on a ready tensor, or None without torch."""
    if importlib.util.find_spec("torchvision") is None:
        return None
    import torch
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2().eval()
    tensor = torch.randn(1, 3, image_size, image_size)

    def forward():
        with torch.inference_mode():
            model(tensor)

    return forward


def measure(photo: str, source: str, runs: int) -> dict:
    cold = subprocess.run([sys.executable, "-c", COLD_START, source, photo], capture_output=True, text=True)
    if cold.returncode != 0:
        raise SystemExit(cold.stderr)
    cold_seconds, rss_mb, default_backend, torch_imported, answer = cold.stdout.strip().split(" ", 4)

    loaded = load_model(source)
    available = [name for name in BACKENDS if name == "torch" or (loaded.folder / "model.onnx").is_file()]
    predictors = {name: Predictor(loaded, backend=name) for name in available}
    functions = {name: (lambda p=p: p.predict(photo)) for name, p in predictors.items()}
    default = Predictor(loaded)
    explain_ms = None
    if default.can_explain:  # the same path with each head's heatmap: the price of --explain
        explain_ms = paired_difference(
            lambda: default.predict(photo), lambda: default.predict(photo, explain=True), runs
        )
        outputs = default.backend.run(default.preprocess(photo)[None])
        maps = [outputs[name][0] for name in ("feature_map", "feature_map_mirrored") if name in outputs]
        labels = {head: int(outputs[head][0].argmax()) for head in default.vocabularies}
        functions["heatmaps"] = lambda: [default.explainer.heatmap(h, maps, k) for h, k in labels.items()]
    bare = bare_mobilenet_v2(loaded.config.image_size)
    if bare is not None:
        functions["bare"] = bare
    finder, _ = load_finder(download=False)
    if finder is not None:
        image = read_image(photo)
        functions["finder"] = lambda: finder.find(image)
        recognizer = Recognizer(default, finder)  # what a photo costs the app: read, find, crop, classify
        functions["photo"] = lambda: recognizer.recognise(photo)
    times = interleaved_timings(functions, runs)

    def p50(name):
        return round(percentile(times[name], 50), 2) if name in times else None

    return {
        "backends": {
            name: {"p50_ms": p50(name), "p95_ms": round(percentile(times[name], 95), 2)} for name in predictors
        },
        "bare_mobilenet_v2_p50_ms": p50("bare"),
        "explain_ms_per_car": None if explain_ms is None else round(explain_ms, 2),
        "heatmaps_p50_ms": p50("heatmaps"),
        "detector_p50_ms": p50("finder"),  # the stable JSON keeps its first name
        "photo_p50_ms": p50("photo"),
        "cold_start_s": float(cold_seconds),
        "peak_rss_mb": float(rss_mb),
        "default_backend": default_backend,
        "torch_imported_when_serving": torch_imported == "True",
        "answer": answer,
        "image_size": loaded.config.image_size,
        "runs": runs,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }


def report(figures: dict, photo: str) -> None:
    print(f"machine: {figures['machine']}; photo: {photo} -> {figures['answer']} ({figures['image_size']} px)")
    print(f"whole path (read, decode, preprocess, heads) over {figures['runs']} runs each, alternating in blocks:")
    for name, t in figures["backends"].items():
        print(f"  {name:<12} p50 {t['p50_ms']:.1f} ms, p95 {t['p95_ms']:.1f} ms")
    backends = figures["backends"]
    if "onnxruntime" in backends and "torch" in backends:
        ratio = backends["onnxruntime"]["p50_ms"] / backends["torch"]["p50_ms"]
        print(f"  onnxruntime / torch p50: {ratio:.2f} (goal <= 0.5)")
    if figures["bare_mobilenet_v2_p50_ms"] is not None:
        print(
            f"bare torchvision MobileNetV2 forward on a ready tensor: p50 {figures['bare_mobilenet_v2_p50_ms']:.1f} ms"
        )
    if figures["explain_ms_per_car"] is not None:
        print(
            f"--explain: {figures['explain_ms_per_car']:.2f} ms more a car (median of paired calls; goal <= 5), of "
            f"which the four heatmaps themselves {figures['heatmaps_p50_ms']:.2f} ms"
        )
    detector = figures["detector_p50_ms"]
    print(
        f"car finder: p50 {detector:.1f} ms a photo (goal <= 25)" if detector is not None else "car finder: unavailable"
    )
    if figures["photo_p50_ms"] is not None:
        print(
            f"a whole photo (read, find, crop, classify every car): p50 {figures['photo_p50_ms']:.1f} ms (goal <= 60)"
        )
    print(
        f"fresh process serving with the default backend ({figures['default_backend']}, torch imported: "
        f"{figures['torch_imported_when_serving']}): cold start to first answer {figures['cold_start_s']:.2f} s "
        f"(goal <= 1.5), peak RSS {figures['peak_rss_mb']:.0f} MB (goal <= 350)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Speed and memory of a prediction on each backend")
    parser.add_argument("photo")
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    args = parser.parse_args()
    figures = measure(args.photo, args.model or default_source(), args.runs)
    if args.json:
        print(json.dumps(figures))
    else:
        report(figures, args.photo)


if __name__ == "__main__":
    main()
