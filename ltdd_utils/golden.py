"""Golden cases: every producer run on a tiny case (seconds, scikit-learn's bundled digits), summarised
by a few numbers stored in ``tests/golden/producers.json`` with the producer's version.

``tests/test_golden.py`` reruns each case: when the numbers move while the version stayed, the output of
that producer changed without a version bump, and the test names the version to bump. After a deliberate
change (version bumped), regenerate the stored numbers::

    python -m ltdd_utils golden --update [NAME ...]
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable

import torch

GOLDEN_FILE = Path(__file__).resolve().parent.parent / "tests" / "golden" / "producers.json"
CASES: dict[str, Callable[[], list[float]]] = {}


def case(*names: str):
    def wrap(fn):
        for n in names:
            CASES[n] = fn
        return fn
    return wrap


def summary(*tensors) -> list[float]:
    """Sum, sum of absolute values and the first three entries of each tensor (as floats)."""
    out = []
    for t in tensors:
        t = torch.as_tensor(t).detach().double().flatten()
        out += [float(t.sum()), float(t.abs().sum()), *[float(v) for v in t[:3]]]
    return out


def _digits(train=True):
    from .data import load_dataset
    return load_dataset("digits", train=train)


def _small(per_class=12, num_classes=4):
    d = _digits()
    keep = torch.cat([(d.labels == c).nonzero().flatten()[:per_class] for c in range(num_classes)])
    sub = d.subset(keep)
    sub.classes = d.classes[:num_classes]
    return sub


def _net_fn(d, width=8, norm="instancenorm"):
    from .models import get_model
    return lambda: get_model("convnet", d.shape[0], d.num_classes, d.shape[1:], width=width, depth=2, norm=norm)


def _weights(net) -> list[float]:
    return summary(torch.cat([p.detach().flatten() for p in net.state_dict().values() if p.is_floating_point()]))


@case("data")
def _data():
    d = _digits()
    return summary(d.images[:50].float(), d.labels)


@case("data.longtail")
def _longtail():
    from .data.longtail import make_longtail
    return summary(make_longtail(_digits(), 10, seed=3).indices)


@case("data.noise")
def _noise():
    from .data.noise import inject_noise
    return summary(inject_noise(_digits(), "symmetric", 0.4, seed=2).labels)


@case("data.bias")
def _bias():
    from .data.bias import make_biased
    d = _digits()
    b = make_biased("cmnist", d, 0.1, seed=1)
    return summary(b.images[:20].float(), b.bias)


@case("models")
def _models():
    torch.manual_seed(0)
    net = _net_fn(_small(), 8, "batchnorm")()
    x = torch.linspace(-1, 1, 2 * 64).view(2, 1, 8, 8)
    return summary(net(x))


@case("augment")
def _augment():
    from .augment import crop_flip, dsa
    x = torch.linspace(-1, 1, 4 * 3 * 8 * 8).view(4, 3, 8, 8)
    return summary(dsa(x, seed=5), dsa(x, seed=9), crop_flip(x, 2, torch.Generator().manual_seed(1)))


@case("distill.random")
def _random():
    from .distill import random_subset
    return summary(torch.tensor(random_subset(_small(), 3, seed=4).meta["indices"]))


@case("distill.weighted_subset")
def _weighted_subset():
    from .distill import weighted_subset
    d = _small()
    w = torch.linspace(0.1, 2.0, len(d))
    return summary(torch.tensor(weighted_subset(d, 3, w, seed=4).meta["indices"]))


@case("distill.herding")
def _herding():
    from .distill import herding
    d = _small()
    torch.manual_seed(0)
    net = _net_fn(d)().eval()
    return summary(torch.tensor(herding(d, 3, net.embed).meta["indices"]))


@case("pixels", "distill.dm")
def _dm():
    from .distill import distribution_matching
    d = _small()
    a = distribution_matching(d, 2, _net_fn(d), iterations=4, lr=1.0, batch_real=6, seed=1)
    b = distribution_matching(d, 2, _net_fn(d), iterations=3, lr=1.0, batch_real=6, net_pool=2, use_dsa=False,
                              seed=2, sample_weights=torch.linspace(0.1, 1, len(d)))
    return summary(a.images, b.images, torch.tensor(a.meta["loss_history"]))


@case("distill.spectral", "method.csdm")
def _spectral():
    from .methods import csdm
    d = _small()
    alphas = csdm.alpha_schedule(d.class_counts(), "loglinear")
    a = csdm.spectral_matching(d, 2, _net_fn(d), alphas, iterations=3, lr=0.05, batch_real=6, num_freqs=16, seed=1)
    b = csdm.spectral_matching(d, 2, _net_fn(d), None, loss="mmd", iterations=2, lr=0.05, batch_real=6, seed=1)
    return summary(a.images, b.images, alphas)


@case("distill.feature_nets")
def _feature_nets():
    from .distill.feature_nets import step_nets
    d = _small()
    s = {"model": "convnet", "width": 8, "depth": 2, "norm": "instancenorm", "feature_nets": "trained",
         "feature_pool": 2, "feature_epochs": 1}

    def blends(tmp):
        draw = step_nets(s, d, 1, cache_root=tmp)
        torch.manual_seed(2)
        return _weights(draw()) + [k + b for k, b in draw.draws]
    return _cache(blends)


def _bn_teacher(d):
    torch.manual_seed(0)
    net = _net_fn(d, 8, "batchnorm")()
    x, y = d.tensors()
    net.train()
    with torch.no_grad():
        net(x)                                  # running statistics from one pass
    return net.eval()


@case("distill.recover")
def _recover():
    from .distill import random_subset
    from .distill.srr import recover
    d = _small()
    out = recover(_bn_teacher(d), random_subset(d, 2, 0), iterations=3, lr=0.05, r_bn=0.1, seed=1)
    return summary(out.images)


@case("distill.multi_round_init", "distill.recover_balanced", "method.bn_recalibration")
def _recover_balanced():
    from .methods import unbiased_recovery as ur
    d = _small()
    teacher = _bn_teacher(d)
    init = ur.multi_round_init(teacher, d, 3, num_crops=2, max_images=5, seed=1)
    x, y = d.tensors()
    stats = ur.class_bn_statistics(teacher, x, y, d.num_classes, batch=10)
    out = ur.recover_balanced(teacher, init, ur.balanced_targets(stats), stats, iterations=3, lr=0.05, seed=2)
    return summary(init.images, out.images, stats["mean"][0], stats["var"][1])


@case("train.fit", "evaluate")
def _evaluate():
    from .distill import random_subset
    from .evaluate import EvalSettings, evaluate_synset
    d, test = _small(), _digits(False)
    keep = (test.labels < 4).nonzero().flatten()
    test = test.subset(keep)
    test.classes = test.classes[:4]
    res = evaluate_synset(random_subset(d, 3, 0), test, EvalSettings(width=8, depth=2, epochs=4, batch=4, aug="dsa",
                                                                      students=2), seed=1, name="golden")
    return [r["acc"] for r in res] + res[0]["per_class"]


def _cache(fn):
    with tempfile.TemporaryDirectory() as tmp:
        return fn(tmp)


@case("net.teacher")
def _teacher():
    from .evaluate import train_teacher
    d = _small()
    return _cache(lambda tmp: _weights(train_teacher(d, width=8, depth=2, epochs=2, batch=16, loss="logit_adjust",
                                                     seed=1, cache_root=tmp)))


@case("teachers", "net.fast_teacher")
def _fast_teacher():
    from .teachers import Recipe, teacher
    d = _small()
    recipe = Recipe(width=4, batch=16, whiten_images=32)
    return _cache(lambda tmp: _weights(teacher(d, epochs=2, objective="logit_adjust", seed=1, recipe=recipe,
                                               cache_root=tmp)))


@case("net.expert")
def _expert():
    from .methods.unbiased_recovery import train_expert
    d = _small()
    kw = dict(width=8, depth=2, epochs=2, batch=16, seed=1)
    return _cache(lambda tmp: _weights(train_expert(d, debias=True, cache_root=tmp, **kw))
                  + _weights(train_expert(d, debias=False, cache_root=tmp, **kw))
                  + _weights(train_expert(d, True, "fastnet", 4, epochs=2, batch=16, seed=1, cache_root=tmp)))


@case("net.trust", "method.tad")
def _tad():
    from .data.noise import inject_noise
    from .methods import tad
    d = inject_noise(_small(20), "symmetric", 0.3, seed=0)
    warm = dict(width=8, depth=2, epochs=2, batch=16)

    def run(tmp):
        net = tad.warmup_trust_net(d, seed=1, cache_root=tmp, **warm)
        rounds = tad.cached_tad(d, tad.TADSettings(rounds=2, epochs_per_round=1, batch=16), warm, seed=1,
                                cache_root=tmp)
        fast = tad.warmup_trust_net(d, 4, epochs=2, model="fastnet", seed=1, cache_root=tmp)
        return _weights(net) + summary(rounds[-1]["labels"], rounds[-1]["trusted"].float()) + _weights(fast)
    return _cache(run)


@case("net.supcon", "method.kde")
def _supcon():
    from .methods import kde_debias as kde
    d = _small()

    def run(tmp):
        net = kde.train_supcon(d, width=8, depth=2, epochs=2, batch=16, seed=1, cache_root=tmp)
        z = kde.embeddings(net, d)
        return _weights(net) + summary(kde.kde_weights(z, d.labels, d.num_classes, 0.3, 1.0))
    return _cache(run)


@case("student.kd")
def _kd():
    from .evaluate import train_student_kd
    d = _small()
    x, y = d.tensors()
    torch.manual_seed(3)
    student = _net_fn(d)()
    return _weights(train_student_kd(student, x[:12], y[:12], _bn_teacher(d), epochs=2, batch=4, seed=1))


@case("student.kd_centre")
def _kd_centre():
    from .evaluate import view_logit_offset
    d = _small()
    x, y = d.tensors()
    return summary(view_logit_offset(_bn_teacher(d), x[:12], y[:12], seed=1, batch=4, passes=2))


@case("student.lff")
def _lff():
    from .methods.debias_baselines import train_lff
    d = _small()
    x, y = d.tensors()
    torch.manual_seed(3)
    b, m = _net_fn(d)(), _net_fn(d)()
    out = []
    for aug in ("dsa", "cropflip"):
        net, w = train_lff(b, m, x, y, epochs=2, lr=0.05, batch=16, aug=aug, seed=1)
        out += _weights(net) + summary(w)
    return out


@case("method.adsa")
def _adsa():
    from .methods.adsa import adaptive_soft_label_alignment
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 4, generator=g)
    tau, _, values = adaptive_soft_label_alignment(logits, torch.arange(40) % 4, [100, 30, 10, 3])
    return [tau] + summary(values)


@case("verdicts")
def _verdicts():
    from .verdicts import VERDICTS, judge
    out = []
    for diffs, kind, margin in (({0: 2.0, 1: 3.0, 2: 2.5}, "superiority", 1.0),
                                ({0: 2.0, 1: -1.0, 2: 2.5}, "superiority", 1.0),
                                ({0: 0.1, 1: 0.2, 2: 0.15}, "superiority", 1.0),
                                ({0: 0.3, 1: -0.2, 2: 0.1, 3: 0.0}, "equivalence", 1.0),
                                ({0: -0.5, 1: 0.4, 2: 0.2}, "non-inferiority", 1.0), ({0: 3.0}, "superiority", 1.0)):
        c = judge(diffs, kind, margin)
        out += [VERDICTS.index(c["verdict"]), c["mean"], c["n"], c["lo"] if c["n"] > 1 else 0.0,
                c["seeds_to_resolve"] or -1]
    return out


def compute(names=None) -> dict[str, list[float]]:
    """The golden numbers, in fp32 (``auto`` pinned: bf16 is machine-dependent and checked by the parity test)."""
    from .precision import default
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                   # the same reduction order on every machine
    try:
        with default("fp32"):
            return {n: CASES[n]() for n in (names or sorted(CASES))}
    finally:
        torch.set_num_threads(threads)


def load() -> dict:
    return json.loads(GOLDEN_FILE.read_text()) if GOLDEN_FILE.exists() else {}


def update(names=None) -> dict:
    """Recompute and store the golden numbers of ``names`` (default all) with the current versions."""
    from .cache import atomic_write_text
    from .versions import load_all
    versions = load_all()
    stored = load()
    for n, values in compute(names).items():
        stored[n] = {"version": versions[n], "values": values}
    atomic_write_text(GOLDEN_FILE, json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
    return stored


def check(name: str, stored: dict, values: list[float], version: int, rtol=1e-3, atol=1e-5) -> str | None:
    """Why the producer ``name`` fails its golden case, or None. ``rtol`` absorbs the float differences between
    CPUs (the largest measured: 2.5e-4, SupCon training, recorded on an Intel AMX machine, checked on an AMD
    EPYC); a changed producer moves its numbers by far more."""
    import math
    if name not in stored:
        return f"producer {name!r} has no golden numbers: run `python -m ltdd_utils golden --update {name}`"
    rec = stored[name]
    if rec["version"] != version:
        return (f"producer {name!r} is at version {version} but its golden numbers were recorded at version "
                f"{rec['version']}: run `python -m ltdd_utils golden --update {name}`")
    same = len(rec["values"]) == len(values) and all(
        math.isclose(a, b, rel_tol=rtol, abs_tol=atol) for a, b in zip(rec["values"], values))
    if not same:
        return (f"the output of producer {name!r} changed but its version did not: bump it to {version + 1} where "
                f"it is registered (@producer({name!r}, {version}, ...)), then run "
                f"`python -m ltdd_utils golden --update {name}`")
    return None
