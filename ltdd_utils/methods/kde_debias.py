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


# ------------------------------------------------------------------------- the bias-revealing embedding
class ProjectionNet(torch.nn.Module):
    """A backbone (any registered model with ``embed``) and a 2-layer projection head (L2-normalised output)."""

    def __init__(self, backbone: torch.nn.Module, hidden: int = 128, out: int = 64):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Sequential(torch.nn.Linear(backbone.feature_dim, hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(hidden, out))

    def embed(self, x):
        return self.backbone.embed(x)

    def forward(self, x):
        return F.normalize(self.head(self.embed(x)), dim=1)


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., 2020, L_out) on unit-norm embeddings ``z`` (all views stacked)."""
    sim = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positives = (labels.view(-1, 1) == labels.view(1, -1)) & ~self_mask
    n_pos = positives.sum(1).clamp_min(1)
    return -(log_prob.masked_fill(~positives, 0).sum(1) / n_pos).mean()


def train_supcon(data, model: str = "convnet", width: int = 32, depth: int = 3, norm: str = "instancenorm",
                 epochs: int = 3, batch: int = 256, lr: float = 1e-3, temperature: float = 0.1, seed: int = 0,
                 device="cpu", cache_root=None) -> ProjectionNet:
    """Train (or load from the cache) the SupCon embedding on the biased training set.

    Two views per image differ only by small random shifts (DSA's ``crop``): no colour jitter, which would
    erase the colour shortcut the density estimate relies on. Trained briefly on purpose (the spec's default
    is 3 epochs): early on the network encodes the easy spurious attribute.
    """
    from ..augment import dsa
    from ..cache import cached, config_key
    from ..evaluate import data_fingerprint
    from ..models import get_model
    from ..progress import Progress

    cfg = dict(data=data_fingerprint(data), model=model, width=width, depth=depth, norm=norm, epochs=epochs,
               batch=batch, lr=lr, temperature=temperature, seed=seed)

    def build():
        torch.manual_seed(seed)
        return ProjectionNet(get_model(model, data.shape[0], data.num_classes, data.shape[1:], width=width,
                                       depth=depth, norm=norm))

    def fit():
        net = build().to(device).train()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        with Progress(epochs, "supcon") as bar:
            for _ in range(epochs):
                perm, total = torch.randperm(len(data), generator=gen), 0.0
                for i in range(0, len(data), batch):
                    x, y = data.subset(perm[i:i + batch]).tensors(device)
                    views = torch.cat([dsa(x, strategy="crop", siamese=False, generator=gen) for _ in range(2)])
                    loss = supcon_loss(net(views), torch.cat([y, y]), temperature)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(y)
                bar.update(loss=total / len(data))
        return {k: v.cpu() for k, v in net.state_dict().items()}

    net = build()
    net.load_state_dict(cached("experts/supcon", cfg, fit, cache_root))
    net.expert_key = config_key(cfg)
    return net.to(device).eval()
