"""The experiments of the soft-label-bias chapter (notebooks/01_adsa.ipynb): long-tailed splits, teachers,
recovered images, the label arms and the two-sources grid."""
from __future__ import annotations

import time

import torch

from ..cache import cached
from ..data.bias import stream_seed
from ..data.longtail import class_groups, make_longtail
from ..distill import SyntheticSet, random_subset
from ..distill.srr import recover
from ..evaluate import predict, train_teacher
from ..experiment import Run, eval_settings
from ..methods import adsa
from ..versions import key_versions


class Study:
    """Splits at every imbalance factor, a balanced split of the same size, one teacher per split and the test
    logits of each; ``arm(...)`` evaluates one label arm and keeps its records in ``run``."""

    def __init__(self, run: Run):
        self.run, cfg = run, run.cfg
        self.cfg, self.device, self.full = cfg, run.device, run.train
        self.C = self.full.num_classes
        self.taus = torch.arange(cfg.tau_grid[0], cfg.tau_grid[1] + 1e-9, cfg.tau_grid[2])
        self.x_test, self.y_test = run.test.tensors()
        self.factors = list(dict.fromkeys([cfg.imbalance_factor, *cfg.sweep_factors]))
        self.splits = {f: make_longtail(self.full, f, seed=0, n_max=cfg.n_max) for f in self.factors}
        self.lt = self.splits[cfg.imbalance_factor]
        self.bal = self.balanced_like(self.lt)
        self.groups = class_groups(self.lt.class_counts(), cfg.group_scheme)
        self.teachers = {f: self.teacher_for(d) for f, d in self.splits.items()}
        self.teachers["balanced"] = self.teacher_for(self.bal)
        self.logits_test = {k: predict(t, self.x_test, device=self.device) for k, t in self.teachers.items()}
        self.oracle = {f: adsa.oracle_tau(self.logits_test[f], self.y_test, self.splits[f].class_counts(), self.taus)[0]
                       for f in self.factors}

    def balanced_like(self, d):
        """A class-balanced subset of the full training set with the same total size as ``d``."""
        per, full = len(d) // self.C, self.full
        gen = torch.Generator().manual_seed(stream_seed(0, "adsa-balanced"))
        keep = [p[torch.randperm(len(p), generator=gen)[:per]]
                for p in ((full.labels == c).nonzero().flatten() for c in range(self.C))]
        return full.subset(torch.cat(keep).sort().values)

    def teacher_for(self, d):
        c = self.cfg
        return train_teacher(d, c.model, c.teacher_width, c.depth, "batchnorm", c.teacher_epochs, c.teacher_lr,
                             c.teacher_batch, "cropflip", "ce", seed=0, device=self.device, cache_root=c.cache_dir)

    def teacher_table(self) -> list[dict]:
        rows = []
        for k, logits in self.logits_test.items():
            acc = [float((logits.argmax(1)[self.y_test == c] == c).float().mean() * 100) for c in range(self.C)]
            counts = (self.bal if k == "balanced" else self.splits[k]).class_counts()
            rows.append({"teacher": "balanced (same size)" if k == "balanced" else f"IF {k:g}",
                         "train images": sum(counts), "head / tail images": f"{counts[0]} / {counts[-1]}",
                         "test acc": sum(acc) / self.C,
                         **{f"acc {g}": sum(acc[c] for c in cl) / len(cl) for g, cl in self.groups.items()}})
        return rows

    def init_set(self, d, ipc, seed) -> SyntheticSet:
        """``ipc`` real images per class; classes with fewer images repeat them (plus noise)."""
        sub = random_subset(d, ipc, stream_seed(seed, "adsa-init"))
        xs, ys = [], []
        gen = torch.Generator().manual_seed(stream_seed(seed, "adsa-duplicates"))
        for c in range(self.C):
            xc = sub.images[sub.labels == c]
            if len(xc) < ipc:
                reps = xc[torch.arange(ipc - len(xc)) % len(xc)]
                xc = torch.cat([xc, reps + self.cfg.duplicate_noise * torch.randn(reps.shape, generator=gen)])
            xs.append(xc)
            ys.append(torch.full((ipc,), c))
        meta = {**sub.meta, "duplicated": [max(0, ipc - n) for n in sub.meta["per_class"]]}
        return SyntheticSet(torch.cat(xs), torch.cat(ys), self.C, meta=meta)

    def recovered(self, d, teacher, ipc, seed) -> SyntheticSet:
        c = self.cfg
        key = dict(data=d.fingerprint(), teacher=teacher.cache_key, ipc=ipc, seed=seed, iterations=c.recover_iterations,
                   lr=c.recover_lr, r_bn=c.r_bn, first=c.first_bn_multiplier, jitter=c.jitter, dup=c.duplicate_noise)
        key["versions"] = key_versions("distill.recover", "distill.random")
        return cached("synsets/recover", key, lambda: recover(
            teacher, self.init_set(d, ipc, seed), c.recover_iterations, c.recover_lr, c.r_bn, c.first_bn_multiplier,
            c.jitter, seed=seed, device=self.device), c.cache_dir)

    def tau_star(self, images, labels, f, labeller=None):
        """ADSA's (tau*, taus, criterion) on ``images`` labelled by the IF-``f`` teacher (or ``labeller``)."""
        logits = predict(self.teachers[f] if labeller is None else labeller, images, device=self.device)
        return adsa.adaptive_soft_label_alignment(logits, labels, self.splits[f].class_counts(), self.taus)

    def arm(self, study, f, ipc, arm, seed):
        """One label arm: its images (recovered, or a random real subset for random_*), teacher and tau."""
        t0 = time.time()
        d = self.splits[f]
        s = self.init_set(d, ipc, seed) if arm.startswith("random") else self.recovered(d, self.teachers[f], ipc, seed)
        teacher, tau = self.teachers[f], None
        if arm in ("adsa", "random_adsa"):
            tau = self.tau_star(s.images, s.labels, f)[0]
        elif arm == "tau1":
            tau = 1.0
        elif arm == "oracle":
            tau = self.oracle[f]
        elif arm == "balanced_teacher":
            teacher = self.teachers["balanced"]
        mode = "hard" if arm == "hard" else "soft_kl"
        offset = None if tau is None else tau * adsa.log_prior(d.class_counts())
        return self.run.evaluate(s, arm, {"study": study, "imbalance_factor": f}, ipc, seed, groups=self.groups,
                                 settings=eval_settings(self.cfg, label_mode=mode, temperature=self.cfg.temperature),
                                 teacher=None if mode == "hard" else teacher, logit_offset=offset, t0=t0,
                                 add={"tau": tau})

    def two_sources(self, ipc, seed):
        """Balanced vs long-tailed images x balanced vs long-tailed teacher: per-class confidence of the soft
        labels, its head-to-tail slope, and one soft-label student per cell."""
        f = self.cfg.imbalance_factor
        images = {"balanced images": self.recovered(self.bal, self.teachers["balanced"], ipc, seed),
                  "long-tailed images": self.recovered(self.lt, self.teachers[f], ipc, seed)}
        labellers = {"balanced teacher": self.teachers["balanced"], "long-tailed teacher": self.teachers[f]}
        rows, conf = [], []
        rank = torch.stack([torch.arange(self.C).float(), torch.ones(self.C)], 1)
        for iname, s in images.items():
            for lname, t in labellers.items():
                c = adsa.class_confidence(predict(t, s.images, device=self.device), s.labels, self.C)
                conf += [{"cell": f"{iname} / {lname}", "class": k, "confidence": float(v)} for k, v in enumerate(c)]
                m = self.run.evaluate(s, "soft", {"study": "2x2", "imbalance_factor": f, "images": iname,
                                                  "labeller": lname}, ipc, seed, groups=self.groups, teacher=t,
                                      settings=eval_settings(self.cfg, label_mode="soft_kl",
                                                             temperature=self.cfg.temperature, students=1))[0]
                rows.append({"images": iname, "labeller": lname, "confidence spread (std)": float(c.std(unbiased=False)),
                             "head-to-tail slope per class": float(torch.linalg.lstsq(rank, c[:, None]).solution[0]),
                             "student acc": m["acc"], "student acc few": m["acc_few"]})
        return rows, conf
