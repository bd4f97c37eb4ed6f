"""Selection baselines: a random real subset and feature-space herding."""
from __future__ import annotations

from typing import Callable

import torch

from ..data import ImageData
from ..versions import producer
from .synset import SyntheticSet


def _select(data: ImageData, chosen: list[torch.Tensor], method: str, **meta) -> SyntheticSet:
    idx = torch.cat(chosen)
    x, y = data.subset(idx).tensors()
    real_idx = idx if data.indices is None else data.indices[idx]
    return SyntheticSet(x, y, data.num_classes, meta={"method": method, "indices": real_idx.tolist(),
                                                      "per_class": [len(c) for c in chosen], **meta})


@producer("distill.random", 1)
def random_subset(data: ImageData, ipc: int, seed: int = 0) -> SyntheticSet:
    """``ipc`` real images per class drawn at random (all of a class's images when it has fewer)."""
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(data.num_classes):
        pool = (data.labels == c).nonzero().flatten()
        chosen.append(pool[torch.randperm(len(pool), generator=gen)[:ipc]])
    return _select(data, chosen, "random", seed=seed)


@producer("distill.weighted_subset", 1)
def weighted_subset(data: ImageData, ipc: int, weights: torch.Tensor, seed: int = 0) -> SyntheticSet:
    """``ipc`` real images per class drawn without replacement with probability proportional to ``weights``
    (one per image of ``data``; e.g. KDE weights, which favour rare, bias-conflicting images)."""
    weights = torch.as_tensor(weights, dtype=torch.float)
    if weights.shape != (len(data),) or not bool((weights >= 0).all()):
        raise ValueError(f"weights: expected {len(data)} non-negative numbers, one per image, got shape "
                         f"{tuple(weights.shape)}")
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(data.num_classes):
        pool = (data.labels == c).nonzero().flatten()
        w = weights[pool].double() + 1e-12                     # an all-zero class falls back to uniform
        chosen.append(pool[torch.multinomial(w, min(ipc, len(pool)), replacement=False, generator=gen)])
    return _select(data, chosen, "weighted", seed=seed)


@torch.no_grad()
def embed_all(embed: Callable[[torch.Tensor], torch.Tensor], data: ImageData, device="cpu",
              batch: int = 1024) -> torch.Tensor:
    """Features of every image of ``data`` (normalised on the fly, in batches, without autograd)."""
    out = []
    for i in range(0, len(data), batch):
        out.append(embed(data.normalize(data.images[i:i + batch].to(device))).float().cpu())
    return torch.cat(out)


@producer("distill.herding", 1)
def herding(data: ImageData, ipc: int, embed: Callable[[torch.Tensor], torch.Tensor], device="cpu",
            features: torch.Tensor | None = None) -> SyntheticSet:
    """Greedy herding (Welling, 2009) in feature space, per class.

    Picks, one at a time, the image whose addition brings the mean of the chosen features closest to the
    class mean. ``embed`` maps normalised images to features (e.g. a teacher's ``embed``).
    """
    feats = embed_all(embed, data, device) if features is None else features
    chosen = []
    for c in range(data.num_classes):
        pool = (data.labels == c).nonzero().flatten()
        f = feats[pool]
        mu = f.mean(0)
        picked, total = [], torch.zeros_like(mu)
        available = torch.ones(len(pool), dtype=torch.bool)
        for k in range(1, min(ipc, len(pool)) + 1):
            dist = ((mu - (total + f) / k) ** 2).sum(1)
            dist[~available] = float("inf")
            j = int(dist.argmin())
            picked.append(j)
            available[j] = False
            total += f[j]
        chosen.append(pool[torch.tensor(picked, dtype=torch.long)])
    return _select(data, chosen, "herding")
