"""The experiments of the TAD chapter (notebooks/05_tad.ipynb): a class-balanced training subset, its noisy
labels per setting, the trust-network runs (TAD and its variants) and the arms, each a view of the noisy data
distilled by DM through the distiller registry."""
from __future__ import annotations

import time
from dataclasses import replace

import torch

from ..data.bias import stream_seed
from ..data.longtail import make_longtail
from ..data.noise import ASYMMETRIC_MAPS, inject_noise
from ..distill import distill, random_subset
from ..experiment import Run
from ..methods import tad


def label(s) -> str:
    """A noise setting (kind, rate) as text."""
    kind, r = s
    return kind.replace("cifar10n_", "CIFAR-10N ") if kind.startswith("cifar10n") else f"{r:.0%} {kind}"


class Study:
    def __init__(self, run: Run):
        self.run, self.cfg, self.device, c = run, run.cfg, run.device, run.cfg
        full = run.train
        if c.per_class:                                  # a class-balanced subset with fixed indices (noise seed stream)
            self.base = make_longtail(full, 1, stream_seed(c.noise_seed, "tad-subset"), n_max=c.per_class)
        else:
            self.base = full
        self.C = self.base.num_classes
        self.settings = [tuple(s) for s in c.noise_settings]
        self.sweep = [("symmetric", r) for r in c.sweep_rates if ("symmetric", r) not in self.settings]
        self.sweep += [(f"cifar10n_{k}", 0.0) for k in c.real_noise]
        self.noisy = {s: inject_noise(self.base, *s, c.noise_seed, c.data_root) for s in self.settings + self.sweep}
        main = tad.TADSettings(rounds=c.rounds, epochs_per_round=c.epochs_per_round, tau=c.tau, split=c.trust_split,
                               keep_ratio=c.keep_ratio, recall=True, delta=c.delta, tests=tuple(c.reliability),
                               shrinkage=c.shrinkage, covariance=c.covariance, lambda_cons=c.lambda_cons,
                               lr=c.trust_lr, batch=c.trust_batch)
        self.variants = {"tad": main, "tad_outer": replace(main, recall=False),
                         "tad_no_consistency": replace(main, lambda_cons=0.0),
                         "tad_ours": replace(main, revert=True, delta_grid=tuple(c.delta_grid))}
        # our variant may read the true labels of a fixed hold-out share of the training images (a small verified
        # subset) to choose its recall threshold; every other arm ignores them
        gen = torch.Generator().manual_seed(stream_seed(c.noise_seed, "tad-holdout"))
        self.holdout = torch.randperm(len(self.base), generator=gen)[:max(1, round(c.holdout_share * len(self.base)))]
        self.warmup = dict(model=c.model if c.trust_model == "convnet" else c.trust_model, width=c.trust_width,
                           depth=c.depth, norm=c.norm, epochs=c.warmup_epochs, lr=c.trust_lr, batch=c.trust_batch)
        self.runs: dict = {}             # (setting, seed, variant) -> list of round dicts
        self.trust_seconds: dict = {}
        self.sets: dict = {}

    def noise_table(self) -> list[dict]:
        return [{"setting": label(s), "nominal rate": round(d.nominal_rate, 3), "measured rate": round(d.noise_rate(), 4),
                 "classes with wrong labels": int((torch.bincount(d.clean_labels[d.is_noisy], minlength=self.C) > 0).sum()),
                 "observed class counts (min-max)": f"{min(d.class_counts())}-{max(d.class_counts())}"}
                for s, d in self.noisy.items()]

    def trust(self, s, seed, variant="tad") -> list[dict]:
        """The rounds of one trust-network run (cached by configuration)."""
        if (s, seed, variant) not in self.runs:
            d = self.noisy[s]
            print(f"--- {label(s)}, seed {seed}, {variant}")
            t0 = time.time()
            hold = (self.holdout, d.clean_labels[self.holdout]) if variant == "tad_ours" else (None, None)
            self.runs[s, seed, variant] = tad.cached_tad(d, self.variants[variant], self.warmup, seed, self.device,
                                                         self.cfg.cache_dir, d.clean_labels, *hold)
            self.trust_seconds[s, seed, variant] = time.time() - t0
        return self.runs[s, seed, variant]

    def trust_rows(self) -> list[dict]:
        return [{"setting": label(s), "seed": seed, "variant": variant, "round": st["round"],
                 **{k: v for k, v in st["diagnostics"].items() if k != "per_class_precision"}}
                for (s, seed, variant), states in self.runs.items() for st in states]

    # ------------------------------------------------------------------------------------------------ arms
    def trust_net_accuracy(self, s, seed) -> float:
        """Test accuracy of the warmed-up trust network (what the round-1 split reads)."""
        from ..evaluate import test_model
        net = tad.warmup_trust_net(self.noisy[s], seed=seed, device=self.device, cache_root=self.cfg.cache_dir,
                                   **self.warmup)
        return test_model(net, self.run.test, device=self.device)["acc"]

    def view(self, s, method, seed):
        """The arm's data: the images it keeps under the labels it trusts (positions kept, so fingerprints
        differ by arm). The controls: ``clean_trusted``, TAD's final trusted images under their true labels
        (TAD's selection without its label errors); ``clean_lowloss_init``, every image under its true label
        (its initial images are drawn from TAD's trusted ones, :meth:`init_for`)."""
        d = self.noisy[s]
        if method in ("clean_dm", "clean_lowloss_init"):
            labels, mask = d.clean_labels, None
        elif method == "clean_trusted":
            labels, mask = d.clean_labels, self.trust(s, seed)[-1]["trusted"]
        elif method in ("noisy_dm", "random"):
            labels, mask = d.labels, None
        elif method == "oracle_dm":
            labels, mask = d.labels, ~d.is_noisy
        elif method == "filter_dm":
            labels, mask = d.labels, self.trust(s, seed)[0]["split_trusted"]
        else:
            variant = method if method in ("tad_outer", "tad_no_consistency", "tad_ours") else "tad"
            st = self.trust(s, seed)[0] if method == "two_stage" else self.trust(s, seed, variant)[-1]
            labels, mask = st["labels"], st["trusted"]
        keep = torch.ones(len(d), dtype=torch.bool) if mask is None else mask
        return d.with_labels(labels).subset(keep.nonzero().flatten())

    def groups_for(self, s):
        src = ASYMMETRIC_MAPS.get(self.base.name, {}) if s[0] == "asymmetric" else {}
        return {"flipped": sorted(src), "unflipped": [c for c in range(self.C) if c not in src]} if src else None

    def init_for(self, s, method, seed, view):
        """The initial images of an arm: a random draw from its view, except ``clean_lowloss_init``, whose draw
        comes from TAD's final trusted images (the low-loss ones TAD starts from), under their true labels."""
        if method != "clean_lowloss_init":
            return random_subset(view, self.cfg.ipc, seed)
        return random_subset(self.view(s, "clean_trusted", seed), self.cfg.ipc, seed)

    def arm(self, study, s, method, seed):
        t0, c = time.time(), self.cfg
        view = self.view(s, method, seed)
        init = self.init_for(s, method, seed, view)
        syn = init if method == "random" else distill("dm", view, c, seed, self.device,
                                                      init=init if method == "clean_lowloss_init" else None)
        self.sets[study, s, method, seed] = syn
        true_init = self.run.train.labels[torch.tensor(init.meta["indices"])]
        add = {"trusted": len(view), "label_precision": float((view.labels == view.clean_labels).float().mean()),
               "init_label_precision": float((init.labels == true_init).float().mean())}
        return self.run.evaluate(syn, method, {"study": study, "noise": s[0], "rate": s[1],
                                               "measured_rate": self.noisy[s].noise_rate()}, c.ipc, seed,
                                 groups=self.groups_for(s), data=self.base, add=add, t0=t0)

    def warmup_ablation(self, s, seed) -> tuple[list[dict], list[dict]]:
        """On the warm-up network of setting ``s`` (one seed): per split rule and tau (``ABLATION_TAUS``; the
        small-loss rule at ``KEEP_RATIO``), the trusted share, its precision and the share of clean images it keeps;
        then, for the default split, what each combination of reliability tests (``ABLATION_TESTS``) recalls and how
        often the recalled labels are right (against their noisy labels)."""
        c, d = self.cfg, self.noisy[s]
        net = tad.warmup_trust_net(d, seed=seed, device=self.device, cache_root=c.cache_dir, **self.warmup)
        x, y = d.tensors()
        loss, z, logits = tad.losses_features_logits(net, x, y, self.device)
        clean = ~d.is_noisy
        splits = []
        for mode in ("classwise", "global", "small_loss"):
            for t in (c.ablation_taus if mode != "small_loss" else [c.tau]):
                T, _ = tad.trust_split(loss, y, self.C, t, mode, c.keep_ratio)
                splits.append({"split": mode, "tau": t if mode != "small_loss" else f"keep {c.keep_ratio:g}",
                               "coverage": float(T.float().mean()), "precision": float(clean[T].float().mean()),
                               "recall_clean": float((T & clean).sum() / clean.sum())})
        T, _ = tad.trust_split(loss, y, self.C, c.tau, c.trust_split, c.keep_ratio)
        tests = []
        for combo in c.ablation_tests:
            new, rec, _ = tad.recalibrate(z, y, T, self.C, logits, c.delta, tuple(combo.split("+")), c.shrinkage,
                                          c.covariance)
            n = int(rec.sum())
            tests.append({"tests": combo, "recalled": n, "share of U recalled": n / max(1, int((~T).sum())),
                          "accuracy of new labels": float((new[rec] == d.clean_labels[rec]).float().mean())
                          if n else float("nan"),
                          "accuracy of their noisy labels": float(clean[rec].float().mean()) if n else float("nan")})
        return splits, tests
