"""One recipe for the networks trained on real data to label, score or debias: teachers, experts, trust networks.

The papers label with ResNet teachers at 75-88 % on CIFAR-10(-LT); chapter 01's ConvNet-32, trained for 40 epochs
on CIFAR-10-LT IF 100, reached 47 %. :func:`fit_teacher` trains :class:`ltdd_utils.models.FastNet` (a whitened,
identity-initialised BatchNorm network after Page (2018), hlb-CIFAR10 and airbench) through
:func:`ltdd_utils.train.fit` with what makes that family fast: Nesterov SGD with hyperparameters decoupled from
the batch size, BatchNorm shifts at 64x the learning rate, label smoothing 0.2, translations of at most 2 px and
flips, a warm-up-then-linear schedule, and a lookahead average of the weights every 5 steps (its decay rising to
0.77 by the end). :func:`predict_tta` averages a flipped view at test time.

Objectives (``objective``): ``ce`` (cross-entropy with label smoothing; also on noisy labels) and ``logit_adjust``
(Menon et al., 2021: the logits plus ``tau`` times the log class prior during training, so that the plain logits
are balanced at test time; without label smoothing; the long-tail experts). The epochs are the caller's: fixed
before a run, with a validation split (:func:`ltdd_utils.data.longtail.held_out`) to watch, never the test set.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .versions import producer

OBJECTIVES = ("ce", "logit_adjust")


@dataclass(frozen=True)
class Recipe:
    """The teachers' hyperparameters; ``lr`` and ``weight_decay`` per 1,024 images, decoupled from momentum and
    batch size (the step is the same for any momentum under constant gradients)."""
    width: int = 64
    batch: int = 500
    lr: float = 11.5
    momentum: float = 0.85
    weight_decay: float = 0.0153
    bias_lr_scale: float = 64.0
    label_smoothing: float = 0.2
    lookahead_every: int = 5
    lookahead_decay: float = 0.95 ** 5
    whiten_images: int = 5000

    def torch_lr(self) -> float:
        """SGD's lr for a loss averaged over the batch."""
        return self.lr * self.batch / (1024 * (1 + 1 / (1 - self.momentum)))

    def torch_weight_decay(self) -> float:
        """SGD's weight_decay (it is multiplied by the lr): the decay per step is ``weight_decay`` per 1,024
        images."""
        return self.weight_decay / self.lr


def parse_recipe(text: str) -> dict:
    """Recipe overrides from ``"batch=250,weight_decay=0.03"`` (checked against :class:`Recipe`'s fields and types
    before anything trains)."""
    from dataclasses import fields
    from .checks import ConfigError
    kinds = {f.name: type(getattr(Recipe(), f.name)) for f in fields(Recipe)}
    out = {}
    for item in filter(None, text.split(",")):
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in kinds:
            raise ConfigError(f"recipe override {item!r} is not allowed: expected NAME=VALUE with NAME one of "
                              f"{list(kinds)}")
        name = name.strip()
        kind = kinds[name]
        try:
            v = kind(value)
        except ValueError:
            v = None
        low, wanted = ((1, "a whole number ≥ 1") if kind is int else (0, "a finite number ≥ 0"))
        bad = v is None or not math.isfinite(v) or v < low
        if name == "lr":
            bad, wanted = bad or v == 0, "a finite number > 0"
        if name == "momentum":
            bad, wanted = bad or v >= 1, "a number in [0, 1)"
        if bad:
            raise ConfigError(f"recipe override {item!r}: expected {wanted}")
        out[name] = v
    return out


def _param_groups(recipe: Recipe):
    """BatchNorm shifts at ``bias_lr_scale`` times the learning rate with the same absolute weight decay."""
    lr, wd = recipe.torch_lr(), recipe.torch_weight_decay()

    def groups(model: nn.Module) -> list[dict]:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        shifts = [p for n, p in named if ".norm" in n]
        rest = [p for n, p in named if ".norm" not in n]
        return [dict(params=shifts, lr=lr * recipe.bias_lr_scale, weight_decay=wd / recipe.bias_lr_scale),
                dict(params=rest, lr=lr, weight_decay=wd)]
    return groups


