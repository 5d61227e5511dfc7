"""Stanford Cars on disk, the seeded stratified split, the transforms and the loaders.

Two layouts are read, both pairing images with labels by file name:

- the "folder" layout of ``../shared/data/stanford-cars-train``: ``images/``,
  ``labels.csv`` (filename, label, class_name, ..., duplicate_of) and
  ``class_names.txt``;
- the official layout that ``torchvision.datasets.StanfordCars`` reads
  (``devkit/cars_meta.mat``, ``devkit/cars_train_annos.mat``, ``cars_train/``,
  ``cars_test_annos_withlabels.mat``, ``cars_test/``), optionally cropped to the
  annotated bounding boxes.
"""

from __future__ import annotations

import csv
import os
import random
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image
from scipy.io import loadmat  # torchvision's StanfordCars reads the official .mat files with scipy too
from torchvision.transforms import v2

from autospecnet.labels import read_class_names
from autospecnet.preprocess import IMAGENET_MEAN, IMAGENET_STD
from autospecnet.records.split import PARTS, Split
from autospecnet.settings import DATA_ENV
from training import distributed


class DataError(ValueError):
    """The dataset is missing or not in a layout this package reads; ``str(error)`` says what is wrong."""


@dataclass(frozen=True)
class Sample:
    filename: str  # relative to the dataset root
    label: int
    duplicate_of: str = ""
    bbox: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2 (official layout only)
    official_part: str = ""  # "train" or "test" in the official layout, "" otherwise


@dataclass(frozen=True)
class CarsDataset:
    root: Path
    class_names: list[str]
    samples: list[Sample]

    @property
    def has_official_test(self) -> bool:
        return any(s.official_part == "test" for s in self.samples)


