"""The experiments of the KDE-debiasing chapter (notebooks/04_kde_debias.ipynb): biased splits, the
bias-revealing embeddings and their KDE weights, bandwidth selection on the validation split, the main arms
(random, DM, DM + KDE, DM + LfF), the amplification study and the sensitivity arms."""
from __future__ import annotations

import time

import torch

from ..data import load_dataset
from ..data.bias import BIASED_DATASETS, biased_splits
from ..distill import distill, random_subset
from ..evaluate import test_model, train_model
from ..experiment import Run, eval_settings
from ..methods import kde_debias as kde
from ..models import get_model


class Study:
    def __init__(self, run: Run):
        self.run, self.cfg, self.device = run, run.cfg, run.device
        self._bases: dict = {}
        self.ratios = list(dict.fromkeys(r for r, _ in self.cfg.settings))
        self.data = {r: self.splits_for(self.cfg.dataset, r) for r in self.ratios}
        self.Z: dict = {}
        self.sets: dict = {}
        self.chosen_h = None

    def splits_for(self, kind, ratio, seed=0):
        """Train / unbiased / validation / test splits of a biased dataset (data seed 0 for every run seed)."""
        c, base = self.cfg, BIASED_DATASETS[kind]
        if base not in self._bases:
            self._bases[base] = (load_dataset(base, c.data_root, train=True), load_dataset(base, c.data_root, train=False))
        tr, te = self._bases[base]
        return biased_splits(kind, tr, te, ratio, c.per_class, c.val_per_class, c.test_per_class, seed, c.severity)

    def split_table(self) -> list[dict]:
        return [{"ratio": f"{r:.1%}", "split": name, "images": len(d), "bias-conflicting share": round(d.conflict_ratio(), 3),
                 "conflicting per class (min)": min(int(((d.labels == c) & ~d.aligned).sum()) for c in range(d.num_classes))}
                for r, sp in self.data.items() for name, d in sp.items()]

    # ---------------------------------------------------------------------------------- embeddings, weights
    def embed(self):
        """Per ratio: the SupCon net's projection and backbone embeddings, and a random-init net's."""
        c = self.cfg
        for r in self.ratios:
            train = self.data[r]["train"]
            net = kde.train_supcon(train, c.model, c.width, c.depth, c.norm, c.supcon_epochs, c.supcon_batch,
                                   c.supcon_lr, c.supcon_temperature, seed=0, device=self.device, cache_root=c.cache_dir)
            rand = kde.random_init_embedding(train, c.model, c.width, c.depth, c.norm, seed=0)
            self.Z[r] = {"projection": kde.embeddings(net, train, "projection", self.device),
                         "backbone": kde.embeddings(net, train, "backbone", self.device),
                         "random-init": kde.embeddings(rand, train, "projection", self.device)}
        return {r: kde.label_free_bandwidth(self.Z[r][c.kde_embedding], self.data[r]["train"].labels,
                                            self.data[r]["train"].num_classes) for r in self.ratios}

    def weights(self, r, h, embedding=None):
        train = self.data[r]["train"]
        return kde.kde_weights(self.Z[r][embedding or self.cfg.kde_embedding], train.labels, train.num_classes, h,
                               self.cfg.kde_alpha)

    def conflict_share(self, r, w) -> float:
        t = self.data[r]["train"]
        return float(kde.conflict_weight_share(w, t.labels, t.aligned, t.num_classes).mean())

    def dm(self, train, ipc, seed, weights=None):
        return distill("dm", train, self.cfg, seed, self.device, weights=weights, ipc=ipc)

    def select_bandwidth(self, h_free: dict) -> list[dict]:
        """The bandwidth by KDE_SELECTION: the best validation accuracy of DM + KDE over KDE_BANDWIDTHS (one
        student, first setting and seed), the label-free rule, or KDE_BANDWIDTH."""
        c = self.cfg
        (r, ipc), seed, rows = c.settings[0], c.seeds[0], []
        if c.kde_selection == "validation":
            for h in c.kde_bandwidths:
                syn = self.dm(self.data[r]["train"], ipc, seed, self.weights(r, h))
                m = self.run.evaluate(syn, "dm_kde", {"study": "selection", "conflict_ratio": r, "bandwidth": h,
                                                      "split": "validation"}, ipc, seed, test=self.data[r]["val"],
                                      settings=eval_settings(c, students=1), data=self.data[r]["train"])[0]
                rows.append({"bandwidth": h, "validation acc": m["acc"]})
            self.chosen_h = max(rows, key=lambda row: row["validation acc"])["bandwidth"]
        else:
            self.chosen_h = h_free[r] if c.kde_selection == "label_free" else c.kde_bandwidth
        return rows

    # ------------------------------------------------------------------------------------------------ arms
    def arm(self, r, ipc, method, seed):
        t0, sp = time.time(), self.data[r]
        if method == "random":
            syn = random_subset(sp["train"], ipc, seed)
        else:
            syn = self.dm(sp["train"], ipc, seed, self.weights(r, self.chosen_h) if "kde" in method else None)
        self.sets[r, ipc, method, seed] = syn
        fit = kde.lff_trainer(eval_settings(self.cfg), q=self.cfg.lff_q, device=self.device) if method.endswith("_lff") else None
        return self.run.evaluate(syn, method, {"study": "main", "conflict_ratio": r, "bandwidth": self.chosen_h}, ipc, seed,
                                 test=sp["test"], data=sp["train"], train_fn=fit, t0=t0)

    def amplification(self, kind, ipc, seed):
        """On a biased and an unbiased source of the same size: a full-data model, a random subset and DM."""
        c = self.cfg
        sp = self.splits_for(kind, c.amplification_ratio)
        for source, src in (("train", "biased"), ("unbiased", "unbiased")):
            d, t0 = sp[source], time.time()
            setting = {"study": "amplification", "bias": kind, "conflict_ratio": c.amplification_ratio, "source": src}
            torch.manual_seed(seed)
            full = get_model(c.model, d.shape[0], d.num_classes, d.shape[1:], width=c.eval_width, depth=c.depth, norm=c.norm)
            x, y = d.tensors()
            train_model(full, x, y, c.full_epochs, c.eval_lr, c.eval_batch, c.eval_aug, seed, self.device,
                        desc=f"full {kind} {src}")
            m = test_model(full, sp["test"], device=self.device)
            print(f"[{kind} {src} full data] acc {m['acc']:.2f} aligned {m['acc_aligned']:.1f} conflicting {m['acc_conflicting']:.1f}")
            self.run.record("full data", setting, ipc, seed, m, time.time() - t0, d, student=0)
            for method in ("random", "dm"):
                t0 = time.time()
                syn = random_subset(d, ipc, seed) if method == "random" else self.dm(d, ipc, seed)
                self.run.evaluate(syn, method, setting, ipc, seed, test=sp["test"], data=d, t0=t0)

    def sensitivity(self, bandwidths) -> list[dict]:
        """One student per arm, first setting and seed: other bandwidths, the other embeddings at the chosen
        bandwidth, and oracle group weights from the bias labels."""
        c, h = self.cfg, self.chosen_h
        (r, ipc), seed = c.settings[0], c.seeds[0]
        tr = self.data[r]["train"]
        other = "backbone" if c.kde_embedding == "projection" else "projection"
        arms = {f"h = {b:g}": (c.kde_embedding, self.weights(r, b)) for b in bandwidths}
        arms[f"{other} embedding, h = {h:.3g}"] = (other, self.weights(r, h, other))
        arms[f"random-init embedding, h = {h:.3g}"] = ("random-init", self.weights(r, h, "random-init"))
        arms["oracle group weights"] = ("bias labels", kde.oracle_group_weights(tr.labels, tr.aligned, tr.num_classes))
        rows = []
        for name, (emb, w) in arms.items():
            share = self.conflict_share(r, w)
            m = self.run.evaluate(self.dm(tr, ipc, seed, w), "dm_kde", {"study": "sensitivity", "conflict_ratio": r,
                                  "arm": name, "embedding": emb, "conflict_share": share}, ipc, seed,
                                  test=self.data[r]["test"], data=tr, settings=eval_settings(c, students=1))[0]
            rows.append({"arm": name, "embedding": emb, "conflict weight share": share, "test acc": m["acc"],
                         "aligned": m["acc_aligned"], "conflicting": m["acc_conflicting"]})
        return rows


