"""The leaderboard (notebooks/06_leaderboard.ipynb): random, herding and DM on every imperfection, and each paper's
method, built by its own chapter's study, on the imperfections it applies to; one DM recipe (the leaderboard's
config, which every paper chapter's config takes over), one student protocol, one run.

The soft-label methods (ADSA, unbiased recovery and the ``random_soft`` control) train their students on their
own teacher's labels with their chapter's student recipe: the labels are part of those methods."""
from __future__ import annotations

import importlib
import time

import pandas as pd
import torch

from ..chapters.leaderboard import BIAS, LONG_TAIL, METHODS, paper_config
from ..data.longtail import class_groups, make_longtail, tail_order
from ..distill import distill, herding, random_subset
from ..experiment import Run, net_factory

BIAS_NAMES = {"cmnist": "Colored MNIST", "bg_fmnist": "BG-FashionMNIST", "corrupted_cifar10": "Corrupted CIFAR-10"}
SOFT_LABELS = ("random_soft", "adsa", "unbiased_recovery")


def label(kind: str, value: float) -> str:
    """The imperfection's name on the board."""
    if kind in LONG_TAIL:
        return f"long tail, IF {value:g}"
    if kind in BIAS:
        return f"{BIAS_NAMES[kind]}, {value:.0%} conflicting"
    return f"{value:.0%} {kind} noise"


def applies(method: str, kind: str) -> bool:
    return kind in METHODS[method][1]


class Study:
    def __init__(self, run: Run):
        self.run, self.cfg, self.device = run, run.cfg, run.device
        self.imperfections = [tuple(x) for x in self.cfg.imperfections]
        self._papers: dict = {}          # chapter -> its study, built on first use
        self._configs: dict = {}
        self._data: dict = {}
        self._herding: dict = {}
        self.sets: dict = {}             # (imperfection label, method, seed) -> synthetic set

    # --------------------------------------------------------------------------------------- paper chapters
    def paper(self, chapter: str):
        """The chapter's study under :func:`paper_config`, its data shared with the leaderboard's run; the expert or
        bandwidth choices its method needs are made here, once, as the chapter makes them."""
        if chapter not in self._papers:
            child = Run(self.paper_cfg(chapter), load=False)
            child.train, child.test = self.run.train, self.run.test
            study = importlib.import_module(f"{__package__}.{chapter}").Study(child)
            if chapter == "unbiased_recovery":
                study.select_experts(kinds=("debiased",))
            elif chapter == "kde_debias":
                for kind in study.kinds:
                    study.select_bandwidth(kind)
            self._papers[chapter] = study
        return self._papers[chapter]

    def paper_cfg(self, chapter: str):
        if chapter not in self._configs:
            self._configs[chapter] = paper_config(dict(self.cfg), chapter)
        return self._configs[chapter]

    # ------------------------------------------------------------------------------------------------- data
    def data(self, kind: str, value: float):
        """(training data as the imperfection presents it, test set, class groups or None)."""
        if (kind, value) not in self._data:
            if kind in LONG_TAIL:
                split = make_longtail(self.run.train, value, seed=0, n_max=self.cfg.n_max,
                                      order=tail_order(self.run.train.num_classes, self.cfg.tail_order_seed))
                out = split, self.run.test, class_groups(split.class_counts(), self.cfg.group_scheme)
            elif kind in BIAS:
                sp = self.paper("kde_debias").data[kind, value]
                out = sp["train"], sp["test"], None
            else:                                          # the noisy labels, as every arm but TAD sees them
                out = self.paper("tad").noisy_of((kind, value)), self.run.test, None
            self._data[kind, value] = out
        return self._data[kind, value]

    def paper_split(self, chapter: str, value: float, train):
        """The paper study's long-tailed split at ``value``, checked to be the leaderboard's."""
        split = self.paper(chapter).splits[value]
        if not torch.equal(split.indices, train.indices):
            raise AssertionError(f"{chapter}'s IF-{value:g} split differs from the leaderboard's")
        return split

    # ---------------------------------------------------------------------------------------------- methods
    def herding_set(self, train):
        """Herding in the features of a randomly initialised ConvNet (seed 0): one set per split."""
        key = train.fingerprint()
        if key not in self._herding:
            torch.manual_seed(0)
            embed = net_factory(self.cfg, train)().to(self.device).eval().embed
            self._herding[key] = herding(train, self.cfg.ipc, embed, self.device)
        return self._herding[key]

    def synthesize(self, kind: str, value: float, method: str, seed: int):
        """(synthetic set, evaluation keywords) of ``method`` on one imperfection."""
        c, (train, _, _) = self.cfg, self.data(kind, value)
        if not applies(method, kind):
            raise ValueError(f"method {method!r} does not apply to {kind!r}")
        if method == "random":
            return random_subset(train, c.ipc, seed), {}
        if method == "herding":
            return self.herding_set(train), {}
        if method == "dm":
            return distill("dm", train, c, seed, self.device), {}
        if method == "csdm":
            return distill("csdm", train, self.paper_cfg("csdm"), seed, self.device), {}
        if method in ("adsa", "random_soft"):
            st = self.paper("adsa")
            self.paper_split("adsa", value, train)
            syn, fit, tau = st.labelled(value, c.ipc, method, seed)
            return syn, {"train_fn": fit, "settings": st.settings(), "add": {"tau": tau}}
        if method == "unbiased_recovery":
            st = self.paper("unbiased_recovery")
            self.paper_split("unbiased_recovery", value, train)
            syn = st.synset(value, c.ipc, "full", seed)
            settings, fit = st.students(value, "full", len(syn), seed)
            return syn, {"train_fn": fit, "settings": settings}
        if method == "kde":
            st = self.paper("kde_debias")
            w = st.weights(kind, value, seed, st.chosen_h[kind])
            syn = distill("dm", train, c, seed, self.device, weights=w)
            return syn, {"add": {"bandwidth": st.chosen_h[kind], "conflict_share": st.conflict_share(kind, value, w)}}
        if method == "tad":
            view = self.paper("tad").view((kind, value), "tad", seed)
            syn = distill("dm", view, c, seed, self.device)
            return syn, {"add": {"trusted": len(view),
                                 "label_precision": float((view.labels == view.clean_labels).float().mean())}}
        raise ValueError(f"unknown method {method!r}")

    def arm(self, kind: str, value: float, method: str, seed: int) -> list[dict]:
        t0 = time.time()
        train, test, groups = self.data(kind, value)
        syn, kw = self.synthesize(kind, value, method, seed)
        name = label(kind, value)
        self.sets[name, method, seed] = syn
        return self.run.evaluate(syn, method, {"imperfection": name, "kind": kind, "value": value}, self.cfg.ipc,
                                 seed, groups=groups, test=test, data=train, t0=t0, **kw)


def board(df, methods, imperfections, metric: str = "acc", digits: int = 1) -> pd.DataFrame:
    """Methods x imperfections: 'mean ± std' of ``metric`` over seeds and students, 'n/a' where the method does
    not apply, '—' where it applies but did not run."""
    rows = {}
    for m in methods:
        row = {}
        for kind, value in imperfections:
            name = label(kind, value)
            v = df[(df["method"] == m) & (df["setting.imperfection"] == name)][metric]
            row[name] = ("n/a" if not applies(m, kind) else "—" if v.empty else
                         f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}")
        rows[m] = row
    return pd.DataFrame(rows).T.rename_axis("method")
