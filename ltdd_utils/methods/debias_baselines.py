"""Debiasing applied when training on a (synthetic) set: the baseline the KDE chapter compares against.

Learning from Failure (LfF, Nam et al., NeurIPS 2020): a *biased* model trained with generalized cross-
entropy (GCE) latches onto the easy spurious attribute; a *debiased* model is trained with per-sample
weights W(x) = L_B(x) / (L_B(x) + L_D(x)) from exponential moving averages of both models' losses
(normalised by their class-wise maximum), so samples the biased model fails on count more.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..augment import dsa


def gce_loss(logits: torch.Tensor, y: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Per-sample GCE in LfF's gradient-equivalent form: CE * p_y^q * q (p_y detached)."""
    p = F.softmax(logits, 1).gather(1, y.view(-1, 1)).squeeze(1).detach()
    return F.cross_entropy(logits, y, reduction="none") * p.pow(q) * q


def train_lff(biased: torch.nn.Module, debiased: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int,
              lr: float = 0.01, batch: int = 256, q: float = 0.7, ema: float = 0.7, aug: str = "dsa",
              seed: int = 0, device="cpu") -> tuple[torch.nn.Module, torch.Tensor]:
    """Train the LfF pair on (x, y); return the debiased model and the final per-sample weights W."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    models = [biased.to(device).train(), debiased.to(device).train()]
    opts = [torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4) for m in models]
    scheds = [torch.optim.lr_scheduler.MultiStepLR(o, [max(1, epochs // 2)], 0.1) for o in opts]
    num_classes = int(y.max()) + 1
    ema_loss = torch.zeros(2, len(y))
    weights = torch.full((len(y),), 0.5)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            xb = x[idx].to(device)
            xb = dsa(xb, siamese=False, generator=gen) if aug == "dsa" else xb
            yb = y[idx].to(device)
            logits_b, logits_d = models[0](xb), models[1](xb)
            ce_b = F.cross_entropy(logits_b, yb, reduction="none").detach().cpu()
            ce_d = F.cross_entropy(logits_d, yb, reduction="none").detach().cpu()
            ema_loss[0, idx] = ema * ema_loss[0, idx] + (1 - ema) * ce_b
            ema_loss[1, idx] = ema * ema_loss[1, idx] + (1 - ema) * ce_d
            # class-wise max normalisation, as in LfF
            class_max = torch.zeros(2, num_classes).scatter_reduce(1, y.expand(2, -1), ema_loss, "amax")
            norm = ema_loss[:, idx] / class_max[:, y[idx]].clamp_min(1e-8)
            w = norm[0] / (norm[0] + norm[1] + 1e-8)
            weights[idx] = w
            loss = gce_loss(logits_b, yb, q).mean() + (F.cross_entropy(logits_d, yb, reduction="none")
                                                        * w.to(device)).mean()
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o in opts:
                o.step()
        for s in scheds:
            s.step()
    return models[1].eval(), weights