class _Lookahead:
    """Every ``every`` steps the weights (and BatchNorm statistics) move to an exponential average of themselves,
    which then continues from there. The average's decay grows as the cube of the fraction of training done, to
    ``decay`` at the end: early steps keep their progress, late ones are smoothed. The last step's weights stay."""

    def __init__(self, model: nn.Module, every: int, decay: float, total: int):
        self.avg = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
        self.every, self.decay, self.total = every, decay, total

    def __call__(self, step: int, model: nn.Module) -> None:
        if step % self.every or step >= self.total:
            return
        decay = self.decay * (step / self.total) ** 3
        for k, v in model.state_dict().items():
            if k in self.avg:
                self.avg[k].lerp_(v, 1 - decay)
                v.copy_(self.avg[k])


@producer("teachers", 1, uses=("train.fit", "models", "augment"))
def fit_teacher(x: torch.Tensor, y: torch.Tensor, num_classes: int, *, epochs: float, objective: str = "ce",
                tau: float = 1.0, recipe: Recipe = Recipe(), seed: int = 0, device="cpu", precision: str = "auto",
                compile: bool | None = None, desc: str | None = None, on_epoch=None,
                net: nn.Module | None = None, step_loss=None, aug: str = "translate_flip") -> nn.Module:
    """A :class:`~ltdd_utils.models.FastNet` trained on ``(x, y)`` (normalised images, labels) by the recipe; in
    eval mode. ``epochs`` may be fractional (rounded to whole optimiser steps; every epoch a fresh permutation).
    ``objective``: ``ce`` or ``logit_adjust`` (with ``tau``; the prior is the class frequencies of ``y``). ``net``:
    an untrained FastNet to train in place (default: one built under ``seed``), or a module around one (its
    ``backbone``, e.g. GLMC's :class:`~ltdd_utils.methods.unbiased_recovery.Expert`). ``step_loss(model, xb, yb,
    b)`` replaces the objective's loss (GLMC's step, which makes its own views: then ``aug="none"``); ``aug``: the
    batches' augmentation (:func:`ltdd_utils.augment.augment`)."""
    from .models import get_model, whiten_from
    from .train import fit
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} is not allowed: expected one of {list(OBJECTIVES)}")
    if step_loss is not None and (objective != "ce" or tau != 1.0):
        raise ValueError("a step_loss replaces the objective: leave objective and tau at their defaults")
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    if net is None:
        torch.manual_seed(seed)
        net = get_model("fastnet", x.shape[1], num_classes, tuple(x.shape[-2:]), width=recipe.width)
    net = net.to(device)                        # before the lookahead copies its weights
    g = torch.Generator().manual_seed(seed)
    whiten_from(getattr(net, "backbone", net), x[torch.randperm(len(x), generator=g)[:recipe.whiten_images]])
    steps_per = math.ceil(len(x) / recipe.batch)
    total = max(1, round(epochs * steps_per))
    whole = math.ceil(total / steps_per)
    shift = None
    if objective == "logit_adjust":
        prior = torch.bincount(y, minlength=num_classes).float().clamp_min(1)
        shift = (tau * (prior / prior.sum()).log()).to(device)

    # no label smoothing under logit adjustment: smoothing caps the margin a target asks for (about 3.7 at 0.2 over
    # ten classes) below the prior's spread (log 100 = 4.6 at IF 100), so the plain logits would learn to favour the
    # tail on head images (seed 0, IF 100: many 11 %, few 79 %)
    smoothing = recipe.label_smoothing if shift is None else 0.0

    def objective_loss(model, xb, yb, b):
        logits = model(xb).float()
        if shift is not None:
            logits = logits + shift
        return F.cross_entropy(logits, yb, label_smoothing=smoothing)

    return fit(net, x, y, step_loss or objective_loss, epochs=whole, batch=recipe.batch, optimiser="sgd",
               lr=recipe.torch_lr(),
               opt_kwargs={"momentum": recipe.momentum, "nesterov": True,
                           "weight_decay": recipe.torch_weight_decay()},
               schedule="warmup_linear", aug=aug, seed=seed, device=device, precision=precision,
               compile=compile,
               desc=desc, param_groups=_param_groups(recipe),
               on_step=_Lookahead(net, recipe.lookahead_every, recipe.lookahead_decay, total),
               on_epoch=on_epoch, steps=total)


