"""The experiments of the CSDM chapter (notebooks/03_csdm.ipynb): nested long-tailed splits and the arms
(random, DM, exact MMD, SDD, CSDM and its ablations), all through the distiller registry."""
from __future__ import annotations

import time

import torch

from ..data.longtail import class_groups, make_longtail
from ..distill import distill, random_subset
from ..distill.registry import is_exact, real_cfs, settings_of
from ..experiment import Run
from ..methods import csdm

SDD_VARIANTS = ("amplitude_only", "phase_only", "constant_low", "constant_high")   # fixed alphas: SDD-like arms


class Study:
    """Nested splits at every imbalance factor (each a subset of the mildest one) and the arms on them."""

    def __init__(self, run: Run):
        self.run, self.cfg, self.device, cfg = run, run.cfg, run.device, run.cfg
        self.factors = sorted(set(cfg.imbalance_factors) | set(cfg.sweep_factors) | {cfg.ablation_if})
        self.splits = {f: make_longtail(run.train, f, seed=0) for f in self.factors}
        self.groups = class_groups(self.splits[max(self.factors)].class_counts(), cfg.group_scheme)
        self.superset = self.splits[min(self.factors)]
        for f, s in self.splits.items():
            if not bool(torch.isin(s.indices, self.superset.indices).all()):
                raise AssertionError(f"IF {f} is not nested in IF {min(self.factors)}")
        self.exact = is_exact(settings_of("dm", cfg))
        self.sets: dict = {}

    def alphas(self, f, variant="csdm") -> torch.Tensor:
        c = self.cfg
        return csdm.class_alphas(self.splits[f].class_counts(), variant, c.alpha_rule, c.alpha_head, c.alpha_tail,
                                 c.alpha0, c.n0)

    def synthesize(self, method, f, seed, variant=None, **overrides):
        """A synthetic set of one arm; ``variant`` an alpha variant or "sqrt_form"; overrides e.g. num_freqs."""
        split = self.splits[f]
        if method == "random":
            return random_subset(split, self.cfg.ipc, seed)
        if variant == "sqrt_form":
            overrides["form"] = "sqrt"
        elif variant in csdm.VARIANTS:
            overrides["variant"] = variant
        return distill(method, split, self.cfg, seed, self.device, **overrides)

    def arm(self, study, method, f, seed, variant=None, **overrides):
        t0 = time.time()
        syn = self.synthesize(method, f, seed, variant, **overrides)
        label = variant or method
        self.sets[study, f, label, seed] = syn
        return self.run.evaluate(syn, method, {"study": study, "imbalance_factor": f, "variant": label}, self.cfg.ipc,
                                 seed, groups=self.groups, data=self.splits[f], t0=t0)

    def ablations(self, seed):
        """At ABLATION_IF: SDD and CSDM (unless the main comparison ran them), each ablation, each M."""
        c, f = self.cfg, self.cfg.ablation_if
        for base in ("sdd", "csdm"):
            if ("main", f, base, seed) not in self.sets:
                self.arm("ablation", base, f, seed)
        for variant in c.ablations:
            self.arm("ablation", "sdd" if variant in SDD_VARIANTS else "csdm", f, seed, variant=variant)
        for M in c.ablation_freqs:
            self.arm("ablation", "csdm", f, seed, variant=f"csdm, M = {M}", num_freqs=M)

    def spectral_errors(self, f, seed) -> list[dict]:
        """Per class, the amplitude and phase left unmatched by SDD and CSDM (exact pools only)."""
        nets, omegas, cfs = real_cfs(self.splits[f], settings_of("csdm", self.cfg), seed, self.device)
        rows = []
        for v in ("sdd", "csdm"):
            syn = self.sets.get(("main", f, v, seed)) or self.sets[("ablation", f, v, seed)]
            err = csdm.class_spectral_errors(syn, nets, omegas, cfs, self.device)
            rows += [{"class": c, "arm": v, "term": t, "residual": float(err[t][c])}
                     for c in range(self.splits[f].num_classes) for t in ("amplitude", "phase")]
        return rows
