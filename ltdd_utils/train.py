"""The one network-training loop and the one cached-network helper.

``fit`` trains any model: students, teachers, experts, trust networks, SupCon embeddings, LfF pairs. A caller
supplies only a per-batch loss ``step_loss(model, xb, yb, batch) -> loss``; the loop owns minibatching
(a seeded permutation per epoch), augmentation, the optimiser and its schedule, and progress. ``batch`` is
a :class:`Batch` with the indices, the generator (for extra seeded draws), the step and epoch counters.

``cached_net`` builds a network under a seed, trains it once with ``fit`` (through the caller's ``train``),
stores its weights atomically under a key made of its arguments and the producers' versions, and loads it
on every later call.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import augment
from .cache import cached, config_key
from .precision import autocast, resolve as resolve_precision
from .progress import Progress
from .versions import key_versions, producer

OPTIMISERS: dict[str, Callable] = {
    "sgd": lambda params, lr, weight_decay=5e-4, momentum=0.9, nesterov=False: torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov),
    "adam": lambda params, lr, weight_decay=0.0, betas=(0.9, 0.999): torch.optim.Adam(params, lr=lr, betas=betas,
                                                                                       weight_decay=weight_decay),
    "adamw": lambda params, lr, weight_decay=0.01: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay),
}

# schedule name -> (factory(optimiser, epochs, total_steps), stepped after every step (True) or epoch (False))
SCHEDULES: dict[str, tuple[Callable, bool]] = {
    "step_half": (lambda opt, epochs, steps: torch.optim.lr_scheduler.MultiStepLR(opt, [max(1, epochs // 2)], 0.1),
                  False),
    "cosine": (lambda opt, epochs, steps: torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps)), True),
    "constant": (lambda opt, epochs, steps: None, True),
    # GLMC's schedule: a linear warm-up over the first 5 % of the steps, then cosine to 0
    "warmup_cosine": (lambda opt, epochs, steps: torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(steps)), True),
    # the teachers' schedule (airbench's shape): x0.2 rising linearly to x1 over the first 23 % of the steps, then
    # falling linearly to x0.07
    "warmup_linear": (lambda opt, epochs, steps: torch.optim.lr_scheduler.LambdaLR(opt, _warmup_linear(steps)), True),
}


def _warmup_cosine(steps: int, warmup: float = 0.05) -> Callable[[int], float]:
    w = max(1, round(warmup * steps))
    return lambda s: (s + 1) / w if s < w else 0.5 * (1 + math.cos(math.pi * (s - w) / max(1, steps - w)))


def _warmup_linear(steps: int, peak: float = 0.23, start: float = 0.2, end: float = 0.07) -> Callable[[int], float]:
    def factor(s: int) -> float:
        f = s / max(1, steps)
        return start + (1 - start) * f / peak if f < peak else 1 - (1 - end) * (f - peak) / (1 - peak)
    return factor


@dataclass
class Batch:
    """What a step loss may need besides the batch itself."""
    idx: torch.Tensor           # positions of the batch in the training tensors
    gen: torch.Generator        # the run's generator: extra draws stay seeded and in order
    step: int                   # optimiser steps taken before this one
    total: int                  # optimiser steps of the whole run
    epoch: int


def cross_entropy(model, xb, yb, batch):
    """The default step loss."""
    return F.cross_entropy(model(xb), yb)


def steps_per_epoch(n: int, batch: int) -> int:
    return math.ceil(n / batch)


@producer("train.fit", 1)
def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, step_loss: Callable = cross_entropy, *,
        epochs: int, batch: int = 256, optimiser: str = "sgd", lr: float = 0.01, opt_kwargs: dict | None = None,
        schedule: str = "step_half", aug: str = "none", seed: int | None = 0, gen: torch.Generator | None = None,
        index: torch.Tensor | None = None, device="cpu", desc: str | None = None,
        precision: str = "auto", compile: bool | None = None, micro_batch: int | str = 0,
        on_epoch: Callable[[int, nn.Module], None] | None = None,
        param_groups: Callable[[nn.Module], list[dict]] | None = None,
        on_step: Callable[[int, nn.Module], None] | None = None, steps: int | None = None) -> nn.Module:
    """Train ``model`` on ``(x, y)`` (CPU tensors, moved batch by batch) and return it in eval mode.

    Each epoch draws a permutation of ``index`` (default: every sample) from the generator; each batch is
    augmented with ``AUGMENTS[aug]`` and passed to ``step_loss``. ``optimiser`` (``OPTIMISERS``: sgd with
    momentum 0.9, adam, adamw) with ``lr`` and ``opt_kwargs``; ``schedule`` (``SCHEDULES``): ``step_half``
    (x0.1 at half of the epochs), ``cosine`` (to 0 over all steps), ``warmup_cosine`` (linear warm-up over the
    first 5 % of the steps, then cosine) or ``constant``. ``seed`` seeds both the
    global RNG and the generator; pass ``gen`` to continue an existing stream instead (then ``seed`` only
    seeds the global RNG, when not None). ``desc`` prints one progress line per epoch. ``precision``
    (:mod:`ltdd_utils.precision`): under bf16 the forward pass and the loss run under autocast (convolutions
    and matrix products in bf16), the weights, their gradients and the optimiser state stay fp32. ``compile``
    (None: auto, :func:`ltdd_utils.models.compile_wanted`: on a CPU, 500 steps or more, in fp32 only without
    BatchNorm; the first compiled forward is compared with eager, which takes over if they differ) runs the model's
    forward compiled, channels_last (a new model of the same architecture reuses the compiled code).
    ``micro_batch`` (an int, 0 = off, or ``"auto"``: :func:`ltdd_utils.models.micro_batch_size`) forwards and
    backwards each augmented batch in near-equal chunks of at most that many images and takes one optimiser
    step on their summed gradients, each chunk's loss weighted by its share of the batch: the same step, up to
    float rounding, when ``step_loss`` is a mean of per-image losses and the model treats images
    independently (no BatchNorm), and on a CPU up to about twice as fast for large batches. The returned model
    carries ``train_steps`` (the optimiser steps taken) and ``precision`` (the one resolved).
    ``param_groups(model)`` gives the optimiser parameter groups (dicts with ``params`` and optionally their own
    ``lr`` and ``weight_decay``; the schedule scales each group's own lr) instead of every parameter alike;
    ``on_step(steps_taken, model)`` runs after every optimiser step, without gradients (e.g. a lookahead average).
    ``steps`` stops training after that many optimiser steps, within the last of the ``epochs`` (the schedule
    spans them): a fractional number of epochs.
    """
    from .models import _AGREES, _agrees, _check_key, compile_wanted, has_batchnorm, quiet_compile
    if optimiser not in OPTIMISERS:
        raise ValueError(f"optimiser {optimiser!r} is not allowed: expected one of {list(OPTIMISERS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r} is not allowed: expected one of {list(SCHEDULES)}")
    precision = resolve_precision(precision, device)
    micro = _micro_batch(micro_batch, model, x, device)
    if seed is not None:
        torch.manual_seed(seed)
    gen = gen if gen is not None else torch.Generator().manual_seed(seed or 0)
    index = torch.arange(len(y)) if index is None else index
    model = model.to(device).train()
    opt = OPTIMISERS[optimiser](model.parameters() if param_groups is None else param_groups(model), lr,
                                **(opt_kwargs or {}))
    total = epochs * steps_per_epoch(len(index), batch)
    if steps is not None:
        if not 0 < steps <= total:
            raise ValueError(f"steps {steps} is not allowed: expected 1 to {total} ({epochs} epochs of batch {batch})")
        total = steps
    # in fp32 as well for networks without BatchNorm (ConvNet-128 students: 1.2x at batch 25, 1.5x at batch 100);
    # the first compiled forward is checked against eager (a BatchNorm network's second forward would move its
    # running statistics, so those compile in bf16 only)
    # a ModuleList of networks (LfF's pair, which its step_loss indexes) has no forward of its own: each network
    # is compiled, and the first one's forward is the one checked; any other container trains as it is
    pair = isinstance(model, nn.ModuleList) and len(model) > 0
    fast = ((pair or type(model).forward is not nn.Module.forward)
            and compile_wanted(precision, device, total, compile, threshold=500, fp32=not has_batchnorm(model)))
    run_model, fmt, check = model, torch.contiguous_format, None
    if fast:
        quiet_compile()
        fmt = torch.channels_last
        compiled = lambda m: torch.compile(m.to(memory_format=fmt), dynamic=False)    # one kernel per chunk shape
        run_model = nn.ModuleList([compiled(m) for m in model]) if pair else compiled(model)
        check = None if has_batchnorm(model) else _check_key(model[0] if pair else model, device, "fit", True,
                                                             precision)
        if check in _AGREES:                               # checked before in this process
            if not _AGREES[check]:
                run_model, fmt = model.to(memory_format=torch.contiguous_format), torch.contiguous_format
            check = None
    make_sched, per_step = SCHEDULES[schedule]
    sched = make_sched(opt, epochs, total)
    step = 0
    prog = Progress(epochs, desc) if desc else contextlib.nullcontext()
    with prog:
        for epoch in range(epochs):
            perm = index[torch.randperm(len(index), generator=gen)]
            run_loss, seen = 0.0, 0
            for i in range(0, len(perm), batch):
                if step >= total:
                    break
                idx = perm[i:i + batch]
                xb, yb = augment(x[idx].to(device), aug, gen), y[idx].to(device)
                opt.zero_grad(set_to_none=True)
                parts = -(-len(idx) // micro) if micro else 1
                for ic, xc, yc in zip(idx.tensor_split(parts), xb.tensor_split(parts), yb.tensor_split(parts)):
                    if check is not None and step == 0:      # the compiled forward agrees with eager, or eager it is
                        probe, eager = (run_model[0], model[0]) if pair else (run_model, model)
                        with autocast(precision, device):
                            ok = _agrees(check, probe(xc.contiguous(memory_format=fmt)), lambda: eager(xc),
                                         precision, f"{type(eager).__name__} forward (training)")
                        if not ok:                          # exactly what compile=False trains
                            run_model, fmt = model.to(memory_format=torch.contiguous_format), torch.contiguous_format
                        check = None
                    with autocast(precision, device):
                        loss = step_loss(run_model, xc.contiguous(memory_format=fmt), yc,
                                         Batch(ic, gen, step, total, epoch)).float()
                    (loss * (len(ic) / len(idx)) if parts > 1 else loss).backward()
                    run_loss += float(loss.detach()) * len(ic)
                    seen += len(ic)
                opt.step()
                step += 1
                if on_step is not None:
                    with torch.no_grad():
                        on_step(step, model)
                if sched is not None and per_step:
                    sched.step()
            if sched is not None and not per_step:
                sched.step()
            if desc:
                prog.update(loss=run_loss / max(1, seen))
            if on_epoch is not None:
                model.eval()
                with torch.no_grad():
                    on_epoch(epoch + 1, model)
                model.train()
    model.train_steps, model.precision = step, precision      # read by the evaluation protocol's records
    return model.to(memory_format=torch.contiguous_format).eval()


def _micro_batch(setting, model: nn.Module, x: torch.Tensor, device) -> int:
    """Images per chunk for :func:`fit` (0: whole batches); an explicit size on a model with BatchNorm is an error."""
    from .models import has_batchnorm, micro_batch_size
    if setting == "auto":
        return micro_batch_size(model, x.shape[-2:], device)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ValueError(f"micro_batch {setting!r} is not allowed: expected 'auto' or an integer >= 0")
    if setting and has_batchnorm(model):
        raise ValueError(f"micro_batch {setting} is not allowed for a model with BatchNorm: its batch statistics "
                         "would be those of each chunk; use 0")
    return setting


def cached_net(kind: str, build: Callable[[], nn.Module], train: Callable[[nn.Module], None], key: dict, *,
               seed: int = 0, device="cpu", cache_root=None, use_cache: bool = True) -> nn.Module:
    """A trained network, computed once per ``key`` and producer version.

    ``build()`` makes the untrained network (called under ``torch.manual_seed(seed)``), ``train(net)``
    trains it in place (through :func:`fit`). ``kind`` names a registered producer (``net.teacher``,
    ``net.expert``, ...); the cache key is ``key``, ``seed`` and the versions of ``kind`` and all it builds on.
    The returned network, in eval mode on ``device``, carries ``cache_key`` and ``train_seconds`` (of its
    first training).
    """
    full_key = {**key, "seed": seed, "versions": key_versions(kind), "precision": resolve_precision("auto", device)}

    def make():
        torch.manual_seed(seed)
        return build()

    def compute():
        t0 = time.time()
        net = make().to(device)
        train(net)
        return {"state": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "seconds": time.time() - t0}

    product = cached(f"nets/{kind}", full_key, compute, cache_root) if use_cache else compute()
    net = make()
    net.load_state_dict(product["state"])
    net.cache_key, net.train_seconds = config_key(full_key), product["seconds"]
    return net.to(device).eval()
