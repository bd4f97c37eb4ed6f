"""Dataset registry: one call, ``load_dataset(name, root, train)``, for every dataset the chapters use.

Each dataset comes back as an :class:`ImageData`: uint8 images (N, C, H, W), int64 labels, class names,
the normalisation constants and a ``source`` string that says which files the pixels came from (results
obtained on the JPEG copy of CIFAR-10 are labelled with it).

The data root is the ``root`` argument, else ``$LTDD_DATA``, else ``~/.cache/ltdd/data``. Files already in
the root are used as they are; otherwise torchvision's download is tried (it needs a network); when
neither works, :class:`DatasetNotFoundError` names the files expected and where they were looked for.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..cache import atomic_torch_save, cache_dir
from ..checks import one_of
from ..versions import producer

DATA_ENV = "LTDD_DATA"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not in the data root and could not be downloaded."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root``, else ``$LTDD_DATA``, else ``~/.cache/ltdd/data``."""
    return Path(root or os.environ.get(DATA_ENV) or Path.home() / ".cache" / "ltdd" / "data").expanduser()


@dataclass
class ImageData:
    images: torch.Tensor          # uint8, (N, C, H, W)
    labels: torch.Tensor          # int64, (N,)
    classes: list[str]
    name: str
    source: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    indices: torch.Tensor | None = field(default=None)  # positions in the full split, when a subset

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, indices) -> "ImageData":
        """The samples at ``indices`` (positions in this object); ``.indices`` keeps positions in the full split."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        base = idx if self.indices is None else self.indices[idx]
        return ImageData(self.images[idx], self.labels[idx], self.classes, self.name, self.source,
                         self.mean, self.std, base)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images.float() / 255 - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float images back to [0, 1] for display."""
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x * std + mean).clamp(0, 1)

    def fingerprint(self, labels: bool = True) -> str:
        """Identifies a training set: dataset, pixel source, the exact indices and labels used and, for biased
        data, the bias attributes. Part of every cache key of a product made from this data. With
        ``labels=False`` it identifies the images only (e.g. their embeddings under random networks)."""
        idx = self.indices if self.indices is not None else torch.arange(len(self))
        extra = b"" if getattr(self, "bias", None) is None else self.bias.numpy().tobytes()
        lab = self.labels.numpy().tobytes() if labels else b""
        h = hashlib.sha1(idx.numpy().tobytes() + lab + extra).hexdigest()[:16]
        return f"{self.name}|{self.source}|{h}"

    def tensors(self, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float images and labels on ``device``."""
        return self.normalize(self.images.to(device)), self.labels.to(device)


@dataclass(frozen=True)
class DatasetSpec:
    loader: Callable[[Path, bool], ImageData]
    expected: Callable[[Path], list[str]]   # human-readable files/folders one of which must exist
    present: Callable[[Path], bool]
    how_to_get: str


# ----------------------------------------------------------------------------------------- MNIST-like
_MNIST_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">i", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "i" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_path(raw: Path, stem: str) -> Path | None:
    for p in (raw / stem, raw / f"{stem}.gz"):
        if p.exists():
            return p
    return None


def _mnist_like(folder: str, classes: list[str], mean, std, tv_name: str) -> DatasetSpec:
    def raw(root):
        return root / folder / "raw"

    def present(root):
        return all(_idx_path(raw(root), s) for t in (True, False) for s in _MNIST_FILES[t])

    def expected(root):
        return [str(raw(root)) + "/{" + ",".join(f"{s}.gz" for t in (True, False) for s in _MNIST_FILES[t]) + "}"]

    def load(root, train):
        paths = [_idx_path(raw(root), s) for s in _MNIST_FILES[train]]
        if None in paths:
            raise _not_found(folder.lower(), root)
        x = torch.from_numpy(_read_idx(paths[0]).copy()).unsqueeze(1)
        y = torch.from_numpy(_read_idx(paths[1]).astype(np.int64))
        return ImageData(x, y, classes, folder, f"official IDX files ({raw(root)})", mean, std)

    return DatasetSpec(load, expected, present, f"torchvision.datasets.{tv_name}(root, download=True)")


# -------------------------------------------------------------------------------------------- CIFAR
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _decode_folder(files: list[Path]) -> torch.Tensor:
    from PIL import Image
    arr = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _cached_decode(key: str, build: Callable[[], tuple[torch.Tensor, torch.Tensor]]):
    path = cache_dir() / "datasets" / f"{key}.pt"
    if path.exists():
        d = torch.load(path)
        return d["images"], d["labels"]
    print(f"[data] decoding {key} once; cached at {path}")
    x, y = build()
    atomic_torch_save({"images": x, "labels": y}, path)
    return x, y


SUBSET_FILE = "SUBSET"         # in a packed image folder (data.pack): which images it keeps, in words


def _subset_note(base: Path) -> str | None:
    f = base / SUBSET_FILE
    return f.read_text().strip() if f.exists() else None


def _cifar10_jpeg(root: Path, train: bool, note: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    base = root / "cifar10-jpeg"
    split = "train" if train else "test"
    # a packed subset (``note``: its SUBSET file) is decoded and cached apart from the whole folder
    key = f"cifar10-jpeg-{split}" + (f"-{hashlib.sha1(note.encode()).hexdigest()[:12]}" if note else "")

    def build():
        if train and (base / "train_order.csv").exists():
            with open(base / "train_order.csv") as f:
                rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
            rels = [r["path"] for r in rows]  # official training order (CIFAR-10N uses it)
        else:
            rels = [f"{split}/{c}/{p.name}" for c in CIFAR10_CLASSES
                    for p in sorted((base / split / c).glob("*.jpg"))]
        labels = torch.tensor([CIFAR10_CLASSES.index(r.split("/")[1]) for r in rels])
        return _decode_folder([base / r for r in rels]), labels

    return _cached_decode(key, build)


def _cifar10_load(root, train):
    if (root / "cifar10-jpeg" / ("train" if train else "test")).is_dir():
        note = _subset_note(root / "cifar10-jpeg")
        x, y = _cifar10_jpeg(root, train, note)
        return ImageData(x, y, CIFAR10_CLASSES, "CIFAR-10",
                         "JPEG copy of CIFAR-10 (cifar10-jpeg, quality 75; close to, not equal to, the official pixels)"
                         + (f"; packed subset: {note}" if note else ""),
                         (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    return _torchvision_cifar("CIFAR10", root, train, CIFAR10_CLASSES,
                              (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def _torchvision_cifar(tv_name, root, train, classes, mean, std):
    import torchvision
    folder = {"CIFAR10": "cifar-10-batches-py", "CIFAR100": "cifar-100-python"}[tv_name]
    if not (root / folder).is_dir():
        raise _not_found(tv_name.lower(), root)
    ds = getattr(torchvision.datasets, tv_name)(str(root), train=train, download=False)
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return ImageData(x, torch.tensor(ds.targets), classes or list(ds.classes), tv_name.replace("CIFAR", "CIFAR-"),
                     f"official python batches ({root / folder})", mean, std)


def _cifar100_load(root, train):
    return _torchvision_cifar("CIFAR100", root, train, None,
                              (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762))


# ------------------------------------------------------------------------------------ Tiny-ImageNet
def _tiny_load(root, train):
    base = root / "tiny-imagenet-200"
    if not base.is_dir():
        raise _not_found("tinyimagenet", root)
    wnids = sorted((base / "wnids.txt").read_text().split())
    split = "train" if train else "val"

    def build():
        if train:
            files = [(p, i) for i, w in enumerate(wnids) for p in sorted((base / "train" / w / "images").glob("*.JPEG"))]
        else:
            ann = [line.split("\t")[:2] for line in (base / "val" / "val_annotations.txt").read_text().splitlines()]
            files = [(base / "val" / "images" / f, wnids.index(w)) for f, w in sorted(ann)]
        return _decode_folder([f for f, _ in files]), torch.tensor([i for _, i in files])

    x, y = _cached_decode(f"tinyimagenet-{split}", build)
    names = dict(line.split("\t") for line in (base / "words.txt").read_text().splitlines()) \
        if (base / "words.txt").exists() else {}
    return ImageData(x, y, [names.get(w, w).split(",")[0] for w in wnids], "Tiny-ImageNet",
                     f"image folder ({base})", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


# ------------------------------------------------------------------------------------------- digits
def _digits_load(root, train):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(np.round(d.images * 255 / 16).astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    # fixed stratified split: every 5th image of each class is a test image
    rank = torch.zeros_like(y)
    for c in range(10):
        pos = (y == c).nonzero().flatten()
        rank[pos] = torch.arange(len(pos))
    keep = (rank % 5 != 0) if train else (rank % 5 == 0)
    return ImageData(x[keep], y[keep], [str(i) for i in range(10)], "digits",
                     "scikit-learn bundled digits (8x8, 1,797 images)", (0.3,), (0.4,))


# ------------------------------------------------------------------------------------------ helpers
def _try_download(tv_name: str, root: Path) -> None:
    import torchvision
    try:
        root.mkdir(parents=True, exist_ok=True)
        getattr(torchvision.datasets, tv_name)(str(root), train=True, download=True)
        getattr(torchvision.datasets, tv_name)(str(root), train=False, download=True)
    except Exception as e:  # no network, read-only root, ...
        print(f"[data] download of {tv_name} into {root} failed: {type(e).__name__}: {e}")


def _not_found(name: str, root: Path) -> DatasetNotFoundError:
    spec = DATASETS[name]
    return DatasetNotFoundError(
        f"dataset {name!r} not found in the data root {root}. The data root is the folder given by the "
        f"DATA_ROOT parameter, else by the environment variable ${DATA_ENV}, else ~/.cache/ltdd/data. "
        f"Expected {' or '.join(spec.expected(root))}. To get it: {spec.how_to_get} with root = the data root "
        f"(torchvision downloads it there when the machine is online), or copy the files into the data root, "
        f"or point ${DATA_ENV} at a folder that holds them.")


DATASETS: dict[str, DatasetSpec] = {
    "mnist": _mnist_like("MNIST", [str(i) for i in range(10)], (0.1307,), (0.3081,), "MNIST"),
    "fashionmnist": _mnist_like("FashionMNIST", ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                                 "Shirt", "Sneaker", "Bag", "Ankle boot"],
                                (0.2861,), (0.3530,), "FashionMNIST"),
    "cifar10": DatasetSpec(_cifar10_load,
                           lambda r: [str(r / "cifar10-jpeg" / "train") + "/<class>/*.jpg", str(r / "cifar-10-batches-py")],
                           lambda r: (r / "cifar10-jpeg" / "train").is_dir() or (r / "cifar-10-batches-py").is_dir(),
                           "torchvision.datasets.CIFAR10(root, download=True)"),
    "cifar100": DatasetSpec(_cifar100_load, lambda r: [str(r / "cifar-100-python")],
                            lambda r: (r / "cifar-100-python").is_dir(),
                            "torchvision.datasets.CIFAR100(root, download=True)"),
    "tinyimagenet": DatasetSpec(_tiny_load, lambda r: [str(r / "tiny-imagenet-200") + "/{wnids.txt,train,val}"],
                                lambda r: (r / "tiny-imagenet-200" / "wnids.txt").exists(),
                                "download tiny-imagenet-200.zip from cs231n.stanford.edu and unzip it in the root"),
    "digits": DatasetSpec(_digits_load, lambda r: ["(bundled with scikit-learn)"], lambda r: True, "nothing: bundled"),
}


def is_available(name: str, root=None) -> bool:
    return DATASETS[name].present(data_root(root))


def _download_default(download: bool | None) -> bool:
    return os.environ.get("LTDD_DOWNLOAD", "1") != "0" if download is None else download


def resolve_dataset(name: str, root=None, download: bool | None = None) -> str:
    """Resolve ``'auto'`` (CIFAR-10 when in the data root, else FashionMNIST) and make sure the files exist.

    Missing files are fetched with torchvision's download when ``download`` (default: unless
    ``$LTDD_DOWNLOAD`` is ``0``) and the dataset has a downloader; otherwise, or when that fails,
    :class:`DatasetNotFoundError` is raised here, before any compute.
    """
    if name == "auto":
        name = "cifar10" if is_available("cifar10", root) else "fashionmnist"
    if name not in DATASETS:
        one_of("auto", *DATASETS)("dataset", name)
    path = data_root(root)
    if not is_available(name, root) and _download_default(download) and name in _TV_NAMES:
        _try_download(_TV_NAMES[name], path)
    if not is_available(name, root):
        raise _not_found(name, path)
    return name


# what 'auto' resolves to, by the name its images carry (ImageData.name): how a run's records tell what 'auto' was
AUTO_BY_NAME = {"CIFAR-10": "cifar10", "FashionMNIST": "fashionmnist"}

_TV_NAMES = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}


@producer("data", 1)
def load_dataset(name: str, root=None, train: bool = True, download: bool | None = None) -> ImageData:
    """Load ``name``'s train (``train=True``) or test split from the data root (see :func:`resolve_dataset`)."""
    name = resolve_dataset(name, root, download)
    return DATASETS[name].loader(data_root(root), train)
