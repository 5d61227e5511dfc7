"""The open-set protocol: how well does a score tell the cars a model knows from the ones it has never seen?

    python -m training.open_set --data ../shared/data/stanford-cars-train --run-dir runs/open-set \
        --backbone-init ../shared/weights/mobilenet_v2_imagenet.safetensors --epochs 8 --output assets/open_set.json
    # the same command again resumes an interrupted training, or only measures a finished one

1. **Hold out classes**, seeded (``--seed``): whole makes first, until ``UNSEEN_MAKES`` of the
   196 classes are gone (cars of a make the model never saw), then single models of the makes
   that stay, each keeping at least one known model, until ``HOLD_OUT`` of the classes are held
   out (a newer model of a make it knows).
2. **Train on the known classes only** (``training.train --classes``): the bundled model's recipe
   (cosine, head lr x 10, warm-up, label smoothing, strong augmentation) at 224 px for ``--epochs``,
   on the usual seeded split, restricted to the known classes; the best epoch on validation.
   Then temperatures and marginal weights are fitted on its validation part, as for the bundled model.
3. **Score** every crop of the split's validation and test parts: known classes' crops against
   the held-out classes' crops (which no choice saw in training). Candidates (``autospecnet.sure``):
   the maximum softmax probability, the maximum logit, the energy (log-sum-exp of the logits),
   the cosine similarity of the pooled features to the nearest class mean, and to the 10th
   nearest training crop, each also gated by the heads' agreement (the make head's own answer is
   the make of the 196-class answer), and the largest probability times the make head's own
   probability of that make. For each: AUROC, and the share of unknown crops rejected at
   the threshold that keeps 90 % of the known ones. The score is **chosen on validation** (best
   AUROC); its test figures are reported.
4. **The sure rule**, fitted on this model's validation part as ``training.calibrate`` fits it for
   the bundled model, measured on test: how often each head is sure on known crops and how often
   right then, and how often it is sure on the held-out crops (the 196-class answer is then always
   wrong; the make of a seen make can still be right).

The report goes to ``--output`` (``autospecnet.records.open_set``).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from autospecnet.heads import ATTRIBUTE_HEADS
from autospecnet.labels import parse_class_name
from autospecnet.model import AutoSpecNet
from autospecnet.records import history as history_file
from autospecnet.records.open_set import (
    Chosen,
    OpenSetReport,
    Protocol,
    ScoreFigures,
    ScoreReport,
    SureOnProtocol,
    UnknownSure,
)
from autospecnet.records.split import Split
from autospecnet.sure import SCORES, known_score
from training import calibrate, checkpoint, train
from training.data import (
    DATA_ENV,
    CarImages,
    CarsDataset,
    DataError,
    eval_transform,
    load_dataset,
    make_split,
    resolve_data_root,
    restrict_classes,
)

HOLD_OUT = 0.2  # share of the classes held out
UNSEEN_MAKES = 0.1  # of which whole makes
KEEP_KNOWN = 0.9  # the operating point: the threshold that keeps this share of the known crops
RECIPE = ["--image-size", "224", "--lr", "0.01", "--head-lr-mult", "10", "--lr-schedule", "cosine"]
RECIPE += ["--warmup-epochs", "0.5", "--label-smoothing", "0.1", "--augment", "strong"]
KNOWN_FILE = "known_classes.txt"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--data", default=None, help=f"dataset folder (None: ${DATA_ENV})")
    p.add_argument("--run-dir", default="runs/open-set", help="the known-classes training run (keep out of git)")
    p.add_argument("--output", default="assets/open_set.json", help="where the report goes")
    p.add_argument("--seed", type=int, default=0, help="seeds the held-out classes and the training")
    p.add_argument("--epochs", type=int, default=8, help="training budget on the known classes")
    p.add_argument("--backbone-init", default="imagenet", help="as training.train's")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--batch-size", type=int, default=64, help="for measuring")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--dry-run", action="store_true", help="a few batches: check the pipeline")
    return p


def hold_out(class_names: list[str], seed: int) -> tuple[list[str], list[str], list[str]]:
    """(known classes, held-out classes, makes held out whole), the same for the same seed."""
    rng = random.Random(f"open-set:{seed}")
    by_make: dict[str, list[str]] = defaultdict(list)
    for name in class_names:
        by_make[parse_class_name(name).make].append(name)
    makes = sorted(by_make)
    rng.shuffle(makes)
    unseen_makes, held = [], []
    for make in makes:
        if len(held) >= UNSEEN_MAKES * len(class_names):
            break
        unseen_makes.append(make)
        held += by_make[make]
    candidates = [n for m in sorted(set(makes) - set(unseen_makes)) if len(by_make[m]) > 1 for n in by_make[m]]
    rng.shuffle(candidates)
    left = {m: len(by_make[m]) for m in by_make}
    for name in candidates:
        if len(held) >= HOLD_OUT * len(class_names):
            break
        make = parse_class_name(name).make
        if left[make] > 1:
            held.append(name)
            left[make] -= 1
    unknown = [n for n in class_names if n in set(held)]
    return [n for n in class_names if n not in set(held)], unknown, sorted(unseen_makes)


def train_on_known(args, known: list[str]) -> Path:
    """Train (or resume, or skip when finished) the run on the known classes; its best model's folder."""
    run = Path(args.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / KNOWN_FILE).write_text("".join(f"{n}\n" for n in known), encoding="utf-8")
    if (run / "test_metrics.json").is_file() and not args.dry_run:
        return run / "best"
    argv = ["--output-dir", str(run), "--classes", str(run / KNOWN_FILE), "--epochs", str(args.epochs), *RECIPE]
    argv += ["--seed", str(args.seed), "--backbone-init", args.backbone_init, "--workers", str(args.workers)]
    argv += ["--device", args.device, "--checkpoint-minutes", str(args.checkpoint_minutes)]
    argv += ["--data", str(resolve_data_root(args.data))]
    if checkpoint.load(run) is not None and not args.dry_run:
        argv.append("--resume")
    if args.dry_run:
        argv.append("--dry-run")
    train.main(train.get_args_parser().parse_args(argv))
    return run / "best"


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """The chance that a known crop scores higher than an unknown one (ties count half): Mann-Whitney U."""
    values = np.concatenate([known, unknown])
    values = np.where(np.isfinite(values), values, np.nanmin(np.where(np.isfinite(values), values, np.nan)) - 1)
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # ties: the average rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[: len(known)].sum() - len(known) * (len(known) + 1) / 2
    return float(u / (len(known) * len(unknown)))


