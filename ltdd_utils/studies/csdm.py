"""The experiments of the CSDM chapter (notebooks/03_csdm.ipynb): nested long-tailed splits (with the classes'
tail ranks permuted per seed), the arms (random, DM, DM's linear kernel under the spectral arms' features and
optimiser, exact MMD, SDD, CSDM and its ablations), all through the distiller registry, and the time per
iteration of each loss."""
from __future__ import annotations

import time

import torch

from ..config import runs_on
from ..data.longtail import class_groups, make_longtail, tail_order
from ..distill import distill, random_subset
from ..distill.dm import class_mean_embeddings, dm_loss
from ..distill.dm import pool_embeddings
from ..distill.feature_nets import step_nets
from ..distill.registry import is_exact, real_cfs, settings_of, spectral_frequencies
from ..experiment import Run
from ..methods import csdm
from ..models import frozen

SDD_VARIANTS = ("amplitude_only", "phase_only", "constant_low", "constant_high")   # fixed alphas: SDD-like arms


class Study:
    """Nested splits at every imbalance factor (each a subset of the mildest one) and the arms on them. With
    ``PERMUTE_CLASSES`` each seed ranks the classes by its own permutation (which class is the head, which the
    tail), so that tail accuracy is not one draw of class difficulty; every arm of a seed shares the split."""

    def __init__(self, run: Run):
        self.run, self.cfg, self.device, cfg = run, run.cfg, run.device, run.cfg
        self.factors = sorted(set(cfg.imbalance_factors) | set(cfg.sweep_factors) | {cfg.ablation_if})
        self.seeds = sorted(set(cfg.seeds) | set(cfg.ablation_seeds))
        self.exact = is_exact(settings_of("dm", cfg))
        self._splits: dict = {}
        for seed in self.seeds:
            superset = self.split(min(self.factors), seed)
            for f in self.factors:
                if not bool(torch.isin(self.split(f, seed).indices, superset.indices).all()):
                    raise AssertionError(f"IF {f} is not nested in IF {min(self.factors)} (seed {seed})")
        self.sets: dict = {}

    def runs(self, method, seed) -> bool:
        """Whether the main comparison runs ``method`` at ``seed`` (:func:`ltdd_utils.config.runs_on`)."""
        return runs_on(self.cfg, method, seed)

    def order(self, seed) -> list[int]:
        """order[r]: the class of tail rank r (r = 0 the head) for this seed."""
        return tail_order(self.run.train.num_classes, seed if self.cfg.permute_classes else None)

    def split(self, f, seed):
        if (f, seed) not in self._splits:
            self._splits[f, seed] = make_longtail(self.run.train, f, seed=0, order=self.order(seed))
        return self._splits[f, seed]

    def groups(self, seed) -> dict[str, list[int]]:
        """Head / middle / tail classes of this seed's ranking (by count at the harshest factor)."""
        return class_groups(self.split(max(self.factors), seed).class_counts(), self.cfg.group_scheme)

    def alphas(self, f, seed, variant="csdm", **rule) -> torch.Tensor:
        c = self.cfg
        r = {k: rule.get(k, c[k]) for k in ("alpha_rule", "alpha_head", "alpha_tail", "alpha0", "n0")}
        return csdm.class_alphas(self.split(f, seed).class_counts(), variant, r["alpha_rule"], r["alpha_head"],
                                 r["alpha_tail"], r["alpha0"], r["n0"])

    def synthesize(self, method, f, seed, variant=None, **overrides):
        """A synthetic set of one arm; ``variant`` an alpha variant or "sqrt_form"; overrides e.g. num_freqs."""
        split = self.split(f, seed)
        if method == "random":
            return random_subset(split, self.cfg.ipc, seed)
        if method == "dm_random":               # the control of trained feature networks: DM through random ones
            return distill("dm", split, self.cfg, seed, self.device, feature_nets="random")
        if variant == "sqrt_form":
            overrides["form"] = "sqrt"
        elif variant in csdm.VARIANTS:
            overrides["variant"] = variant
        return distill(method, split, self.cfg, seed, self.device, **overrides)

    def arm(self, study, method, f, seed, variant=None, label=None, **overrides):
        t0 = time.time()
        syn = self.synthesize(method, f, seed, variant, **overrides)
        label = label or variant or method
        self.sets[study, f, label, seed] = syn
        return self.run.evaluate(syn, method, {"study": study, "imbalance_factor": f, "variant": label}, self.cfg.ipc,
                                 seed, groups=self.groups(seed), data=self.split(f, seed), t0=t0)

    def shown_sets(self) -> list[dict]:
        """The sets the chapter's image figure shows, for the site's "Distilled sets" page (:mod:`ltdd_utils.sets`):
        DM, SDD and CSDM at the harshest factor of the main comparison, first seed (from the run's cache)."""
        from ..experiment import hard_protocol
        from ..versions import key_versions
        c, seed = self.cfg, self.cfg.seeds[0]
        f = max(c.imbalance_factors)
        nets = ("a pool of networks trained on the split, blended with their initialisation every step"
                if c.feature_nets == "trained" else f"a fixed pool of {c.dm_net_pool} random networks" if c.dm_net_pool
                else "a fresh random network every step")
        nets += (", real batches with DSA" if c.dm_dsa else ", real batches without augmentation") if not self.exact \
            else ", exact real class statistics without augmentation"
        how = {"dm": "DM (class means, SGD on the pixels)", "sdd": "SDD (alpha 1/2 for every class, Adam)",
               "csdm": f"CSDM ({c.alpha_rule} alpha from {c.alpha_tail:g} at the tail to {c.alpha_head:g} at the head, Adam)"}
        out = []
        for m in ("dm", "sdd", "csdm"):
            if m not in c.methods:
                continue
            syn = self.synthesize(m, f, seed)
            out.append({"name": f"{m}_if{f:g}_ipc{c.ipc}_seed{seed}", "set": syn,
                        "title": f"{m.upper()}, IF {f:g}", "setting": {"imbalance_factor": f, "variant": m},
                        "ipc": c.ipc, "seed": seed,
                        "made_by": f"{how[m]}, {c.dm_iterations} steps through {nets}, from random real images",
                        "producer": key_versions("distill.dm" if m == "dm" else "distill.spectral"),
                        "students": hard_protocol(c, len(syn)),
                        "arms": [{"method": m, "study": "main", "ipc": c.ipc,
                                  "setting": {"imbalance_factor": f, "variant": m}}]})
        return out

    def ablations(self, seed):
        """At ABLATION_IF: SDD and CSDM (unless the main comparison ran them), each ablation, each weighting
        strength of ALPHA_SWEEP, each M."""
        c, f = self.cfg, self.cfg.ablation_if
        for base in ("sdd", "csdm"):
            if ("main", f, base, seed) not in self.sets:
                self.arm("ablation", base, f, seed)
        for variant in c.ablations:
            self.arm("ablation", "sdd" if variant in SDD_VARIANTS else "csdm", f, seed, variant=variant)
        for head, tail in c.alpha_sweep:
            self.arm("ablation", "csdm", f, seed, label=alpha_label(head, tail), alpha_head=head, alpha_tail=tail)
        for M in c.ablation_freqs:
            self.arm("ablation", "csdm", f, seed, variant=f"csdm, M = {M}", num_freqs=M)
        for sigma in c.sigma_ablation:
            if sigma != c.sigma:
                self.arm("ablation", "sdd", f, seed, label=sigma_label(sigma), sigma=sigma)

    def pool_table(self) -> list[dict]:
        """With trained feature networks: each pool network's test accuracy (overall and per group of its seed's
        ranking), per imbalance factor of the main comparison and seed: how biased the networks the arms embed
        through are. Their training time (from the cache's record of it) beside."""
        from ..distill.feature_nets import trained_pool
        from ..evaluate import test_model
        c = self.cfg
        if c.feature_nets != "trained":
            return []
        s, rows = settings_of("dm", c), []
        for f in c.imbalance_factors:
            for seed in c.seeds:
                for k, (_, net) in enumerate(trained_pool(self.split(f, seed), s, seed, self.device, c.get("cache_dir"))):
                    m = test_model(net, self.run.test, self.groups(seed), self.device)
                    rows.append({"IF": f, "seed": seed, "network": k, "test acc": m["acc"], "many": m.get("acc_many"),
                                 "few": m.get("acc_few"), "train s": round(getattr(net, "train_seconds", float("nan")), 1)})
        return rows

    def probe(self, f, seed, nets: int = 4):
        """Networks, frequencies and exact real class CFs for diagnostics: the exact regime's own pool, otherwise
        ``nets`` networks as the distillers draw them (random, or blends of the seed's trained pool) with one fixed
        draw of frequencies each, the real side over whole classes without augmentation."""
        split, s = self.split(f, seed), settings_of("csdm", self.cfg)
        if self.exact:
            return real_cfs(split, s, seed, self.device)
        torch.manual_seed(70_000 + seed)
        draw = step_nets(s, split, seed, self.device, self.cfg.get("cache_dir"))
        pool = [frozen(draw(), self.device) for _ in range(nets)]
        feats = pool_embeddings(split, pool, self.device, precision=s["precision"])
        omegas = spectral_frequencies({**s, "net_pool": nets}, seed, feats[0].shape[1], feats)
        return pool, omegas, csdm.real_statistics(feats, split.labels, split.num_classes, "spectral", omegas)

    def spectral_errors(self, f, seed) -> list[dict]:
        """Per class, the amplitude and phase left unmatched by SDD and CSDM, through :meth:`probe`'s networks."""
        nets, omegas, cfs = self.probe(f, seed)
        split = self.split(f, seed)
        rows = []
        for v in ("sdd", "csdm"):
            syn = self.sets.get(("main", f, v, seed)) or self.sets[("ablation", f, v, seed)]
            err = csdm.class_spectral_errors(syn, nets, omegas, cfs, self.device)
            rows += [{"class": c, "arm": v, "term": t, "residual": float(err[t][c])}
                     for c in range(split.num_classes) for t in ("amplitude", "phase")]
        return rows


