"""The experiments of the KDE-debiasing chapter (notebooks/04_kde_debias.ipynb): biased splits of every dataset,
the bias-revealing embedding of each run seed and its KDE weights, the bandwidth chosen per dataset on its
validation split with a seed of its own (and LfF's settings the same way), the main arms (random, DM, DM + KDE,
the KDE-weighted real subset, DM + KDE from it, DM + LfF, oracle group weights), the amplification study (full
data trained to its best validation epoch, random subset and DM on a biased and an unbiased source) and the
weight-share diagnostic."""
from __future__ import annotations

import time

import torch

from ..chapters.kde_debias import methods_at, settings_for
from ..data import load_dataset
from ..data.bias import BIASED_DATASETS, biased_splits
from ..distill import distill, random_subset, weighted_subset
from ..distill.registry import is_exact, settings_of
from ..evaluate import test_model, train_model
from ..experiment import Run, eval_settings, student_epochs
from ..methods import kde_debias as kde
from ..models import get_model

KDE_ARMS = ("dm_kde", "dm_kde_init", "dm_kde_lff")
TITLES = {"dm": "DM", "dm_kde": "DM + KDE", "dm_kde_init": "DM + KDE from the KDE-weighted subset"}
EMBEDDINGS = ("projection", "backbone", "random-init")


