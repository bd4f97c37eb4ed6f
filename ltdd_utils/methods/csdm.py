"""CSDM: class-aware spectral distribution matching (Wu et al., arXiv 2603.01698), as reconstructed in
``specs/csdm.md``.

*Spectral Distribution Distance.* For a shift-invariant kernel k(x, y) = kappa(x - y) with kappa(0) = 1,
Bochner's theorem gives a probability measure Lambda with kappa(delta) = E_{w~Lambda}[exp(i w.delta)], and

    SDD(P, Q) = E_{w~Lambda} |phi_P(w) - phi_Q(w)|^2 = MMD_k^2(P, Q)

where phi is the characteristic function (CF). With empirical CFs over samples and M frequencies drawn from
Lambda, the estimate costs O((n + m) M d): linear in the number of samples.

*Amplitude and phase.* With a = phi_P(w), b = phi_Q(w):
|a - b|^2 = (|a| - |b|)^2 + 2 (|a||b| - Re(a conj b)) = A(w) + P(w), exactly.

*Class awareness.* Per class c, L_c = mean_w [alpha_c A_c(w) + (1 - alpha_c) P_c(w)], L = sum_c L_c, with
alpha_c smaller (more phase, "realism") for tail classes and larger (more amplitude, "diversity") for head
classes. alpha_c = 1/2 for every class gives SDD/2 (plain SDD matching). The alpha_c formula is not public:
:func:`alpha_schedule` offers the spec's three candidates, each a parameter.

Everything here works on feature tensors; :func:`spectral_matching` is the distillation loop (the same
shape as DM in ``ltdd_utils.distill.dm``: random feature nets, real-image initialisation, optional DSA).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment import DEFAULT_STRATEGY, dsa
from ..data import ImageData
from ..distill.baselines import random_subset
from ..distill.dm import class_mean_embeddings, dm_loss, make_net_pool
from ..distill.pixels import optimise_pixels
from ..distill.synset import SyntheticSet
from ..models import compile_wanted, embed_in_chunks, embed_with_input_grad, frozen
from ..precision import resolve as resolve_precision
from ..versions import producer

KERNELS = ("gaussian", "laplacian", "cauchy")
ALPHA_RULES = ("loglinear", "reliability", "two_level", "constant")
LOSSES = ("spectral", "mmd", "linear")
CF_FORMS = ("mmd", "sqrt")


# ------------------------------------------------------------------------------------------- kernels
def sample_frequencies(kernel: str, num: int, dim: int, sigma: float = 1.0, generator: torch.Generator | None = None,
                       dtype=torch.float32) -> torch.Tensor:
    """``num`` frequencies (rows) from the spectral measure of ``kernel`` with bandwidth ``sigma``.

    gaussian exp(-|d|^2 / 2 sigma^2): w ~ N(0, I / sigma^2); laplacian exp(-|d|_1 / sigma): each coordinate
    Cauchy(0, 1/sigma); cauchy prod_k 1 / (1 + d_k^2 / sigma^2): each coordinate Laplace(0, 1/sigma).
    """
    if kernel == "gaussian":
        return torch.randn(num, dim, generator=generator, dtype=dtype) / sigma
    u = torch.rand(num, dim, generator=generator, dtype=dtype).clamp(1e-7, 1 - 1e-7) - 0.5
    if kernel == "laplacian":
        return torch.tan(math.pi * u) / sigma
    if kernel == "cauchy":
        return -torch.sign(u) * torch.log1p(-2 * u.abs()) / sigma
    raise ValueError(f"kernel {kernel!r} is not allowed: expected one of {KERNELS}")


def median_bandwidth(z: torch.Tensor, max_rows: int = 512) -> float:
    """The median heuristic: the median Euclidean distance between distinct rows of ``z`` (at most ``max_rows``
    of them, evenly strided, so that every class of a class-ordered batch takes part)."""
    z = z.detach().float()
    z = z[::max(1, -(-len(z) // max_rows))]
    d = torch.cdist(z, z)
    off = d[~torch.eye(len(z), dtype=torch.bool, device=z.device)]
    if not len(off):
        raise ValueError("the median heuristic needs at least two feature vectors")
    return float(off.median().clamp_min(1e-6))


def kernel_matrix(x: torch.Tensor, y: torch.Tensor, kernel: str, sigma: float = 1.0) -> torch.Tensor:
    """The exact kernel between the rows of ``x`` and ``y`` (for checks and the MMD baseline)."""
    d = x.unsqueeze(1) - y.unsqueeze(0) if kernel != "gaussian" else None
    if kernel == "gaussian":
        return torch.exp(-torch.cdist(x, y).pow(2) / (2 * sigma ** 2))
    if kernel == "laplacian":
        return torch.exp(-d.abs().sum(-1) / sigma)
    if kernel == "cauchy":
        return (1 / (1 + (d / sigma) ** 2)).prod(-1)
    raise ValueError(f"kernel {kernel!r} is not allowed: expected one of {KERNELS}")


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel: str = "gaussian", sigma: float = 1.0) -> torch.Tensor:
    """Squared MMD, the biased V-statistic (diagonal terms included): what SDD with empirical CFs estimates."""
    return (kernel_matrix(x, x, kernel, sigma).mean() + kernel_matrix(y, y, kernel, sigma).mean()
            - 2 * kernel_matrix(x, y, kernel, sigma).mean())


# ---------------------------------------------------------------------------------------- spectral terms
def ecf(z: torch.Tensor, omega: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Empirical characteristic function of the rows of ``z`` at the rows of ``omega``: (real, imaginary)."""
    proj = z @ omega.T
    return proj.cos().mean(0), proj.sin().mean(0)