def resolve_data_root(path: str | os.PathLike | None) -> Path:
    path = path or os.environ.get(DATA_ENV)
    if not path:
        raise DataError(f"No data path: pass --data or set {DATA_ENV}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"Data path is not a folder: {root}")
    return root


def load_dataset(root: str | os.PathLike) -> CarsDataset:
    root = Path(root)
    if (root / "labels.csv").is_file():
        return _load_folder_layout(root)
    official = root / "stanford_cars" if (root / "stanford_cars").is_dir() else root
    if (official / "devkit" / "cars_meta.mat").is_file():
        return _load_official_layout(official)
    raise DataError(
        f"{root} holds neither labels.csv + class_names.txt + images/ nor the official "
        "Stanford Cars layout (devkit/cars_meta.mat, cars_train/, cars_test/)"
    )


def _load_folder_layout(root: Path) -> CarsDataset:
    class_names = read_class_names(root / "class_names.txt")
    samples = []
    with open(root / "labels.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            label = int(row["label"])
            if row.get("class_name") and row["class_name"] != class_names[label]:
                raise DataError(
                    f"labels.csv: {row['filename']} says {row['class_name']!r}, class {label} is {class_names[label]!r}"
                )
            duplicate = row.get("duplicate_of") or ""
            samples.append(Sample(f"images/{row['filename']}", label, f"images/{duplicate}" if duplicate else ""))
    samples.sort(key=lambda s: s.filename)
    return CarsDataset(root, class_names, samples)


def _load_official_layout(root: Path) -> CarsDataset:
    meta = loadmat(root / "devkit" / "cars_meta.mat", squeeze_me=True)
    class_names = [str(n) for n in meta["class_names"]]
    samples = []
    for part, annos, folder in (
        ("train", root / "devkit" / "cars_train_annos.mat", "cars_train"),
        ("test", root / "cars_test_annos_withlabels.mat", "cars_test"),
    ):
        if not annos.is_file():
            continue
        for a in loadmat(annos, squeeze_me=True)["annotations"]:
            bbox = (int(a["bbox_x1"]), int(a["bbox_y1"]), int(a["bbox_x2"]), int(a["bbox_y2"]))
            samples.append(Sample(f"{folder}/{a['fname']}", int(a["class"]) - 1, bbox=bbox, official_part=part))
    samples.sort(key=lambda s: s.filename)
    return CarsDataset(root, class_names, samples)


def make_split(dataset: CarsDataset, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15) -> Split:
    """A stratified split, the same for the same seed; byte-identical duplicates share a part.

    With an official test part, it is the test split and validation is carved out of train.
    """
    official_test = dataset.has_official_test
    pool = [s for s in dataset.samples if not official_test or s.official_part != "test"]
    by_name = {s.filename: s for s in pool}
    members: dict[str, list[str]] = defaultdict(list)  # group leader -> files
    for s in pool:
        leader = s.duplicate_of if s.duplicate_of in by_name else s.filename
        members[leader].append(s.filename)
    leaders_by_class: dict[int, list[str]] = defaultdict(list)
    for leader in sorted(members):
        leaders_by_class[by_name[leader].label].append(leader)

    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    for label, leaders in sorted(leaders_by_class.items()):
        random.Random(f"{seed}:{label}").shuffle(leaders)
        n_val = round(len(leaders) * val_fraction)
        n_test = 0 if official_test else round(len(leaders) * test_fraction)
        for i, leader in enumerate(leaders):
            part = "val" if i < n_val else "test" if i < n_val + n_test else "train"
            parts[part].extend(members[leader])
    if official_test:
        parts["test"] = [s.filename for s in dataset.samples if s.official_part == "test"]
    test_fraction = 0.0 if official_test else test_fraction
    return Split(seed, val_fraction, test_fraction, official_test, *(sorted(parts[p]) for p in PARTS))


def restrict_classes(dataset: CarsDataset, class_names: list[str]) -> CarsDataset:
    """The dataset with the images of these classes only, labelled by their position in ``class_names``."""
    unknown = sorted(set(class_names) - set(dataset.class_names))
    if unknown:
        raise DataError(f"{len(unknown)} of the classes are not in the dataset, e.g. {unknown[0]!r}")
    new_label = {dataset.class_names.index(name): i for i, name in enumerate(class_names)}
    samples = [replace(s, label=new_label[s.label]) for s in dataset.samples if s.label in new_label]
    return CarsDataset(dataset.root, list(class_names), samples)


def subset_files(files: list[str], labels: dict[str, int], fraction: float, seed: int) -> list[str]:
    """A seeded, stratified fraction of a part's files for reduced-budget runs: every class keeps its share
    (at least one image)."""
    if fraction >= 1:
        return files
    by_class: dict[int, list[str]] = defaultdict(list)
    for file in sorted(files):
        by_class[labels[file]].append(file)
    chosen = []
    for label, members in sorted(by_class.items()):
        random.Random(f"subset:{seed}:{label}").shuffle(members)
        chosen += members[: max(1, round(len(members) * fraction))]
    return sorted(chosen)


def train_transform(image_size: int, augment: str) -> v2.Compose:
    """'paper': resize to size x size and flip. 'strong': also random crops of the resized image and colour jitter."""
    steps = [v2.Resize((image_size, image_size), antialias=True)]
    if augment == "strong":
        steps += [
            v2.RandomResizedCrop(image_size, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    elif augment != "paper":
        raise ValueError(f"unknown augmentation {augment!r}")
    steps += [v2.RandomHorizontalFlip(), *to_normalized_tensor(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(steps)


def to_normalized_tensor(mean, std) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def eval_transform(image_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """The paper's preprocessing: squash the (cropped) car to image_size x image_size. The same operations as
    ``autospecnet.preprocess.to_model_input``, the serving path's Pillow and numpy version."""
    return v2.Compose([v2.Resize((image_size, image_size), antialias=True), *to_normalized_tensor(mean, std)])


class CarImages(torch.utils.data.Dataset):
    """(image tensor, class index, file name) for a list of a dataset's files."""

    def __init__(self, dataset: CarsDataset, files: list[str], transform, crop: bool = False):
        by_name = {s.filename: s for s in dataset.samples}
        missing = [f for f in files if f not in by_name]
        if missing:
            raise DataError(f"{len(missing)} files of the split are not in the dataset, e.g. {missing[0]}")
        self.root = dataset.root
        self.samples = [by_name[f] for f in files]
        self.transform = transform
        self.crop = crop

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        with Image.open(self.root / sample.filename) as image:
            image = image.convert("RGB")
        if self.crop and sample.bbox is not None:
            x1, y1, x2, y2 = sample.bbox  # the devkit's corners are inclusive
            image = image.crop((x1, y1, x2 + 1, y2 + 1))
        return self.transform(image), sample.label, sample.filename


def epoch_seed(seed: int, epoch: int) -> int:
    """The random seed of one epoch of a run: its order, its items' augmentations, its dropout."""
    return seed * 100_003 + epoch


class SeededShuffle(torch.utils.data.Sampler):
    """Shuffles per epoch and hands each item its own augmentation seed, so that a resumed
    run sees exactly the batches and augmentations of an uninterrupted one, whatever the workers
    and however many processes share the batches."""

    def __init__(self, size: int, seed: int, batch_size: int, drop_last: bool):
        self.size, self.seed, self.epoch, self.start_batch = size, seed, 0, 0
        self.batch_size, self.drop_last = batch_size, drop_last  # the global batch (all processes)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """The epoch's order, from its ``start_batch``-th batch on (the ones before: done before a restart)."""
        self.epoch, self.start_batch = epoch, start_batch

    def _skipped(self) -> int:
        return self.start_batch * (self.batch_size // distributed.world_size())

    def __len__(self) -> int:
        items = len(distributed.shard(list(range(self.size)), self.batch_size, self.drop_last))
        return max(0, items - self._skipped())

    def __iter__(self):
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()
        item_seeds = torch.randint(0, 2**62, (self.size,), generator=generator).tolist()
        # Under torchrun, this process's share of each global batch (distributed.shard); alone, all of it.
        mine = distributed.shard(list(zip(item_seeds, order, strict=True)), self.batch_size, self.drop_last)
        return iter(mine[self._skipped() :])


class AugmentedImages(CarImages):
    """``CarImages`` whose items come with their own seed (``SeededShuffle``): the same augmentation for the same
    item of the same epoch, in any worker."""

    def __getitem__(self, seeded_index):
        item_seed, index = seeded_index
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed)
            return super().__getitem__(index)


def make_loaders(dataset: CarsDataset, split: Split, args, device):
    """(training loader, its sampler, {"val": loader, "test": loader}) for a run's settings."""
    labels = {sample.filename: sample.label for sample in dataset.samples}
    train_files = subset_files(split["train"], labels, args.subset, args.seed)
    if args.batch_size % distributed.world_size():
        raise DataError(
            f"--batch-size {args.batch_size} does not split evenly over {distributed.world_size()} processes"
        )
    loader_kwargs = {
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": args.workers > 0,
    }
    train_images = AugmentedImages(dataset, train_files, train_transform(args.image_size, args.augment), crop=args.crop)
    drop_last = len(train_images) > args.batch_size  # a last batch of 1 breaks BatchNorm; tiny sets keep theirs
    sampler = SeededShuffle(len(train_images), args.seed, args.batch_size, drop_last)
    train_loader = torch.utils.data.DataLoader(
        train_images,
        sampler=sampler,
        drop_last=drop_last,
        # its own generator for the workers' base seed, which would otherwise be drawn from the global RNG
        # that dropout uses, once per epoch or once per run depending on --workers, and break exact resumes
        generator=torch.Generator().manual_seed(args.seed),
        **{**loader_kwargs, "batch_size": args.batch_size // distributed.world_size()},
    )
    eval_loaders = {
        part: torch.utils.data.DataLoader(
            CarImages(dataset, split[part], eval_transform(args.image_size), crop=args.crop),
            **{**loader_kwargs, "persistent_workers": loader_kwargs["persistent_workers"] and part == "val"},
        )
        for part in ("val", "test")  # the test part is read once, at the end: no workers kept for it
    }
    return train_loader, sampler, eval_loaders
