"""Biased datasets built reproducibly from real data: Colored MNIST and background-biased FashionMNIST.

Every sample gets a *bias attribute* b (a colour) with as many values as classes. A training sample is
*bias-aligned* when b equals its label and *bias-conflicting* otherwise; the bias-conflicting ratio rho is
the fraction of conflicting training samples. Within each class, after a seeded shuffle, a fraction
(1 - rho) gets the class's own colour and the rest is split as evenly as counts allow over the other
colours (the LfF protocol). Test sets are unbiased: colours drawn uniformly, independent of the label.
The attribute is kept in ``BiasedImageData.bias`` so chapters can report aligned / conflicting accuracy;
no distiller may read it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ..checks import ConfigError
from . import ImageData
from ..versions import producer

# LfF's Colored-MNIST mean colours (RGB in [0, 1]), one per class.
CMNIST_COLORS = torch.tensor([
    [0.984, 0.313, 0.169], [0.991, 0.916, 0.352], [0.673, 0.461, 0.580], [0.783, 0.832, 0.601],
    [0.088, 0.778, 0.982], [0.321, 0.961, 0.446], [0.025, 0.236, 0.759], [0.555, 0.102, 0.762],
    [0.208, 0.393, 0.019], [0.834, 0.202, 0.267]])
# Background colours of the ReBias / FairDD background-biased template (0-255 scaled to [0, 1]).
BACKGROUND_COLORS = torch.tensor([
    [255, 0, 0], [255, 128, 0], [255, 255, 0], [255, 255, 128], [0, 255, 0], [0, 255, 255], [0, 0, 255],
    [128, 0, 255], [255, 0, 255], [255, 255, 255]]) / 255
CMNIST_NOISE_STD = [0.05, 0.02, 0.01, 0.005, 0.002]    # by severity 1..5


@dataclass
class BiasedImageData(ImageData):
    bias: torch.Tensor | None = None      # bias attribute per sample (int64)

    @property
    def aligned(self) -> torch.Tensor:
        """True for bias-aligned samples (attribute equals label)."""
        return self.bias == self.labels

    def conflict_ratio(self) -> float:
        return float((~self.aligned).float().mean())

    def subset(self, indices) -> "BiasedImageData":
        base = super().subset(indices)
        return BiasedImageData(**base.__dict__, bias=self.bias[torch.as_tensor(indices, dtype=torch.long)])


def stream_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose derived from a run seed. Without it, two seeded per-class shuffles of the same
    class sizes (the attribute split and a random subset, say) draw the same permutation, and a "random"
    subset would be exactly the bias-conflicting samples."""
    return int.from_bytes(hashlib.sha1(f"{purpose}:{seed}".encode()).digest()[:6], "little")


def bias_attributes(labels: torch.Tensor, num_values: int, conflict_ratio: float | None, seed: int) -> torch.Tensor:
    """Bias attribute per sample: LfF's aligned/conflicting split, or uniform (``conflict_ratio=None``)."""
    gen = torch.Generator().manual_seed(stream_seed(seed, "bias-attributes"))
    if conflict_ratio is None:
        return torch.randint(num_values, (len(labels),), generator=gen)
    if not 0 <= conflict_ratio < 1:
        raise ConfigError(f"conflict_ratio = {conflict_ratio!r} is not allowed: expected a rate in [0, 1)")
    bias = labels.clone()
    for c in range(int(labels.max()) + 1):
        pos = (labels == c).nonzero().flatten()
        pos = pos[torch.randperm(len(pos), generator=gen)]
        n_conf = round(conflict_ratio * len(pos))
        others = torch.tensor([v for v in range(num_values) if v != c])
        bias[pos[:n_conf]] = others[torch.arange(n_conf) % len(others)]   # even split over the other values
    return bias


def _check_severity(severity: int) -> None:
    if not 1 <= severity <= 5:
        raise ConfigError(f"severity = {severity!r} is not allowed: expected an integer in 1..5")


