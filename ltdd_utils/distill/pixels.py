"""The one pixel-optimisation loop: DM, spectral matching and recovery all run through it.

A distiller supplies the initial images, a per-step loss ``step_loss(images, step) -> (loss, logs)`` and
an optimiser; the loop owns the optimiser steps, the schedule, the loss history, progress and resumable
checkpoints (written atomically every ``checkpoint_every`` steps, with the optimiser, the generator and the
global RNG, and removed when the run completes).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from ..cache import atomic_torch_save
from ..progress import Progress
from ..versions import producer

PIXEL_OPTIMISERS = {
    "sgd": lambda params, lr, momentum=0.5: torch.optim.SGD(params, lr=lr, momentum=momentum),
    "adam": lambda params, lr, betas=(0.9, 0.999): torch.optim.Adam(params, lr=lr, betas=betas),
}


@producer("pixels", 1)
def optimise_pixels(init: torch.Tensor, step_loss: Callable, iterations: int, *, optimiser: str = "sgd",
                    lr: float = 1.0, opt_kwargs: dict | None = None, cosine: bool = False,
                    gen: torch.Generator | None = None, device="cpu", checkpoint: str | Path | None = None,
                    checkpoint_every: int = 200, desc: str = "distill") -> tuple[torch.Tensor, dict[str, list]]:
    """Optimise a copy of ``init`` for ``iterations`` steps; returns the images (CPU) and the history.

    ``step_loss(x, step)`` returns the loss (a scalar tensor) and a dict of floats to log (its first entry
    is shown in the progress line); ``history["loss"]`` holds the losses, the other keys the logs.
    ``optimiser``: ``sgd`` (momentum 0.5, DM's) or ``adam``, with ``lr`` and ``opt_kwargs``; ``cosine``
    decays the learning rate to 0 over the run.
    """
    if optimiser not in PIXEL_OPTIMISERS:
        raise ValueError(f"optimiser {optimiser!r} is not allowed: expected one of {list(PIXEL_OPTIMISERS)}")
    x = init.detach().clone().to(device).requires_grad_(True)
    opt = PIXEL_OPTIMISERS[optimiser]([x], lr, **(opt_kwargs or {}))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, iterations)) if cosine else None
    history: dict[str, list] = {"loss": []}
    start = 0
    if checkpoint is not None and os.path.exists(checkpoint):
        state = torch.load(checkpoint, weights_only=False)
        start, history = state["iteration"], state["history"]
        with torch.no_grad():
            x.copy_(state["images"].to(device))
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        if gen is not None:
            gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        print(f"[{desc}] resuming at step {start} from {checkpoint}")
    with Progress(iterations, desc) as bar:
        bar.update(start)
        for it in range(start, iterations):
            loss, logs = step_loss(x, it)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            history["loss"].append(float(loss.detach()))
            for k, v in logs.items():
                history.setdefault(k, []).append(v)
            bar.update(**(logs or {"loss": history["loss"][-1]}))
            if checkpoint is not None and (it + 1) % checkpoint_every == 0 and it + 1 < iterations:
                atomic_torch_save({"iteration": it + 1, "history": history, "images": x.detach().cpu(),
                                   "optimizer": opt.state_dict(),
                                   "scheduler": sched.state_dict() if sched is not None else None,
                                   "generator": gen.get_state() if gen is not None else None,
                                   "torch_rng": torch.get_rng_state()}, checkpoint)
    if checkpoint is not None and os.path.exists(checkpoint):
        os.remove(checkpoint)
    return x.detach().cpu(), history
