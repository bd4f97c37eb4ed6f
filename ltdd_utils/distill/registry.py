"""Distillers by name: ``distill("dm", split, cfg, seed)``, one product per configuration across chapters.

A distiller reads the settings it needs from a chapter's config (:func:`settings_of`; any of them can be
overridden by keyword) and computes its own cache key from the data's fingerprint, those settings, the
seed and the versions of the producers it builds on, so the same DM run in two chapters is one product.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..cache import cached, partial_path
from ..versions import key_versions
from .baselines import random_subset
from .dm import distribution_matching
from .synset import SyntheticSet


@dataclass(frozen=True)
class Distiller:
    producer: str                                  # the registered producer (versions.py)
    settings: Callable[[dict], dict]               # config -> the settings this distiller uses
    run: Callable[..., SyntheticSet]               # run(split, settings, seed, device, checkpoint)
    cache: bool = True


def _dm_settings(cfg) -> dict:
    return dict(ipc=cfg["ipc"], model=cfg["model"], width=cfg.get("width"), depth=cfg["depth"], norm=cfg["norm"],
                iterations=cfg["dm_iterations"], lr=cfg["dm_lr"], batch_real=cfg["dm_batch_real"], dsa=cfg["dm_dsa"],
                net_pool=cfg["dm_net_pool"])


def _run_dm(split, s, seed, device, checkpoint):
    from ..models import get_model
    net_fn = lambda: get_model(s["model"], split.shape[0], split.num_classes, split.shape[1:], width=s["width"],
                               depth=s["depth"], norm=s["norm"])
    return distribution_matching(split, s["ipc"], net_fn, s["iterations"], s["lr"], s["batch_real"], s["dsa"],
                                 net_pool=s["net_pool"], seed=seed, device=device, checkpoint=checkpoint)


DISTILLERS: dict[str, Distiller] = {
    "random": Distiller("distill.random", lambda cfg: {"ipc": cfg["ipc"]},
                        lambda split, s, seed, device, checkpoint: random_subset(split, s["ipc"], seed), cache=False),
    "dm": Distiller("distill.dm", _dm_settings, _run_dm),
}


def settings_of(name: str, cfg, **overrides) -> dict:
    if name not in DISTILLERS:
        raise ValueError(f"distiller {name!r} is not allowed: expected one of {list(DISTILLERS)}")
    s = DISTILLERS[name].settings(cfg)
    unknown = set(overrides) - set(s)
    if unknown:
        raise ValueError(f"distiller {name!r} has no setting(s) {sorted(unknown)}; its settings: {sorted(s)}")
    return {**s, **overrides}


def distill(name: str, split, cfg, seed: int, device="cpu", **overrides) -> SyntheticSet:
    """The synthetic set of distiller ``name`` on ``split``, computed once per key and resumable."""
    s = settings_of(name, cfg, **overrides)
    spec = DISTILLERS[name]
    if not spec.cache:
        return spec.run(split, s, seed, device, None)
    key = {"distiller": name, "data": split.fingerprint(), "settings": s, "seed": seed,
           "versions": key_versions(spec.producer)}
    root = cfg.get("cache_dir")
    return cached(f"synsets/{name}", key,
                  lambda: spec.run(split, s, seed, device, partial_path(f"synsets/{name}", key, root)), root)
