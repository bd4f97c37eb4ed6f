"""The one evaluation protocol, its metrics, and the teacher/expert trainer.

``evaluate_synset`` trains ``students`` fresh models on a synthetic set (hard labels with cross-entropy, or
soft labels from a teacher: KL at temperature T, or MSE on logits) with DSA or crop/flip augmentation, and
tests each on the balanced test set: overall accuracy, per-class accuracy and many/medium/few accuracy.
``train_teacher`` trains an expert on real data (plain, class-balanced or logit-adjusted cross-entropy);
its weights are cached by configuration and reused.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import cutmix_images, resized_crops
from .cache import content_digest
from .data import ImageData
from .data.longtail import GROUPS
from .distill.synset import SyntheticSet
from .precision import autocast, resolve as resolve_precision
from .train import cached_net, fit
from .versions import producer


# ------------------------------------------------------------------------------------------- metrics
@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int | None = None, device="cpu",
            precision: str = "auto", compile: bool | None = None) -> torch.Tensor:
    """fp32 logits of ``model`` on normalised images ``x`` (CPU tensor), in batches (on a CPU
    :func:`ltdd_utils.models.embed_chunk`, where small activations stay in cache; 1,000 on a GPU), under
    ``precision``; a large set on a CPU goes through one compiled copy of the architecture
    (:func:`ltdd_utils.models.compile_wanted`; in fp32 too: 10,000 CIFAR images 1.5x faster)."""
    from .models import compile_wanted, embed_chunk, embed_in_chunks
    model.eval()
    precision = resolve_precision(precision, device)
    batch = batch or (embed_chunk(model, x.shape[-2:], device) if torch.device(device).type == "cpu" else 1000)
    fast = compile_wanted(precision, device, len(x) // batch, compile, threshold=50, fp32=True)
    return embed_in_chunks(model, x.to(device), precision, batch, fast, "forward").cpu()


def accuracy_metrics(pred: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     groups: dict[str, list[int]] | None = None) -> dict:
    """Overall accuracy, per-class accuracy and, given ``groups``, the mean per-class accuracy of each group.

    Accuracies are percentages. Classes absent from ``labels`` get NaN.
    """
    correct = (pred == labels).float()
    per_class = []
    for c in range(num_classes):
        m = labels == c
        per_class.append(float(correct[m].mean() * 100) if m.any() else float("nan"))
    out = {"acc": float(correct.mean() * 100), "per_class": per_class}
    for g, classes in (groups or {}).items():
        vals = [per_class[c] for c in classes]
        out[f"acc_{g}"] = sum(vals) / len(vals) if vals else float("nan")
    return out


MIN_GROUP_IMAGES = 20       # a (class, attribute) group with fewer test images is too noisy for a worst-group minimum


def bias_metrics(pred: torch.Tensor, labels: torch.Tensor, bias: torch.Tensor,
                 min_group: int = MIN_GROUP_IMAGES) -> dict:
    """Accuracy on bias-aligned (attribute = label) and bias-conflicting test samples, and two worst-group
    accuracies (percentages):

    * ``acc_worst_group``: the lowest accuracy over the (class, attribute) groups holding at least
      ``min_group`` test images (NaN when none does): the worst-group accuracy of the spurious-correlation
      literature, 0 whenever a model gives some (class, attribute) pair entirely to the shortcut;
    * ``acc_worst_class_conflicting``: the lowest, over classes, of the accuracy on the class's
      bias-conflicting test images (groups of about ``(1 - 1/K)`` of a class): still a worst group, but one
      that a partly debiased model moves off zero.
    """
    correct = (pred == labels).float()
    aligned = bias == labels
    group = labels * (int(bias.max()) + 1) + bias
    ids, counts = group.unique(return_counts=True)
    big = [g for g, n in zip(ids.tolist(), counts.tolist()) if n >= min_group]
    nan = float("nan")
    worst = min(float(correct[group == g].mean()) for g in big) * 100 if big else nan
    per_class = [float(correct[(labels == c) & ~aligned].mean()) * 100 for c in labels.unique().tolist()
                 if int(((labels == c) & ~aligned).sum()) >= min_group]
    return {"acc_aligned": float(correct[aligned].mean() * 100) if aligned.any() else nan,
            "acc_conflicting": float(correct[~aligned].mean() * 100) if (~aligned).any() else nan,
            "acc_worst_group": worst, "acc_worst_class_conflicting": min(per_class) if per_class else nan}


def test_model(model: nn.Module, test: ImageData, groups=None, device="cpu", min_group: int = MIN_GROUP_IMAGES) -> dict:
    """Metrics of ``model`` on ``test``; a test set with a bias attribute also gets :func:`bias_metrics` (groups
    of at least ``min_group`` test images)."""
    x, y = test.tensors()
    pred = predict(model, x, device=device).argmax(1)
    out = accuracy_metrics(pred, y, test.num_classes, groups)
    if getattr(test, "bias", None) is not None:
        out.update(bias_metrics(pred, y, test.bias, min_group))
    return out


# -------------------------------------------------------------------------------------------- training
def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float = 0.01,
                batch: int = 256, aug: str = "dsa", seed: int = 0, device="cpu", weight_decay: float = 5e-4,
                soft_target: Callable | None = None, class_weights: torch.Tensor | None = None,
                desc: str | None = None, micro_batch: int | str = "auto",
                on_epoch: Callable | None = None) -> nn.Module:
    """The book's standard recipe through :func:`ltdd_utils.train.fit`: SGD (momentum 0.9), lr x0.1 at half
    of training, ``aug`` per batch.

    The loss is cross-entropy (with optional per-class ``class_weights``) unless ``soft_target`` is given:
    ``soft_target(student_logits, augmented_batch, batch_indices)`` then returns the loss, a mean over the
    images (see :func:`soft_label_loss`). Batches are micro-batched (``fit``'s ``micro_batch``, ``auto`` by
    default) except with ``class_weights``, whose weighted mean does not split by image counts.
    """
    def step_loss(model, xb, yb, b):
        logits = model(xb)
        if soft_target is not None:
            return soft_target(logits, xb, b.idx)
        return F.cross_entropy(logits, yb, weight=class_weights)
    return fit(model, x, y, step_loss, epochs=epochs, batch=batch, lr=lr, opt_kwargs={"weight_decay": weight_decay},
               schedule="step_half", aug=aug, seed=seed, device=device, desc=desc,
               micro_batch=0 if class_weights is not None else micro_batch, on_epoch=on_epoch)


def soft_label_loss(mode: str, teacher: nn.Module | None = None, stored_logits: torch.Tensor | None = None,
                    temperature: float = 4.0, logit_offset: torch.Tensor | None = None) -> Callable:
    """Loss on student logits against teacher soft labels.

    The teacher relabels each augmented batch online (as in SRe2L/EDC); without a teacher the stored logits
    of the synthetic images are used. ``logit_offset`` (per class) is subtracted from the teacher logits
    first: ADSA's class-prior adjustment ``tau * log(pi)`` plugs in here.
    ``mode``: ``soft_kl`` (KL at temperature T, scaled by T^2) or ``soft_mse`` (MSE on logits).
    """
    if teacher is None and stored_logits is None:
        raise ValueError("soft labels need a teacher or stored logits")
    if teacher is not None:
        teacher.eval()

    def loss(student_logits, xb, idx):
        with torch.no_grad():
            t = teacher(xb) if teacher is not None else stored_logits[idx].to(student_logits.device)
            if logit_offset is not None:
                t = t - logit_offset.to(t)
        if mode == "soft_mse":
            return F.mse_loss(student_logits, t)
        return F.kl_div(F.log_softmax(student_logits / temperature, 1), F.softmax(t / temperature, 1),
                        reduction="batchmean") * temperature ** 2
    return loss


def soft_cross_entropy(logits, target, weights=None):
    """Cross-entropy against target distributions (e.g. CutMix-mixed one-hot labels), optionally class-weighted."""
    t = target if weights is None else target * weights
    return -(t * F.log_softmax(logits, 1)).sum(1).mean()


KD_CROP_SCALE = (0.08, 1.0)      # EDC's random resized crops: 8-100 % of the area


def kd_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, gen: torch.Generator, crop_scale=KD_CROP_SCALE,
             cutmix: bool = True):
    """EDC's student augmentation without RandAugment: a random resized crop and flip per image, then CutMix
    with lam ~ U(0, 1) against a shuffled copy of the batch. Returns images, soft hard-label targets."""
    xa = resized_crops(x, 1, crop_scale, gen, flip=True)[:, 0]
    target = F.one_hot(y, num_classes).float()
    if cutmix and len(x) > 1:
        perm = torch.randperm(len(x), generator=gen).to(x.device)
        xa, kept = cutmix_images(xa, xa[perm], float(torch.rand(1, generator=gen)), gen)
        target = kept * target + (1 - kept) * target[perm]
    return xa, target


KD_CENTRE_PASSES = 20          # passes of KD views over a set for its teacher's mean logit (view_logit_offset)


@producer("student.kd_centre", 1, uses=("augment", "models"))
def view_logit_offset(teacher: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0, batch: int = 100,
                      crop_scale=KD_CROP_SCALE, cutmix: bool = True, passes: int = KD_CENTRE_PASSES,
                      device="cpu") -> torch.Tensor:
    """The teacher's mean logit per class over ``passes`` epochs of KD views (:func:`kd_batch`, batches of
    ``batch`` images as a student draws them, each with its own CutMix) of the set ``(x, y)`` a student trains on:
    the offset that centres the targets a student of :func:`train_student_kd` learns. A logit-adjusted teacher's
    raw logits carry a class offset about as large as their spread on such views (the tail class leads on most
    crops), which MSE students learn first; subtracting the mean over the student's own views removes it without
    any image outside the set. The views come from a generator of their own, not the student's."""
    from .data.bias import stream_seed
    gen = torch.Generator().manual_seed(stream_seed(seed, "kd-centre"))
    teacher = teacher.to(device).eval()
    total, n = None, 0
    for _ in range(passes):
        perm = torch.randperm(len(x), generator=gen)
        for idx in perm.split(batch):
            t = predict(teacher, kd_batch(x[idx], y[idx], int(y.max()) + 1, gen, crop_scale, cutmix)[0],
                        device=device).sum(0)
            total, n = (t if total is None else total + t), n + len(idx)
    return total / n


