"""Successful and failed predictions of a model on the test part, for the app's Gallery page.

    python -m training.gallery --model assets/model --data ../shared/data/stanford-cars-train \
        --output assets/gallery/gallery.json
    # also write thumbnails, for publishing with the model (never into this repository):
    python -m training.gallery --model runs/bundled/best --data ... --output runs/bundled/gallery/gallery.json \
        --thumbnails runs/bundled/gallery/thumbnails

For each head, ``--per-head`` correct and as many wrong predictions are picked, the same for
the same seed, spread over the true labels (one per label in turn), and the head's most frequent
mistakes over the whole part are counted (true label, predicted label, how often). The manifest names dataset
files by their path in the dataset; the app finds them under ``$AUTOSPECNET_DATA`` or among
the published thumbnails.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from autospecnet.heads import HEADS
from autospecnet.records import gallery as gallery_file
from autospecnet.records.gallery import GalleryItem, GalleryManifest, Mistake
from training.data import DataError
from training.evaluate import load_for_evaluation, model_and_data_parser, part_loader

THUMBNAIL_SIDE = 320
MISTAKES_PER_HEAD = 10


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Pick right and wrong predictions per head for the app's Gallery",
        parents=[model_and_data_parser()],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    default = f"assets/{gallery_file.FOLDER}/{gallery_file.FILE}"
    p.add_argument("--output", default=default, help="the manifest to write")
    p.add_argument("--part", default="test", choices=("val", "test"), help="which part's images to show")
    p.add_argument("--per-head", type=int, default=12, help="successes and failures to pick per head")
    p.add_argument("--pick-seed", type=int, default=0, help="seed of the picks")
    p.add_argument("--thumbnails", default=None, help="also write JPEG thumbnails of the picked images here")
    return p


@torch.inference_mode()
def predict_files(model, loader, device) -> list[dict]:
    """Per file: the true label of each head and the predicted label with its probability."""
    model.eval()
    vocabularies = model.vocabularies
    results = []
    for images, targets, files in tqdm(loader, desc="gallery", leave=False):
        logits = model(images.to(device, memory_format=torch.channels_last))
        truths = {head: t.tolist() for head, t in model.head_targets(targets.to(device)).items()}
        best = {head: log_probs.exp().max(1) for head, log_probs in model.log_probabilities(logits).items()}
        for i, file in enumerate(files):
            results.append(
                {
                    "file": file,
                    "true": {head: vocabularies[head][truths[head][i]] for head in HEADS},
                    "predicted": {
                        head: {"label": vocabularies[head][best[head].indices[i]], "prob": float(best[head].values[i])}
                        for head in HEADS
                    },
                }
            )
    return results


def pick(results: list[dict], head: str, correct: bool, count: int, seed: int) -> list[dict]:
    """``count`` results of one outcome, one per true label in turn, the same for the same seed."""
    by_label = defaultdict(list)
    for r in results:
        if (r["predicted"][head]["label"] == r["true"][head]) == correct:
            by_label[r["true"][head]].append(r)
    rng = random.Random(f"{seed}:{head}:{correct}")
    labels = sorted(by_label)
    rng.shuffle(labels)
    for label in labels:
        rng.shuffle(by_label[label])
    picked = []
    while len(picked) < count and any(by_label.values()):
        for label in labels:
            if by_label[label] and len(picked) < count:
                picked.append(by_label[label].pop())
    return picked


def frequent_mistakes(results: list[dict], head: str, count: int) -> list[Mistake]:
    """The ``count`` most frequent (true label, predicted label) pairs among the head's mistakes."""
    pairs = Counter(
        (r["true"][head], r["predicted"][head]["label"])
        for r in results
        if r["predicted"][head]["label"] != r["true"][head]
    )
    ranked = sorted(pairs.items(), key=lambda pair: (-pair[1], pair[0]))[:count]
    return [Mistake(true, predicted, n) for (true, predicted), n in ranked]


def write_thumbnail(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, "JPEG", quality=85)


def main(args) -> GalleryManifest:
    loaded, dataset, split = load_for_evaluation(args)
    model, device = loaded.model, torch.device(args.device)
    loader = part_loader(model, dataset, split[args.part], args)
    results = predict_files(model, loader, device)

    items = [
        GalleryItem(head, correct, r["file"], r["true"], r["predicted"])
        for head in HEADS
        for correct in (True, False)
        for r in pick(results, head, correct, args.per_head, args.pick_seed)
    ]
    manifest = GalleryManifest(
        items,
        model=args.model,
        part=args.part,
        images_evaluated=len(results),
        per_head=args.per_head,
        seed=args.pick_seed,
        wrong={head: sum(r["predicted"][head]["label"] != r["true"][head] for r in results) for head in HEADS},
        mistakes={head: frequent_mistakes(results, head, MISTAKES_PER_HEAD) for head in HEADS},
    )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    manifest.save(output)
    if args.thumbnails:
        for file in sorted({item.file for item in items}):
            write_thumbnail(dataset.root / file, Path(args.thumbnails) / Path(file).name)
    counts = {h: sum(1 for i in items if i.head == h and not i.correct) for h in HEADS}
    print(f"{output}: {len(items)} picks from {len(results)} {args.part} images (failures per head: {counts})")
    return manifest


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except DataError as error:
        sys.exit(f"error: {error}")
