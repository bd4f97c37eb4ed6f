"""Distillers by name: ``distill("dm", split, cfg, seed)``, one product per configuration across chapters.

A distiller reads the settings it needs from a chapter's config (:func:`settings_of`; any of them can be
overridden by keyword) and computes its own cache key from the data's fingerprint, those settings, the
seed, the per-image ``weights`` when given, and the versions of the producers it builds on, so the same DM
run in two chapters is one product.

The real side follows one rule in every chapter: with ``dm_dsa`` off and a pool of ``dm_net_pool > 0`` random
networks, the real statistics are exact, over whole classes, precomputed once per (data, networks)
(:func:`exact_pool`); otherwise each step draws real batches of ``dm_batch_real`` per class, with DSA when on,
through a fresh network (pool 0) or the pool's next one.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import torch

from ..cache import cached, partial_path
from ..precision import resolve as resolve_precision
from ..versions import key_versions
from .baselines import random_subset
from .dm import distribution_matching, make_net_pool, pool_embeddings, pooled_class_means
from .synset import SyntheticSet


@dataclass(frozen=True)
class Distiller:
    producer: str                                  # the registered producer (versions.py)
    settings: Callable[[dict], dict]               # config -> the settings this distiller uses
    run: Callable[..., SyntheticSet]               # run(split, settings, seed, device, checkpoint, weights, init)
    cache: bool = True


def _net_settings(cfg) -> dict:
    s = dict(ipc=cfg.get("ipc"), model=cfg["model"], width=cfg.get("width"), depth=cfg["depth"], norm=cfg["norm"],
             iterations=cfg["dm_iterations"], batch_real=cfg["dm_batch_real"], dsa=cfg["dm_dsa"],
             net_pool=cfg["dm_net_pool"], precision=cfg.get("precision", "auto"))
    if cfg.get("feature_nets", "random") != "random":       # absent from random-network keys: theirs stay as they were
        s.update(feature_nets=cfg["feature_nets"], feature_pool=cfg["feature_pool"], feature_epochs=cfg["feature_epochs"])
    return s


def _trained(s: dict) -> bool:
    return s.get("feature_nets", "random") != "random"


def is_exact(s: dict) -> bool:
    """Exact real statistics: no DSA and a fixed pool of random networks."""
    return not s["dsa"] and s["net_pool"] > 0 and not _trained(s)


def net_fn(s: dict, split):
    """A function returning a fresh random embedding network of the settings' architecture."""
    from ..models import net_factory
    return net_factory(s["model"], split, s["width"], s["depth"], s["norm"])


_MEMO: dict = {}          # a few (data, networks) -> in-memory products; the oldest goes first


def _memo(key, compute, size: int = 4):
    if key not in _MEMO:
        while len(_MEMO) >= size:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = compute()
    return _MEMO[key]


def exact_pool(split, s: dict, seed: int, device="cpu"):
    """The pool of ``net_pool`` random networks of ``seed`` and the embeddings of all of ``split`` under each,
    kept in memory for the arms that share them."""
    arch = tuple(s[k] for k in ("model", "width", "depth", "norm", "net_pool"))

    def compute():
        nets = make_net_pool(net_fn(s, split), s["net_pool"], seed, device)
        return nets, pool_embeddings(split, nets, device, precision=s.get("precision", "auto"))
    return _memo(("pool", split.fingerprint(labels=False), arch, s.get("precision"), seed), compute)     # embeddings ignore labels


