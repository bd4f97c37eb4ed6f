"""The one evaluation protocol, its metrics, and the teacher/expert trainer.

``evaluate_synset`` trains ``students`` fresh models on a synthetic set (hard labels with cross-entropy, or
soft labels from a teacher: KL at temperature T, or MSE on logits) with DSA or crop/flip augmentation, and
tests each on the balanced test set: overall accuracy, per-class accuracy and many/medium/few accuracy.
``train_teacher`` trains an expert on real data (plain, class-balanced or logit-adjusted cross-entropy);
its weights are cached by configuration and reused.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import crop_flip, dsa
from .cache import cached, config_key
from .data import ImageData
from .data.longtail import GROUPS
from .distill.synset import SyntheticSet
from .progress import Progress


# ------------------------------------------------------------------------------------------- metrics
@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 1000, device="cpu") -> torch.Tensor:
    """Logits of ``model`` on normalised images ``x`` (CPU tensor), in batches."""
    model.eval()
    return torch.cat([model(x[i:i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])


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


def bias_metrics(pred: torch.Tensor, labels: torch.Tensor, bias: torch.Tensor) -> dict:
    """Accuracy on bias-aligned (attribute = label) and bias-conflicting test samples, and the worst accuracy
    over the (class, attribute) groups present: the numbers a biased-data chapter reports (percentages)."""
    correct = (pred == labels).float()
    aligned = bias == labels
    group = labels * (int(bias.max()) + 1) + bias
    worst = min(float(correct[group == g].mean()) for g in group.unique()) * 100
    nan = float("nan")
    return {"acc_aligned": float(correct[aligned].mean() * 100) if aligned.any() else nan,
            "acc_conflicting": float(correct[~aligned].mean() * 100) if (~aligned).any() else nan,
            "acc_worst_group": worst}


def test_model(model: nn.Module, test: ImageData, groups=None, device="cpu") -> dict:
    """Metrics of ``model`` on ``test``; a test set with a bias attribute also gets :func:`bias_metrics`."""
    x, y = test.tensors()
    pred = predict(model, x, device=device).argmax(1)
    out = accuracy_metrics(pred, y, test.num_classes, groups)
    if getattr(test, "bias", None) is not None:
        out.update(bias_metrics(pred, y, test.bias))
    return out


# -------------------------------------------------------------------------------------------- training
def _augment(x, kind: str, gen: torch.Generator):
    if kind == "dsa":
        return dsa(x, siamese=False, generator=gen)
    if kind == "cropflip":
        return crop_flip(x, pad=max(1, x.shape[-1] // 8), generator=gen)
    return x


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float = 0.01,
                batch: int = 256, aug: str = "dsa", seed: int = 0, device="cpu", weight_decay: float = 5e-4,
                soft_target: Callable | None = None, class_weights: torch.Tensor | None = None,
                desc: str | None = None) -> nn.Module:
    """SGD (momentum 0.9), lr x0.1 at half of training, minibatches drawn with a seeded generator.

    The loss is cross-entropy (with optional per-class ``class_weights``) unless ``soft_target`` is given:
    ``soft_target(student_logits, augmented_batch, batch_indices)`` then returns the loss
    (see :func:`soft_label_loss`).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [max(1, epochs // 2)], 0.1)
    n = len(y)
    prog = Progress(epochs, desc) if desc else None
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb = _augment(x[idx].to(device), aug, gen)
            logits = model(xb)
            if soft_target is not None:
                loss = soft_target(logits, xb, idx)
            else:
                loss = F.cross_entropy(logits, y[idx].to(device), weight=class_weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        if prog:
            prog.update(loss=total / n)
    return model.eval()


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
    label_mode: str = "hard"        # hard | soft_kl | soft_mse
    temperature: float = 4.0


def evaluate_synset(syn: SyntheticSet, test: ImageData, settings: EvalSettings, groups=None, seed: int = 0,
                    device="cpu", teacher: nn.Module | None = None, logit_offset: torch.Tensor | None = None,
                    name: str = "eval", train_fn: Callable | None = None) -> list[dict]:
    """Train ``settings.students`` fresh students on ``syn`` and test each; one metrics dict per student.

    ``train_fn(model, x, y, seed)`` replaces the standard training (hard labels only), e.g. a debiasing
    algorithm applied to the synthetic set; it returns the trained model.
    """
    from .models import get_model
    if settings.label_mode not in ("hard", "soft_kl", "soft_mse"):
        raise ValueError(f"label_mode {settings.label_mode!r}: expected 'hard', 'soft_kl' or 'soft_mse'")
    if teacher is not None:
        teacher = teacher.to(device)
    results = []
    for s in range(settings.students):
        student_seed = seed * 1000 + s
        torch.manual_seed(student_seed)
        model = get_model(settings.model, test.shape[0], test.num_classes, test.shape[1:], width=settings.width,
                          depth=settings.depth, norm=settings.norm)
        target = None if settings.label_mode == "hard" else soft_label_loss(
            settings.label_mode, teacher, syn.soft_labels, settings.temperature, logit_offset)
        t0 = time.time()
        if train_fn is not None:
            model = train_fn(model, syn.images, syn.labels, student_seed)
        else:
            train_model(model, syn.images, syn.labels, settings.epochs, settings.lr, settings.batch, settings.aug,
                        student_seed, device, soft_target=target)
        m = test_model(model, test, groups, device)
        m.update(student=s, train_seconds=time.time() - t0)
        print(f"[{name}] student {s + 1}/{settings.students}: acc {m['acc']:.2f}"
              + "".join(f" {g} {m[f'acc_{g}']:.1f}" for g in (*GROUPS, "aligned", "conflicting") if f"acc_{g}" in m)
              + f" ({m['train_seconds']:.0f}s)", flush=True)
        results.append(m)
    return results


# --------------------------------------------------------------------------------------------- teachers
def class_balanced_weights(class_counts, beta: float | None = None) -> torch.Tensor:
    """Per-class CE weights: inverse frequency (``beta=None``) or effective number (Cui et al., 2019),
    normalised to mean 1."""
    n = torch.tensor(class_counts, dtype=torch.float).clamp_min(1)
    w = 1 / n if beta is None else (1 - beta) / (1 - beta ** n)
    return w * len(w) / w.sum()


def data_fingerprint(data: ImageData) -> str:
    """Identifies a training set: dataset, pixel source and the exact indices used."""
    idx = data.indices if data.indices is not None else torch.arange(len(data))
    extra = b"" if getattr(data, "bias", None) is None else data.bias.numpy().tobytes()   # biased data: its attributes
    h = hashlib.sha1(idx.numpy().tobytes() + data.labels.numpy().tobytes() + extra).hexdigest()[:16]
    return f"{data.name}|{data.source}|{h}"


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
    cfg = dict(data=data_fingerprint(data), model=model, width=width, depth=depth, norm=norm, epochs=epochs, lr=lr,
               batch=batch, aug=aug, loss=loss, seed=seed)

    def build():
        torch.manual_seed(seed)
        return get_model(model, data.shape[0], data.num_classes, data.shape[1:], width=width, depth=depth, norm=norm)

    def fit():
        net = build()
        x, y = data.tensors()
        counts = data.class_counts()
        if loss == "logit_adjust":
            prior = torch.tensor(counts, dtype=torch.float).clamp_min(1)
            log_prior = (prior / prior.sum()).log().to(device)

            def target(logits, xb, idx):
                return F.cross_entropy(logits + log_prior, y[idx].to(device))
            train_model(net, x, y, epochs, lr, batch, aug, seed, device, soft_target=target, desc="teacher")
        else:
            w = class_balanced_weights(counts).to(device) if loss == "balanced_ce" else None
            train_model(net, x, y, epochs, lr, batch, aug, seed, device, class_weights=w, desc="teacher")
        return {k: v.cpu() for k, v in net.state_dict().items()}

    state = cached("teachers", cfg, fit, cache_root) if use_cache else fit()
    net = build()
    net.load_state_dict(state)
    net.teacher_key = config_key(cfg)
    return net.to(device).eval()