def amplification_table(df):
    """Per (bias, method): mean accuracy from the biased and the unbiased source and the amplification index
    A = (acc_unbiased - acc_biased) / acc_unbiased."""
    amp = df[df["setting.study"] == "amplification"]
    acc = amp.groupby(["setting.bias", "method", "setting.source"])["acc"].mean().unstack("setting.source")
    return acc.assign(A=lambda t: (t["unbiased"] - t["biased"]) / t["unbiased"])


def amplification_lines(df, kinds, margin: float, full_epochs: int, num_classes: int) -> list[str]:
    """What the amplification indices say, dataset by dataset; indices closer than ``margin`` are not told apart."""
    amp = df[df["setting.study"] == "amplification"]
    if not len(amp):
        return []
    A = amplification_table(df)["A"]
    conf = amp[amp["setting.source"] == "biased"].groupby(["setting.bias", "method"])["acc_conflicting"].mean()
    lines = []
    for kind in kinds:
        a_dm, a_full, a_rand = A[(kind, "dm")], A[(kind, "full data")], A[(kind, "random")]
        if a_dm > max(a_full, a_rand) + margin:
            what = "amplified by DM beyond both the full data and the random subset"
        elif a_dm > a_full + margin:
            what = "amplified relative to the full data, but no more than by a random subset of the same size (compression, not DM)"
        elif a_dm < a_full - margin:
            what = "damped: DM loses less to the bias than the full data"
        else:
            what = f"no difference from the full data resolved (within ±{margin})"
        lines.append(f"* Amplification on {kind}: A(full data) {a_full:.2f}, A(random) {a_rand:.2f}, A(DM) {a_dm:.2f}: {what}.")
        if conf[(kind, "full data")] < 2 * 100 / num_classes:
            lines.append(f"  The full-data reference itself learned little beyond the shortcut ({conf[(kind, 'full data')]:.1f} % on "
                         f"conflicting test images after {full_epochs} epochs), so it is not the strong reference the paper "
                         "compares with; A(full data) is inflated at this training length.")
    return lines