def spectral_frequencies(s: dict, seed: int, dim: int, feats: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """One fixed draw of frequencies per pool network (exact spectral matching); with ``sigma = 'median'`` each
    network's bandwidth is the median heuristic of its (L2-normalised) features ``feats``."""
    from ..methods.csdm import median_bandwidth, normalize, sample_frequencies
    g = torch.Generator().manual_seed(10_000 + seed)
    sig = [median_bandwidth(normalize(f)) if s["sigma"] == "median" else s["sigma"] for f in feats] if feats \
        else [s["sigma"]] * s["net_pool"]
    return [sample_frequencies(s["kernel"], s["num_freqs"], dim, sg, g) for sg in sig]


def real_cfs(split, s: dict, seed: int, device="cpu"):
    """Pool networks, fixed frequencies and the exact real class characteristic functions, shared by SDD, CSDM and
    its variants."""
    from ..methods.csdm import real_statistics
    nets, feats = exact_pool(split, s, seed, device)
    arch = tuple(s[k] for k in ("model", "width", "depth", "norm", "net_pool", "kernel", "sigma", "num_freqs"))

    def compute():
        omegas = spectral_frequencies(s, seed, feats[0].shape[1], feats)
        return omegas, real_statistics(feats, split.labels, split.num_classes, "spectral", omegas)
    omegas, cfs = _memo(("cf", split.fingerprint(), arch, seed), compute)
    return nets, omegas, cfs


# -------------------------------------------------------------------------------------------------- DM
def _dm_settings(cfg) -> dict:
    return {**_net_settings(cfg), "lr": cfg["dm_lr"]}


def _run_dm(split, s, seed, device, checkpoint, weights=None, init=None, root=None):
    from .feature_nets import step_nets
    init = init if init is not None else random_subset(split, s["ipc"], seed)
    if is_exact(s):
        nets, feats = exact_pool(split, s, seed, device)
        means = pooled_class_means(feats, split.labels, split.num_classes, weights)
        return distribution_matching(split, s["ipc"], None, s["iterations"], s["lr"], use_dsa=False, seed=seed,
                                     device=device, init=init, nets=nets, real_means=means, checkpoint=checkpoint,
                                     precision=s["precision"])
    return distribution_matching(split, s["ipc"], step_nets(s, split, seed, device, root), s["iterations"], s["lr"],
                                 s["batch_real"], s["dsa"], net_pool=0 if _trained(s) else s["net_pool"], seed=seed,
                                 device=device, init=init,
                                 sample_weights=weights, checkpoint=checkpoint, precision=s["precision"])


# ------------------------------------------------------------------------------ spectral matching (CSDM)
def _mmd_settings(cfg) -> dict:
    return {**_net_settings(cfg), "lr": cfg["spectral_lr"], "kernel": cfg["kernel"], "sigma": cfg["sigma"]}


def _linear_settings(cfg) -> dict:
    return {**_net_settings(cfg), "lr": cfg["spectral_lr"], "loss": "linear"}


def _spectral_settings(variant):
    def settings(cfg) -> dict:
        return {**_mmd_settings(cfg), "num_freqs": cfg["num_freqs"], "form": cfg["cf_form"], "variant": variant,
                **{k: cfg[k] for k in ("alpha_rule", "alpha_head", "alpha_tail", "alpha0", "n0")}}
    return settings


def _run_spectral(split, s, seed, device, checkpoint, weights=None, init=None, root=None):
    from ..methods import csdm
    from .feature_nets import step_nets
    if weights is not None:
        raise ValueError("spectral matching takes no sample weights")
    loss = s.get("loss", "mmd") if "variant" not in s else "spectral"
    alphas = None if loss != "spectral" else csdm.class_alphas(
        split.class_counts(), s["variant"], s["alpha_rule"], s["alpha_head"], s["alpha_tail"], s["alpha0"], s["n0"])
    init = init if init is not None else random_subset(split, s["ipc"], seed)
    common = dict(loss=loss, iterations=s["iterations"], lr=s["lr"], batch_real=s["batch_real"],
                  kernel=s.get("kernel", "gaussian"), sigma=s.get("sigma", 1.0), num_freqs=s.get("num_freqs", 1024),
                  form=s.get("form", "mmd"), seed=seed,
                  device=device, init=init, checkpoint=checkpoint,
                  precision=s["precision"])
    if not is_exact(s):
        return csdm.spectral_matching(split, s["ipc"], step_nets(s, split, seed, device, root), alphas,
                                      use_dsa=s["dsa"], net_pool=0 if _trained(s) else s["net_pool"], **common)
    if loss in ("mmd", "linear"):
        nets, feats = exact_pool(split, s, seed, device)
        stats = csdm.real_statistics(feats, split.labels, split.num_classes, loss)
        return csdm.spectral_matching(split, s["ipc"], None, None, use_dsa=False, nets=nets, real_stats=stats,
                                      real_labels=split.labels, **common)
    nets, omegas, cfs = real_cfs(split, s, seed, device)
    return csdm.spectral_matching(split, s["ipc"], None, alphas, use_dsa=False, nets=nets, omegas=omegas,
                                  real_stats=cfs, **common)


DISTILLERS: dict[str, Distiller] = {
    "random": Distiller("distill.random", lambda cfg: {"ipc": cfg["ipc"]},
                        lambda split, s, seed, device, checkpoint, weights=None, init=None, root=None:
                        random_subset(split, s["ipc"], seed),
                        cache=False),
    "dm": Distiller("distill.dm", _dm_settings, _run_dm),
    "mmd": Distiller("distill.spectral", _mmd_settings, _run_spectral),
    # DM's linear kernel on the L2-normalised features with the spectral arms' optimiser: isolates the kernel
    "linear": Distiller("distill.spectral", _linear_settings, _run_spectral),
    "sdd": Distiller("distill.spectral", _spectral_settings("sdd"), _run_spectral),
    "csdm": Distiller("distill.spectral", _spectral_settings("csdm"), _run_spectral),
}


def settings_of(name: str, cfg, **overrides) -> dict:
    if name not in DISTILLERS:
        raise ValueError(f"distiller {name!r} is not allowed: expected one of {list(DISTILLERS)}")
    s = DISTILLERS[name].settings(cfg)
    unknown = set(overrides) - set(s)
    if unknown:
        raise ValueError(f"distiller {name!r} has no setting(s) {sorted(unknown)}; its settings: {sorted(s)}")
    return {**s, **overrides}


def distill(name: str, split, cfg, seed: int, device="cpu", weights: torch.Tensor | None = None,
            init: SyntheticSet | None = None, **overrides) -> SyntheticSet:
    """The synthetic set of distiller ``name`` on ``split``, computed once per key and resumable. ``weights``
    (one per real image of ``split``) turn DM's real class means into weighted means (KDE debiasing);
    ``init`` replaces the default initialisation (a random real subset of the seed) and enters the key."""
    s = settings_of(name, cfg, **overrides)
    if "precision" in s:                       # the key holds what ran: fp32 or bf16
        s["precision"] = resolve_precision(s["precision"], device)
    if s["ipc"] is None:
        raise ValueError(f"distiller {name!r}: the config has no IPC; pass ipc=...")
    spec = DISTILLERS[name]
    if init is not None and (len(init) != s["ipc"] * split.num_classes
                             or init.images.shape[1:] != split.images.shape[1:]):
        raise ValueError(f"init holds {len(init)} images of shape {tuple(init.images.shape[1:])}; distiller {name!r} "
                         f"needs {s['ipc']} per class of shape {tuple(split.images.shape[1:])}")
    if not spec.cache:
        return spec.run(split, s, seed, device, None, root=cfg.get("cache_dir"))
    # keyed by the producer, not the name: "sdd" and "csdm" with the same variant are one product
    versions = key_versions(spec.producer)
    if _trained(s):                            # the trained pool's producers enter the key too
        versions = {**versions, **key_versions("distill.feature_nets")}
    key = {"distiller": spec.producer, "data": split.fingerprint(), "settings": s, "seed": seed,
           "versions": versions}
    if weights is not None:
        key["weights"] = hashlib.sha1(weights.float().numpy().tobytes()).hexdigest()[:16]
    if init is not None:
        pixels = init.images.float().numpy().tobytes() + init.labels.numpy().tobytes()
        key["init"] = hashlib.sha1(pixels).hexdigest()[:16]
    root, kind = cfg.get("cache_dir"), "synsets/" + spec.producer.split(".")[-1]
    return cached(kind, key, lambda: spec.run(split, s, seed, device, partial_path(kind, key, root), weights, init,
                                              root=root), root)
