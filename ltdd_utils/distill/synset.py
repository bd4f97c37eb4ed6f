from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..cache import atomic_torch_save


@dataclass
class SyntheticSet:
    """A distilled (or selected) training set.

    ``images`` are normalised float tensors (N, C, H, W) on the CPU, ``labels`` hard labels. ``soft_labels``
    optionally holds stored teacher logits per image; ``soft_label_source`` says where soft labels come from
    (e.g. the cache key of the teacher that relabels crops online). ``meta`` records the method, its
    parameters and, for selections, the real indices chosen.
    """
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    soft_labels: torch.Tensor | None = None
    soft_label_source: str | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.labels)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def save(self, path: str | Path) -> None:
        atomic_torch_save(self.__dict__, path)

    @classmethod
    def load(cls, path: str | Path) -> "SyntheticSet":
        return cls(**torch.load(path, weights_only=False))