def predict_tta(model: nn.Module, x: torch.Tensor, device="cpu", precision: str = "auto",
                batch: int = 500) -> torch.Tensor:
    """fp32 logits averaged over each image and its mirror image."""
    from .evaluate import predict
    return 0.5 * (predict(model, x, batch, device, precision) + predict(model, x.flip(-1), batch, device, precision))


KIND = "net.fast_teacher"        # the teachers' producer: cached under nets/<KIND>


@producer(KIND, 1, uses=("teachers", "data"))
def teacher(data, *, epochs: float, objective: str = "ce", tau: float = 1.0, seed: int = 0,
            recipe: Recipe = Recipe(), device="cpu", cache_root=None, use_cache: bool = True) -> nn.Module:
    """The recipe's network for ``data`` (an :class:`~ltdd_utils.data.ImageData`; noisy labels are its labels),
    trained once per split, objective, epochs, recipe, seed and producer versions and shared through the cache:
    two chapters asking for the same teacher load one training."""
    from .models import get_model
    from .train import cached_net
    key = dict(data=data.fingerprint(), epochs=epochs, objective=objective, tau=tau, recipe=asdict(recipe))
    x, y = data.tensors()
    build = lambda: get_model("fastnet", data.shape[0], data.num_classes, data.shape[1:], width=recipe.width)
    train = lambda net: fit_teacher(x, y, data.num_classes, epochs=epochs, objective=objective, tau=tau,
                                    recipe=recipe, seed=seed, device=device, net=net, desc=f"teacher ({objective})")
    return cached_net(KIND, build, train, key, seed=seed, device=device, cache_root=cache_root,
                      use_cache=use_cache)


# ------------------------------------------------------------------------------------------------ measurement
# Each role: its training split, objective, epochs and any recipe overrides, fixed before the run by the time budget
# (about 15 minutes of training on 2 cores in bf16) and the validation curve. The plain long-tail teacher's curve was
# still rising at 24 epochs (seed 0: 58-65 % over the last six), so it trains 30, what the budget holds; at seed 0 it
# ended at 64.1 %, and neither batch 250 for 24 epochs (64.9 %, flipped 65.5 %, 10.9 minutes), nor that with twice the
# weight decay (64.6 %, flipped 65.5 %), nor batch 250 for 30 epochs (62.6 %, flipped 62.9 %, 14.9 minutes), nor 60
# epochs (60.5 %), nor 4-pixel crops for 30 epochs (63.7 %, flipped 63.9 %), nor width 96 for 30 epochs (64.2 %, flipped
# 65.4 %, 15.9 minutes on an Intel AMX) left the swing of its last epochs (63.3-65.3 % over the last five;
# book/results/teachers_choices.json), so it keeps the recipe. The debiased one's had levelled off (73.0-73.6 % over the
# last five). The balanced and noisy ones train 7.5 epochs: at 8 their training alone took 14.9-15.2 minutes. The
# validation split (balanced, outside the training images: the last 5,000 of a fixed permutation of CIFAR-10's training
# set, or 100 images per class of them for the long tail) records the accuracy after every epoch; the test set is read
# once, at the end (``measure(test=False)`` chooses a setting without it).
ROLES = {
    "balanced": dict(what="CIFAR-10, 45,000 training images", objective="ce", epochs=7.5),
    "lt_plain": dict(what="CIFAR-10-LT, IF 100: 4,500 to 45 per class of the 45,000 (11,165 images)",
                     objective="ce", epochs=30),
    "lt_debiased": dict(what="the same long tail, logit adjustment (tau 1)", objective="logit_adjust", epochs=24),
    # GLMC's step forwards two mixed views of two batches: about twice an epoch's cost, so 16 epochs
    "lt_glmc": dict(what="the same long tail, GLMC's step (two heads, q 1, resampling 0.2, SimSiam weight 4)",
                    objective="glmc", epochs=16),
    "noisy_sym40": dict(what="CIFAR-10, 45,000 training images, 40 % symmetric label noise", objective="ce",
                        epochs=7.5),
}


def role_recipe(role: str, overrides: dict | None = None) -> Recipe:
    """The recipe a role trains by: the default with the role's ``recipe`` overrides, then ``overrides``."""
    return replace(Recipe(), **{**ROLES[role].get("recipe", {}), **(overrides or {})})


