"""The experiments of the TAD chapter (notebooks/05_tad.ipynb): a fixed validation split, the noisy training pool
of each run seed (its own noise draw with PER_SEED_DRAW), a class-balanced subset of it drawn by the true labels,
the trust-network runs (TAD and its variants) and the arms, each a view of the noisy subset distilled by DM through
the distiller registry."""
from __future__ import annotations

import time
from dataclasses import replace

import torch

from ..data.bias import stream_seed
from ..data.longtail import held_out, longtail_indices
from ..data.noise import ASYMMETRIC_MAPS, inject_noise
from ..distill import distill, random_subset
from ..experiment import Run
from ..methods import tad


def label(s) -> str:
    """A noise setting (kind, rate) as text."""
    kind, r = s
    return kind.replace("cifar10n_", "CIFAR-10N ") if kind.startswith("cifar10n") else f"{r:.0%} {kind}"


class Study:
    """The data are methods of the run seed (``seed=None``: the shared draw, NOISE_SEED), so that no reader can
    take one seed's noise for another's: :meth:`pool_of`, :meth:`noisy_of` (the subset every arm sees),
    :meth:`holdout_of`. The validation split ``val`` (true labels, fixed) measures the trust network only."""

    def __init__(self, run: Run):
        self.run, self.cfg, self.device, c = run, run.cfg, run.device, run.cfg
        full = run.train
        self.C, self.classes, self.name = full.num_classes, full.classes, full.name
        self.val = held_out(full, [], c.val_per_class, stream_seed(c.noise_seed, "tad-val"))
        keep = torch.ones(len(full), dtype=torch.bool)
        keep[self.val.indices] = False
        self.clean_pool = full.subset(keep.nonzero().flatten())       # every training image outside the validation
        self.settings = [tuple(s) for s in c.noise_settings]
        self.sweep = [("symmetric", r) for r in c.sweep_rates if ("symmetric", r) not in self.settings]
        self.sweep += [(f"cifar10n_{k}", 0.0) for k in c.real_noise]
        main = tad.TADSettings(rounds=c.rounds, epochs_per_round=c.epochs_per_round, tau=c.tau, split=c.trust_split,
                               keep_ratio=c.keep_ratio, recall=True, delta=c.delta, tests=tuple(c.reliability),
                               shrinkage=c.shrinkage, covariance=c.covariance, lambda_cons=c.lambda_cons,
                               lr=c.trust_lr, batch=c.trust_batch)
        self.variants = {"tad": main, "tad_outer": replace(main, recall=False),
                         "tad_no_consistency": replace(main, lambda_cons=0.0),
                         "tad_ours": replace(main, revert=True, delta_grid=tuple(c.delta_grid))}
        self.warmup = dict(model=c.model if c.trust_model == "convnet" else c.trust_model, width=c.trust_width,
                           depth=c.depth, norm=c.norm, epochs=c.warmup_epochs, lr=c.trust_lr, batch=c.trust_batch)
        self._pools: dict = {}
        self._positions: dict = {}
        self._subsets: dict = {}
        self.runs: dict = {}             # (setting, seed, variant) -> list of round dicts
        self.trust_seconds: dict = {}
        self.sets: dict = {}

    # ------------------------------------------------------------------------------------------------- data
    def draw_seed(self, seed: int | None = None) -> int:
        """The seed of a run seed's noise and subset draws: NOISE_SEED + seed with PER_SEED_DRAW, else NOISE_SEED
        (``seed=None``: NOISE_SEED)."""
        return self.cfg.noise_seed + (seed if self.cfg.per_seed_draw and seed is not None else 0)

    def pool_of(self, s, seed: int | None = None):
        """The training pool (every image outside the validation split) under setting ``s``'s noisy labels of the
        run seed's draw: what the trust network warms up on with TRUST_DATA = 'pool'."""
        key = s, self.draw_seed(seed)
        if key not in self._pools:
            self._pools[key] = inject_noise(self.clean_pool, *s, key[1], self.cfg.data_root)
        return self._pools[key]

    def positions(self, seed: int | None = None) -> torch.Tensor:
        """Positions in the pool of the run seed's class-balanced subset: PER_CLASS images of each class by the
        TRUE labels (the noise does not change the class sizes the arms start from); the whole pool when None."""
        ds = self.draw_seed(seed)
        if ds not in self._positions:
            c = self.cfg
            self._positions[ds] = (torch.arange(len(self.clean_pool)) if c.per_class is None else
                                   longtail_indices(self.clean_pool.labels, 1, stream_seed(ds, "tad-subset"),
                                                    n_max=c.per_class))
        return self._positions[ds]

    def noisy_of(self, s, seed: int | None = None):
        """The noisy training subset of setting ``s`` and a run seed: what every arm of that seed sees (the pool
        itself when the subset is all of it)."""
        key = s, self.draw_seed(seed)
        if key not in self._subsets:
            pos, pool = self.positions(seed), self.pool_of(s, seed)
            self._subsets[key] = pool if len(pos) == len(pool) else pool.subset(pos)
        return self._subsets[key]

    def whole_pool(self) -> bool:
        """Whether the subset is the whole pool (then the seeds differ only in their noise)."""
        return self.cfg.per_class is None or len(self.positions(self.cfg.seeds[0])) == len(self.clean_pool)

    def holdout_of(self, seed: int | None = None) -> torch.Tensor:
        """Positions in the subset whose true labels our variant (tad_ours) may read: HOLDOUT_SHARE of it."""
        n = len(self.positions(seed))
        gen = torch.Generator().manual_seed(stream_seed(self.draw_seed(seed), "tad-holdout"))
        return torch.randperm(n, generator=gen)[:max(1, round(self.cfg.holdout_share * n))]

    def warmup_data(self, s, seed: int | None = None):
        """What the trust network warms up on: the noisy pool (TRUST_DATA = 'pool') or the subset ('subset')."""
        return self.pool_of(s, seed) if self.cfg.trust_data == "pool" else self.noisy_of(s, seed)

    def noise_table(self) -> list[dict]:
        """Per setting: the nominal rate and, over the draws of the seeds that run it (one draw without PER_SEED_DRAW),
        the measured share of wrong labels in the subset the arms see."""
        rows = []
        for s in self.settings + self.sweep:
            seeds = self.cfg.seeds if s in self.settings else self.cfg.sweep_seeds
            draws = list({self.draw_seed(x): self.noisy_of(s, x) for x in seeds}.values())
            rates = [d.noise_rate() for d in draws]
            counts = [n for d in draws for n in d.class_counts()]
            wrong = [int((torch.bincount(d.clean_labels[d.is_noisy], minlength=self.C) > 0).sum()) for d in draws]
            rows.append({"setting": label(s), "nominal rate": round(draws[0].nominal_rate, 3), "draws": len(draws),
                         "measured rate (min-max over draws)": f"{min(rates):.4f}-{max(rates):.4f}",
                         "classes with wrong labels": f"{min(wrong)}-{max(wrong)}" if min(wrong) != max(wrong) else wrong[0],
                         "observed class counts (min-max)": f"{min(counts)}-{max(counts)}"})
        return rows

    def trust(self, s, seed, variant="tad") -> list[dict]:
        """The rounds of one trust-network run on the run seed's subset (cached by configuration)."""
        if (s, seed, variant) not in self.runs:
            d = self.noisy_of(s, seed)
            print(f"--- {label(s)}, seed {seed}, {variant}")
            t0 = time.time()
            h = self.holdout_of(seed)
            hold = (h, d.clean_labels[h]) if variant == "tad_ours" else (None, None)
            self.runs[s, seed, variant] = tad.cached_tad(d, self.variants[variant], self.warmup, seed, self.device,
                                                         self.cfg.cache_dir, d.clean_labels, *hold,
                                                         warmup_data=self.warmup_data(s, seed))
            self.trust_seconds[s, seed, variant] = time.time() - t0
        return self.runs[s, seed, variant]

    def trust_rows(self) -> list[dict]:
        return [{"setting": label(s), "seed": seed, "variant": variant, "round": st["round"],
                 **{k: v for k, v in st["diagnostics"].items() if k != "per_class_precision"}}
                for (s, seed, variant), states in self.runs.items() for st in states]

    # ------------------------------------------------------------------------------------------------ arms
    def trust_net(self, s, seed):
        """The warmed-up trust network of a setting and run seed (cached)."""
        return tad.warmup_trust_net(self.warmup_data(s, seed), seed=seed, device=self.device,
                                    cache_root=self.cfg.cache_dir, **self.warmup)

    def trust_net_accuracy(self, s, seed) -> float:
        """Accuracy (%) of the warmed-up trust network on the validation split under its true labels (what the
        gate tad.g.trust_learns reads; never the test set)."""
        from ..evaluate import test_model
        return test_model(self.trust_net(s, seed), self.val, device=self.device)["acc"]

    def view(self, s, method, seed):
        """The arm's data: the images it keeps under the labels it trusts (positions kept, so fingerprints
        differ by arm). The controls: ``clean_trusted``, TAD's final trusted images under their true labels
        (TAD's selection without its label errors); ``clean_lowloss_init``, every image under its true label
        (its initial images are drawn from TAD's trusted ones, :meth:`init_for`)."""
        d = self.noisy_of(s, seed)
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
        src = ASYMMETRIC_MAPS.get(self.name, {}) if s[0] == "asymmetric" else {}
        return {"flipped": sorted(src), "unflipped": [c for c in range(self.C) if c not in src]} if src else None

    def init_for(self, s, method, seed, view):
        """The initial images of an arm: a random draw from its view, except ``clean_lowloss_init``, whose draw
        comes from TAD's final trusted images (the low-loss ones TAD starts from), under their true labels."""
        if method != "clean_lowloss_init":
            return random_subset(view, self.cfg.ipc, seed)
        return random_subset(self.view(s, "clean_trusted", seed), self.cfg.ipc, seed)

    def synthesize(self, s, method, seed):
        """(synthetic set, the data it was made from, its initial images) of one arm: DM on the arm's view (cached),
        or, for ``random``, the initial images themselves."""
        view = self.view(s, method, seed)
        init = self.init_for(s, method, seed, view)
        syn = init if method == "random" else distill("dm", view, self.cfg, seed, self.device,
                                                      init=init if method == "clean_lowloss_init" else None)
        return syn, view, init

    def arm(self, study, s, method, seed):
        t0, c = time.time(), self.cfg
        syn, view, init = self.synthesize(s, method, seed)
        self.sets[study, s, method, seed] = syn
        true_init = self.run.train.labels[torch.tensor(init.meta["indices"])]
        add = {"trusted": len(view), "draw_seed": self.draw_seed(seed),
               "label_precision": float((view.labels == view.clean_labels).float().mean()),
               "init_label_precision": float((init.labels == true_init).float().mean())}
        add["measured_rate"] = self.noisy_of(s, seed).noise_rate()        # of this seed's draw: a metric, not the arm
        return self.run.evaluate(syn, method, {"study": study, "noise": s[0], "rate": s[1]}, c.ipc, seed,
                                 groups=self.groups_for(s), data=self.noisy_of(s, seed), add=add, t0=t0)

    def shown_sets(self) -> list[dict]:
        """The sets the chapter's image figure shows, for the site's "Distilled sets" page (:mod:`ltdd_utils.sets`):
        DM on the noisy labels and DM after TAD, at the first setting and seed, through the cached producers (the
        trust network, TAD's rounds, DM) as the arms make them."""
        from ..distill.registry import is_exact, settings_of
        from ..experiment import hard_protocol
        from ..versions import key_versions
        c, s, seed = self.cfg, self.settings[0], self.cfg.seeds[0]
        real = ("exact class means over a fixed pool of random networks" if is_exact(settings_of("dm", c)) else
                "real batches with DSA through a fresh random network per step")
        how = {"noisy_dm": "DM on every image of the subset under its noisy labels, started from a random draw of them",
               "tad": f"DM on TAD's trusted images after {c.rounds} rounds, under their current labels (recalled ones "
                      "included), started from a random draw of them"}
        out = []
        for m in ("noisy_dm", "tad"):
            if m not in c.methods:
                continue
            syn = self.synthesize(s, m, seed)[0]                    # the arm's own set (cached)
            where = {"noise": s[0], "rate": s[1]}
            out.append({"name": f"{m}_{s[0]}{s[1]:g}_ipc{c.ipc}_seed{seed}", "set": syn, "data": self.noisy_of(s, seed),
                        "title": f"{m}, {label(s)} noise, IPC {c.ipc}", "setting": where, "ipc": c.ipc, "seed": seed,
                        "made_by": f"{how[m]}, {c.dm_iterations} steps of {real}",
                        "producer": key_versions("distill.dm", *(["method.tad"] if m == "tad" else [])),
                        "students": hard_protocol(c, len(syn)),
                        "arms": [{"method": m, "study": "main", "ipc": c.ipc, "setting": where}]})
        return out

    def warmup_ablation(self, s, seed) -> tuple[list[dict], list[dict]]:
        """On the warm-up network of setting ``s`` (one seed): per split rule and tau (``ABLATION_TAUS``; the
        small-loss rule at ``KEEP_RATIO``), the trusted share, its precision and the share of clean images it keeps;
        then, for the default split, what each combination of reliability tests (``ABLATION_TESTS``) recalls and how
        often the recalled labels are right (against their noisy labels)."""
        c, d = self.cfg, self.noisy_of(s, seed)
        net = self.trust_net(s, seed)
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
