"""Squeeze-recover-relabel (SRe2L and its descendants), the base of the soft-label chapters.

* **Squeeze**: a teacher with BatchNorm trained on the real data (:func:`ltdd_utils.evaluate.train_teacher`
  with ``norm="batchnorm"``).
* **Recover** (:func:`recover`): synthetic images, started from real images (EDC) or noise (SRe2L), are
  optimised so that the teacher classifies them as their class and so that their batch statistics at every
  BatchNorm layer match target statistics (by default the teacher's running statistics; the unbiased-recovery
  chapter passes class-balanced ones):

      L(S) = CE(teacher(J(S)), y) + r_bn * sum_l w_l (||mu_l(J(S)) - mu_l*||_2 + ||var_l(J(S)) - var_l*||_2)

  with a random jitter/flip ``J`` per step and ``w_1 = first_bn_multiplier``, ``w_l = 1`` otherwise (EDC).
* **Relabel**: students are trained on the recovered images with the teacher's soft labels on each augmented
  batch: :func:`ltdd_utils.evaluate.evaluate_synset` with ``label_mode="soft_kl"`` and the teacher; a per-class
  ``logit_offset`` there adjusts the soft labels (ADSA).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import BNStatsHook, bn_statistics
from ..progress import Progress
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


def recover(teacher: nn.Module, init: SyntheticSet, iterations: int = 200, lr: float = 0.05, r_bn: float = 0.01,
            first_bn_multiplier: float = 10.0, jitter: int = 2, targets=None, seed: int = 0,
            device="cpu") -> SyntheticSet:
    """Optimise ``init``'s images (Adam, all images in one batch) against the frozen teacher; see the module text.

    ``targets`` (one (mean, var) pair per BatchNorm layer) default to the teacher's running statistics. The
    history of both loss terms is kept in the returned set's ``meta``.
    """
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    targets = [(m.detach().clone(), v.detach().clone()) for m, v in (targets or bn_statistics(teacher))]
    if not targets:
        raise ValueError("recover needs a teacher with BatchNorm layers (norm='batchnorm')")
    gen = torch.Generator().manual_seed(seed)
    x = init.images.clone().to(device).requires_grad_(True)
    y = init.labels.to(device)
    opt = torch.optim.Adam([x], lr=lr, betas=(0.5, 0.9))
    hook = BNStatsHook(teacher)
    history = {"ce": [], "bn": []}
    try:
        with Progress(iterations, "recover") as bar:
            for _ in range(iterations):
                hook.clear()
                logits = teacher(_jitter(x, gen, jitter))
                ce = F.cross_entropy(logits, y)
                bn = bn_matching_loss(hook.stats, targets, first_bn_multiplier)
                loss = ce + r_bn * bn
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history["ce"].append(float(ce.detach()))
                history["bn"].append(float(bn.detach()))
                bar.update(ce=history["ce"][-1], bn=history["bn"][-1])
    finally:
        hook.remove()
    meta = {**init.meta, "method": "recover", "init": init.meta.get("method"), "iterations": iterations, "lr": lr,
            "r_bn": r_bn, "first_bn_multiplier": first_bn_multiplier, "jitter": jitter, "seed": seed,
            "history": history, "teacher": getattr(teacher, "teacher_key", None)}
    return SyntheticSet(x.detach().cpu(), init.labels.clone(), init.num_classes,
                        soft_label_source=getattr(teacher, "teacher_key", None), meta=meta)


@torch.no_grad()
def bn_statistics_of(teacher: nn.Module, images: torch.Tensor, device="cpu"):
    """Batch statistics of ``images`` (one batch) at every BatchNorm layer of the teacher (eval mode)."""
    teacher = teacher.to(device).eval()
    hook = BNStatsHook(teacher)
    try:
        teacher(images.to(device))
        return [(m.cpu(), v.cpu()) for m, v in hook.stats]
    finally:
        hook.remove()