def role_splits(role: str, root=None, seed: int = 0, full=None):
    """(train, validation) of a role: ImageData, the noisy role's labels noisy in both (a practitioner's
    validation split has the same noise). ``full``: CIFAR-10's training split, if already loaded."""
    from .data import load_dataset
    from .data.longtail import held_out, make_longtail
    from .data.noise import inject_noise
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not allowed: expected one of {list(ROLES)}")
    full = full if full is not None else load_dataset("cifar10", root, train=True)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
    train, val = full.subset(perm[:45000].sort().values), full.subset(perm[45000:].sort().values)
    if role.startswith("lt_"):       # CIFAR-10-LT's shape on the 45,000: 4,500 head images down to 45
        return make_longtail(train, 100, seed=0, n_max=4500), held_out(full, [train], 100)
    if role == "noisy_sym40":
        train, val = inject_noise(train, "symmetric", 0.4, seed=seed), inject_noise(val, "symmetric", 0.4, seed=seed)
    return train, val


def _role_objective(objective: str, train, seed: int, width: int) -> dict:
    """fit_teacher's objective arguments for a role; GLMC's: its expert (two heads) and step (chapter 02)."""
    if objective != "glmc":
        return dict(objective=objective)
    from .methods.unbiased_recovery import glmc_fastnet
    torch.manual_seed(seed)
    net, step = glmc_fastnet(train, width=width, q=1.0, resample=0.2, contrast_weight=4.0)
    return dict(net=net, **step)


def measure(roles, seeds, root=None, out=None, epochs: float | None = None, device="cpu", recipe: dict | None = None,
            test: bool = True, aug: str | None = None) -> list[dict]:
    """Train each role's teacher per seed (not cached: a measurement), with its validation accuracy after every
    epoch; test accuracy (balanced test set: overall = balanced; many / medium / few on the long tail) at the end,
    plain and with flip averaging. One row per network; ``minutes`` from the first step to the last epoch's
    validation, of which ``validation_minutes`` validating. Written to ``out`` (JSON, and its table beside it) as it
    goes, merged with the rows already there: a row of the same role and seed is replaced, and so are the role's
    rows trained for other epochs, by another recipe or augmentation (a table row averages seeds of one setting).
    ``recipe``: overrides of the roles' recipes.
    ``test=False`` (choosing a setting): the test set is not read; each row gets the flip-averaged accuracy on
    the validation split instead, and ``out`` must be None. ``aug``: the training batches' augmentation instead of
    the recipe's ``translate_flip`` (a name of :data:`ltdd_utils.augment.AUGMENTS`; not for GLMC's step, which makes
    its own views); recorded in each row."""
    import json
    import time
    from .cache import atomic_write_text
    from .data import load_dataset
    from .data.longtail import class_groups
    from .evaluate import accuracy_metrics, predict
    from .precision import resolve
    from .results import device_name
    from pathlib import Path
    from .augment import AUGMENTS
    from .checks import ConfigError
    if out and not test:
        raise ConfigError("a run without the test set (--validation-only) chooses a setting: it writes no rows "
                          "(leave out --out)")
    if aug is not None and aug not in AUGMENTS:
        raise ConfigError(f"augmentation {aug!r} is not allowed: expected one of {list(AUGMENTS)}")
    if aug is not None and "lt_glmc" in roles:
        raise ConfigError("GLMC's step makes its own views: leave out the augmentation override for lt_glmc")
    full = load_dataset("cifar10", root, train=True)
    if test:
        test_set = load_dataset("cifar10", root, train=False)
        xt, yt = test_set.tensors()
    rows = json.loads(Path(out).read_text()) if out and Path(out).exists() else []
    for role in roles:
        spec = ROLES[role]
        for seed in seeds:
            train, val = role_splits(role, root, seed, full)
            x, y = train.tensors()
            xv, yv = val.tensors()
            curve, t0, validating = [], time.time(), [0.0]
            val_acc = lambda fn, model: round(float((fn(model, xv, device=device).argmax(1) == yv).float().mean()
                                                    * 100), 2)

            def on_epoch(ep, model):
                t = time.time()
                curve.append(val_acc(predict, model))
                validating[0] += time.time() - t
                print(f"[{role} seed {seed}] epoch {ep}: validation {curve[-1]:.2f} ({time.time() - t0:.0f} s)",
                      flush=True)
            n, recipe_ = epochs or spec["epochs"], role_recipe(role, recipe)
            net = fit_teacher(x, y, train.num_classes, epochs=n, seed=seed, device=device, on_epoch=on_epoch,
                              recipe=recipe_, **({} if aug is None else {"aug": aug}),
                              **_role_objective(spec["objective"], train, seed, recipe_.width))
            minutes = (time.time() - t0) / 60
            groups = class_groups(train.class_counts()) if role.startswith("lt_") else None
            row = dict(role=role, what=spec["what"], seed=seed, epochs=n, recipe=asdict(recipe_), train_images=len(x),
                       validation=f"{len(xv)} images outside the training split", validation_curve=curve,
                       minutes=round(minutes, 1), validation_minutes=round(validating[0] / 60, 1),
                       precision=resolve("auto", device), device=device_name(device),
                       torch=torch.__version__)
            if aug is not None:
                row["aug"] = aug
            if not test:
                row["validation_tta"] = val_acc(predict_tta, net)
                print(json.dumps(row), flush=True)
                rows.append(row)
                continue
            for name, fn in (("test", predict), ("test_tta", predict_tta)):
                m = accuracy_metrics(fn(net, xt, device=device).argmax(1), yt, test_set.num_classes, groups)
                row[name] = {k: round(v, 2) for k, v in m.items() if isinstance(v, float)}
            setting = lambda r: (r["epochs"], r.get("recipe"), r.get("aug"))
            rows = [r for r in rows if r["role"] != role or (r["seed"] != seed and setting(r) == setting(row))] + [row]
            rows.sort(key=lambda r: (list(ROLES).index(r["role"]), r["seed"]))
            print(json.dumps(row), flush=True)
            if out:
                atomic_write_text(out, json.dumps(rows, indent=1) + "\n")
                atomic_write_text(Path(out).with_suffix(".md"), to_markdown(rows))
    return rows


