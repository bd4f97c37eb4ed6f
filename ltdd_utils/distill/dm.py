"""Distribution Matching (Zhao & Bilen, WACV 2023), batched for the CPU.

Synthetic images S_c of each class are optimised so that the mean embedding of S_c under a randomly
initialised network matches the mean embedding of a real batch of class c:

    L = sum_c || mean_{x in R_c} f(A(x)) - mean_{s in S_c} f(A(s)) ||^2

with a fresh random network f each step and the same DSA draw A on both sides. Our implementation embeds
the real batches of all classes without autograd, in chunks (:func:`ltdd_utils.models.embed_in_chunks`), and
the synthetic set in a second forward; per-class means come from one ``index_add``, in fp32. Under bf16
(``precision``, see :mod:`ltdd_utils.precision`) the convolutions run in bf16 and the pixels stay fp32.
One DSA draw is shared by all classes in a step (the original draws one per class); this is the
``same_aug_all_classes`` choice, documented in the chapters.
"""
from __future__ import annotations

from typing import Callable

from pathlib import Path

import torch
import torch.nn as nn

from ..augment import DEFAULT_STRATEGY, dsa
from ..data import ImageData
from ..models import compile_wanted, embed_in_chunks, embed_with_input_grad, frozen
from ..precision import resolve as resolve_precision
from ..progress import Progress
from ..versions import producer
from .pixels import optimise_pixels
from .baselines import random_subset
from .synset import SyntheticSet