def class_ecf(z: torch.Tensor, labels: torch.Tensor, num_classes: int, omega: torch.Tensor,
              batch: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class empirical CFs, two (num_classes, M) tensors; rows of absent classes are zero."""
    re = torch.zeros(num_classes, omega.shape[0], dtype=z.dtype, device=z.device)
    im = torch.zeros_like(re)
    for i in range(0, len(z), batch):
        proj = z[i:i + batch] @ omega.T
        re.index_add_(0, labels[i:i + batch], proj.cos())
        im.index_add_(0, labels[i:i + batch], proj.sin())
    n = torch.bincount(labels, minlength=num_classes).clamp_min(1).to(z.dtype).unsqueeze(1)
    return re / n, im / n


def amplitude_phase(a_re, a_im, b_re, b_im, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitude term (|a| - |b|)^2 and phase term 2 (|a||b| - Re(a conj b)); A + P = |a - b|^2."""
    abs_a = torch.sqrt(a_re ** 2 + a_im ** 2 + eps)
    abs_b = torch.sqrt(b_re ** 2 + b_im ** 2 + eps)
    amp = (abs_a - abs_b) ** 2
    phase = (2 * (abs_a * abs_b - a_re * b_re - a_im * b_im)).clamp_min(0)
    return amp, phase


def sdd(x: torch.Tensor, y: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """Monte-Carlo SDD: mean over the frequencies of |phi_x - phi_y|^2 (an estimate of MMD^2)."""
    (xr, xi), (yr, yi) = ecf(x, omega), ecf(y, omega)
    return ((xr - yr) ** 2 + (xi - yi) ** 2).mean()


def class_terms(real_cf, syn_feats: torch.Tensor, syn_labels: torch.Tensor, omega: torch.Tensor):
    """Per-class amplitude and phase terms, (C, M) each, between precomputed real CFs and synthetic features."""
    num_classes = real_cf[0].shape[0]
    s_re, s_im = class_ecf(syn_feats, syn_labels, num_classes, omega)
    return amplitude_phase(real_cf[0], real_cf[1], s_re, s_im)


def csdm_loss(amp: torch.Tensor, phase: torch.Tensor, alphas: torch.Tensor, present: torch.Tensor | None = None,
              form: str = "mmd") -> torch.Tensor:
    """sum_c mean_w [alpha_c A_c + (1 - alpha_c) P_c] over the ``present`` classes.

    ``form='sqrt'`` is NCFM's per-frequency square root, mean_w sqrt(alpha A + (1 - alpha) P) (not an MMD).
    """
    a = alphas.to(amp).unsqueeze(1)
    per_freq = a * amp + (1 - a) * phase
    if form == "sqrt":
        per_freq = torch.sqrt(per_freq + 1e-12)
    elif form != "mmd":
        raise ValueError(f"form {form!r}: expected one of {CF_FORMS}")
    per_class = per_freq.mean(1)
    return (per_class if present is None else per_class[present]).sum()


def class_mmd_loss(real_feats: torch.Tensor, real_labels: torch.Tensor, syn_feats: torch.Tensor,
                   syn_labels: torch.Tensor, num_classes: int, kernel: str = "gaussian",
                   sigma: float = 1.0) -> torch.Tensor:
    """sum_c MMD^2 between real and synthetic features of class c, without the constant real-real term
    (exact kernel: O(n_c m) per class; the baseline SDD approximates)."""
    loss = syn_feats.new_zeros(())
    for c in range(num_classes):
        s = syn_feats[syn_labels == c]
        if len(s) == 0:
            continue
        r = real_feats[real_labels == c]
        loss = loss + kernel_matrix(s, s, kernel, sigma).mean() - 2 * kernel_matrix(r, s, kernel, sigma).mean()
    return loss


# ---------------------------------------------------------------------------------------- alpha(c)
@producer("method.csdm", 1)
def alpha_schedule(class_counts, rule: str = "loglinear", alpha_head: float = 0.7, alpha_tail: float = 0.3,
                   alpha0: float = 0.8, n0: float = 100.0, reverse: bool = False) -> torch.Tensor:
    """Amplitude weight alpha_c per class from the real class counts.

    loglinear: alpha_tail at the smallest count, alpha_head at the largest, linear in log n_c (all classes
    equal: the midpoint). reliability: alpha0 n_c / (n_c + n0). two_level: alpha_head above the median count,
    alpha_tail at or below it. constant: alpha_head for every class. ``reverse`` mirrors the values within
    their range (tail -> more amplitude): the opposite direction, an ablation.
    """
    n = torch.tensor([float(c) for c in class_counts], dtype=torch.float64)
    if rule == "loglinear":
        lo, hi = n.min().log(), n.max().log()
        t = torch.full_like(n, 0.5) if hi == lo else (n.log() - lo) / (hi - lo)
        a = alpha_tail + (alpha_head - alpha_tail) * t
    elif rule == "reliability":
        a = alpha0 * n / (n + n0)
    elif rule == "two_level":
        a = torch.where(n > n.median(), torch.tensor(alpha_head, dtype=n.dtype), torch.tensor(alpha_tail, dtype=n.dtype))
    elif rule == "constant":
        a = torch.full_like(n, alpha_head)
    else:
        raise ValueError(f"alpha rule {rule!r} is not allowed: expected one of {ALPHA_RULES}")
    if reverse:
        a = a.min() + a.max() - a
    if not bool(((a >= 0) & (a <= 1)).all()):
        raise ValueError(f"alpha values {a.tolist()} leave [0, 1]")
    return a.float()


VARIANTS = ("sdd", "csdm", "amplitude_only", "phase_only", "constant_low", "constant_high", "reversed",
            "reliability", "two_level")


def class_alphas(class_counts, variant: str = "csdm", rule: str = "loglinear", alpha_head: float = 0.7,
                 alpha_tail: float = 0.3, alpha0: float = 0.8, n0: float = 100.0) -> torch.Tensor:
    """alpha_c of one arm: ``sdd`` 0.5 for every class (plain SDD); ``amplitude_only`` 1, ``phase_only`` 0,
    ``constant_low`` / ``constant_high`` alpha_tail / alpha_head everywhere; ``csdm`` the schedule of ``rule``,
    ``reversed`` its mirror, ``reliability`` / ``two_level`` those rules (the ablations)."""
    n = len(class_counts)
    fixed = {"sdd": 0.5, "amplitude_only": 1.0, "phase_only": 0.0, "constant_low": alpha_tail, "constant_high": alpha_head}
    if variant in fixed:
        return torch.full((n,), float(fixed[variant]))
    if variant not in VARIANTS:
        raise ValueError(f"alpha variant {variant!r} is not allowed: expected one of {VARIANTS}")
    rule = variant if variant in ("reliability", "two_level") else rule
    return alpha_schedule(class_counts, rule, alpha_head, alpha_tail, alpha0, n0, reverse=variant == "reversed")


# ---------------------------------------------------------------------------------------- features
def normalize(z: torch.Tensor) -> torch.Tensor:
    return F.normalize(z, dim=1)


@torch.no_grad()
def real_statistics(features: list[torch.Tensor], labels: torch.Tensor, num_classes: int, loss: str,
                    omegas: list[torch.Tensor] | None = None, normalized: bool = True) -> list:
    """Per pool net: the exact real-side statistic over whole classes (precomputed once, no augmentation).

    ``loss='spectral'``: the class CFs at that net's fixed frequencies; ``'mmd'``: the (normalised) features;
    ``'linear'``: their class means.
    """
    out = []
    for k, f in enumerate(features):
        z = normalize(f) if normalized else f
        out.append(class_ecf(z, labels, num_classes, omegas[k]) if loss == "spectral"
                   else class_mean_embeddings(z, labels, num_classes) if loss == "linear" else z)
    return out


# ---------------------------------------------------------------------------------------- distillation
@producer("distill.spectral", 1, uses=("pixels", "augment", "models", "distill.random"))
def spectral_matching(data: ImageData, ipc: int, net_fn: Callable[[], nn.Module] | None, alphas: torch.Tensor | None,
                      loss: str = "spectral", iterations: int = 1000, lr: float = 0.01, batch_real: int = 256,
                      use_dsa: bool = True, dsa_strategy: str = DEFAULT_STRATEGY, net_pool: int = 0,
                      kernel: str = "gaussian", sigma: float | str = 1.0, num_freqs: int = 1024, form: str = "mmd",
                      seed: int = 0, device="cpu", init: SyntheticSet | None = None,
                      nets: list[nn.Module] | None = None, omegas: list[torch.Tensor] | None = None,
                      real_stats: list | None = None, real_labels: torch.Tensor | None = None,
                      checkpoint: str | Path | None = None, checkpoint_every: int = 200,
                      precision: str = "auto", compile: bool | None = None) -> SyntheticSet:
    """Distil ``ipc`` images per class by matching L2-normalised features with SDD/CSDM (``loss='spectral'``,
    per-class ``alphas``), with the exact kernel MMD (``loss='mmd'``) or with DM's linear kernel, the distance
    of class means (``loss='linear'``: DM's loss under this function's features and optimiser, the control that
    isolates the kernel). Adam on the pixels.

    Two regimes, as for DM. *Batches* (``nets=None``): each step a net (fresh with ``net_pool=0``, else from a
    fixed pool), fresh frequencies (or, given ``omegas`` and a pool, one fixed draw per net), a real batch of up to
    ``batch_real`` images per class (the whole class when smaller) and one DSA draw shared by real and synthetic
    images. *Exact* (``nets``, ``omegas`` and
    ``real_stats`` from :func:`real_statistics`): a fixed pool with fixed frequencies per net, the real side
    precomputed over whole classes, no augmentation.

    ``sigma`` is the kernel's bandwidth on the L2-normalised features, or ``"median"``: the median heuristic,
    :func:`median_bandwidth` of each step's real features (batches; the exact regime takes it from each net's
    whole-split features when its frequencies are drawn). The meta records the mean bandwidth used.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss {loss!r}: expected one of {LOSSES}")
    if loss == "spectral" and alphas is None:
        raise ValueError("the spectral loss needs one alpha per class")
    if isinstance(sigma, str) and sigma != "median" or not isinstance(sigma, str) and not sigma > 0:
        raise ValueError(f"sigma {sigma!r} is not allowed: expected a number > 0 or 'median'")
    if sigma == "median" and real_stats is not None and loss == "mmd":
        raise ValueError("the exact MMD takes a numeric sigma (the median heuristic is for batches)")
    bandwidths: list[float] = []
    exact = real_stats is not None
    if exact and (nets is None or len(real_stats) != len(nets) or use_dsa
                  or (loss == "spectral" and (omegas is None or len(omegas) != len(nets)))
                  or (loss == "mmd" and real_labels is None)):
        raise ValueError("exact real statistics need the matching nets (and frequencies or labels) and use_dsa=False")
    precision = resolve_precision(precision, device)
    fast = compile_wanted(precision, device, 0 if exact else iterations, compile, fp32=True)     # real side
    fast_syn = compile_wanted(precision, device, iterations, compile, fp32=True)                  # synthetic side
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    syn0 = init or random_subset(data, ipc, seed)
    syn_y = syn0.labels.to(device)
    present = torch.bincount(syn_y, minlength=data.num_classes) > 0
    alphas = None if alphas is None else alphas.to(device)
    pools = [(data.labels == c).nonzero().flatten() for c in range(data.num_classes)]
    if nets is None and net_pool:
        nets = make_net_pool(net_fn, net_pool, seed, device)

    def step_loss(syn, it):
        if nets is not None:
            k = it % len(nets)
            net = nets[k]
        else:
            net = frozen(net_fn(), device)
        step_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        fs = normalize(embed_with_input_grad(net, dsa(syn, step_seed, dsa_strategy) if use_dsa else syn, precision,
                                             fast_syn))
        if exact:
            stat, omega = real_stats[k], (omegas[k].to(device) if omegas is not None else None)
            if loss == "spectral":
                stat = (stat[0].to(device), stat[1].to(device))
            if loss in ("spectral", "linear"):
                fr, yr = None, None
            else:
                fr, yr = stat.to(device), real_labels.to(device)
        else:
            idx = torch.cat([p[torch.randperm(len(p), generator=gen)[:batch_real]] for p in pools])
            xr, yr = data.subset(idx).tensors(device)
            fr = normalize(embed_in_chunks(net, dsa(xr, step_seed, dsa_strategy) if use_dsa else xr, precision,
                                           compile=fast))
            step_sigma = median_bandwidth(fr) if sigma == "median" else sigma
            if loss != "linear" and not (omegas is not None and nets is not None):
                bandwidths.append(step_sigma)
            if loss != "spectral":
                omega = None
            elif omegas is not None and nets is not None:          # fixed frequencies per pool net
                omega = omegas[k].to(device)
            else:
                omega = sample_frequencies(kernel, num_freqs, fs.shape[1], step_sigma, gen).to(device)
            stat = class_ecf(fr, yr, data.num_classes, omega) if loss == "spectral" else None
        if loss == "spectral":
            amp, phase = class_terms(stat, fs, syn_y, omega)
            return csdm_loss(amp, phase, alphas, present, form), {}
        if loss == "linear":      # DM's loss on these features: squared distances of real and synthetic class means
            return dm_loss(stat.to(device) if exact else class_mean_embeddings(fr, yr, data.num_classes), fs, syn_y), {}
        return class_mmd_loss(fr, yr, fs, syn_y, data.num_classes, kernel, sigma if exact else step_sigma), {}

    name = {"spectral": "csdm", "mmd": "mmd", "linear": "linear"}[loss]
    images, history = optimise_pixels(syn0.images, step_loss, iterations, optimiser="adam", lr=lr, gen=gen,
                                      device=device, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                                      desc=name)
    meta = {"method": name, "loss": loss, "iterations": iterations, "lr": lr, "batch_real": batch_real,
            "dsa": use_dsa, "net_pool": len(nets) if nets is not None else 0, "kernel": kernel, "sigma": sigma,
            "mean_bandwidth": sum(bandwidths) / len(bandwidths) if bandwidths else None,
            "num_freqs": num_freqs, "form": form, "seed": seed, "exact_real_statistics": exact,
            "alphas": None if alphas is None else alphas.cpu().tolist(), "loss_history": history["loss"],
            "precision": precision}
    return SyntheticSet(images, syn_y.cpu(), data.num_classes, meta=meta)


@torch.no_grad()
def class_spectral_errors(syn: SyntheticSet, nets: list[nn.Module], omegas: list[torch.Tensor], real_cfs: list,
                          device="cpu") -> dict[str, torch.Tensor]:
    """Mean amplitude and phase terms per class of a synthetic set against the exact real CFs, averaged over
    the pool (a diagnostic: what each loss left unmatched, class by class)."""
    amps, phases = [], []
    for net, omega, cf in zip(nets, omegas, real_cfs):
        fs = normalize(net.to(device).embed(syn.images.to(device)))
        a, p = class_terms((cf[0].to(device), cf[1].to(device)), fs, syn.labels.to(device), omega.to(device))
        amps.append(a.mean(1).cpu())
        phases.append(p.mean(1).cpu())
    return {"amplitude": torch.stack(amps).mean(0), "phase": torch.stack(phases).mean(0)}