def colored_mnist(mnist: ImageData, conflict_ratio: float | None, seed: int = 0, severity: int = 4) -> BiasedImageData:
    """Colour each digit's strokes with its attribute's colour (+ per-image noise); background stays black.

    ``conflict_ratio=None`` gives the unbiased version (test sets).
    """
    _check_severity(severity)
    bias = bias_attributes(mnist.labels, len(CMNIST_COLORS), conflict_ratio, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    colour = (CMNIST_COLORS[bias] + CMNIST_NOISE_STD[severity - 1] * torch.randn(len(bias), 3, generator=gen)).clamp(0, 1)
    grey = mnist.images.float() / 255                                   # (N, 1, H, W)
    images = (grey * colour.view(-1, 3, 1, 1) * 255).round().to(torch.uint8)
    return _wrap(mnist, images, bias, "Colored MNIST", conflict_ratio, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                 f"seed {seed}, severity {severity}")


def background_fmnist(fmnist: ImageData, conflict_ratio: float | None, seed: int = 0) -> BiasedImageData:
    """Paint the background of each FashionMNIST image with its attribute's colour; the object keeps its grey
    levels.

    The background is the pixels that are exactly 0 in the original image (the ReBias convention); every other
    pixel keeps its grey level g in all three channels. Our construction [R]: the paper's generator is not
    public. (Version 1 blended, g + (1 - g) * colour, which on the template's white background erased the
    object entirely: every image with attribute 9 was blank.)
    """
    bias = bias_attributes(fmnist.labels, len(BACKGROUND_COLORS), conflict_ratio, seed)
    grey = (fmnist.images.float() / 255).expand(-1, 3, -1, -1)
    background = (fmnist.images == 0).expand(-1, 3, -1, -1)
    images = torch.where(background, BACKGROUND_COLORS[bias].view(-1, 3, 1, 1).expand_as(grey), grey)
    return _wrap(fmnist, (images * 255).round().to(torch.uint8), bias, "BG-FashionMNIST", conflict_ratio,
                 (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), f"seed {seed}, object kept")


def _wrap(base: ImageData, images, bias, name, conflict_ratio, mean, std, draw: str) -> BiasedImageData:
    # the source names the ratio and the draw, so cache keys (data_fingerprint) tell draws apart
    setting = "unbiased" if conflict_ratio is None else f"{conflict_ratio:.1%} bias-conflicting"
    return BiasedImageData(images, base.labels.clone(), base.classes, name, f"{base.source}; {setting}; {draw}",
                           mean, std, base.indices, bias=bias)


# ------------------------------------------------------------------------------------ Corrupted CIFAR-10
# Ten corruptions implementable with torch and PIL alone (LfF's generator needs ImageMagick and frost images),
# each with five severities. The severity constants are our choice [R], following ImageNet-C's style; they are
# not the LfF/DFA release's, so numbers will not match that release.
CORRUPTIONS = ["gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "defocus_blur",
               "brightness", "contrast", "saturate", "pixelate", "jpeg"]
_SEVERITY = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],     # noise std
    "shot_noise": [500, 250, 100, 75, 50],                 # photons per unit intensity
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],       # salt-and-pepper fraction
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1.0],            # sigma (pixels)
    "defocus_blur": [1.0, 1.5, 2.0, 2.5, 3.0],             # disk radius (pixels)
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],             # added to every channel
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],               # contrast factor
    "saturate": [0.3, 0.1, 2.0, 5.0, 20.0],                # saturation factor
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],             # down-sampling factor
    "jpeg": [80, 65, 58, 50, 40],                          # JPEG quality
}


def _blur(x, kernel):
    k = kernel / kernel.sum()
    r = k.shape[-1] // 2
    weight = k.expand(x.shape[1], 1, *k.shape)
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, (r, r, r, r), mode="reflect"), weight,
                                      groups=x.shape[1])


