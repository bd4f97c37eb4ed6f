"""Debiasing applied when training on a (synthetic) set: the baseline the KDE chapter compares against.

Learning from Failure (LfF, Nam et al., NeurIPS 2020): a *biased* model trained with generalized cross-
entropy (GCE) latches onto the easy spurious attribute; a *debiased* model is trained with per-sample
weights W(x) = L_B(x) / (L_B(x) + L_D(x)) from exponential moving averages of both models' losses
(normalised by their class-wise maximum), so samples the biased model fails on count more.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..train import fit
from ..versions import producer


def gce_loss(logits: torch.Tensor, y: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Per-sample GCE in LfF's gradient-equivalent form: CE * p_y^q * q (p_y detached)."""
    p = F.softmax(logits, 1).gather(1, y.view(-1, 1)).squeeze(1).detach()
    return F.cross_entropy(logits, y, reduction="none") * p.pow(q) * q


@producer("student.lff", 2, uses=("train.fit", "augment"))
def train_lff(biased: torch.nn.Module, debiased: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int,
              lr: float = 0.01, batch: int = 256, q: float = 0.7, ema: float = 0.7, aug: str = "dsa",
              seed: int = 0, device="cpu") -> tuple[torch.nn.Module, torch.Tensor]:
    """Train the LfF pair on (x, y) with the book's recipe (:func:`ltdd_utils.train.fit`: SGD, x0.1 at half,
    ``aug`` per batch); return the debiased model and the final per-sample weights W.

    Version 2: the batches are augmented with ``aug`` whatever it is (version 1 applied only DSA and trained
    without augmentation when the evaluation used crop/flip)."""
    num_classes = int(y.max()) + 1
    ema_loss = torch.zeros(2, len(y))
    weights = torch.full((len(y),), 0.5)

    def step_loss(pair, xb, yb, b):
        idx = b.idx
        logits_b, logits_d = pair[0](xb), pair[1](xb)
        ce_b = F.cross_entropy(logits_b, yb, reduction="none").detach().cpu()
        ce_d = F.cross_entropy(logits_d, yb, reduction="none").detach().cpu()
        ema_loss[0, idx] = ema * ema_loss[0, idx] + (1 - ema) * ce_b
        ema_loss[1, idx] = ema * ema_loss[1, idx] + (1 - ema) * ce_d
        # class-wise max normalisation, as in LfF
        class_max = torch.zeros(2, num_classes).scatter_reduce(1, y.expand(2, -1), ema_loss, "amax")
        norm = ema_loss[:, idx] / class_max[:, y[idx]].clamp_min(1e-8)
        w = norm[0] / (norm[0] + norm[1] + 1e-8)
        weights[idx] = w
        return gce_loss(logits_b, yb, q).mean() + (F.cross_entropy(logits_d, yb, reduction="none")
                                                   * w.to(xb.device)).mean()

    # one SGD over both networks' parameters: the same update as one optimiser per network
    pair = fit(torch.nn.ModuleList([biased, debiased]), x, y, step_loss, epochs=epochs, batch=batch, lr=lr,
               schedule="step_half", aug=aug, seed=seed, device=device)
    pair[1].train_steps, pair[1].precision = pair.train_steps, pair.precision     # read by the records
    return pair[1].eval(), weights
