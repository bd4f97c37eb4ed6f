"""Unbiased recovery and relabeling for long-tailed distillation (Cui et al., AAAI 2026).

The pipeline is squeeze-recover-relabel with four changes aimed at the long tail:

* **Debiased experts** (:func:`train_expert`): an observer (whose BatchNorm statistics are the recovery
  targets) and a teacher (soft labels, crop scoring), trained with GLMC-style losses: a symmetric
  SimSiam consistency between a MixUp and a CutMix view, and a cross-entropy that moves, as training goes,
  from plain to re-weighted by ``n_k^-q`` (weights of mean 1). ``debias=False`` gives the plain-CE expert
  of the same architecture and budget.
* **Fair recalibration of BatchNorm statistics** (:func:`class_bn_statistics`): one frozen pass over the
  real data; per class, the running mean of the BatchNorm inputs with the count-based momentum
  ``alpha = B_c / (N_c + B_c)`` (so every sample weighs the same), then a uniform average over classes
  (:func:`balanced_targets`, so every class weighs the same).
* **Confidence-guided multi-round initialisation** (:func:`multi_round_init`): random resized crops of the
  real images scored by the teacher; in each round every real image offers its best unused crop, and the
  best of those fill the remaining slots, so a class with fewer images than IPC still gets distinct crops.
* **Recovery** (:func:`recover_balanced`) against global and class-wise targets, and **relabelling**
  (:func:`ltdd_utils.evaluate.train_student_kd`, shared with chapter 01): students learn MSE to the teacher's
  logits on every augmented (crop, flip, CutMix) batch plus a small cross-entropy (EDC's recipe).

Choices the paper leaves open are arguments here; the chapter (notebooks/02_unbiased_recovery.ipynb) names
them.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment import crop_flip, cutmix_images, resized_crops
from ..data import ImageData
from ..distill.pixels import optimise_pixels
from ..distill.srr import bn_matching_loss
from ..distill.synset import SyntheticSet
from ..evaluate import soft_cross_entropy
from ..models import BNStatsHook, frozen, get_model
from ..train import cross_entropy, fit, cached_net
from ..versions import producer


# ------------------------------------------------------------------------------------------------ experts
class Expert(nn.Module):
    """A BatchNorm classifier with GLMC's projection and predictor heads.

    With ``heads=2`` (GLMC's design) a second linear classifier ``fc_cb`` learns only from the re-weighted
    loss and gives the logits of ``forward`` (soft labels, crop scoring); with one head (the paper's Eq. 6)
    both losses train the backbone's classifier.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, proj_dim: int = 128, heads: int = 1):
        super().__init__()
        if heads not in (1, 2):
            raise ValueError(f"heads = {heads!r}: expected 1 or 2")
        self.backbone = backbone
        self.proj = nn.Linear(backbone.feature_dim, proj_dim)
        self.pred = nn.Linear(proj_dim, proj_dim)
        self.fc_cb = None
        if heads == 2:              # a fresh head of the backbone's own kind (FastNet's scales its logits)
            self.fc_cb = copy.deepcopy(backbone.classifier)
            self.fc_cb.reset_parameters()

    def embed(self, x):
        return self.backbone.embed(x)

    def forward(self, x):
        h = self.backbone.embed(x)
        return self.backbone.classifier(h) if self.fc_cb is None else self.fc_cb(h)

    def heads(self, x):
        """(plain logits, re-weighted-head logits, projection z, prediction p)."""
        h = self.backbone.embed(x)
        z = self.proj(h)
        plain = self.backbone.classifier(h)
        return plain, plain if self.fc_cb is None else self.fc_cb(h), z, self.pred(z)


def reweighting(class_counts, q: float) -> torch.Tensor:
    """GLMC's class weights ``n_k^-q``, normalised to mean 1 (the paper's Eq. 6 normalises to sum 1, which
    would shrink the re-weighted term C times; see the chapter)."""
    n = torch.tensor(class_counts, dtype=torch.float).clamp_min(1)
    w = n ** (-q)
    return w * len(w) / w.sum()


def glmc_step_loss(model: Expert, xa, ya, xb, yb, num_classes: int, weights: torch.Tensor, alpha: float,
                   contrast_weight: float, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
    """One GLMC step on an instance-sampled batch (A) and a class-rebalanced batch (B).

    View 1 = MixUp(A, B) with lam ~ U(0, 1) (GLMC's Beta(1, 1)), view 2 = CutMix(A, B) with the same lam,
    each A and B image first crop-flipped independently per view. Targets: ``lam * onehot(A) + (1 - lam) *
    onehot(B)`` for MixUp and, for CutMix, the fraction of A's pixels actually kept (GLMC uses lam there).
    Loss = sum over views of ``(1 - alpha) * CE(plain head) + alpha * CE_w(re-weighted head)``, where CE_w
    multiplies the target by the class weights ``weights`` (GLMC's weighted labels), plus ``contrast_weight``
    times the SimSiam term ``-cos(p_1, sg(z_2)) - cos(p_2, sg(z_1))`` (GLMC/SimSiam's stop-gradient; the
    paper's Eq. 5 puts it on p). ``alpha`` grows from 0 to 1 over training (:func:`train_expert`)."""
    pad = max(1, xa.shape[-1] // 8)
    a1, a2, b1, b2 = (crop_flip(v, pad, generator=gen) for v in (xa, xa, xb, xb))
    lam = float(torch.rand(1, generator=gen))
    v1 = lam * a1 + (1 - lam) * b1
    v2, lam2 = cutmix_images(a2, b2, lam, gen)
    oa, ob = F.one_hot(ya, num_classes).float(), F.one_hot(yb, num_classes).float()
    t1, t2 = lam * oa + (1 - lam) * ob, lam2 * oa + (1 - lam2) * ob
    l1, c1, z1, p1 = model.heads(v1)
    l2, c2, z2, p2 = model.heads(v2)
    w = weights.to(l1.device)
    plain = soft_cross_entropy(l1, t1) + soft_cross_entropy(l2, t2)
    reweighted = soft_cross_entropy(c1, t1, w) + soft_cross_entropy(c2, t2, w)
    robust = simsiam_loss(p1, z1, p2, z2)
    loss = (1 - alpha) * plain + alpha * reweighted + contrast_weight * robust
    return loss, {"ce": float(plain.detach()) / 2, "reweighted": float(reweighted.detach()) / 2,
                  "robust": float(robust.detach()), "lam": lam, "kept": lam2}


def simsiam_loss(p1, z1, p2, z2) -> torch.Tensor:
    """GLMC's symmetric consistency ``-cos(p_1, sg(z_2)) - cos(p_2, sg(z_1))``: the gradient flows through the
    predictions p, never through the projections z it is compared with."""
    return -(F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean())


def rebalanced_draw(labels: torch.Tensor, class_weights: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` indices drawn with replacement, each sample with probability proportional to its class's weight
    (GLMC's ``WeightedRandomSampler`` for the second batch)."""
    return torch.multinomial(class_weights[labels], n, replacement=True, generator=gen)


EXPERT_OBJECTIVES = ("glmc", "logit_adjust")


@producer("net.expert", 3, uses=("train.fit", "models", "augment", "teachers"))
def train_expert(data: ImageData, debias: bool = True, model: str = "convnet_bn", width: int = 32, depth: int = 3,
                 epochs: float = 10, lr: float = 0.01, batch: int = 64, q: float = 1.0, contrast_weight: float = 4.0,
                 weight_decay: float = 5e-3, heads: int = 2, resample: float = 0.2, seed: int = 0, device="cpu",
                 cache_root=None, objective: str = "glmc") -> nn.Module:
    """Train (or load from the cache) an expert on long-tailed real data; GLMC's recipe by default.

    ``debias=True``: the GLMC step above; the second batch is drawn class-rebalanced with class weights
    ``n_k^-resample`` (GLMC's ``resample_weighting`` 0.2), the loss's class weights are ``n_k^-q`` (mean 1),
    and the re-weighted share ``alpha = (t/T)^2`` grows with the step t; ``heads=2`` (GLMC) puts the
    re-weighted term on a second classifier that gives the expert's logits (see :class:`Expert`).
    ``debias=False``: plain cross-entropy on crop/flip batches, same model, optimiser, schedule and epochs.
    SGD (momentum 0.9, ``weight_decay``) with GLMC's schedule, a linear warm-up over 5 % of the steps then
    cosine. The BatchNorm running statistics are PyTorch's usual EMA. The returned model carries
    ``cache_key`` and ``train_seconds`` (of the first training).

    ``model="fastnet"``: the teachers' network and recipe (:mod:`ltdd_utils.teachers`; ``width`` and ``batch``
    are the recipe's, ``lr`` and ``weight_decay`` unused). The plain expert is then the shared cached teacher
    (:func:`ltdd_utils.teachers.teacher`, cross-entropy), the one chapter 01 labels with on the same split; a
    debiased one trains the GLMC step above on the recipe's optimiser (``objective="glmc"``) or is the shared
    logit-adjusted teacher (``objective="logit_adjust"``, FastNet only).
    """
    if objective not in EXPERT_OBJECTIVES:
        raise ValueError(f"objective {objective!r} is not allowed: expected one of {list(EXPERT_OBJECTIVES)}")
    if objective == "logit_adjust" and model != "fastnet":
        raise ValueError(f"objective 'logit_adjust' needs model 'fastnet' (got {model!r})")
    if model == "fastnet":
        return _fastnet_expert(data, debias, width, epochs, batch, q, contrast_weight, heads, resample, seed,
                               device, cache_root, objective)
    heads = heads if debias else 1
    key = dict(data=data.fingerprint(), debias=debias, model=model, width=width, depth=depth, epochs=epochs,
               lr=lr, batch=batch, weight_decay=weight_decay, heads=heads,
               **(dict(q=q, contrast_weight=contrast_weight, resample=resample) if debias else {}))

    def train(net):                              # runs only when the expert is not in the cache
        x, y = data.tensors()
        glmc = _glmc_loss(data, q, resample, contrast_weight) if debias else None
        fit(net, x, y, glmc if debias else cross_entropy, epochs=epochs, batch=batch, lr=lr,
            opt_kwargs={"weight_decay": weight_decay}, schedule="warmup_cosine", aug="none" if debias else "cropflip",
            seed=seed, device=device, desc="expert (GLMC)" if debias else "expert (CE)")

    build = lambda: Expert(get_model(model, data.shape[0], data.num_classes, data.shape[1:], width=width, depth=depth,
                                     norm="batchnorm"), data.num_classes, heads=heads)
    return cached_net("net.expert", build, train, key, seed=seed, device=device, cache_root=cache_root)


def _glmc_loss(data: ImageData, q: float, resample: float, contrast_weight: float):
    """GLMC's step loss for :func:`ltdd_utils.train.fit` on ``data``: the first batch as drawn, the second
    class-rebalanced, the re-weighted share growing as the square of the fraction of steps done."""
    x, y = data.tensors()
    counts = data.class_counts()
    weights, sampling = reweighting(counts, q), reweighting(counts, resample)

    def glmc(net, xa, ya, b):
        ib = rebalanced_draw(y, sampling, len(ya), b.gen)
        return glmc_step_loss(net, xa, ya, x[ib].to(xa.device), y[ib].to(xa.device), data.num_classes, weights,
                              (b.step / b.total) ** 2, contrast_weight, b.gen)[0]
    return glmc


def glmc_fastnet(data: ImageData, width: int = 64, heads: int = 2, q: float = 1.0, resample: float = 0.2,
                 contrast_weight: float = 4.0) -> tuple[nn.Module, dict]:
    """GLMC on the teachers' recipe: an untrained :class:`Expert` around a FastNet (built under the caller's seed)
    and :func:`ltdd_utils.teachers.fit_teacher`'s arguments for GLMC's step (which makes its own views)."""
    net = Expert(get_model("fastnet", data.shape[0], data.num_classes, data.shape[1:], width=width),
                 data.num_classes, heads=heads)
    return net, glmc_step(data, q, resample, contrast_weight)


def glmc_step(data: ImageData, q: float = 1.0, resample: float = 0.2, contrast_weight: float = 4.0) -> dict:
    """:func:`ltdd_utils.teachers.fit_teacher`'s arguments for GLMC's step on ``data``."""
    return dict(step_loss=_glmc_loss(data, q, resample, contrast_weight), aug="none")


def _fastnet_expert(data, debias, width, epochs, batch, q, contrast_weight, heads, resample, seed, device,
                    cache_root, objective):
    from ..teachers import Recipe, fit_teacher, teacher
    recipe = Recipe(width=width, batch=batch)
    if not debias or objective == "logit_adjust":
        return teacher(data, epochs=epochs, objective="logit_adjust" if debias else "ce", seed=seed, recipe=recipe,
                       device=device, cache_root=cache_root)
    from dataclasses import asdict
    key = dict(data=data.fingerprint(), debias=True, model="fastnet", objective="glmc", epochs=epochs, heads=heads,
               q=q, contrast_weight=contrast_weight, resample=resample, recipe=asdict(recipe))
    x, y = data.tensors()
    train = lambda net: fit_teacher(x, y, data.num_classes, epochs=epochs, recipe=recipe, seed=seed, device=device,
                                    net=net, desc="expert (GLMC, teachers' recipe)",
                                    **glmc_step(data, q, resample, contrast_weight))
    build = lambda: glmc_fastnet(data, width, heads)[0]
    return cached_net("net.expert", build, train, key, seed=seed, device=device, cache_root=cache_root)


# ------------------------------------------------------------------------------------ BN recalibration
@producer("method.bn_recalibration", 1, uses=("models",))
@torch.no_grad()
def class_bn_statistics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, batch: int = 500,
                        device="cpu") -> dict:
    """Per-class statistics of every BatchNorm layer's input over ``x`` in one frozen (eval-mode) pass.

    Per layer and class, the running means of x and x^2 over (samples x positions) are updated batch by
    batch with the count-based momentum of the paper's Eq. 8, ``m_c <- (1 - a) m_c + a * batch_mean_c`` with
    ``a = B_c / (N_c + B_c)``: the exact class mean whatever the order. The class variance is then
    ``E[x^2] - E[x]^2`` (exact, rather than a count-weighted mean of within-batch variances).
    Returns ``{"mean": [L x (C, ch)], "var": [...], "counts": (C,)}``.
    """
    model = model.to(device).eval()
    means = sq = None
    counts = torch.zeros(num_classes)
    with BNStatsHook(model) as hook:
        for i in range(0, len(x), batch):
            xb, yb = x[i:i + batch].to(device), y[i:i + batch].cpu()
            hook.clear()
            model(xb)
            onehot = F.one_hot(yb, num_classes).float()                        # (B, C)
            b = onehot.sum(0)                                                  # B_c
            a = torch.where(b > 0, b / (counts + b).clamp_min(1), torch.zeros_like(b))[:, None]
            if means is None:
                means = [torch.zeros(num_classes, h.shape[1]) for h in hook.inputs]
                sq = [torch.zeros(num_classes, h.shape[1]) for h in hook.inputs]
            for l, h in enumerate(hook.inputs):
                h = h.float().cpu()
                s1, s2 = h.mean((2, 3)), (h * h).mean((2, 3))                  # per-sample spatial means
                bm = onehot.T @ s1 / b.clamp_min(1)[:, None]
                bs = onehot.T @ s2 / b.clamp_min(1)[:, None]
                means[l] = (1 - a) * means[l] + a * bm
                sq[l] = (1 - a) * sq[l] + a * bs
            counts += b
    if means is None:
        raise ValueError("class_bn_statistics needs a model with BatchNorm2d layers and at least one image")
    return {"mean": means, "var": [(s - m * m).clamp_min(0) for m, s in zip(means, sq)], "counts": counts}


def balanced_targets(stats: dict, mixture: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Global targets with every class weighed the same (Eq. 9): mean of the class means and, literally,
    mean of the class variances; ``mixture=True`` adds the between-class variance (the variance of a
    class-balanced mixture). Classes without samples are left out."""
    keep = stats["counts"] > 0
    out = []
    for m, v in zip(stats["mean"], stats["var"]):
        m, v = m[keep], v[keep]
        mu = m.mean(0)
        var = v.mean(0) + (((m - mu) ** 2).mean(0) if mixture else 0)
        out.append((mu, var))
    return out


def sample_weighted_targets(stats: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same statistics pooled over samples (every sample weighs the same, so head classes dominate):
    what an exact, order-free running average of the long-tailed data would give."""
    w = stats["counts"] / stats["counts"].sum()
    out = []
    for m, v in zip(stats["mean"], stats["var"]):
        mu = (w[:, None] * m).sum(0)
        out.append((mu, (w[:, None] * (v + m * m)).sum(0) - mu * mu))
    return out


def stats_distance(a, b) -> list[float]:
    """Per layer, ||mu_a - mu_b||_2 + ||var_a - var_b||_2 (the recovery loss's distance)."""
    return [float(torch.norm(ma - mb) + torch.norm(va - vb)) for (ma, va), (mb, vb) in zip(a, b)]


# -------------------------------------------------------------------------------- multi-round init
def select_multi_round(scores: torch.Tensor, k: int, valid: torch.Tensor | None = None) -> tuple[list, int]:
    """Confidence-guided multi-round selection of ``k`` (image, crop) pairs from ``scores`` (N, M).

    Each round, every valid image offers its best unused crop; if they outnumber the slots left, the best
    ones are taken, else all. Invalid rows (``valid`` False: padding) are never chosen. Returns the pairs in
    selection order and the number of rounds.
    """
    n, m = scores.shape
    valid = torch.ones(n, dtype=torch.bool) if valid is None else valid.bool()
    if k > int(valid.sum()) * m:
        raise ValueError(f"{k} crops asked from {int(valid.sum())} images x {m} crops: need at least "
                         f"ceil({k}/{int(valid.sum())}) crops per image")
    s = scores.clone().float()
    s[~valid] = -float("inf")
    used = torch.zeros(n, m, dtype=torch.bool)
    chosen, rounds = [], 0
    while len(chosen) < k:
        rounds += 1
        avail = s.masked_fill(used, -float("inf"))
        best, crop = avail.max(1)
        offer = (best > -float("inf")).nonzero().flatten()
        offer = offer[best[offer].argsort(descending=True)]
        take = offer[:k - len(chosen)]
        for i in take.tolist():
            chosen.append((i, int(crop[i])))
            used[i, crop[i]] = True
    return chosen, rounds


def check_capacity(class_counts, ipc: int, num_crops: int, max_images: int | None = None) -> None:
    """Raise before any compute when a class cannot supply ``ipc`` distinct crops."""
    for c, n in enumerate(class_counts):
        n = min(n, max_images) if max_images else n
        if ipc > n * num_crops:
            raise ValueError(f"class {c} has {n} images; IPC {ipc} needs at least {math.ceil(ipc / max(n, 1))} "
                             f"crops per image (NUM_CROPS = {num_crops})")


@producer("distill.multi_round_init", 1)
@torch.no_grad()
def multi_round_init(teacher: nn.Module | None, data: ImageData, ipc: int, num_crops: int = 5,
                     max_images: int | None = 300, scale=(0.08, 1.0), seed: int = 0, device="cpu",
                     score: str = "teacher") -> SyntheticSet:
    """``ipc`` real crops per class by :func:`select_multi_round` on the teacher's log-probability of the true
    class (``score="teacher"``) or on random scores (``score="random"``: random crops, still at most one crop
    per image per round, the control that keeps the pool and drops the teacher's choice). Head classes
    score a random ``max_images`` of their images."""
    if score not in ("teacher", "random"):
        raise ValueError(f"score {score!r}: expected 'teacher' or 'random'")
    check_capacity(data.class_counts(), ipc, num_crops, max_images)
    gen = torch.Generator().manual_seed(seed)
    if teacher is not None:
        teacher = teacher.to(device).eval()
    xs, ys, src, rounds = [], [], [], []
    for c in range(data.num_classes):
        pool = (data.labels == c).nonzero().flatten()
        if max_images and len(pool) > max_images:
            pool = pool[torch.randperm(len(pool), generator=gen)[:max_images]].sort().values
        x, _ = data.subset(pool).tensors()
        crops = resized_crops(x, num_crops, scale, gen)
        if score == "teacher":
            flat = crops.flatten(0, 1)
            logp = torch.cat([F.log_softmax(teacher(flat[i:i + 500].to(device)), 1)[:, c].cpu()
                              for i in range(0, len(flat), 500)])
            scores = logp.view(len(pool), num_crops)
        else:
            scores = torch.rand(len(pool), num_crops, generator=gen)
        chosen, r = select_multi_round(scores, ipc)
        xs.append(torch.stack([crops[i, j] for i, j in chosen]))
        ys.append(torch.full((ipc,), c))
        real = pool if data.indices is None else data.indices[pool]
        src.append([int(real[i]) for i, _ in chosen])
        rounds.append(r)
    meta = {"method": f"multi_round_init ({score})", "ipc": ipc, "num_crops": num_crops, "max_images": max_images,
            "scale": list(scale), "seed": seed, "source_indices": src, "rounds": rounds,
            "distinct_images": [len(set(s)) for s in src]}
    return SyntheticSet(torch.cat(xs), torch.cat(ys), data.num_classes, meta=meta)


# ---------------------------------------------------------------------------------------------- recovery
def _batch_stats(h: torch.Tensor, onehot: torch.Tensor):
    """Global and per-class (mean, var) over samples x positions of one layer input (differentiable)."""
    s1, s2 = h.mean((2, 3)), (h * h).mean((2, 3))
    mu, var = s1.mean(0), s2.mean(0) - s1.mean(0) ** 2
    nc = onehot.sum(0).clamp_min(1)[:, None]
    cm = onehot.T @ s1 / nc
    cv = onehot.T @ s2 / nc - cm ** 2
    return (mu, var), (cm, cv)


@producer("distill.recover_balanced", 1, uses=("pixels", "models"))
def recover_balanced(observer: nn.Module, init: SyntheticSet, global_targets, class_targets=None,
                     iterations: int = 200, lr: float = 0.05, r_bn: float = 0.01, first_bn_multiplier: float = 10.0,
                     classwise_weight: float = 1.0, ce_weight: float = 1.0, crop_scale=(0.08, 1.0),
                     flip: bool = True, seed: int = 0, device="cpu") -> SyntheticSet:
    """Optimise ``init``'s pixels (Adam, betas (0.5, 0.9), cosine to 0; all images in one class-balanced
    batch) through the frozen observer:

        ce_weight * CE(observer(A(S)), y) + r_bn * sum_l w_l [d(global_l) + classwise_weight * mean_c d(class_c,l)]

    with d = ||mu - mu*||_2 + ||var - var*||_2, ``w_1 = first_bn_multiplier``, and ``A`` one random resized
    crop (none when ``crop_scale`` is (1, 1)) and, with ``flip``, a random flip per step for the whole batch.
    ``class_targets`` (``{"mean": [...], "var": [...]}`` from :func:`class_bn_statistics`) or None drops the
    class-wise term."""
    observer = frozen(observer, device)
    gen = torch.Generator().manual_seed(seed)
    y = init.labels.to(device)
    onehot = F.one_hot(y, init.num_classes).float()
    present = onehot.sum(0) > 0

    def step_loss(x, it):
        hook.clear()
        xa = resized_crops(x, 1, crop_scale, gen)[:, 0] if crop_scale[0] < 1 else x
        if flip and torch.rand(1, generator=gen) < 0.5:
            xa = xa.flip(3)
        logits = observer(xa)
        stats = [_batch_stats(h, onehot) for h in hook.inputs]
        glob = bn_matching_loss([g for g, _ in stats], global_targets, first_bn_multiplier)
        cls = torch.zeros((), device=x.device)
        if class_targets is not None:
            for l, (_, (cm, cv)) in enumerate(stats):
                w = first_bn_multiplier if l == 0 else 1.0
                tm, tv = class_targets["mean"][l].to(x), class_targets["var"][l].to(x)
                d = torch.norm(cm - tm, dim=1) + torch.norm(cv - tv, dim=1)
                cls = cls + w * d[present].mean()
        ce = F.cross_entropy(logits, y)
        loss = ce_weight * ce + r_bn * (glob + classwise_weight * cls)
        return loss, {"ce": float(ce.detach()), "bn_global": float(glob.detach()), "bn_class": float(cls.detach())}

    with BNStatsHook(observer) as hook:
        images, history = optimise_pixels(init.images, step_loss, iterations, optimiser="adam", lr=lr,
                                          opt_kwargs={"betas": (0.5, 0.9)}, cosine=True, gen=gen, device=device,
                                          desc="recover")
    meta = {**init.meta, "method": "recover_balanced", "init": init.meta.get("method"), "iterations": iterations,
            "lr": lr, "r_bn": r_bn, "first_bn_multiplier": first_bn_multiplier, "classwise_weight": classwise_weight,
            "classwise": class_targets is not None, "ce_weight": ce_weight, "crop_scale": list(crop_scale),
            "seed": seed, "history": history, "observer": getattr(observer, "cache_key", None)}
    return SyntheticSet(images, init.labels.clone(), init.num_classes, meta=meta)
