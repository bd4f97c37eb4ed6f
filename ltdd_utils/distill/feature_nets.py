"""The feature networks a matching distiller embeds through: random ones (DM) or a pool trained on the real split.

DM draws a fresh randomly initialised network every step. NCFM (Wang et al., CVPR 2025; the code base CSDM most
likely grew from) instead keeps a pool of networks trained on the real data and, every step, picks one of them and
interpolates its weights between its random initialisation and its trained state, with a blend drawn uniformly in
[0, 1]: the features range from a random network's to a trained network's. On a long-tailed split the trained
networks learn from the long-tailed data, so their features favour the head classes: the regime in which
distillation methods built on trained networks lose accuracy as the tail shrinks (LTDD's table: IDM, MTT, DATM)
while a random subset does not.

:func:`step_nets` returns what a distiller calls once per step for a network: ``net_fn`` itself (random) or a
:class:`BlendedNets` over :func:`trained_pool` (trained). The pool's networks are trained by
:func:`ltdd_utils.evaluate.train_teacher` (plain cross-entropy on the split, cached per split, architecture,
epochs and seed).
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn as nn

from ..versions import producer

FEATURE_NETS = ("random", "trained")
POOL_SEED = 50_000            # the pool's k-th network of run seed s is initialised under POOL_SEED + 100 s + k


def pool_seed(seed: int, k: int) -> int:
    return POOL_SEED + 100 * seed + k


@producer("distill.feature_nets", 1, uses=("net.teacher", "models"))
def trained_pool(split, s: dict, seed: int, device="cpu", cache_root=None) -> list[tuple[nn.Module, nn.Module]]:
    """``s["feature_pool"]`` pairs (random initialisation, trained network) of the settings' architecture, each
    trained for ``s["feature_epochs"]`` epochs of plain cross-entropy on ``split`` (SGD, crop and flip), the
    k-th initialised under :func:`pool_seed` (seed, k); cached."""
    from ..evaluate import train_teacher
    from ..models import net_factory
    build, pairs = net_factory(s["model"], split, s["width"], s["depth"], s["norm"]), []
    for k in range(s["feature_pool"]):
        sk = pool_seed(seed, k)
        torch.manual_seed(sk)          # the initialisation train_teacher starts from (cached_net builds under its seed)
        init = build()
        trained = train_teacher(split, s["model"], s["width"], s["depth"], s["norm"], epochs=s["feature_epochs"],
                                loss="ce", seed=sk, device=device, cache_root=cache_root)
        pairs.append((init.eval(), trained.cpu().eval()))
    return pairs


class BlendedNets:
    """Called once per step: a network whose weights are (1 - b) init_k + b trained_k, with k uniform over the
    pool and b uniform in [0, 1]. Both come from the global RNG, as a fresh random network's weights do: the
    distillers seed it with the run seed and their checkpoints keep it, so every arm of a seed sees the same
    networks and a resumed run the ones it would have seen. The returned network is a new module; the distiller
    freezes it."""

    def __init__(self, pairs: list[tuple[nn.Module, nn.Module]]):
        if not pairs:
            raise ValueError("a blended pool needs at least one (initial, trained) pair")
        self.pairs = [({n: t.detach() for n, t in a.state_dict().items()},
                       {n: t.detach() for n, t in b.state_dict().items()}, a) for a, b in pairs]
        self.draws: list[tuple[int, float]] = []

    def __call__(self) -> nn.Module:
        k = int(torch.randint(len(self.pairs), (1,)))
        b = float(torch.rand(1))
        init, final, template = self.pairs[k]
        net = copy.deepcopy(template)
        net.load_state_dict({n: (1 - b) * init[n] + b * final[n] if init[n].is_floating_point() else final[n]
                             for n in init})
        self.draws.append((k, b))
        return net


def step_nets(s: dict, split, seed: int, device="cpu", cache_root=None) -> Callable[[], nn.Module]:
    """What a distiller calls for each step's network under the settings ``s``: a fresh random network of the
    architecture (``feature_nets`` absent or 'random', DM's choice) or a blend of a trained pool (``'trained'``)."""
    from ..models import net_factory
    kind = s.get("feature_nets", "random")
    if kind == "random":
        return net_factory(s["model"], split, s["width"], s["depth"], s["norm"])
    if kind != "trained":
        raise ValueError(f"feature_nets {kind!r} is not allowed: expected one of {FEATURE_NETS}")
    return BlendedNets(trained_pool(split, s, seed, device, cache_root))
