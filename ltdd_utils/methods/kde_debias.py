"""KDE sample reweighting against dataset bias (Cui, Wang, Xiong, Hsieh, ICML 2024), core functions.

Bias-aligned samples of a class cluster tightly in an embedding that picked up the spurious attribute;
bias-conflicting samples sit in low-density regions. A per-class Gaussian kernel density estimate on unit-
norm embeddings, p(x_i) = mean_j exp(-||z_i - z_j||^2 / (2 h^2)) (self term included, which bounds the
weight of an isolated point), gives weights w_i = p(x_i)^(-alpha), normalised within each class. The
weights enter the real side of distribution matching as weighted class means
(``distill.distribution_matching(..., sample_weights=w)``). The paper's kernel, bandwidth and transform are
not public: these are the spec's reconstruction, each a parameter.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kde_density(z: torch.Tensor, labels: torch.Tensor, num_classes: int, bandwidth: float = 0.2,
                normalize: bool = True) -> torch.Tensor:
    """Per-sample Gaussian KDE within its own class (self term included)."""
    if not bandwidth > 0:
        raise ValueError(f"bandwidth = {bandwidth!r} is not allowed: expected a number > 0")
    z = F.normalize(z.float(), dim=1) if normalize else z.float()
    dens = torch.empty(len(z))
    for c in range(num_classes):
        pos = (labels == c).nonzero().flatten()
        if len(pos) == 0:
            continue
        d2 = torch.cdist(z[pos], z[pos]).pow(2)
        dens[pos] = torch.exp(-d2 / (2 * bandwidth ** 2)).mean(1)
    return dens


def kde_weights(z: torch.Tensor, labels: torch.Tensor, num_classes: int, bandwidth: float = 0.2,
                alpha: float = 1.0, normalize: bool = True) -> torch.Tensor:
    """Weights w_i proportional to density^(-alpha), summing to 1 within each class."""
    w = kde_density(z, labels, num_classes, bandwidth, normalize).pow(-alpha)
    totals = torch.zeros(num_classes).index_add_(0, labels, w)
    return w / totals[labels]


def conflict_weight_share(weights: torch.Tensor, labels: torch.Tensor, aligned: torch.Tensor,
                          num_classes: int) -> torch.Tensor:
    """Per class, the share of the total weight that falls on bias-conflicting samples (uniform weights give
    the class's conflict ratio). A diagnostic: it needs bias labels, so it never selects anything."""
    total = torch.zeros(num_classes).index_add_(0, labels, weights)
    conflicting = torch.zeros(num_classes).index_add_(0, labels, weights * (~aligned).float())
    return conflicting / total.clamp_min(1e-12)
