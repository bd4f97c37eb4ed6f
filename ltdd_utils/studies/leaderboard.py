"""The leaderboard (notebooks/06_leaderboard.ipynb): random, herding and DM on every imperfection, and each paper's
method, built by its own chapter's study, on the imperfections it applies to; one DM recipe (the leaderboard's
config, which every paper chapter's config takes over), one run. Two references per imperfection: ``full_data``
(a student on the whole imperfect training set) and ``clean_dm`` (DM on the same data without the imperfection).

Every set is scored by one protocol, ``hard``: the board's students (SGD, ``EVAL_EPOCHS``) on its images under its
hard labels. The soft-label methods (ADSA, unbiased recovery) are also scored by their own protocol, ``kd``: their
chapter's students learn their teacher's labels (the labels are part of those methods), in a table of its own
(DD-Ranking's practice: it scores soft-label sets under hard labels too). Their controls, each method's labels
(teacher and label rule) on random real images (``random_adsa`` for ADSA, ``random_kd`` for unbiased recovery), and
``random_soft`` (ADSA's teacher's plain soft labels on random images) are scored by ``kd`` only: under hard labels
they are random real subsets, which the ``random`` row scores (``random_kd``'s is its very draw)."""
from __future__ import annotations

import importlib
import time

import pandas as pd
import torch

from ..chapters.leaderboard import BIAS, LONG_TAIL, METHODS, paper_config
from ..data.longtail import balanced_like, class_groups, make_longtail, tail_order
from ..distill import SyntheticSet, distill, herding, random_subset
from ..experiment import Run, eval_settings

BIAS_NAMES = {"cmnist": "Colored MNIST", "bg_fmnist": "BG-FashionMNIST", "corrupted_cifar10": "Corrupted CIFAR-10"}
# a soft-label method -> its control: its own labels (teacher and label rule) on random real images, its own KD
# students, so that the images are what differs (ADSA chooses tau* on each set's own images); random_soft (the plain
# soft labels) a further reference
SOFT_CONTROLS = {"adsa": "random_adsa", "unbiased_recovery": "random_kd"}
KD_ONLY = ("random_soft", *SOFT_CONTROLS.values())
SOFT_LABELS = (*KD_ONLY, *SOFT_CONTROLS)