def corrupt(x: torch.Tensor, kind: str, severity: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply corruption ``kind`` at ``severity`` (1..5) to float images in [0, 1], shape (N, 3, H, W)."""
    if kind not in _SEVERITY:
        raise ConfigError(f"corruption {kind!r} is not allowed: expected one of {CORRUPTIONS}")
    _check_severity(severity)
    c, g = _SEVERITY[kind][severity - 1], generator or torch.Generator().manual_seed(0)
    if kind == "gaussian_noise":
        x = x + c * torch.randn(x.shape, generator=g)
    elif kind == "shot_noise":
        x = torch.poisson(x * c, generator=g) / c
    elif kind == "impulse_noise":
        u = torch.rand(x.shape, generator=g)
        x = torch.where(u < c / 2, torch.zeros_like(x), torch.where(u > 1 - c / 2, torch.ones_like(x), x))
    elif kind == "gaussian_blur":
        t = torch.arange(-3, 4, dtype=torch.float)
        k1 = torch.exp(-t ** 2 / (2 * c ** 2))
        x = _blur(x, k1.view(-1, 1) * k1.view(1, -1))
    elif kind == "defocus_blur":
        r = int(c + 0.5)
        t = torch.arange(-r, r + 1, dtype=torch.float)
        x = _blur(x, ((t.view(-1, 1) ** 2 + t.view(1, -1) ** 2) <= c ** 2).float())
    elif kind == "brightness":
        x = x + c
    elif kind == "contrast":
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - m) * c + m
    elif kind == "saturate":
        grey = x.mean(dim=1, keepdim=True)
        x = (x - grey) * c + grey
    elif kind == "pixelate":
        h, w = x.shape[-2:]
        small = torch.nn.functional.interpolate(x, size=(int(h * c), int(w * c)), mode="area")
        x = torch.nn.functional.interpolate(small, size=(h, w), mode="nearest")
    elif kind == "jpeg":
        import io
        import numpy as np
        from PIL import Image
        out = []
        for img in (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=c)
            out.append(np.asarray(Image.open(buf).convert("RGB")))
        x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255
    return x.clamp(0, 1)


def corrupted_cifar10(cifar: ImageData, conflict_ratio: float | None, seed: int = 0, severity: int = 4,
                      corruptions: list[str] = CORRUPTIONS) -> BiasedImageData:
    """Corrupt each image with the corruption type of its bias attribute (type = class for aligned samples)."""
    if len(corruptions) != cifar.num_classes:
        raise ConfigError(f"corruptions: need one per class ({cifar.num_classes}), got {len(corruptions)}")
    bias = bias_attributes(cifar.labels, len(corruptions), conflict_ratio, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    images = torch.empty_like(cifar.images)
    for b, kind in enumerate(corruptions):
        pos = (bias == b).nonzero().flatten()
        if len(pos):
            x = corrupt(cifar.images[pos].float() / 255, kind, severity, gen)
            images[pos] = (x * 255).round().to(torch.uint8)
    return _wrap(cifar, images, bias, "Corrupted CIFAR-10", conflict_ratio, cifar.mean, cifar.std,
                 f"seed {seed}, severity {severity}, {'/'.join(corruptions)}")


# ------------------------------------------------------------------------------ train / val / test splits
BIASED_DATASETS = {"cmnist": "mnist", "bg_fmnist": "fashionmnist", "corrupted_cifar10": "cifar10"}


@producer("data.bias", 2)
def make_biased(kind: str, base: ImageData, conflict_ratio: float | None, seed: int = 0,
                severity: int = 4) -> BiasedImageData:
    """The biased (or, with ``conflict_ratio=None``, unbiased) version of ``base`` for a dataset kind."""
    if kind == "cmnist":
        return colored_mnist(base, conflict_ratio, seed, severity)
    if kind == "bg_fmnist":
        return background_fmnist(base, conflict_ratio, seed)
    if kind == "corrupted_cifar10":
        return corrupted_cifar10(base, conflict_ratio, seed, severity)
    raise ConfigError(f"biased dataset {kind!r} is not allowed: expected one of {list(BIASED_DATASETS)}")


def _per_class_draw(labels: torch.Tensor, counts: list[int], seed: int) -> list[torch.Tensor]:
    """Disjoint seeded draws of ``counts[k]`` indices per class, one index tensor per entry of ``counts``."""
    gen = torch.Generator().manual_seed(stream_seed(seed, "biased-splits"))
    parts = [[] for _ in counts]
    for c in range(int(labels.max()) + 1):
        pos = (labels == c).nonzero().flatten()
        pos = pos[torch.randperm(len(pos), generator=gen)]
        if sum(counts) > len(pos):
            raise ConfigError(f"class {c} has {len(pos)} images; {sum(counts)} were asked for ({counts})")
        start = 0
        for k, n in enumerate(counts):
            parts[k].append(pos[start:start + n])
            start += n
    return [torch.cat(p).sort().values for p in parts]


@producer("data.bias", 2)
def biased_splits(kind: str, train_base: ImageData, test_base: ImageData, conflict_ratio: float,
                  per_class: int, val_per_class: int, test_per_class: int | None = None, seed: int = 0,
                  severity: int = 4) -> dict[str, BiasedImageData]:
    """The four splits of a biased-data experiment, drawn reproducibly from a real dataset:

    * ``train``: ``per_class`` images per class with the LfF aligned/conflicting split at ``conflict_ratio``;
    * ``unbiased``: the same images with attributes drawn uniformly (the unbiased source of Claim 1);
    * ``val``: ``val_per_class`` other training images, uniform attributes (selection only, never distilled);
    * ``test``: ``test_per_class`` test images per class (None = all), uniform attributes.
    """
    tr_idx, val_idx = _per_class_draw(train_base.labels, [per_class, val_per_class], seed)
    test = test_base
    if test_per_class is not None:
        (te_idx,) = _per_class_draw(test_base.labels, [test_per_class], seed)
        test = test_base.subset(te_idx)
    train = train_base.subset(tr_idx)
    return {"train": make_biased(kind, train, conflict_ratio, seed, severity),
            "unbiased": make_biased(kind, train, None, seed + 100, severity),
            "val": make_biased(kind, train_base.subset(val_idx), None, seed + 200, severity),
            "test": make_biased(kind, test, None, seed + 300, severity)}
