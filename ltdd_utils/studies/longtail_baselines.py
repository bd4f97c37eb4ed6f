"""The experiments of the long-tail baselines chapter (notebooks/00_longtail_baselines.ipynb): the long-tailed
splits (and a balanced control of the most imbalanced split's size), and the three baselines on each: a random real
subset, herding in a fixed embedding, and DM."""
from __future__ import annotations

import torch

from ..data.longtail import class_groups, make_longtail, tail_order
from ..distill import distill, herding, random_subset
from ..evaluate import train_teacher
from ..experiment import Run, net_factory


class Study:
    """The long-tailed splits by name ("IF 100", "IF 1, size of IF 100") and run seed (:meth:`split`: each seed
    ranks the classes its own way with PERMUTE_CLASSES), each name's ``factor``, the seed's class ``groups`` (from
    its most imbalanced split); ``synthesize(method, split, seed)`` gives a baseline's set."""

    def __init__(self, run: Run):
        cfg, train = run.cfg, run.train
        self.run, self.cfg = run, cfg
        self.lo, self.hi = f"IF {min(cfg.imbalance_factors):g}", f"IF {max(cfg.imbalance_factors):g}"
        self.factor = {f"IF {f:g}": f for f in cfg.imbalance_factors}
        self.control = f"IF 1, size of {self.hi}"
        if cfg.balanced_control:
            self.factor[self.control] = 1
        self.names = list(self.factor)
        self._splits: dict = {}
        self._herding = {}

    def order(self, seed) -> list[int]:
        """order[r]: the class of tail rank r (r = 0 the head) for this seed."""
        return tail_order(self.run.train.num_classes, seed if self.cfg.permute_classes else None)

    def split(self, name: str, seed):
        """A split by name for a run seed (images drawn with split seed 0; the seed's ranking decides which class
        takes which count). The balanced control has the most imbalanced split's mean class size: the same split for
        every seed."""
        if (name, seed) not in self._splits:
            train, f = self.run.train, self.factor[name]
            if name == self.control:
                n = len(self.split(self.hi, seed)) // train.num_classes
                self._splits[name, seed] = make_longtail(train, 1, seed=0, n_max=n)
            else:
                self._splits[name, seed] = make_longtail(train, f, seed=0, order=self.order(seed))
        return self._splits[name, seed]

    def groups(self, seed) -> dict[str, list[int]]:
        """Many / medium / few classes of this seed's ranking (by count in its most imbalanced split)."""
        return class_groups(self.split(self.hi, seed).class_counts(), self.cfg.group_scheme)

    def herding_embedding(self, split):
        """The embedding herding selects in: a teacher trained on the split, or a random network (seed 0)."""
        cfg = self.cfg
        if cfg.herding_features == "teacher":
            return train_teacher(split, cfg.model, cfg.teacher_width, cfg.depth, cfg.norm, cfg.teacher_epochs,
                                 cfg.teacher_lr, seed=0, device=self.run.device, cache_root=cfg.cache_dir).embed
        torch.manual_seed(0)
        return net_factory(cfg, split)().to(self.run.device).eval().embed

    def synthesize(self, method: str, split, seed: int):
        if method == "random":
            return random_subset(split, self.cfg.ipc, seed)
        if method == "herding":   # deterministic: computed once per split
            key = split.fingerprint()
            if key not in self._herding:
                self._herding[key] = herding(split, self.cfg.ipc, self.herding_embedding(split), self.run.device)
            return self._herding[key]
        return distill("dm", split, self.cfg, seed, self.run.device)   # cached by its settings and version, resumable

    def shown_sets(self) -> list[dict]:
        """The set the chapter's image figure shows, for the site's "Distilled sets" page (:mod:`ltdd_utils.sets`): DM
        on the most imbalanced split, first seed (from the run's cache)."""
        from ..experiment import hard_protocol
        from ..versions import key_versions
        c, seed = self.cfg, self.cfg.seeds[0]
        if "dm" not in c.methods:
            return []
        split, f = self.split(self.hi, seed), self.factor[self.hi]
        syn = self.synthesize("dm", split, seed)
        nets = f"a fixed pool of {c.dm_net_pool} random networks" if c.dm_net_pool else "a fresh random network every step"
        return [{"name": f"dm_if{f:g}_ipc{c.ipc}_seed{seed}", "set": syn, "title": f"DM, {self.hi}",
                 "setting": {"imbalance_factor": f, "split": self.hi}, "ipc": c.ipc, "seed": seed,
                 "made_by": f"DM ({c.dm_iterations} steps, SGD on the pixels, {nets}"
                            f"{', DSA' if c.dm_dsa else ''}) from random real images of the split",
                 "producer": key_versions("distill.dm"),
                 "students": hard_protocol(c, len(syn)),
                 "arms": [{"method": "dm", "study": None, "ipc": c.ipc,
                           "setting": {"imbalance_factor": f, "split": self.hi}}]}]