# what the papers' pipelines label with, for the table beside ours (their numbers, not ours)
PAPERS_TEACHERS = [
    ("GLMC (Du et al., CVPR 2023), ResNet-32, 200 epochs of its debiased training", "87.8 on CIFAR-10-LT IF 100"),
    ("airbench94 (Jordan, 2024), the recipe's origin, about 10 epochs on an A100", "94.0 on CIFAR-10"),
]


def to_markdown(rows: list[dict]) -> str:
    """The teachers table of the "Running the book" page: per role, mean and range over seeds."""
    import statistics
    lines = ["| role | training data | seeds | epochs, batch | test accuracy (%): plain, flipped | many / medium / few "
             "(flipped) | minutes |", "|---|---|---|---|---|---|---|"]
    for role in dict.fromkeys(r["role"] for r in rows):
        rs = [r for r in rows if r["role"] == role]
        acc = [r["test_tta"]["acc"] for r in rs]
        fmt = lambda v: f"{statistics.mean(v):.1f}" + (f" ({min(v):.1f}–{max(v):.1f})" if len(v) > 1 else "")
        groups = " / ".join(fmt([r["test_tta"][f"acc_{g}"] for r in rs]) for g in ("many", "medium", "few")
                            if f"acc_{g}" in rs[0]["test_tta"]) or "—"
        plain = fmt([r["test"]["acc"] for r in rs])
        lines.append(f"| {role} | {rs[0]['what']} | {', '.join(str(r['seed']) for r in rs)} | "
                     f"{rs[0]['epochs']:g}, {rs[0]['recipe']['batch']}{', ' + rs[0]['aug'] if 'aug' in rs[0] else ''}"
                     " | "
                     f"{plain}, {fmt(acc)} | {groups} | {fmt([r['minutes'] for r in rs])} |")
    machines = sorted({f"{r['precision']} on {r['device']} (torch {r['torch']})" for r in rows})
    timed = [r["validation_minutes"] for r in rows if "validation_minutes" in r]
    validating = (f" (in the {len(timed)} runs that timed it apart, {min(timed):.1f}–{max(timed):.1f} minutes of "
                  "the total)" if timed else "")
    lines += ["", f"Ran in {'; '.join(machines)}. \"Flipped\": logits averaged with the mirror image's; minutes "
              f"include a validation pass after every epoch{validating}.",
              "", "The papers' teachers (their numbers, not ours): "
              + "; ".join(f"{who}: {value}" for who, value in PAPERS_TEACHERS) + "."]
    return "\n".join(lines) + "\n"
