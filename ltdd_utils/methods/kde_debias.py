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

from ..augment import dsa
from ..models import get_model
from ..train import cached_net, fit
from ..versions import producer


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


@producer("method.kde", 1)
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


@producer("net.supcon", 1, uses=("train.fit", "models", "augment"))
def train_supcon(data, model: str = "convnet", width: int = 32, depth: int = 3, norm: str = "instancenorm",
                 epochs: int = 3, batch: int = 256, lr: float = 1e-3, temperature: float = 0.1, seed: int = 0,
                 device="cpu", cache_root=None) -> ProjectionNet:
    """Train (or load from the cache) the SupCon embedding on the biased training set.

    Two views per image differ only by small random shifts (DSA's ``crop``): no colour jitter, which would
    erase the colour shortcut the density estimate relies on. Trained briefly on purpose (the spec's default
    is 3 epochs): early on the network encodes the easy spurious attribute.
    """
    key = dict(data=data.fingerprint(), model=model, width=width, depth=depth, norm=norm, epochs=epochs,
               batch=batch, lr=lr, temperature=temperature)

    def two_views(net, xb, yb, b):
        views = torch.cat([dsa(xb, strategy="crop", siamese=False, generator=b.gen) for _ in range(2)])
        return supcon_loss(net(views), torch.cat([yb, yb]), temperature)

    def train(net):
        x, y = data.tensors()
        fit(net, x, y, two_views, epochs=epochs, batch=batch, optimiser="adam", lr=lr, schedule="constant",
            seed=seed, device=device, desc="supcon")

    build = lambda: ProjectionNet(get_model(model, data.shape[0], data.num_classes, data.shape[1:], width=width,
                                            depth=depth, norm=norm))
    return cached_net("net.supcon", build, train, key, seed=seed, device=device, cache_root=cache_root)


# ----------------------------------------------------------------------------- embeddings and weights
@torch.no_grad()
def embeddings(net: ProjectionNet, data, layer: str = "projection", device="cpu", batch: int = 1000) -> torch.Tensor:
    """Unit-norm embedding of every image: the projection head's output or the L2-normalised backbone."""
    if layer not in ("projection", "backbone"):
        raise ValueError(f"layer {layer!r}: expected 'projection' or 'backbone'")
    net = net.to(device).eval()
    fn = net if layer == "projection" else (lambda x: F.normalize(net.embed(x), dim=1))
    x = data.tensors()[0]
    return torch.cat([fn(x[i:i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])


def random_init_embedding(data, model: str = "convnet", width: int = 32, depth: int = 3, norm: str = "instancenorm",
                          seed: int = 0):
    """The control embedding: the SupCon architecture left at its random initialisation."""
    torch.manual_seed(seed)
    return ProjectionNet(get_model(model, data.shape[0], data.num_classes, data.shape[1:], width=width, depth=depth,
                                   norm=norm)).eval()


def label_free_bandwidth(z: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """The label-free rule of the spec: median distance of each sample to its nearest neighbour in its class."""
    z = F.normalize(z.float(), dim=1)
    nn_dist = []
    for c in range(num_classes):
        zc = z[labels == c]
        if len(zc) > 1:
            d = torch.cdist(zc, zc).fill_diagonal_(float("inf"))
            nn_dist.append(d.min(1).values)
    return float(torch.cat(nn_dist).median())


def oracle_group_weights(labels: torch.Tensor, aligned: torch.Tensor, num_classes: int,
                         conflict_mass: float = 0.5) -> torch.Tensor:
    """Weights from the bias labels (an upper-bound reference, never a method): ``conflict_mass`` of each
    class's weight spread evenly over its bias-conflicting samples, the rest over its aligned ones."""
    w = torch.zeros(len(labels))
    for c in range(num_classes):
        m = labels == c
        conf, alg = m & ~aligned, m & aligned
        if conf.any() and alg.any():
            w[conf], w[alg] = conflict_mass / conf.sum(), (1 - conflict_mass) / alg.sum()
        else:
            w[m] = 1 / m.sum()
    return w


def conflicting_share(data, subset) -> float:
    """Share of the images of ``subset`` (a selection from ``data``: a random or KDE-weighted real subset,
    whose ``meta["indices"]`` name them) that are bias-conflicting in ``data``. A diagnostic: it reads the bias
    labels."""
    full = data.indices.tolist() if data.indices is not None else range(len(data))
    where = {int(v): i for i, v in enumerate(full)}
    pos = torch.tensor([where[int(i)] for i in subset.meta["indices"]])
    return float((~data.aligned[pos]).float().mean())


def weight_diagnostics(z_by_name: dict[str, torch.Tensor], labels, aligned, num_classes: int, bandwidths, alphas):
    """Mean per-class conflict weight share for every embedding x bandwidth x alpha (a bias-label diagnostic)."""
    rows = []
    for name, z in z_by_name.items():
        for h in bandwidths:
            for a in alphas:
                w = kde_weights(z, labels, num_classes, h, a)
                rows.append({"embedding": name, "bandwidth": h, "alpha": a,
                             "conflict_share": float(conflict_weight_share(w, labels, aligned, num_classes).mean())})
    return rows


# ----------------------------------------------------------------------------------- evaluation helpers
def lff_trainer(settings, epochs: int | None = None, q: float = 0.7, ema: float = 0.7, device="cpu"):
    """A ``train_fn`` for ``evaluate_synset``: LfF (biased GCE net + reweighted debiased net) trained on the
    synthetic set with the evaluation recipe's optimiser, learning rate, batch and augmentation; ``q`` the GCE
    exponent, ``ema`` the decay of the per-sample loss averages."""
    from .debias_baselines import train_lff

    def train(model, x, y, seed):
        torch.manual_seed(seed + 7)
        biased = get_model(settings.model, x.shape[1], int(y.max()) + 1, tuple(x.shape[2:]), width=settings.width,
                           depth=settings.depth, norm=settings.norm)
        debiased, _ = train_lff(biased, model, x, y, epochs or settings.epochs, settings.lr, settings.batch, q,
                                ema=ema, aug=settings.aug, seed=seed, device=device)
        return debiased
    from dataclasses import asdict
    # what a student depends on besides its set (evaluate.student_key)
    train.key = {"producers": ["student.lff"], "settings": asdict(settings), "epochs": epochs, "q": q, "ema": ema}
    return train


def colour_purity(images01: torch.Tensor, labels: torch.Tensor, colours: torch.Tensor, threshold: float = 0.5) -> float:
    """Share of images whose stroke colour is nearest (in angle, so stroke brightness does not matter) to
    their class's own colour: 1.0 means every image carries its class's shortcut colour (Colored MNIST).
    The stroke is the pixels whose brightest channel reaches ``threshold`` of the image's maximum."""
    x = images01.clamp(0, 1)
    bright = x.max(1, keepdim=True).values
    mask = (bright >= threshold * bright.amax((2, 3), keepdim=True)).float()
    mean = (x * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1)
    nearest = (F.normalize(mean, dim=1) @ F.normalize(colours.to(mean), dim=1).T).argmax(1)
    return float((nearest == labels).float().mean())


def amplification_index(acc_unbiased_source: float, acc_biased_source: float) -> float:
    """A(M) = (acc on the unbiased test set when M is given the unbiased source - the same with the biased
    source) / the former: the share of accuracy the bias costs method M."""
    return (acc_unbiased_source - acc_biased_source) / acc_unbiased_source
