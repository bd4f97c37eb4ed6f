"""Differentiable siamese augmentation (DSA) and plain crop/flip.

DSA (Zhao & Bilen, 2021) applies, per call, one operation drawn from the strategy string
(``color_crop_cutout_flip_scale_rotate``; ``color`` = brightness + saturation + contrast), implemented with
differentiable tensor ops so gradients reach synthetic pixels. *Siamese*: with ``siamese=True`` one
parameter draw is shared by the whole batch, and calling with the same ``seed`` on the real and the
synthetic batch applies the same transformation to both, whatever their sizes. With ``siamese=False``
every image gets its own draw (used when training students).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .versions import producer

DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"


@dataclass(frozen=True)
class DSAParams:
    """Ranges of the DSA operations (the DM/DSA code's defaults)."""
    scale: float = 1.2
    rotate: float = 15.0       # degrees
    crop_pad: float = 0.125    # fraction of the side
    cutout: float = 0.5        # fraction of the side
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    flip_p: float = 0.5


def _rand(g: torch.Generator, n: int, siamese: bool) -> torch.Tensor:
    r = torch.rand(1 if siamese else n, generator=g)
    return r.expand(n) if siamese else r


def _affine(x, theta):
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def _scale(x, g, p, s):
    n = len(x)
    sx = _rand(g, n, s) * (p.scale - 1 / p.scale) + 1 / p.scale
    sy = _rand(g, n, s) * (p.scale - 1 / p.scale) + 1 / p.scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    return _affine(x, theta)


def _rotate(x, g, p, s):
    n = len(x)
    a = (_rand(g, n, s) - 0.5) * 2 * p.rotate / 180 * math.pi
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
    return _affine(x, theta)


def _flip(x, g, p, s):
    keep = (_rand(g, len(x), s) >= p.flip_p).to(x.device).view(-1, 1, 1, 1)
    return torch.where(keep, x, x.flip(3))


def _color(x, g, p, s):
    n = len(x)
    b = ((_rand(g, n, s) - 0.5) * p.brightness).to(x).view(-1, 1, 1, 1)
    x = x + b
    sat = (_rand(g, n, s) * p.saturation).to(x).view(-1, 1, 1, 1)
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * sat + m
    con = (_rand(g, n, s) + p.contrast).to(x).view(-1, 1, 1, 1)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * con + m


def _crop(x, g, p, s):
    """Translate by up to ``crop_pad`` of the side (zero padding), in whole pixels."""
    n, _, h, w = x.shape
    sh, sw = int(h * p.crop_pad + 0.5), int(w * p.crop_pad + 0.5)
    tx = (_rand(g, n, s) * (2 * sw + 1)).floor() - sw
    ty = (_rand(g, n, s) * (2 * sh + 1)).floor() - sh
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2], theta[:, 1, 2] = 2 * tx / w, 2 * ty / h
    return _affine(x, theta)