class Study:
    def __init__(self, run: Run):
        self.run, self.cfg, self.device = run, run.cfg, run.device
        self._bases: dict = {}
        self.kinds = list(self.cfg.datasets)
        self.settings = {k: settings_for(self.cfg, k) for k in self.kinds}
        self.data = {(k, r): self.splits_for(k, r) for k in self.kinds for r, _ in self.settings[k]}
        self.Z: dict = {}              # (kind, ratio, seed) -> {embedding: unit-norm embeddings of the training set}
        self.h_free: dict = {}         # (kind, ratio, seed) -> label-free bandwidth
        self.chosen_h: dict = {}       # kind -> the bandwidth the rule chose
        self.selection: dict = {}      # kind -> [{bandwidth, validation acc, synthetic set}]
        self.lff: dict = {}            # kind -> (q, ema) of LfF, chosen on validation (select_lff)
        self.sets: dict = {}           # (kind, ratio, ipc, method, seed) -> synthetic set

    def splits_for(self, kind, ratio, seed=0):
        """Train / unbiased / validation / test splits of a biased dataset (data seed 0 for every run seed)."""
        c, base = self.cfg, BIASED_DATASETS[kind]
        if base not in self._bases:
            self._bases[base] = (load_dataset(base, c.data_root, train=True), load_dataset(base, c.data_root, train=False))
        tr, te = self._bases[base]
        return biased_splits(kind, tr, te, ratio, c.per_class, c.val_per_class, c.test_per_class, seed, c.severity)

    def split_table(self) -> list[dict]:
        return [{"dataset": k, "ratio": f"{r:.1%}", "split": name, "images": len(d),
                 "bias-conflicting share": round(d.conflict_ratio(), 3),
                 "conflicting per class (min)": min(int(((d.labels == c) & ~d.aligned).sum()) for c in range(d.num_classes))}
                for (k, r), sp in self.data.items() for name, d in sp.items()]

    # ---------------------------------------------------------------------------------- embeddings, weights
    def embed(self, kind, r, seed) -> dict:
        """The SupCon net of this run seed (cached): its projection and backbone embeddings, and a random-init
        net's (the control), of the training set."""
        key = (kind, r, seed)
        if key not in self.Z:
            c, train = self.cfg, self.data[kind, r]["train"]
            net = kde.train_supcon(train, c.model, c.width, c.depth, c.norm, c.supcon_epochs, c.supcon_batch,
                                   c.supcon_lr, c.supcon_temperature, seed=seed, device=self.device,
                                   cache_root=c.cache_dir)
            rand = kde.random_init_embedding(train, c.model, c.width, c.depth, c.norm, seed=seed)
            self.Z[key] = {"projection": kde.embeddings(net, train, "projection", self.device),
                           "backbone": kde.embeddings(net, train, "backbone", self.device),
                           "random-init": kde.embeddings(rand, train, "projection", self.device)}
            self.h_free[key] = kde.label_free_bandwidth(self.Z[key][c.kde_embedding], train.labels, train.num_classes)
        return self.Z[key]

    def weights(self, kind, r, seed, h, embedding=None) -> torch.Tensor:
        train = self.data[kind, r]["train"]
        return kde.kde_weights(self.embed(kind, r, seed)[embedding or self.cfg.kde_embedding], train.labels,
                               train.num_classes, h, self.cfg.kde_alpha)

    def conflict_share(self, kind, r, w) -> float:
        t = self.data[kind, r]["train"]
        return float(kde.conflict_weight_share(w, t.labels, t.aligned, t.num_classes).mean())

    def protocol(self, n: int, **overrides):
        """The students' protocol on a set of ``n`` images: at least STUDENT_STEPS optimiser steps."""
        return eval_settings(self.cfg, epochs=student_epochs(self.cfg, n), **overrides)

    def dm(self, train, ipc, seed, weights=None, init=None):
        return distill("dm", train, self.cfg, seed, self.device, weights=weights, init=init, ipc=ipc)

    def select_bandwidth(self, kind) -> list[dict]:
        """The bandwidth by KDE_SELECTION, for one dataset: the best validation accuracy of DM + KDE over
        KDE_BANDWIDTHS (one student, first setting, SELECTION_SEED: an embedding, sets and students of their own,
        none of which the claims read), the label-free rule, or KDE_BANDWIDTH."""
        c = self.cfg
        (r, ipc), seed, rows = c.settings[0], c.selection_seed, []
        sp = self.data[kind, r]
        if c.kde_selection == "validation":
            for h in c.kde_bandwidths:
                w = self.weights(kind, r, seed, h)
                syn = self.dm(sp["train"], ipc, seed, w)
                m = self.run.evaluate(syn, "dm_kde", {"study": "selection", "bias": kind, "conflict_ratio": r,
                                                      "bandwidth": h, "split": "validation"}, ipc, seed,
                                      test=sp["val"], settings=self.protocol(len(syn), students=1), data=sp["train"],
                                      min_group=c.min_group_images)[0]
                rows.append({"bandwidth": h, "validation acc": m["acc"],
                             "conflict_share": self.conflict_share(kind, r, w), "set": syn})
            self.chosen_h[kind] = max(rows, key=lambda row: row["validation acc"])["bandwidth"]
        else:
            self.embed(kind, r, seed)
            self.chosen_h[kind] = self.h_free[kind, r, seed] if c.kde_selection == "label_free" else c.kde_bandwidth
        self.selection[kind] = rows
        return rows

    def select_lff(self, kind) -> list[dict]:
        """LfF's [q, ema] for one dataset: with LFF_GRID, the best validation accuracy of DM + LfF over its pairs
        (vanilla DM's set at the dataset's last setting, SELECTION_SEED, one student each); else LFF_Q, LFF_EMA."""
        c, rows = self.cfg, []
        if not c.lff_grid or not any(m.endswith("_lff") for r, i in self.settings[kind] for m in methods_at(c, r, i)):
            self.lff[kind] = (c.lff_q, c.lff_ema)
            return rows
        (r, ipc), seed = self.settings[kind][-1], c.selection_seed
        sp = self.data[kind, r]
        syn = self.dm(sp["train"], ipc, seed)
        protocol = self.protocol(len(syn), students=1)
        for q, ema in c.lff_grid:
            fit = kde.lff_trainer(protocol, q=q, ema=ema, device=self.device)
            m = self.run.evaluate(syn, "dm_lff", {"study": "lff selection", "bias": kind, "conflict_ratio": r,
                                                  "q": q, "ema": ema, "split": "validation"}, ipc, seed,
                                  settings=protocol, test=sp["val"], data=sp["train"], train_fn=fit,
                                  min_group=c.min_group_images)[0]
            rows.append({"dataset": kind, "IPC": ipc, "q": q, "ema": ema, "validation acc": m["acc"]})
        best = max(rows, key=lambda row: row["validation acc"])
        self.lff[kind] = (best["q"], best["ema"])
        return rows

    # ------------------------------------------------------------------------------------------------ arms
    def make_set(self, kind, r, ipc, method, seed):
        """(synthetic set, real-side weights or None, initial set) of one arm of the main comparison."""
        sp, h = self.data[kind, r], self.chosen_h[kind]
        tr = sp["train"]
        w, init = None, random_subset(tr, ipc, seed)
        if method in KDE_ARMS + ("kde_subset",):
            w = self.weights(kind, r, seed, h)
        elif method == "oracle":
            w = kde.oracle_group_weights(tr.labels, tr.aligned, tr.num_classes)
        elif method == "oracle_matched":          # the bias labels, with as much conflicting weight as KDE's
            mass = self.conflict_share(kind, r, self.weights(kind, r, seed, h))
            w = kde.oracle_group_weights(tr.labels, tr.aligned, tr.num_classes, conflict_mass=mass)
        if method in ("kde_subset", "dm_kde_init"):
            init = weighted_subset(tr, ipc, w, seed)
        syn = (init if method in ("random", "kde_subset")
               else self.dm(tr, ipc, seed, w, init if method == "dm_kde_init" else None))
        return syn, w, init

    def arm(self, kind, r, ipc, method, seed):
        """One arm of the main comparison; its record carries the weights' conflict share and the share of
        bias-conflicting images in the initial set (both diagnostics that read the bias labels)."""
        t0, sp, h = time.time(), self.data[kind, r], self.chosen_h[kind]
        tr = sp["train"]
        syn, w, init = self.make_set(kind, r, ipc, method, seed)
        self.sets[kind, r, ipc, method, seed] = syn
        protocol = self.protocol(len(syn))
        if method.endswith("_lff") and kind not in self.lff:
            self.select_lff(kind)
        q, ema = self.lff.get(kind, (self.cfg.lff_q, self.cfg.lff_ema))
        fit = kde.lff_trainer(protocol, q=q, ema=ema, device=self.device) if method.endswith("_lff") else None
        diag = {"conflict_share": tr.conflict_ratio() if w is None else self.conflict_share(kind, r, w),
                "init_conflicting": kde.conflicting_share(tr, init)}
        if fit is not None:
            diag.update(lff_q=q, lff_ema=ema)
        return self.run.evaluate(syn, method, {"study": "main", "bias": kind, "conflict_ratio": r, "bandwidth": h},
                                 ipc, seed, settings=protocol, test=sp["test"], data=tr, train_fn=fit, t0=t0, add=diag,
                                 min_group=self.cfg.min_group_images)

    builds_its_data = True          # the sets' export runs this study without the run's own data (sets.export_chapter)

    def shown_sets(self) -> list[dict]:
        """The sets the chapter's image figure shows, for the site's "Distilled sets" page (:mod:`ltdd_utils.sets`):
        vanilla DM, DM + KDE and DM + KDE from the KDE-weighted subset on Colored MNIST (else the first dataset) at
        the first setting, first seed, from the run's cache, with the bandwidth the run's records give."""
        from ..chapters.kde_debias import HEADLINE_DATASET
        from ..experiment import hard_protocol
        from ..versions import key_versions
        c, seed = self.cfg, self.cfg.seeds[0]
        kind = HEADLINE_DATASET if HEADLINE_DATASET in self.kinds else self.kinds[0]
        r, ipc = self.settings[kind][0]
        if kind not in self.chosen_h:
            from ..results import read_records
            path = self.run.path.with_suffix(".json")
            hs = {x["setting"]["bandwidth"] for x in (read_records(self.run.path) if path.exists() else [])
                  if x["setting"].get("study") == "main" and x["setting"].get("bias") == kind}
            if len(hs) == 1:
                self.chosen_h[kind] = hs.pop()
            else:
                self.select_bandwidth(kind)
        h, tr = self.chosen_h[kind], self.data[kind, r]["train"]
        real = ("exact weighted class means over a fixed pool of random networks, without augmentation"
                if is_exact(settings_of("dm", c)) else "real batches with DSA through a fresh random network per step")
        how = {"dm": "vanilla DM, from a random real subset",
               "dm_kde": f"DM with KDE weights on the real side (h = {h:.3g}, alpha {c.kde_alpha:g}), from a random real "
                         "subset",
               "dm_kde_init": f"DM with KDE weights on the real side (h = {h:.3g}, alpha {c.kde_alpha:g}), from real "
                              "images drawn in proportion to those weights"}
        out = []
        for m in ("dm", "dm_kde", "dm_kde_init"):
            if m not in methods_at(c, r, ipc):
                continue
            syn = self.make_set(kind, r, ipc, m, seed)[0]
            out.append({"name": f"{m}_{kind}_r{r:g}_ipc{ipc}_seed{seed}", "set": syn, "data": tr,
                        "title": f"{TITLES[m]}, {kind}, IPC {ipc}",
                        "setting": {"bias": kind, "conflict_ratio": r}, "ipc": ipc, "seed": seed,
                        "made_by": f"{how[m]}, {c.dm_iterations} steps of {real}",
                        "producer": key_versions("distill.dm"),
                        "students": hard_protocol(c, len(syn), epochs=student_epochs(c, len(syn))),
                        "arms": [{"method": m, "study": "main", "ipc": ipc,
                                  "setting": {"bias": kind, "conflict_ratio": r}}]})
        return out

    # ------------------------------------------------------------------------------------ amplification
    def full_reference(self, d, sp, seed, label) -> dict:
        """A model trained on all of ``d`` with the evaluation recipe for up to FULL_EPOCHS epochs, checked on the
        validation split every FULL_EVAL_EVERY epochs; the best validation state is tested."""
        c, best = self.cfg, {"acc": -1.0}
        torch.manual_seed(seed)
        full = get_model(c.model, d.shape[0], d.num_classes, d.shape[1:], width=c.eval_width, depth=c.depth,
                         norm=c.norm)

        def check(epoch, model):
            if epoch % c.full_eval_every == 0 or epoch == c.full_epochs:
                acc = test_model(model, sp["val"], device=self.device, min_group=c.min_group_images)["acc"]
                if acc > best["acc"]:
                    best.update(acc=acc, epoch=epoch, state={k: v.detach().clone() for k, v in model.state_dict().items()})
        x, y = d.tensors()
        train_model(full, x, y, c.full_epochs, c.eval_lr, c.eval_batch, c.eval_aug, seed, self.device, on_epoch=check)
        full.load_state_dict(best["state"])
        m = test_model(full, sp["test"], device=self.device, min_group=c.min_group_images)
        print(f"[{label} full data] best validation epoch {best['epoch']}/{c.full_epochs} (val {best['acc']:.1f}): "
              f"acc {m['acc']:.2f} aligned {m['acc_aligned']:.1f} conflicting {m['acc_conflicting']:.1f}", flush=True)
        return {**m, "full_epoch": best["epoch"], "val_acc": best["acc"]}

    def unbiased_arms(self, kind, r, ipc, seed, study):
        """The random subset and DM on the unbiased source of one setting (records of ``study``, source
        ``unbiased``): what the gate "DM works at this scale" and the amplification index read."""
        sp = self.data[kind, r]
        d, setting = sp["unbiased"], {"study": study, "bias": kind, "conflict_ratio": r, "source": "unbiased"}
        for method in ("random", "dm"):
            t0 = time.time()
            syn = random_subset(d, ipc, seed) if method == "random" else self.dm(d, ipc, seed)
            self.run.evaluate(syn, method, setting, ipc, seed, settings=self.protocol(len(syn)), test=sp["test"],
                              data=d, t0=t0, min_group=self.cfg.min_group_images)

    def amplification(self, kind, seed):
        """At the first setting: the full data on the biased and the unbiased source, and the random subset and
        DM on the unbiased source (on the biased source they are the main arms ``random`` and ``dm``)."""
        (r, ipc) = self.cfg.settings[0]
        sp = self.data[kind, r]
        for source, src in (("train", "biased"), ("unbiased", "unbiased")):
            d, t0 = sp[source], time.time()
            setting = {"study": "amplification", "bias": kind, "conflict_ratio": r, "source": src}
            m = self.full_reference(d, sp, seed, f"{kind} {src} seed {seed}")
            self.run.record("full data", setting, ipc, seed, m, time.time() - t0, d, student=0)
        self.unbiased_arms(kind, r, ipc, seed, "amplification")

    def dm_check(self, kind, seed):
        """At every setting of ``kind`` after the first (where the amplification study measures it): the random
        subset and DM on the unbiased source, the gate "DM works at this scale" of that setting's claims (study
        ``dm check``)."""
        for r, ipc in self.settings[kind][1:]:
            self.unbiased_arms(kind, r, ipc, seed, "dm check")

    # --------------------------------------------------------------------------------------- sensitivity
    def sensitivity(self, kind) -> list[dict]:
        """First setting and SELECTION_SEED, one student each, tested after the choice: every candidate bandwidth's
        set from the selection run, and DM + KDE at the chosen bandwidth on the other embeddings."""
        c, h = self.cfg, self.chosen_h[kind]
        (r, ipc), seed = c.settings[0], c.selection_seed
        sp = self.data[kind, r]
        arms = {f"h = {row['bandwidth']:g}": (c.kde_embedding, row["conflict_share"], row["set"])
                for row in self.selection.get(kind, [])}
        for emb in EMBEDDINGS:
            if emb != c.kde_embedding:
                w = self.weights(kind, r, seed, h, emb)
                arms[f"{emb} embedding, chosen h"] = (emb, self.conflict_share(kind, r, w),
                                                         self.dm(sp["train"], ipc, seed, w))
        rows = []
        for name, (emb, share, syn) in arms.items():
            m = self.run.evaluate(syn, "dm_kde", {"study": "sensitivity", "bias": kind, "conflict_ratio": r, "arm": name,
                                                  "embedding": emb}, ipc, seed, test=sp["test"], data=sp["train"],
                                  settings=self.protocol(len(syn), students=1), add={"conflict_share": share},
                                  min_group=c.min_group_images)[0]
            rows.append({"dataset": kind, "arm": name, "embedding": emb, "chosen h": h, "conflict weight share": share,
                         "test acc": m["acc"],
                         "aligned": m["acc_aligned"], "conflicting": m["acc_conflicting"]})
        return rows