def alpha_label(head: float, tail: float) -> str:
    return f"csdm, alpha {head:g}/{tail:g}"


def sigma_label(sigma) -> str:
    return f"sdd, sigma {sigma if isinstance(sigma, str) else format(sigma, 'g')}"


def loss_timings(n_per_class: list[int], freqs: list[int], dim: int, num_classes: int = 10, ipc: int = 10,
                 repeats: int = 3, seed: int = 0) -> list[dict]:
    """Seconds for one forward and backward pass of each matching loss on random L2-normalised features (real:
    ``n`` per class, synthetic: ``ipc`` per class, ``dim`` dimensions), the part of an iteration in which the
    losses differ (the networks' passes are shared): DM's linear kernel (class means), the exact Gaussian MMD as
    the distiller computes it (without the real-real term, constant in the synthetic images), the full MMD
    V-statistic (with it) and SDD with M frequencies (the real characteristic functions included). Best of
    ``repeats`` after one warm-up call."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.arange(num_classes).repeat_interleave(ipc)
    present = torch.ones(num_classes, dtype=torch.bool)
    rows = []
    for n in n_per_class:
        fr = csdm.normalize(torch.randn(n * num_classes, dim, generator=g))
        yr = torch.arange(num_classes).repeat_interleave(n)
        fs0 = csdm.normalize(torch.randn(ipc * num_classes, dim, generator=g))

        def linear(fs):
            return dm_loss(class_mean_embeddings(fr, yr, num_classes), fs, ys)

        def mmd(fs):
            return csdm.class_mmd_loss(fr, yr, fs, ys, num_classes)

        def mmd_full(fs):
            return mmd(fs) + sum(csdm.kernel_matrix(r, r, "gaussian").mean() for r in (fr[yr == c] for c in range(num_classes)))

        losses = {"DM (linear kernel)": linear, "MMD (as distilled)": mmd, "MMD (full V-statistic)": mmd_full}
        for M in freqs:
            om = csdm.sample_frequencies("gaussian", M, dim, 1.0, g)

            def sdd(fs, om=om):
                amp, phase = csdm.class_terms(csdm.class_ecf(fr, yr, num_classes, om), fs, ys, om)
                return csdm.csdm_loss(amp, phase, torch.full((num_classes,), 0.5), present)
            losses[f"SDD, M = {M}"] = sdd
        for name, fn in losses.items():
            fn(fs0.clone().requires_grad_(True)).backward()          # warm-up: allocations, first-call costs
            best = float("inf")
            for _ in range(repeats):
                fs = fs0.clone().requires_grad_(True)
                t0 = time.perf_counter()
                fn(fs).backward()
                best = min(best, time.perf_counter() - t0)
            rows.append({"loss": name, "real per class": n, "seconds": best})
    return rows