def class_mean_embeddings(feats: torch.Tensor, labels: torch.Tensor, num_classes: int,
                          weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-class (optionally weighted) mean of ``feats``: a (num_classes, d) tensor.

    ``weights`` (one per sample, e.g. KDE reweighting) give a weighted mean; uniform weights give the plain
    mean exactly.
    """
    w = torch.ones(len(labels), device=feats.device, dtype=feats.dtype) if weights is None else weights.to(feats)
    sums = torch.zeros(num_classes, feats.shape[1], device=feats.device, dtype=feats.dtype)
    sums.index_add_(0, labels, feats * w.unsqueeze(1))
    norm = torch.zeros(num_classes, device=feats.device, dtype=feats.dtype).index_add_(0, labels, w)
    return sums / norm.clamp_min(1e-12).unsqueeze(1)


def dm_loss(real_means: torch.Tensor, syn_feats: torch.Tensor, syn_labels: torch.Tensor) -> torch.Tensor:
    """Sum over classes of the squared distance between real and synthetic mean embeddings."""
    syn_means = class_mean_embeddings(syn_feats, syn_labels, real_means.shape[0])
    present = torch.bincount(syn_labels, minlength=real_means.shape[0]) > 0
    return ((real_means - syn_means)[present] ** 2).sum()


def make_net_pool(net_fn: Callable[[], nn.Module], size: int, seed: int, device="cpu") -> list[nn.Module]:
    """``size`` frozen random nets built under ``seed`` (the same pool for every arm that shares the seed)."""
    torch.manual_seed(seed)
    return [frozen(net_fn(), device) for _ in range(size)]


@torch.no_grad()
def pool_embeddings(data: ImageData, nets: list[nn.Module], device="cpu", batch: int = 500,
                    precision: str = "auto") -> list[torch.Tensor]:
    """Embeddings of all of ``data`` under each pool net (fp32 CPU tensors): one pass over the real images per
    net, reused for every weighting of the real samples (see :func:`pooled_class_means`)."""
    x = data.tensors()[0]
    precision = resolve_precision(precision, device)
    out = []
    with Progress(len(nets), "real embeddings") as bar:
        for net in nets:
            out.append(torch.cat([embed_in_chunks(net, x[i:i + batch].to(device), precision).cpu()
                                  for i in range(0, len(x), batch)]))
            bar.update()
    return out


def pooled_class_means(features: list[torch.Tensor], labels: torch.Tensor, num_classes: int,
                       weights: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Exact (weighted) class means under each pool net. Without augmentation they replace DM's per-step real
    batch by the whole class: the cpu recipe of the KDE chapter."""
    return [class_mean_embeddings(f, labels, num_classes, weights) for f in features]


@producer("distill.dm", 1, uses=("pixels", "augment", "models", "distill.random"))
def distribution_matching(data: ImageData, ipc: int, net_fn: Callable[[], nn.Module], iterations: int = 1000,
                          lr: float = 1.0, batch_real: int = 256, use_dsa: bool = True,
                          dsa_strategy: str = DEFAULT_STRATEGY, net_pool: int = 0, seed: int = 0,
                          device="cpu", init: SyntheticSet | None = None,
                          sample_weights: torch.Tensor | None = None, checkpoint: str | Path | None = None,
                          checkpoint_every: int = 200, nets: list[nn.Module] | None = None,
                          real_means: list[torch.Tensor] | None = None, precision: str = "auto",
                          compile: bool | None = None) -> SyntheticSet:
    """Run DM on ``data`` and return the synthetic set.

    ``net_fn()`` builds a randomly initialised embedding network (called under the run's seed). With
    ``net_pool = 0`` a fresh net is drawn each step, as in DM; ``net_pool = K`` cycles K fixed random nets
    (cheaper, a documented reduction). ``init`` defaults to a random real subset (DM's real init).
    ``sample_weights`` (one per real image) turn the real class means into weighted means (KDE debiasing).
    With ``checkpoint`` (a file path) the state is saved atomically every ``checkpoint_every`` steps and an
    interrupted run resumes from it; the file is removed when the run completes.
    ``nets`` (a pool from :func:`make_net_pool`) with ``real_means`` (one (C, d) tensor per net, from
    :func:`pooled_class_means`) switch to exact precomputed real means: no real batches, no augmentation.
    ``precision`` (``auto`` | ``fp32`` | ``bf16``, :mod:`ltdd_utils.precision`) and ``compile`` (None: auto,
    :func:`ltdd_utils.models.compile_wanted`) choose the fast path; the pixels and the loss stay fp32.
    """
    if real_means is not None and (nets is None or len(nets) != len(real_means) or use_dsa):
        raise ValueError("real_means needs the matching nets (one mean tensor per net) and use_dsa=False")
    precision = resolve_precision(precision, device)
    fast = compile_wanted(precision, device, iterations if real_means is None else 0, compile, fp32=True)   # real
    fast_syn = compile_wanted(precision, device, iterations, compile, fp32=True)                 # synthetic side
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    syn0 = init or random_subset(data, ipc, seed)
    syn_y = syn0.labels.to(device)
    pools = [(data.labels == c).nonzero().flatten() for c in range(data.num_classes)]
    if nets is None:
        nets = [frozen(net_fn(), device) for _ in range(net_pool)]
    else:
        nets, net_pool = [frozen(n, device) for n in nets], len(nets)

    def step_loss(syn, it):
        net = nets[it % net_pool] if net_pool else frozen(net_fn(), device)
        step_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        if real_means is not None:
            target = real_means[it % net_pool].to(device)
        else:
            idx = torch.cat([p[torch.randperm(len(p), generator=gen)[:batch_real]] for p in pools])
            xr, yr = data.subset(idx).tensors(device)
            with torch.no_grad():
                fr = embed_in_chunks(net, dsa(xr, step_seed, dsa_strategy) if use_dsa else xr, precision,
                                     compile=fast)
                w = None if sample_weights is None else sample_weights[idx].to(device)
                target = class_mean_embeddings(fr, yr, data.num_classes, w)
        fs = embed_with_input_grad(net, dsa(syn, step_seed, dsa_strategy) if use_dsa else syn, precision, fast_syn)
        return dm_loss(target, fs, syn_y), {}

    images, history = optimise_pixels(syn0.images, step_loss, iterations, optimiser="sgd", lr=lr, gen=gen,
                                      device=device, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                                      desc="dm")
    meta = {"method": "dm", "iterations": iterations, "lr": lr, "batch_real": batch_real, "dsa": use_dsa,
            "dsa_strategy": dsa_strategy, "net_pool": net_pool, "seed": seed, "loss_history": history["loss"],
            "init": syn0.meta.get("method"), "weighted": sample_weights is not None,
            "exact_real_means": real_means is not None, "precision": precision}
    return SyntheticSet(images, syn_y.cpu(), data.num_classes, meta=meta)
