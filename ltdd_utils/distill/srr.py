"""Squeeze-recover-relabel (SRe2L and its descendants), the base of the soft-label chapters.

* **Squeeze**: a teacher with BatchNorm trained on the real data (the chapters: :func:`ltdd_utils.teachers.teacher`,
  a FastNet; :func:`ltdd_utils.evaluate.train_teacher` with ``norm="batchnorm"`` gives a ConvNet one).
* **Recover** (:func:`recover`): synthetic images, started from real images (EDC) or noise (SRe2L), are
  optimised so that the teacher classifies them as their class and so that their batch statistics at every
  BatchNorm layer match target statistics (by default the teacher's running statistics; the unbiased-recovery
  chapter passes class-balanced ones):

      L(S) = CE(teacher(J(S)), y) + r_bn * sum_l w_l (||mu_l(J(S)) - mu_l*||_2 + ||var_l(J(S)) - var_l*||_2)

  with a random jitter/flip ``J`` per step (one roll for the batch, as in SRe2L's CIFAR code) or, with
  ``crop_scale``, a random resized crop and flip of every image per step (SRe2L's ImageNet recovery), and
  ``w_1 = first_bn_multiplier``, ``w_l = 1`` otherwise (EDC).
* **Relabel**: students are trained on the recovered images with the teacher's soft labels on each augmented
  batch: :func:`ltdd_utils.evaluate.evaluate_synset` with ``label_mode="soft_kl"`` and the teacher; a per-class
  ``logit_offset`` there adjusts the soft labels (ADSA).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment import resized_crops
from ..checks import area_range
from ..models import BNStatsHook, bn_statistics, frozen
from ..versions import producer
from .pixels import optimise_pixels
from .synset import SyntheticSet


def bn_matching_loss(batch_stats, targets, first_bn_multiplier: float = 10.0) -> torch.Tensor:
    """Sum over BatchNorm layers of ||mu - mu*||_2 + ||var - var*||_2, the first layer weighted more."""
    if len(batch_stats) != len(targets):
        raise ValueError(f"{len(batch_stats)} BatchNorm layers recorded but {len(targets)} targets given")
    total = 0.0
    for i, ((m, v), (mt, vt)) in enumerate(zip(batch_stats, targets)):
        w = first_bn_multiplier if i == 0 else 1.0
        total = total + w * (torch.norm(m - mt.to(m), 2) + torch.norm(v - vt.to(v), 2))
    return total


def _jitter(x: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """One random roll (the same for the whole batch, as in SRe2L) and a random horizontal flip."""
    if max_shift > 0:
        dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen))
        x = torch.roll(x, shifts=(dx, dy), dims=(2, 3))
    if torch.rand(1, generator=gen) < 0.5:
        x = x.flip(3)
    return x


@producer("distill.recover", 1, uses=("pixels", "models"))
def recover(teacher: nn.Module, init: SyntheticSet, iterations: int = 200, lr: float = 0.05, r_bn: float = 0.01,
            first_bn_multiplier: float = 10.0, jitter: int = 2, targets=None, seed: int = 0,
            device="cpu", crop_scale: tuple[float, float] | None = None) -> SyntheticSet:
    """Optimise ``init``'s images (Adam, all images in one batch) against the frozen teacher; see the module text.

    ``targets`` (one (mean, var) pair per BatchNorm layer) default to the teacher's running statistics. The
    history of both loss terms is kept in the returned set's ``meta``. ``crop_scale`` (area fractions, e.g.
    ``(0.08, 1.0)``) replaces the jitter by a random resized crop of every image at every step.
    """
    if crop_scale is not None:
        area_range("crop_scale", crop_scale)
    teacher = frozen(teacher, device)
    targets = [(m.detach().clone(), v.detach().clone()) for m, v in (targets or bn_statistics(teacher))]
    if not targets:
        raise ValueError("recover needs a teacher with BatchNorm layers (norm='batchnorm')")
    gen = torch.Generator().manual_seed(seed)
    y = init.labels.to(device)

    def step_loss(x, it):
        hook.clear()
        view = _jitter(x, gen, jitter) if crop_scale is None else resized_crops(x, 1, crop_scale, gen, flip=True)[:, 0]
        ce = F.cross_entropy(teacher(view), y)
        bn = bn_matching_loss(hook.stats, targets, first_bn_multiplier)
        return ce + r_bn * bn, {"ce": float(ce.detach()), "bn": float(bn.detach())}

    with BNStatsHook(teacher) as hook:
        images, history = optimise_pixels(init.images, step_loss, iterations, optimiser="adam", lr=lr,
                                          opt_kwargs={"betas": (0.5, 0.9)}, gen=gen, device=device, desc="recover")
    key = getattr(teacher, "cache_key", None)
    meta = {**init.meta, "method": "recover", "init": init.meta.get("method"), "iterations": iterations, "lr": lr,
            "r_bn": r_bn, "first_bn_multiplier": first_bn_multiplier, "jitter": jitter, "seed": seed,
            **({} if crop_scale is None else {"crop_scale": list(crop_scale)}),
            "history": history, "teacher": key}
    return SyntheticSet(images, init.labels.clone(), init.num_classes, soft_label_source=key, meta=meta)


@torch.no_grad()
def bn_statistics_of(teacher: nn.Module, images: torch.Tensor, device="cpu"):
    """Batch statistics of ``images`` (one batch) at every BatchNorm layer of the teacher (eval mode)."""
    teacher = teacher.to(device).eval()
    with BNStatsHook(teacher) as hook:
        teacher(images.to(device))
        return [(m.cpu(), v.cpu()) for m, v in hook.stats]