def _cutout(x, g, p, s):
    n, _, h, w = x.shape
    ch, cw = int(h * p.cutout + 0.5), int(w * p.cutout + 0.5)
    cy = (_rand(g, n, s) * (h + 1 - ch % 2)).long()
    cx = (_rand(g, n, s) * (w + 1 - cw % 2)).long()
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    inside = ((ys - cy.view(-1, 1, 1)).abs() <= ch // 2) & ((xs - cx.view(-1, 1, 1)).abs() <= cw // 2)
    return x * (~inside).to(x).unsqueeze(1)


OPS = {"color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip, "scale": _scale, "rotate": _rotate}


@producer("augment", 1)
def dsa(x: torch.Tensor, seed: int | None = None, strategy: str = DEFAULT_STRATEGY, params: DSAParams = DSAParams(),
        siamese: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply one DSA operation drawn from ``strategy`` to the batch ``x`` (differentiable in ``x``).

    Same ``seed`` -> same operation and, with ``siamese=True``, the same parameters for every image and
    every batch it is applied to. Pass a ``generator`` instead of a seed to draw from a running stream.
    """
    if not strategy or strategy == "none":
        return x
    g = generator if generator is not None else torch.Generator().manual_seed(
        int(torch.randint(0, 2**31 - 1, (1,))) if seed is None else seed)
    names = strategy.split("_")
    for n in names:
        if n not in OPS:
            raise ValueError(f"DSA strategy {strategy!r}: unknown operation {n!r}; known: {sorted(OPS)}")
    op = names[int(torch.randint(len(names), (1,), generator=g))]
    return OPS[op](x, g, params, siamese)


@producer("augment", 1)
def crop_flip(x: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None,
              mode: str = "constant") -> torch.Tensor:
    """Random crop with padding (zeros, or ``mode="reflect"``) and horizontal flip, drawn per image (the standard
    CIFAR augmentation)."""
    n, _, h, w = x.shape
    g = generator or torch.default_generator
    padded = F.pad(x, (pad, pad, pad, pad), mode=mode)
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    rows = (oy.view(-1, 1) + torch.arange(h)).to(x.device)
    cols = (ox.view(-1, 1) + torch.arange(w)).to(x.device)
    out = padded[torch.arange(n, device=x.device).view(-1, 1, 1, 1), torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1),
                 rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]
    flip = (torch.rand(n, generator=g) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, out.flip(3), out)


def standard_crop_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`crop_flip` with the padding the book uses everywhere: an eighth of the side (4 px at 32 px)."""
    return crop_flip(x, pad=max(1, x.shape[-1] // 8), generator=generator)


# Training-time augmentations by name: ``AUGMENTS[name](batch, generator)``, a fresh draw per image.
def resized_crops(x: torch.Tensor, num_crops: int, scale=(0.08, 1.0), gen: torch.Generator | None = None,
                  flip: bool = False) -> torch.Tensor:
    """``num_crops`` square random-resized crops of every image (area fraction ~ U(scale)), resized back to
    the full size (bilinear): (N, M, C, H, W). One crop per image and draw, through one affine grid."""
    n = len(x)
    if n == 0:
        return x.new_zeros((0, num_crops, *x.shape[1:]))
    k = n * num_crops
    s = torch.empty(k).uniform_(scale[0], scale[1], generator=gen).sqrt()            # side / full side
    cx = (torch.rand(k, generator=gen) * 2 - 1) * (1 - s)
    cy = (torch.rand(k, generator=gen) * 2 - 1) * (1 - s)
    sx = s * (torch.where(torch.rand(k, generator=gen) < 0.5, -1.0, 1.0) if flip else 1.0)
    theta = torch.zeros(k, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, s, cy
    src = x.repeat_interleave(num_crops, 0)
    grid = F.affine_grid(theta.to(x), list(src.shape), align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.view(n, num_crops, *x.shape[1:])


def cutmix_images(xa, xb, lam: float, gen: torch.Generator):
    """Paste a box of area (1 - lam) of ``xb`` into ``xa``; returns the images and the exact kept fraction."""
    H, W = xa.shape[-2:]
    r = math.sqrt(1 - lam)
    h, w = int(H * r), int(W * r)
    cy, cx = (int(v) for v in (torch.randint(0, H, (1,), generator=gen), torch.randint(0, W, (1,), generator=gen)))
    y0, y1, x0, x1 = max(cy - h // 2, 0), min(cy + h // 2, H), max(cx - w // 2, 0), min(cx + w // 2, W)
    out = xa.clone()
    out[..., y0:y1, x0:x1] = xb[..., y0:y1, x0:x1]
    return out, 1 - (y1 - y0) * (x1 - x0) / (H * W)


AUGMENTS = {
    "dsa": lambda x, g: dsa(x, siamese=False, generator=g),
    "cropflip": standard_crop_flip,
    # the teachers' augmentation: translations of at most 2 px (reflected borders) and flips
    "translate_flip": lambda x, g: crop_flip(x, 2, g, mode="reflect"),
    "none": lambda x, g: x,
}


def augment(x: torch.Tensor, name: str, generator: torch.Generator) -> torch.Tensor:
    if name not in AUGMENTS:
        raise ValueError(f"augmentation {name!r} is not allowed: expected one of {list(AUGMENTS)}")
    return AUGMENTS[name](x, generator)