def operating_point(known: np.ndarray, keep: float = KEEP_KNOWN) -> float:
    """The threshold that keeps ``keep`` of the known crops (score at or above it)."""
    ranked = np.sort(known)
    return float(ranked[int((1 - keep) * len(ranked))])


def figures(known: np.ndarray, unknown: np.ndarray, threshold: float | None = None) -> ScoreFigures:
    threshold = operating_point(known) if threshold is None else threshold
    return ScoreFigures(
        auroc=auroc(known, unknown),
        threshold=threshold,
        known_kept=float((known >= threshold).mean()),
        unknown_rejected=float((unknown < threshold).mean()),
        known_images=len(known),
        unknown_images=len(unknown),
    )


def measure(model: AutoSpecNet, dataset: CarsDataset, files: list[str], args) -> calibrate.PartOutputs:
    transform = eval_transform(model.image_size, model.mean, model.std)
    loader = torch.utils.data.DataLoader(
        CarImages(dataset, files, transform), batch_size=args.batch_size, num_workers=args.workers
    )
    if args.dry_run:
        loader = [batch for batch, _ in zip(loader, range(2), strict=False)]
    return calibrate.collect(model, loader)


def main(args) -> OpenSetReport:
    full = load_dataset(resolve_data_root(args.data))
    known, unknown, unseen_makes = hold_out(full.class_names, args.seed)
    best = train_on_known(args, known)
    raw = AutoSpecNet.from_pretrained(best).with_calibration({}, {}).to(torch.device(args.device))

    # Known classes: their images of the usual split, labelled as the model knows them. Held-out classes: their
    # validation and test images of the same split, under a label of no meaning to the model (it has none).
    known_data, known_split = restrict_classes(full, known), Split.load(best)
    held_out = {s.filename: s for s in full.samples if full.class_names[s.label] in set(unknown)}
    unknown_data = CarsDataset(full.root, known, [replace(s, label=0) for s in held_out.values()])
    full_split = make_split(full, seed=args.seed)
    unknown_files = {part: [f for f in full_split[part] if f in held_out] for part in ("val", "test")}
    true_makes = {f: parse_class_name(full.class_names[s.label]).make for f, s in held_out.items()}

    known_parts = {part: measure(raw, known_data, known_split[part], args) for part in ("train", "val", "test")}
    unknown_parts = {part: measure(raw, unknown_data, unknown_files[part], args) for part in ("val", "test")}
    temperatures, weights = calibrate.fit_calibration(raw, known_parts["val"])
    model = raw.with_calibration(temperatures, weights)
    class_makes = model.class_to_heads[:, ATTRIBUTE_HEADS.index("make")].cpu().numpy()
    stats = calibrate.feature_stats(known_parts["train"], len(known), "knn_cosine")

    outputs = {("known", p): calibrate.serving_outputs(model, known_parts[p]) for p in ("val", "test")}
    outputs |= {("unknown", p): calibrate.serving_outputs(model, unknown_parts[p]) for p in ("val", "test")}
    scores = {}
    for name in SCORES:
        values = {key: known_score(name, out, stats, class_makes) for key, out in outputs.items()}
        val = figures(values["known", "val"], values["unknown", "val"])
        test = figures(values["known", "test"], values["unknown", "test"])
        at_val = figures(values["known", "test"], values["unknown", "test"], val.threshold)
        scores[name] = ScoreReport(test.auroc, test.unknown_rejected, val, test, at_val)
    chosen = max(SCORES, key=lambda name: scores[name].val.auroc)
    why = f"the best AUROC on the validation part ({scores[chosen].val.auroc:.3f})"
    if chosen == "max_softmax":
        runner_up = max((n for n in SCORES if n != chosen), key=lambda n: scores[n].val.auroc)
        why += (
            f": no other score separated the held-out classes better (the next best, {runner_up}, "
            f"{scores[runner_up].val.auroc:.3f})"
        )

    correct_val = calibrate.correct_answers(outputs["known", "val"], known_parts["val"].targets)
    rule = calibrate.fit_sure_rule(chosen, outputs["known", "val"], correct_val, stats, class_makes)
    correct_test = calibrate.correct_answers(outputs["known", "test"], known_parts["test"].targets)
    test_makes = [true_makes[f] for f in unknown_files["test"]]
    report = OpenSetReport(
        protocol=protocol(args, full.class_names, unknown, unseen_makes, best, unknown_files, known_parts),
        known_classes=known,
        unknown_classes=unknown,
        scores=scores,
        chosen=Chosen(
            score=chosen,
            why=why,
            beats_max_softmax=scores[chosen].auroc > scores["max_softmax"].auroc,
            auroc=scores[chosen].auroc,
            unknown_rejected=scores[chosen].unknown_rejected,
            sure=SureOnProtocol(
                rule=rule.to_config(),
                known_test=calibrate.sure_figures(rule, outputs["known", "test"], correct_test, stats, class_makes),
                unknown_test=sure_on_unknowns(rule, outputs["unknown", "test"], test_makes, model, stats, class_makes),
            ),
        ),
    )
    report.save_file(Path(args.output))
    for name in SCORES:
        val, test = scores[name].val, scores[name].test
        print(
            f"{name:<28} AUROC val {val.auroc:.3f} test {test.auroc:.3f} | unknown rejected at 90 % known kept: "
            f"val {val.unknown_rejected:.1%} test {test.unknown_rejected:.1%}"
        )
    print(f"chosen on validation: {chosen}; report: {args.output}")
    return report


