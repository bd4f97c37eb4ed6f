"""Long-tailed training splits with the exponential profile, and many/medium/few class groups.

``n_c = floor(n_max * IF^(-c / (C - 1)))``: class 0 is the head with ``n_max`` images, class C-1 the tail
with ``n_max / IF``. Images are drawn per class without replacement from a seeded generator; the chosen
indices are returned (and kept in ``ImageData.indices``) so a split can be recorded and rebuilt. The test
set is never touched: it stays balanced.
"""
from __future__ import annotations

import math

import torch

from ..checks import ConfigError
from . import ImageData
from ..versions import producer


def longtail_counts(n_max: int, num_classes: int, imbalance_factor: float) -> list[int]:
    """Images per class under the exponential profile; ``imbalance_factor`` = n_head / n_tail >= 1."""
    if not imbalance_factor >= 1:
        raise ConfigError(f"imbalance factor = {imbalance_factor!r} is not allowed: expected a number >= 1")
    if num_classes < 2:
        return [n_max] * num_classes
    return [max(1, math.floor(n_max * imbalance_factor ** (-c / (num_classes - 1)))) for c in range(num_classes)]


def tail_order(num_classes: int, seed: int | None = None) -> list[int]:
    """Which class takes which rank of the profile: ``order[r]`` is the class with the r-th largest count (r = 0
    the head). ``seed`` None: class r has rank r (class 0 the head); an integer: a seeded permutation, so that
    a dataset's class difficulty is not confounded with tail rank."""
    if seed is None:
        return list(range(num_classes))
    return torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed)).tolist()


def longtail_indices(labels: torch.Tensor, imbalance_factor: float, seed: int = 0,
                     n_max: int | None = None, order: list[int] | None = None) -> torch.Tensor:
    """Sorted indices of a long-tailed subset of ``labels``: class ``order[r]`` gets the r-th count of the
    profile (default: class 0 the head, class C-1 the tail; see :func:`tail_order`).

    ``n_max`` defaults to the size of the smallest class, so every class can supply its count.
    """
    num_classes = int(labels.max()) + 1
    available = torch.bincount(labels, minlength=num_classes)
    n_max = int(available.min()) if n_max is None else n_max
    by_rank = longtail_counts(n_max, num_classes, imbalance_factor)
    if order is not None and sorted(order) != list(range(num_classes)):
        raise ConfigError(f"order = {order!r} is not allowed: expected a permutation of the {num_classes} classes")
    counts = by_rank if order is None else [by_rank[list(order).index(c)] for c in range(num_classes)]
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c, n in enumerate(counts):
        pool = (labels == c).nonzero().flatten()
        if n > len(pool):
            raise ConfigError(f"class {c} has {len(pool)} images, fewer than the {n} the profile asks for")
        chosen.append(pool[torch.randperm(len(pool), generator=gen)[:n]])
    return torch.cat(chosen).sort().values


@producer("data.longtail", 1)
def make_longtail(data: ImageData, imbalance_factor: float, seed: int = 0, n_max: int | None = None,
                  order: list[int] | None = None) -> ImageData:
    """The long-tailed subset of a training split (``imbalance_factor = 1`` gives a balanced subset of n_max);
    ``order``: which class takes which rank (:func:`tail_order`; default class 0 the head)."""
    return data.subset(longtail_indices(data.labels, imbalance_factor, seed, n_max, order))


def balanced_like(full: ImageData, d: ImageData) -> ImageData:
    """A class-balanced subset of ``full`` with the size of ``d`` (``len(d) // C`` images per class, a fixed draw):
    the clean counterpart of a long-tailed split, chapter 01's balanced teacher's data and the leaderboard's."""
    from .bias import stream_seed
    return make_longtail(full, 1, stream_seed(0, "adsa-balanced"), n_max=len(d) // full.num_classes)


def held_out(full: ImageData, splits, per_class: int, seed: int = 12345) -> ImageData:
    """A balanced validation set: ``per_class`` images of each class of ``full`` that are in none of ``splits``
    (subsets of ``full``), drawn with a seeded generator (selection only: never distilled, never tested)."""
    free = torch.ones(len(full), dtype=torch.bool)
    for d in splits:
        free[d.indices] = False
    gen = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(full.num_classes):
        pool = (free & (full.labels == c)).nonzero().flatten()
        if len(pool) < per_class:
            raise ConfigError(f"val_per_class = {per_class} is not allowed: class {c} has only {len(pool)} training "
                              "images outside the splits")
        keep.append(pool[torch.randperm(len(pool), generator=gen)[:per_class]])
    return full.subset(torch.cat(keep).sort().values)


GROUPS = ("many", "medium", "few")


def class_groups(class_counts, scheme: str = "thirds", many_above: int = 100,
                 few_below: int = 20) -> dict[str, list[int]]:
    """Many/medium/few class groups, defined once for every chapter.

    ``thirds`` (default; used for 10-class LT sets where shot thresholds make no sense): classes sorted by
    count, the top ``round(C/3)`` are *many*, the bottom ``round(C/3)`` are *few*, the rest *medium*; with
    CIFAR-10 that is head 3 / middle 4 / tail 3. ``shots`` (the ImageNet-LT / CIFAR-100-LT convention):
    *many* has more than ``many_above`` training images, *few* fewer than ``few_below``.
    """
    counts = [int(c) for c in class_counts]
    C = len(counts)
    if scheme == "thirds":
        order = sorted(range(C), key=lambda c: (-counts[c], c))
        k = round(C / 3)
        groups = {"many": order[:k], "medium": order[k:C - k], "few": order[C - k:]}
    elif scheme == "shots":
        groups = {"many": [c for c in range(C) if counts[c] > many_above],
                  "medium": [c for c in range(C) if few_below <= counts[c] <= many_above],
                  "few": [c for c in range(C) if counts[c] < few_below]}
    else:
        raise ConfigError(f"group scheme {scheme!r} is not allowed: expected 'thirds' or 'shots'")
    return {g: sorted(v) for g, v in groups.items()}
