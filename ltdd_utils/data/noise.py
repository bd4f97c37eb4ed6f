"""Label noise, reproducible and recorded: symmetric, asymmetric (class-pair flips) and CIFAR-10N's human labels.

Every injector returns a :class:`NoisyImageData`: ``labels`` are the observed (noisy) labels that methods
train on, ``clean_labels`` the true ones, kept for diagnostics only (the true noise rate, the transition
matrix, the precision of a trusted set). No method may read ``clean_labels``.

Conventions (they differ across papers; the chapters state them):

* ``symmetric`` is *exclusive* (the DDNL benchmark's): with probability ``rate`` a label moves to one of
  the other C - 1 classes, uniformly, so the expected share of wrong labels is ``rate``.
* ``asymmetric`` flips each *source* class of a dataset's map to its target with probability ``rate``
  (DivideMix's CIFAR-10 map); the other classes never flip, so the global rate is ``rate`` times the share
  of source classes (half of the classes for CIFAR-10, so "40 % asymmetric" is about 20 % wrong labels).
* ``cifar10n_<key>``: the human labels of CIFAR-10N (``worse``, ``aggre``, ``random1`` ...), aligned with
  the official training order; ``rate`` is ignored.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checks import ConfigError, rate as check_rate
from ..versions import producer
from . import DatasetNotFoundError, ImageData, data_root
from .bias import stream_seed

# source class -> target class, by dataset name (ImageData.name)
ASYMMETRIC_MAPS = {
    # DivideMix / DD_LNL: truck->automobile, bird->airplane, cat<->dog, deer->horse
    "CIFAR-10": {9: 1, 2: 0, 3: 5, 5: 3, 4: 7},
    # the chapter spec's map: T-shirt<->Shirt, Pullover<->Coat, Sandal->Sneaker
    "FashionMNIST": {0: 6, 6: 0, 2: 4, 4: 2, 5: 7},
    # Co-teaching's MNIST map: 2->7, 3->8, 5<->6, 7->1 (also used for scikit-learn's digits)
    "MNIST": {2: 7, 3: 8, 5: 6, 6: 5, 7: 1},
    "digits": {2: 7, 3: 8, 5: 6, 6: 5, 7: 1},
}
CIFAR10N_KEYS = {"worse": "worse_label", "aggre": "aggre_label", "random1": "random_label1",
                 "random2": "random_label2", "random3": "random_label3"}
NOISE_KINDS = ("none", "symmetric", "asymmetric", *(f"cifar10n_{k}" for k in CIFAR10N_KEYS))


@dataclass
class NoisyImageData(ImageData):
    clean_labels: torch.Tensor | None = None     # the true labels (diagnostics only)
    noise: str = "none"
    nominal_rate: float = 0.0

    @property
    def is_noisy(self) -> torch.Tensor:
        return self.labels != self.clean_labels

    def noise_rate(self) -> float:
        """The measured share of wrong labels (not the nominal rate)."""
        return true_noise_rate(self.labels, self.clean_labels)

    def subset(self, indices) -> "NoisyImageData":
        idx = torch.as_tensor(indices, dtype=torch.long)
        base = ImageData.subset(self, idx)
        return NoisyImageData(**base.__dict__, clean_labels=self.clean_labels[idx], noise=self.noise,
                              nominal_rate=self.nominal_rate)

    def with_labels(self, labels: torch.Tensor) -> "NoisyImageData":
        """The same images with other observed labels (e.g. a method's recalibrated labels)."""
        d = dict(self.__dict__)
        d["labels"] = torch.as_tensor(labels, dtype=torch.long).clone()
        return NoisyImageData(**d)


def symmetric_transition(num_classes: int, rate: float) -> torch.Tensor:
    """Row-stochastic P with P_cc = 1 - rate and P_cj = rate / (C - 1) (exclusive symmetric noise)."""
    check_rate("noise_rate", rate)
    p = torch.full((num_classes, num_classes), rate / (num_classes - 1), dtype=torch.float64)
    p.fill_diagonal_(1 - rate)
    return p


def asymmetric_transition(num_classes: int, rate: float, mapping: dict[int, int]) -> torch.Tensor:
    """Row-stochastic P: a source class c keeps its label with 1 - rate and moves to ``mapping[c]`` with rate."""
    check_rate("noise_rate", rate)
    p = torch.eye(num_classes, dtype=torch.float64)
    for src, dst in mapping.items():
        p[src, src], p[src, dst] = 1 - rate, rate
    return p


def sample_from_transition(labels: torch.Tensor, transition: torch.Tensor, seed: int) -> torch.Tensor:
    """Each label y is replaced by a draw from row y of ``transition`` (seeded, one draw per sample)."""
    gen = torch.Generator().manual_seed(stream_seed(seed, "label-noise"))
    return torch.multinomial(transition[labels].float(), 1, generator=gen).flatten()


def true_noise_rate(noisy: torch.Tensor, clean: torch.Tensor) -> float:
    return float((noisy != clean).float().mean())


def empirical_transition(noisy: torch.Tensor, clean: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Measured P[true c -> observed j]: row c is the distribution of observed labels of the true class c."""
    counts = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    counts.index_put_((clean, noisy), torch.ones(len(clean), dtype=torch.float64), accumulate=True)
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def cifar10n_labels(key: str, root=None) -> dict[str, torch.Tensor]:
    """CIFAR-10N's label arrays (official training order): ``clean`` and the human label set ``key``."""
    if key not in CIFAR10N_KEYS:
        raise ConfigError(f"CIFAR-10N label set {key!r}: expected one of {list(CIFAR10N_KEYS)}")
    folder = data_root(root) / "CIFAR-10N"
    npz, pt = folder / "CIFAR-10_human.npz", folder / "CIFAR-10_human.pt"
    if npz.exists():
        arrays = dict(np.load(npz))
    elif pt.exists():
        arrays = {k: np.asarray(v) for k, v in torch.load(pt, weights_only=False).items()}
    else:
        raise DatasetNotFoundError(
            f"CIFAR-10N labels not found: looked for {npz} and {pt}. Get CIFAR-10_human.pt from "
            "https://github.com/UCSC-REAL/cifar-10-100n (data/) and put it in <data root>/CIFAR-10N/.")
    return {"clean": torch.from_numpy(arrays["clean_label"]).long(),
            "noisy": torch.from_numpy(arrays[CIFAR10N_KEYS[key]]).long()}


@producer("data.noise", 1)
def inject_noise(data: ImageData, kind: str, rate: float = 0.0, seed: int = 0, root=None) -> NoisyImageData:
    """``data`` with noisy observed labels; the true labels are kept in ``clean_labels``.

    ``kind``: one of :data:`NOISE_KINDS`. For CIFAR-10N, ``data`` must be (a subset of) the CIFAR-10 training
    split in the official order: ``data.indices`` (or the positions, for the full split) index the label arrays,
    and the loader's labels are checked against CIFAR-10N's clean labels.
    """
    if kind not in NOISE_KINDS:
        raise ConfigError(f"noise kind {kind!r}: expected one of {list(NOISE_KINDS)}")
    clean = data.labels.clone()
    if kind == "none":
        noisy, rate = clean.clone(), 0.0
    elif kind == "symmetric":
        noisy = sample_from_transition(clean, symmetric_transition(data.num_classes, rate), seed)
    elif kind == "asymmetric":
        if data.name not in ASYMMETRIC_MAPS:
            raise ConfigError(f"no asymmetric noise map for dataset {data.name!r}; known: {list(ASYMMETRIC_MAPS)}")
        noisy = sample_from_transition(clean, asymmetric_transition(data.num_classes, rate, ASYMMETRIC_MAPS[data.name]),
                                       seed)
    else:
        if data.name != "CIFAR-10":
            raise ConfigError(f"noise {kind!r} needs the CIFAR-10 training split, got {data.name!r}")
        arrays = cifar10n_labels(kind.split("_", 1)[1], root)
        pos = data.indices if data.indices is not None else torch.arange(len(data))
        if not torch.equal(arrays["clean"][pos], clean):
            raise ConfigError("CIFAR-10N's clean labels do not match the loaded CIFAR-10 training labels: the image "
                              "source is not in the official training order (see cifar10-jpeg/train_order.csv)")
        noisy = arrays["noisy"][pos]
        rate = true_noise_rate(noisy, clean)
    return NoisyImageData(**data.__dict__ | {"labels": noisy}, clean_labels=clean, noise=kind, nominal_rate=float(rate))