def protocol(args, class_names, unknown, unseen_makes, best, unknown_files, known_parts) -> Protocol:
    history = history_file.read_rows(Path(args.run_dir) / history_file.FILE)
    unknown_makes_kept = sorted({parse_class_name(n).make for n in unknown} - set(unseen_makes))
    return Protocol(
        seed=args.seed,
        classes=len(class_names),
        held_out=len(unknown),
        held_out_share=len(unknown) / len(class_names),
        makes_held_out_whole=unseen_makes,
        makes_with_seen_and_held_out_models=unknown_makes_kept,
        training={
            "recipe": " ".join(RECIPE),
            "epochs": args.epochs,
            "epochs_run": len(history),
            "best_val_accuracy": float(history_file.best_epoch(history)[history_file.column("val", "model")])
            if history
            else None,
            "hours": history_file.seconds(history) / 3600 if history else None,
        },
        parts={
            "known": {part: int(len(known_parts[part].features)) for part in ("val", "test")},
            "unknown": {part: len(files) for part, files in unknown_files.items()},
        },
        operating_point=f"the threshold that keeps {KEEP_KNOWN:.0%} of the known crops of the same part",
        model=str(best),
    )


def sure_on_unknowns(rule, outputs: dict, true_makes: list[str], model, stats, class_makes) -> UnknownSure:
    """How often each head is sure on held-out crops: the 196-class answer is then always wrong; the make is
    wrong for a make held out whole, and may be right for a make the model knows."""
    sure = rule.decide(outputs, stats, class_makes)
    makes = model.taxonomy.makes
    seen = np.array([m in makes for m in true_makes], dtype=bool)
    make_right = np.array([makes[i] for i in outputs["make"].argmax(axis=1)]) == np.array(true_makes)

    def share(mask) -> float | None:
        return float(mask.mean()) if len(mask) else None

    return UnknownSure(
        images=len(true_makes),
        model_sure=share(sure["model"]),
        year_sure=share(sure["year"]),
        make_sure=share(sure["make"]),
        type_sure=share(sure["type"]),
        seen_make_images=int(seen.sum()),
        seen_make_sure=share(sure["make"][seen]),
        seen_make_right_when_sure=share(make_right[seen & sure["make"]]),
        unseen_make_images=int((~seen).sum()),
        unseen_make_sure=share(sure["make"][~seen]),
    )


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except DataError as error:
        sys.exit(f"error: {error}")