# The teacher's logits on every augmented batch of a student, per (teacher, set, seed, schedule), kept in memory for
# the next student that draws the same batches: the arms of one set and seed (plain, tau = 1, tau*, the sensitivity
# taus) differ only in the offset subtracted afterwards, so the teacher runs once for all of them, as SRe2L's and
# FKD's stored soft labels do. Each entry checks the batch it was made on (a sum of its pixels) before it is reused.
_RELABELS: "OrderedDict[str, dict]" = OrderedDict()
RELABEL_ENTRIES = 64             # students' worth of logits kept (about 2 MB each at 1,000 steps of batch 50)


def _relabels(key: str) -> dict:
    if key in _RELABELS:
        _RELABELS.move_to_end(key)
    else:
        _RELABELS[key] = {}
        while len(_RELABELS) > RELABEL_ENTRIES:
            _RELABELS.popitem(last=False)
    return _RELABELS[key]


@producer("student.kd", 2, uses=("train.fit", "models"))
def train_student_kd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, teacher: nn.Module | None, epochs: int,
                     lr: float = 1e-3, weight_decay: float = 0.01, batch: int = 100, ce_weight: float = 0.025,
                     crop_scale=KD_CROP_SCALE, cutmix: bool = True, seed: int = 0, device="cpu",
                     logit_offset: torch.Tensor | None = None) -> nn.Module:
    """EDC's student recipe: relabel online and train ``MSE(student, teacher logits) + ce_weight * CE`` on every
    augmented batch (:func:`kd_batch`); AdamW with a cosine schedule over all steps. ``logit_offset`` (per class)
    is subtracted from the teacher's logits first (ADSA's ``tau * log pi``). Without a teacher: the same
    recipe with hard labels, the cross-entropy against the (CutMix-mixed) labels alone. The teacher's logits of
    each batch are kept in memory for the next student of the same teacher, set, seed and schedule (its batches
    are the same; only the offset differs between ADSA's arms), and computed through a compiled copy of the
    teacher on a long CPU run."""
    if teacher is not None:
        teacher = teacher.to(device).eval()
    C = [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features
    offset = None if logit_offset is None else logit_offset.to(device)

    from .models import compile_wanted, embed_in_chunks
    from .train import steps_per_epoch
    precision = resolve_precision("auto", device)
    memo = None if teacher is None else _relabels(content_digest(
        teacher, x, y, [epochs, batch, list(crop_scale), cutmix, seed, precision, str(device)]))
    # the teacher labels through one compiled copy where the run is long enough (a FastNet-64 teacher on a CPU: 2x)
    fast = compile_wanted(precision, device, epochs * steps_per_epoch(len(x), batch), threshold=500, fp32=True)

    def step_loss(model, xb, yb, b):
        xb, tb = kd_batch(xb, yb, C, b.gen, crop_scale, cutmix)
        s = model(xb)
        if teacher is None:
            return soft_cross_entropy(s, tb)
        with torch.no_grad():
            at, check = (b.step, int(b.idx[0]), len(b.idx)), float(xb.float().sum())
            hit = memo.get(at)
            if hit is not None and hit[0] == check:
                t = hit[1].to(s.device)
            else:
                t = embed_in_chunks(teacher, xb, precision, len(xb), compile=fast, method="forward")
                memo[at] = (check, t.cpu())
            if offset is not None:
                t = t - offset
        return F.mse_loss(s.float(), t) + ce_weight * soft_cross_entropy(s, tb)
    return fit(model, x, y, step_loss, epochs=epochs, batch=batch, optimiser="adamw", lr=lr,
               opt_kwargs={"weight_decay": weight_decay}, schedule="cosine", seed=seed, device=device)


@dataclass
class EvalSettings:
    """Everything the evaluation protocol needs besides the synthetic set."""
    model: str = "convnet"
    width: int = 128
    depth: int = 3
    norm: str = "instancenorm"
    epochs: int = 1000
    lr: float = 0.01
    batch: int = 256
    aug: str = "dsa"
    students: int = 5
    label_mode: str = "hard"        # one of LABEL_MODES: hard | soft_kl | soft_mse
    temperature: float = 4.0


def _hard_or_soft(model, syn, settings, seed, device, teacher=None, logit_offset=None):
    target = None if settings.label_mode == "hard" else soft_label_loss(
        settings.label_mode, teacher, syn.soft_labels, settings.temperature, logit_offset)
    return train_model(model, syn.images, syn.labels, settings.epochs, settings.lr, settings.batch, settings.aug,
                       seed, device, soft_target=target)


LABEL_MODES = ("hard", "soft_kl", "soft_mse")


def student_key(syn: SyntheticSet, test: ImageData, settings: "EvalSettings", groups, student_seed: int, device,
                teacher=None, logit_offset=None, train_fn: Callable | None = None,
                min_group: int = MIN_GROUP_IMAGES) -> dict | None:
    """What one student's metrics depend on: the synthetic set's content (pixels, labels, stored soft labels), the
    test set's content (pixels, labels, bias attributes, normalisation) and groups, the protocol's settings, the
    student's seed, the labeller (its weights and logit offset), the trainer (``train_fn.key``; None, uncacheable,
    for a ``train_fn`` without one), the machine (device name: CPU model and bf16 extensions, or GPU), the
    precision it trains in, whether training may compile, torch's version and the versions of the producers
    involved (the data's too)."""
    import os
    import shutil
    from dataclasses import asdict
    from .results import device_name
    from .versions import key_versions
    trainer = None
    if train_fn is not None:
        trainer = getattr(train_fn, "key", None)
        if trainer is None:
            return None
    fields = {k: v for k, v in asdict(settings).items() if k != "students"}
    from .cache import content_digest
    return {"syn": content_digest(syn.images, syn.labels, syn.soft_labels), "classes": syn.num_classes,
            "test": test.fingerprint(), "test_content": content_digest(test.images, test.labels,
                                                                        getattr(test, "bias", None), test.mean, test.std),
            "groups": groups, "min_group": min_group, "settings": fields, "student_seed": student_seed,
            "labeller": content_digest(teacher, logit_offset), "trainer": trainer, "device": device_name(device),
            "precision": resolve_precision("auto", device), "torch": torch.__version__,
            "compile": [os.environ.get("LTDD_COMPILE"), shutil.which(os.environ.get("CXX", "g++")) is not None],
            "versions": key_versions("evaluate", "data", "data.bias", "data.longtail", "data.noise",
                                     *(trainer or {}).get("producers", ()))}


@producer("evaluate", 1, uses=("train.fit", "models", "augment"))
def evaluate_synset(syn: SyntheticSet, test: ImageData, settings: EvalSettings, groups=None, seed: int = 0,
                    device="cpu", teacher: nn.Module | None = None, logit_offset: torch.Tensor | None = None,
                    name: str = "eval", train_fn: Callable | None = None,
                    min_group: int = MIN_GROUP_IMAGES, use_cache: bool = False, cache_root=None) -> list[dict]:
    """Train ``settings.students`` fresh students on ``syn`` and test each; one metrics dict per student.

    ``train_fn(model, x, y, seed)`` replaces the standard training (e.g. a debiasing algorithm or knowledge
    distillation applied to the synthetic set) and returns the trained model. Each dict also holds
    ``student``, ``train_seconds``, ``student_steps`` (the optimiser steps :func:`ltdd_utils.train.fit` took)
    and ``precision``. On a test set with a bias attribute, worst groups need ``min_group`` test images.

    With ``use_cache`` (chapters: :meth:`ltdd_utils.experiment.Run.evaluate`) each student's metrics are stored
    under ``students/`` in the cache, keyed by :func:`student_key`, and reused when nothing it depends on changed,
    with the global random state the training left (so what runs next draws the same numbers either way); a
    ``train_fn`` without a ``key`` attribute is always trained.
    """
    from .models import get_model
    if settings.label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode {settings.label_mode!r}: expected one of {list(LABEL_MODES)}")
    if teacher is not None:
        teacher = teacher.to(device)
    from .cache import cached
    cuda = torch.device(device).type == "cuda"
    results = []
    base = student_key(syn, test, settings, groups, seed * 1000, device, teacher, logit_offset, train_fn,
                       min_group) if use_cache else None            # hashed once: the students differ by their seed
    for s in range(settings.students):
        student_seed = seed * 1000 + s
        trained = []

        def train_one():
            trained.append(True)
            torch.manual_seed(student_seed)
            model = get_model(settings.model, test.shape[0], test.num_classes, test.shape[1:], width=settings.width,
                              depth=settings.depth, norm=settings.norm)
            t0 = time.time()
            if train_fn is not None:
                model = train_fn(model, syn.images, syn.labels, student_seed)
            else:
                model = _hard_or_soft(model, syn, settings, student_seed, device, teacher, logit_offset)
            m = test_model(model, test, groups, device, min_group)
            m.update(student=s, train_seconds=time.time() - t0, student_steps=getattr(model, "train_steps", None),
                     precision=getattr(model, "precision", None))
            return {"metrics": m, "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if cuda else None}
        entry = (train_one() if base is None else
                 cached("students", {**base, "student_seed": student_seed}, train_one, cache_root, verbose=False,
                        exact=True))
        torch.set_rng_state(entry["rng"])           # as training left it, whether it ran now or was reused
        if cuda and entry["cuda_rng"] is not None:
            torch.cuda.set_rng_state(entry["cuda_rng"], device)
        m = {**entry["metrics"], "student": s}
        took = f"{m['train_seconds']:.0f}s" if trained else "cached"
        print(f"[{name}] student {s + 1}/{settings.students}: acc {m['acc']:.2f}"
              + "".join(f" {g} {m[f'acc_{g}']:.1f}" for g in (*GROUPS, "aligned", "conflicting") if f"acc_{g}" in m)
              + f" ({took})", flush=True)
        results.append(m)
    return results


# --------------------------------------------------------------------------------------------- teachers
def class_balanced_weights(class_counts, beta: float | None = None) -> torch.Tensor:
    """Per-class CE weights: inverse frequency (``beta=None``) or effective number (Cui et al., 2019),
    normalised to mean 1."""
    n = torch.tensor(class_counts, dtype=torch.float).clamp_min(1)
    w = 1 / n if beta is None else (1 - beta) / (1 - beta ** n)
    return w * len(w) / w.sum()


@producer("net.teacher", 1, uses=("train.fit", "models", "augment"))
def train_teacher(data: ImageData, model: str = "convnet", width: int = 128, depth: int = 3,
                  norm: str = "instancenorm", epochs: int = 50, lr: float = 0.01, batch: int = 256,
                  aug: str = "cropflip", loss: str = "ce", seed: int = 0, device="cpu",
                  cache_root=None, use_cache: bool = True) -> nn.Module:
    """Train (or load from the cache) an expert on real data.

    ``loss``: ``ce`` (plain), ``balanced_ce`` (inverse-frequency class weights) or ``logit_adjust``
    (cross-entropy on logits + log class prior, Menon et al., 2021; the returned model predicts with the
    plain logits). The cache key covers the data fingerprint and every argument below.
    """
    from .models import get_model
    if loss not in ("ce", "balanced_ce", "logit_adjust"):
        raise ValueError(f"teacher loss {loss!r}: expected 'ce', 'balanced_ce' or 'logit_adjust'")
    key = dict(data=data.fingerprint(), model=model, width=width, depth=depth, norm=norm, epochs=epochs, lr=lr,
               batch=batch, aug=aug, loss=loss)

    def train(net):
        x, y = data.tensors()
        counts = data.class_counts()
        if loss == "logit_adjust":
            prior = torch.tensor(counts, dtype=torch.float).clamp_min(1)
            log_prior = (prior / prior.sum()).log().to(device)
            target = lambda logits, xb, idx: F.cross_entropy(logits + log_prior, y[idx].to(device))
            train_model(net, x, y, epochs, lr, batch, aug, seed, device, soft_target=target, desc="teacher")
        else:
            w = class_balanced_weights(counts).to(device) if loss == "balanced_ce" else None
            train_model(net, x, y, epochs, lr, batch, aug, seed, device, class_weights=w, desc="teacher")

    build = lambda: get_model(model, data.shape[0], data.num_classes, data.shape[1:], width=width, depth=depth,
                              norm=norm)
    return cached_net("net.teacher", build, train, key, seed=seed, device=device, cache_root=cache_root,
                      use_cache=use_cache)
