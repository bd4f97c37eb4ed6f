"""A small data root to carry where there is no network and little room (e.g. a GPU lease that takes a few tens
of MB): ``python -m ltdd_utils pack-data OUT --per-class N``.

CIFAR-10 (the JPEG image folder) keeps the first ``per_class`` training images of each class in the official
training order and its whole test set (or its first ``test_per_class`` images of each class); the folder's
``SUBSET`` file says so in words, and the loader adds that to the data source, so every record and fingerprint
made from it names the subset. MNIST and FashionMNIST are copied
as they are (their official files)."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

from ..checks import ConfigError, one_of
from . import CIFAR10_CLASSES, SUBSET_FILE, data_root

PACKABLE = ("cifar10", "mnist", "fashionmnist")
_FOLDERS = {"mnist": "MNIST", "fashionmnist": "FashionMNIST"}


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def pack(out, per_class: int, root=None, datasets=("cifar10", "mnist"), test_per_class: int | None = None
         ) -> dict[str, int]:
    """Write the packed data root ``out``; returns the bytes written per dataset. ``test_per_class`` keeps the first
    test images of each class (by file name) instead of the whole test set."""
    src, out = data_root(root), Path(out)
    if per_class < 1:
        raise ConfigError(f"per_class = {per_class!r} is not allowed: expected an integer >= 1")
    if test_per_class is not None and test_per_class < 1:
        raise ConfigError(f"test_per_class = {test_per_class!r} is not allowed: expected an integer >= 1 or None")
    for d in datasets:
        one_of(*PACKABLE)("datasets", d)
    sizes = {}
    for d in datasets:
        if d == "cifar10":
            base, dst = src / "cifar10-jpeg", out / "cifar10-jpeg"
            order = base / "train_order.csv"
            if not order.exists():
                raise FileNotFoundError(f"{order} not found: packing needs the CIFAR-10 image folder with its official "
                                        "training order (train_order.csv)")
            with open(order) as f:
                rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
            taken = {c: 0 for c in CIFAR10_CLASSES}
            kept = []
            for r in rows:                                   # the first per_class of each class, official order
                c = r["path"].split("/")[1]
                if taken[c] < per_class:
                    taken[c] += 1
                    kept.append(r["path"])
            if min(taken.values()) < per_class:
                raise ConfigError(f"per_class = {per_class} is not allowed: a CIFAR-10 class has {min(taken.values())}")
            for rel in kept:
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(base / rel, dst / rel)
            with open(dst / "train_order.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["index", "path"])
                w.writerows(enumerate(kept))
            for c in CIFAR10_CLASSES:
                files = sorted((base / "test" / c).glob("*.jpg"))
                (dst / "test" / c).mkdir(parents=True, exist_ok=True)
                for f in files[:test_per_class]:
                    shutil.copy2(f, dst / "test" / c / f.name)
            test = ("the whole test set" if test_per_class is None
                    else f"the first {test_per_class} test images of each class")
            (dst / SUBSET_FILE).write_text(f"the first {per_class} training images of each class in the official order "
                                           f"({len(kept):,} of {len(rows):,}); {test}\n")
            sizes[d] = _size(dst)
        else:
            folder = _FOLDERS[d]
            if not (src / folder).is_dir():
                raise FileNotFoundError(f"{src / folder} not found in the data root {src}")
            shutil.copytree(src / folder, out / folder, dirs_exist_ok=True)
            sizes[d] = _size(out / folder)
    return sizes