def protocols(method: str) -> tuple[str, ...]:
    """The protocols that score ``method``'s sets: ``hard`` for every method but the soft-label controls, ``kd`` for
    the soft-label methods and their controls."""
    if method in KD_ONLY:
        return ("kd",)
    return ("hard", "kd") if method in SOFT_LABELS else ("hard",)


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

    def prepare(self) -> None:
        """Build, before any arm, every paper study the board's methods need (their expert and bandwidth choices,
        with their logs) and every imperfection's data."""
        for method in self.cfg.methods:
            chapter = METHODS[method][0]
            if chapter is not None and any(applies(method, kind) for kind, _ in self.imperfections):
                self.paper(chapter)
        for kind, value in self.imperfections:
            self.data(kind, value)

    def bandwidths(self) -> pd.DataFrame | None:
        """KDE's bandwidth selection as chapter 04 makes it (validation split, its selection seed, one student per
        bandwidth), one row per bandwidth and bias; None when KDE is not on the board."""
        if "kde" not in self.cfg.methods or "kde_debias" not in self._papers:
            return None
        st = self._papers["kde_debias"]
        rows = [{"bias": BIAS_NAMES[kind], "conflicting": st.cfg.settings[0][0], "bandwidth": r["bandwidth"],
                 "validation acc": r["validation acc"], "weight on conflicting images": r["conflict_share"],
                 "chosen": "yes" if r["bandwidth"] == st.chosen_h[kind] else ""}
                for kind, sel in st.selection.items() for r in sel]
        return pd.DataFrame(rows).set_index(["bias", "bandwidth"]) if rows else None

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

    def clean(self, kind: str, value: float):
        """The imperfection's clean counterpart, what ``clean_dm`` distils: for the long tail a class-balanced draw
        of the same size (chapter 01's balanced split), for a bias the same images with their attributes drawn
        independently of the label (chapter 04's unbiased source), for noise the same images under their true
        labels."""
        train = self.data(kind, value)[0]
        if kind in LONG_TAIL:
            return balanced_like(self.run.train, train)
        if kind in BIAS:
            return self.paper("kde_debias").data[kind, value]["unbiased"]
        return train.with_labels(train.clean_labels)

    def paper_split(self, chapter: str, value: float, train):
        """The paper study's long-tailed split at ``value``, checked to be the leaderboard's."""
        split = self.paper(chapter).splits[value]
        if not torch.equal(split.indices, train.indices):
            raise AssertionError(f"{chapter}'s IF-{value:g} split differs from the leaderboard's")
        return split

    # ---------------------------------------------------------------------------------------------- methods
    def features(self, train):
        """The network herding selects in: the teachers' recipe (cross-entropy) on the imperfect training data, at
        chapter 01's teacher settings, seed 0 (DC-BENCH herds in trained features). On a long tail it is chapter
        01's teacher of that split (one cached network); on noise it learns the noisy labels."""
        from .. import teachers
        a = self.paper_cfg("adsa")
        return teachers.teacher(train, epochs=a.teacher_epochs, objective="ce", seed=0,
                                recipe=teachers.Recipe(width=a.teacher_width, batch=a.teacher_batch),
                                device=self.device, cache_root=self.cfg.cache_dir)

    def herding_set(self, train):
        """Herding in :meth:`features`: one set per split (herding draws nothing at random)."""
        key = train.fingerprint()
        if key not in self._herding:
            net = self.features(train).to(self.device).eval()
            self._herding[key] = herding(train, self.cfg.ipc, net.embed, self.device)
        return self._herding[key]

    def synthesize(self, kind: str, value: float, method: str, seed: int):
        """(synthetic set, keywords of its own protocol) of ``method`` on one imperfection; the keywords of a
        soft-label method train its KD students, the others' are empty or extra metrics (``add``)."""
        c, (train, _, _) = self.cfg, self.data(kind, value)
        if not applies(method, kind):
            raise ValueError(f"method {method!r} does not apply to {kind!r}")
        if method == "full_data":
            x, y = train.tensors()
            return SyntheticSet(x, y, train.num_classes, meta={"method": "full_data"}), {
                "settings": eval_settings(c, epochs=c.full_epochs), "add": {"images": len(train)}}
        if method == "clean_dm":
            return distill("dm", self.clean(kind, value), c, seed, self.device), {}
        if method == "random":
            return random_subset(train, c.ipc, seed), {}
        if method == "clean_random":
            return random_subset(self.clean(kind, value), c.ipc, seed), {}
        if method == "herding":
            return self.herding_set(train), {}
        if method == "dm":
            return distill("dm", train, c, seed, self.device), {}
        if method == "csdm":
            return distill("csdm", train, self.paper_cfg("csdm"), seed, self.device), {}
        if method in ("adsa", "random_adsa", "random_soft"):
            st = self.paper("adsa")
            self.paper_split("adsa", value, train)
            syn, fit, tau = st.labelled(value, c.ipc, method, seed)
            return syn, {"train_fn": fit, "settings": st.settings(), "add": {"tau": tau}}
        if method in ("unbiased_recovery", "random_kd"):
            st, which = self.paper("unbiased_recovery"), "full" if method == "unbiased_recovery" else "random_kd"
            self.paper_split("unbiased_recovery", value, train)
            syn = st.synset(value, c.ipc, which, seed)
            settings, fit = st.students(value, which, len(syn), seed)
            return syn, {"train_fn": fit, "settings": settings}
        if method == "kde":
            st = self.paper("kde_debias")
            w = st.weights(kind, value, seed, st.chosen_h[kind])
            syn = distill("dm", train, c, seed, self.device, weights=w)
            return syn, {"add": {"bandwidth": st.chosen_h[kind], "conflict_share": st.conflict_share(kind, value, w)}}
        if method in ("tad", "filter"):
            view = self.paper("tad").view((kind, value), "tad" if method == "tad" else "filter_dm", seed)
            syn = distill("dm", view, c, seed, self.device)
            return syn, {"add": {"trusted": len(view),
                                 "label_precision": float((view.labels == view.clean_labels).float().mean())}}
        raise ValueError(f"unknown method {method!r}")

    def arm(self, kind: str, value: float, method: str, seed: int) -> list[dict]:
        """Score one set by each of :func:`protocols`: the board's (``hard``; the synthesis counts in its record's
        time), and a soft-label method's own (``kd``; its record times its students alone when ``hard`` ran)."""
        t0 = time.time()
        train, test, groups = self.data(kind, value)
        syn, kw = self.synthesize(kind, value, method, seed)
        name = label(kind, value)
        self.sets[name, method, seed] = syn
        setting = {"imperfection": name, "kind": kind, "value": value}
        soft = method in SOFT_LABELS         # its keywords (KD students, its tau) are its own protocol's
        out = []
        for protocol in protocols(method):
            out += self.run.evaluate(syn, method, {**setting, "protocol": protocol}, self.cfg.ipc, seed,
                                     groups=groups, test=test, data=train, t0=t0,
                                     **(kw if protocol == "kd" or not soft else {}))
            t0 = time.time()
        return out


def board(df, methods, imperfections, metric: str = "acc", digits: int = 1, protocol: str = "hard") -> pd.DataFrame:
    """Methods x imperfections: 'mean ± std' of ``metric`` over seeds and students under ``protocol``, 'n/a' where
    the method does not apply, '—' where it applies but did not run; rows of methods ``protocol`` does not score
    are left out."""
    rows = {}
    for m in [m for m in methods if protocol in protocols(m)]:
        row = {}
        for kind, value in imperfections:
            name = label(kind, value)
            v = df[(df["method"] == m) & (df["setting.imperfection"] == name)
                   & (df["setting.protocol"] == protocol)][metric]
            row[name] = ("n/a" if not applies(m, kind) else "—" if v.empty else
                         f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}")
        rows[m] = row
    return pd.DataFrame(rows).T.rename_axis("method")
