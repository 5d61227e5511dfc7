"""Prediction speed and memory: the path a photo takes in the app, against a bare MobileNetV2 forward.

    python -m autospecnet.benchmark PHOTO [--model SOURCE] [--runs 50]

Prints (1) cold start to first answer: a fresh process that imports, loads the model and
predicts PHOTO; (2) per-photo latency p50/p95 of the whole path (read and decode the file,
preprocess, the four heads, probabilities) against a bare torchvision MobileNetV2 forward on
a ready tensor of the same size in the same process (goal: <= 1.15 x); (3) peak RSS of the
cold-start process (goal: <= 600 MB), beside that of a process that only imports torch. A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time

import torch
from torchvision.models import mobilenet_v2

from autospecnet.predict import Predictor
from autospecnet.sources import default_source, load_model

COLD_START = """
import sys, time
started = time.perf_counter()
from autospecnet.predict import Predictor
predictor = Predictor.from_source(sys.argv[1])
answer = predictor.predict(sys.argv[2]).answer
seconds = time.perf_counter() - started
import resource
print(f"{seconds:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} {answer}")
"""
TORCH_ONLY = "import resource, torch; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def interleaved_timings(*functions, runs: int) -> list[list[float]]:
    """Alternate the functions, so that all see the same machine load."""
    for function in functions:
        function()  # warm-up
    times = [[] for _ in functions]
    for _ in range(runs):
        for function, result in zip(functions, times, strict=True):
            started = time.perf_counter()
            function()
            result.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description="Cold start, latency and memory of a prediction")
    parser.add_argument("photo")
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    source = args.model or default_source()

    cold = subprocess.run([sys.executable, "-c", COLD_START, source, args.photo], capture_output=True, text=True)
    if cold.returncode != 0:
        raise SystemExit(cold.stderr)
    cold_seconds, cold_rss_mb, answer = cold.stdout.strip().split(" ", 2)
    torch_rss_mb = float(subprocess.run([sys.executable, "-c", TORCH_ONLY], capture_output=True, text=True).stdout)

    predictor = Predictor(load_model(source).model)
    size = predictor.model.image_size
    bare = mobilenet_v2().eval()
    tensor = torch.randn(1, 3, size, size)

    def bare_forward(model=bare, tensor=tensor):
        with torch.inference_mode():
            model(tensor)

    fast_bare = mobilenet_v2().eval().to(memory_format=torch.channels_last)
    fast_tensor = tensor.contiguous(memory_format=torch.channels_last)
    ours, reference, reference_channels_last = interleaved_timings(
        lambda: predictor.predict(args.photo),
        bare_forward,
        lambda: bare_forward(fast_bare, fast_tensor),
        runs=args.runs,
    )

    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"model: {source} ({size} px); photo: {args.photo} -> {answer}")
    print(f"cold start to first answer: {float(cold_seconds):.2f} s")
    p50, p95 = percentile(ours, 50) * 1000, percentile(ours, 95) * 1000
    b50, b95 = percentile(reference, 50) * 1000, percentile(reference, 95) * 1000
    print(f"whole path (decode, preprocess, heads): p50 {p50:.1f} ms, p95 {p95:.1f} ms over {args.runs} runs")
    c50, c95 = percentile(reference_channels_last, 50) * 1000, percentile(reference_channels_last, 95) * 1000
    print(f"bare MobileNetV2 forward (default NCHW): p50 {b50:.1f} ms, p95 {b95:.1f} ms")
    print(f"bare MobileNetV2 forward (channels_last, as ours runs): p50 {c50:.1f} ms, p95 {c95:.1f} ms")
    print(f"ratio p50: {p50 / b50:.2f} against the default bare forward, {p50 / c50:.2f} against the "
          "channels_last one (goal <= 1.15)")  # fmt: skip
    print(f"peak RSS of the cold-start process: {float(cold_rss_mb):.0f} MB (goal <= 600); "
          f"of a process that only imports torch: {torch_rss_mb:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