# ------------------------------------------------------------------------------------------ analysis
def amplification_frame(df):
    """Per (dataset, method, seed): mean accuracy from the biased and the unbiased source and the amplification
    index A = (acc_unbiased - acc_biased) / acc_unbiased. The biased-source random subset and DM are the main
    study's arms of the same data, setting and seed."""
    import pandas as pd
    amp = df[df["setting.study"] == "amplification"]
    if not len(amp):
        return pd.DataFrame()
    first = amp.groupby("setting.bias")[["setting.conflict_ratio", "ipc"]].first()
    main = df[(df["setting.study"] == "main") & df["method"].isin(["random", "dm"])]
    main = main[[(b, r, i) == (b, *first.loc[b]) if b in first.index else False
                 for b, r, i in zip(main["setting.bias"], main["setting.conflict_ratio"], main["ipc"])]]
    rows = pd.concat([amp, main.assign(**{"setting.source": "biased"})])
    acc = rows.groupby(["setting.bias", "method", "seed", "setting.source"])["acc"].mean().unstack("setting.source")
    return acc.dropna().assign(A=lambda t: (t["unbiased"] - t["biased"]) / t["unbiased"])


def amplification_diffs(frame, kind, a: str, b: str) -> dict:
    """Paired per-seed differences A(a) - A(b) on one dataset."""
    A = frame["A"]
    sa, sb = A.loc[kind, a], A.loc[kind, b]
    return {int(s): float(sa[s] - sb[s]) for s in sorted(set(sa.index) & set(sb.index))}


def share_accuracy(df) -> "pd.DataFrame":
    """Every DM run whose real side was weighted one way or another, with its conflict weight share and accuracy:
    vanilla DM (the uniform share), DM + KDE and the oracle weights over seeds, and the sensitivity arms. Left
    out: the random subset (no DM), LfF students and the KDE-weighted initialisation (other changes than the
    weights)."""
    rows = df[df["setting.study"].isin(["main", "sensitivity"]) & df["conflict_share"].notna()
              & df["method"].isin(["dm", "dm_kde", "oracle", "oracle_matched"])]
    return rows.assign(arm=rows["setting.arm"].fillna(rows["method"]) if "setting.arm" in rows else rows["method"])


def spearman(x, y) -> float:
    import pandas as pd
    return float(pd.Series(list(x)).rank().corr(pd.Series(list(y)).rank()))
