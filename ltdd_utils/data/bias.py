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

from dataclasses import dataclass

import torch

from ..config import ConfigError
from . import ImageData

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


def bias_attributes(labels: torch.Tensor, num_values: int, conflict_ratio: float | None, seed: int) -> torch.Tensor:
    """Bias attribute per sample: LfF's aligned/conflicting split, or uniform (``conflict_ratio=None``)."""
    gen = torch.Generator().manual_seed(seed)
    if conflict_ratio is None:
        return torch.randint(num_values, (len(labels),), generator=gen)
    if not 0 <= conflict_ratio < 1:
        raise ConfigError(f"conflict_ratio = {conflict_ratio!r} is not allowed: expected a rate in [0, 1)")
    bias = labels.clone()
    for c in range(int(labels.max()) + 1):
        pos = (labels == c).nonzero().flatten()
        pos = pos[torch.randperm(len(pos), generator=gen)]
        n_conf = round(conflict_ratio * len(pos))
        others = [v for v in range(num_values) if v != c]
        for k, i in enumerate(pos[:n_conf]):           # even split over the other values, in turn
            bias[i] = others[k % len(others)]
    return bias


def colored_mnist(mnist: ImageData, conflict_ratio: float | None, seed: int = 0, severity: int = 4) -> BiasedImageData:
    """Colour each digit's strokes with its attribute's colour (+ per-image noise); background stays black.

    ``conflict_ratio=None`` gives the unbiased version (test sets).
    """
    if not 1 <= severity <= 5:
        raise ConfigError(f"severity = {severity!r} is not allowed: expected an integer in 1..5")
    bias = bias_attributes(mnist.labels, len(CMNIST_COLORS), conflict_ratio, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    colour = (CMNIST_COLORS[bias] + CMNIST_NOISE_STD[severity - 1] * torch.randn(len(bias), 3, generator=gen)).clamp(0, 1)
    grey = mnist.images.float() / 255                                   # (N, 1, H, W)
    images = (grey * colour.view(-1, 3, 1, 1) * 255).round().to(torch.uint8)
    return _wrap(mnist, images, bias, "Colored MNIST", conflict_ratio, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def background_fmnist(fmnist: ImageData, conflict_ratio: float | None, seed: int = 0) -> BiasedImageData:
    """Paint the background of each FashionMNIST image with its attribute's colour; the object stays grey-white.

    Pixel = g + (1 - g) * colour, with g the grey level in [0, 1] (a soft mask). Our construction [R]: the
    paper's generator is not public.
    """
    bias = bias_attributes(fmnist.labels, len(BACKGROUND_COLORS), conflict_ratio, seed)
    grey = fmnist.images.float() / 255
    images = ((grey + (1 - grey) * BACKGROUND_COLORS[bias].view(-1, 3, 1, 1)) * 255).round().to(torch.uint8)
    return _wrap(fmnist, images, bias, "BG-FashionMNIST", conflict_ratio, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _wrap(base: ImageData, images, bias, name, conflict_ratio, mean, std) -> BiasedImageData:
    setting = "unbiased" if conflict_ratio is None else f"{conflict_ratio:.1%} bias-conflicting"
    return BiasedImageData(images, base.labels.clone(), base.classes, name, f"{base.source}; {setting}", mean, std,
                           base.indices, bias=bias)
