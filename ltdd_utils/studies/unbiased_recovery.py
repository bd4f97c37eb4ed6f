"""The experiments of the unbiased-recovery chapter (notebooks/02_unbiased_recovery.ipynb): long-tailed
splits and a balanced validation set, observer and teacher experts per run seed (with model selection on the
validation set), class statistics, the initial sets and the arms of chapters.unbiased_recovery.ARMS."""
from __future__ import annotations

import time

import torch

from ..cache import cached
from ..chapters.unbiased_recovery import ARMS
from ..data.longtail import class_groups, held_out, make_longtail, tail_order
from ..distill import distill, random_subset
from ..evaluate import accuracy_metrics, predict
from ..experiment import Run, eval_settings, kd_protocol, kd_trainer, student_epochs
from ..methods import unbiased_recovery as ur
from ..models import bn_statistics
from ..versions import key_versions


def ema_targets(net):
    """The running (EMA) BatchNorm statistics of ``net``, one (mean, var) per layer."""
    return [(m.detach().cpu().clone(), v.detach().cpu().clone()) for m, v in bn_statistics(net)]


def per_class_distance(stats, targets) -> list[float]:
    """Per class, sum over layers of ||mu_c - mu*||: how far each class's mean statistics are from a target."""
    C = len(stats["mean"][0])
    return [sum(float(torch.norm(stats["mean"][l][c] - m)) for l, (m, _) in enumerate(targets)) for c in range(C)]


TARGETS = {"recal": "class-balanced and class-wise targets", "ema": "its running statistics as targets"}
TEACHER_SEED_OFFSET = 1000     # without SHARE_EXPERTS, the teacher of run seed s is trained under seed s + 1000


class Study:
    """Splits at every imbalance factor (each class's capacity checked before any training) and a balanced
    validation set of training images outside every split; then ``select_experts()`` and ``arm(...)``.

    Experts are re-drawn per run seed (the observer under the run seed; the teacher under the same seed with
    SHARE_EXPERTS, else the seed + TEACHER_SEED_OFFSET), so that the spread over seeds includes the experts'. An
    expert is trained where an arm uses it (:meth:`needed`), and at every factor both kinds under the first seed:
    the acceptance check and the BatchNorm diagnostics read them."""

    def __init__(self, run: Run):
        self.run, self.cfg, self.device, cfg = run, run.cfg, run.device, run.cfg
        self.full, self.C = run.train, run.train.num_classes
        self.crop_scale = tuple(cfg.crop_scale)
        self.IF0 = cfg.imbalance_factor
        self.factors = list(dict.fromkeys([cfg.imbalance_factor, *cfg.other_factors]))
        self.order = tail_order(self.C, cfg.tail_order_seed)            # order[r]: the class of rank r (0 = head)
        self.splits = {f: self.split(f) for f in self.factors}
        for f, d in self.splits.items():
            for ipc in ([cfg.ipc, *cfg.other_ipcs] if f == self.IF0 else [cfg.ipc]):
                ur.check_capacity(d.class_counts(), ipc, cfg.num_crops, cfg.max_images)
        self.lt = self.splits[self.IF0]
        self.groups = class_groups(self.lt.class_counts(), cfg.group_scheme)
        self.val = held_out(self.full, self.splits.values(), cfg.val_per_class)
        self.heads, self.q = cfg.expert_heads, cfg.q
        self.experts: dict = {}
        self._stats: dict = {}
        self._inits: dict = {}                       # (IF, IPC, init, teacher, seed) -> the initial crops
        self._val: dict = {}                         # (IF, kind, role, seed) -> validation metrics of the expert
        self._test: dict = {}                        # expert's cache key -> its test metrics
        self.few_gain: dict = {}                     # (IF, seed) -> debiased minus plain few-group validation accuracy
        self.accepted: dict = {}                     # IF -> every seed's few_gain >= EXPERT_MARGIN
        self.seed0 = cfg.seeds[0]
        self.examples: dict = {}

    def split(self, f):
        """The long-tailed split of imbalance ``f`` (chapter 01's for the same N_MAX and tail order)."""
        return make_longtail(self.full, f, seed=0, n_max=self.cfg.n_max, order=self.order)

    # ---------------------------------------------------------------------------------------------- experts
    def expert_seed(self, role, seed) -> int:
        return seed if role == "observer" or self.cfg.share_experts else seed + TEACHER_SEED_OFFSET

    def expert(self, f, kind, role, seed=None, heads=None, q=None):
        """``kind`` debiased | plain, ``role`` observer | teacher, of run seed ``seed`` (default the first)."""
        c = self.cfg
        seed = self.expert_seed(role, self.seed0 if seed is None else seed)
        return ur.train_expert(self.splits[f], kind == "debiased", c.expert_model, c.expert_width, c.depth,
                               c.expert_epochs, c.expert_lr, c.expert_batch, self.q if q is None else q,
                               c.contrast_weight, c.expert_weight_decay, self.heads if heads is None else heads,
                               c.resample, seed=seed, device=self.device, cache_root=c.cache_dir,
                               objective=c.expert_objective)

    def metrics_on(self, net, data) -> dict:
        x, y = data.tensors()
        return accuracy_metrics(predict(net, x, device=self.device).argmax(1), y, self.C, self.groups)

    def test_metrics(self, net) -> dict:
        """An expert's test metrics, computed once per network (the expert table and the ceiling both show them)."""
        if net.cache_key not in self._test:
            self._test[net.cache_key] = self.metrics_on(net, self.run.test)
        return self._test[net.cache_key]

    def roles(self):
        return ("observer",) if self.cfg.share_experts else ("observer", "teacher")

    def needed(self, kinds=("debiased", "plain")) -> list[tuple]:
        """(IF, kind, role, seed) of every expert the run uses: the arms' observers and teachers at the factors,
        IPCs and seeds they run (the main factor's arms and OTHER_IPCS' at every seed, OTHER_METHODS at
        OTHER_FACTORS), and both kinds and roles under the first seed at every factor (the acceptance check, the
        diagnostics)."""
        c, out = self.cfg, {}
        runs = [(self.IF0, m, s) for m in c.methods for s in c.seeds]
        runs += [(self.IF0, m, s) for i in c.other_ipcs if i != c.ipc for m in c.ipc_methods for s in self.ipc_seeds()]
        runs += [(f, m, s) for f in c.other_factors if f != self.IF0 for m in c.other_methods for s in c.seeds]
        for f, m, s in runs:
            obs, teach = ARMS[m][:2]
            for kind, role in ((obs, "observer"), (teach, "teacher")):
                if kind in kinds:
                    out[f, kind, role, s] = None
        for f in self.factors:
            for kind in kinds:
                for role in ("observer", "teacher"):
                    out[f, kind, role, self.seed0] = None
        return list(out)

    def ipc_seeds(self) -> list[int]:
        """The run seeds of the OTHER_IPCS arms: the first IPC_SEED_COUNT of SEEDS (all when None)."""
        return self.cfg.seeds[:self.cfg.ipc_seed_count]

    def select_experts(self, kinds=("debiased", "plain")) -> list[dict]:
        """Model selection among EXPERT_CANDIDATES on the validation set (never the test set, first seed); then
        every expert of ``kinds`` the run uses (:meth:`needed`), and, with both kinds, per imbalance factor whether
        the debiased experts are accepted: on every seed that trained both kinds, each role's few-group validation
        accuracy beats the plain expert's of the same role and seed by at least EXPERT_MARGIN points (one record
        per seed, the smallest gain over the roles)."""
        rows = []
        for h, q in self.cfg.expert_candidates:
            net = self.expert(self.IF0, "debiased", "observer", heads=h, q=q)
            mv = self.metrics_on(net, self.val)
            rows.append({"heads": h, "q": q, "val acc": mv["acc"], "val many": mv["acc_many"], "val medium": mv["acc_medium"],
                         "val few": mv["acc_few"], "training seconds (first run)": net.train_seconds})
        if rows:
            best = max(rows, key=lambda r: r["val acc"])
            self.heads, self.q = int(best["heads"]), float(best["q"])
        loaded = {}                 # one network per training: with SHARE_EXPERTS a seed's observer is its teacher
        for f, kind, role, s in self.needed(kinds):
            trained = (f, kind, self.expert_seed(role, s))
            if trained not in loaded:
                loaded[trained] = self.expert(f, kind, role, s)
            self.experts[f, kind, role, s] = loaded[trained]
        self._val = {k: self.metrics_on(net, self.val) for k, net in self.experts.items() if k[2] in self.roles()}
        if "plain" not in kinds or "debiased" not in kinds:
            return rows
        pairs = {(f, s) for f, kind, role, s in self._val}
        self.few_gain = {(f, s): min(self._val[f, "debiased", r, s]["acc_few"] - self._val[f, "plain", r, s]["acc_few"]
                                     for r in self.roles())
                         for f, s in sorted(pairs) if all((f, k, r, s) in self._val for k in kinds for r in self.roles())}
        self.accepted = {f: min(g for (f_, _), g in self.few_gain.items() if f_ == f) >= self.cfg.expert_margin
                         for f in self.factors}
        for (f, s), g in self.few_gain.items():  # what the experts' gate is judged on (ltdd_utils/claims/unbiased_recovery.py)
            self.run.record("debiased expert", {"study": "experts", "imbalance_factor": f}, self.cfg.ipc, s,
                            {"few_gain": g}, 0.0)
        return rows

    def expert_table(self) -> list[dict]:
        """One row per expert (IF, kind, role, run seed): validation and test accuracy, training time."""
        rows = []
        for (f, kind, role, s), net in sorted(self.experts.items(), key=lambda kv: (-kv[0][0], kv[0][1:])):
            if role not in self.roles():
                continue
            m, mv = self.test_metrics(net), self._val[f, kind, role, s]
            rows.append({"IF": f, "expert": kind, "role": "observer = teacher" if self.cfg.share_experts else role,
                         "seed": s, "val acc": mv["acc"], "val few": mv["acc_few"],
                         "val few gain": self.few_gain.get((f, s)) if kind == "debiased" else None,
                         "test acc": m["acc"], "test many": m["acc_many"], "test medium": m["acc_medium"],
                         "test few": m["acc_few"], "training seconds (first run)": net.train_seconds})
        return rows

    def bn_diagnostics(self) -> tuple[list[dict], list[dict], list[dict]]:
        """Where BatchNorm's targets sit, three ways: at the main factor, each class's distance to three global
        targets (the debiased observer's running EMA statistics, a sample-weighted pass, the class-balanced
        recalibration); over DIAGNOSTIC_FACTORS, the fixed observer's sample-weighted minus class-balanced distance per
        layer (forward passes only); per factor and observer kind, its EMA statistics' distance to class-balanced."""
        c, f0, s = self.cfg, self.cfg.imbalance_factor, self.seed0
        s0 = self.class_stats(f0, "debiased")
        targets = {"running (EMA) statistics": ema_targets(self.experts[f0, "debiased", "observer", s]),
                   "sample-weighted pass": ur.sample_weighted_targets(s0),
                   "class-balanced (recalibrated)": ur.balanced_targets(s0, c.mixture_variance)}
        skew = [{"class": k, "target": name, "distance": dist}
                for name, t in targets.items() for k, dist in enumerate(per_class_distance(s0, t))]
        diag = [{"IF": f, "layer": f"BN {i + 1}", "distance": v} for f in c.diagnostic_factors
                for s in [self.class_stats(f0, "debiased", f)]
                for i, v in enumerate(ur.stats_distance(ur.sample_weighted_targets(s), ur.balanced_targets(s, mixture=True)))]
        ema = [{"IF": f, "observer": kind, "layer": f"BN {i + 1}", "distance": v}
               for f in self.factors for kind in ("debiased", "plain")
               for i, v in enumerate(ur.stats_distance(ema_targets(self.experts[f, kind, "observer", s]),
                                                       ur.balanced_targets(self.class_stats(f, kind), mixture=True)))]
        return skew, diag, ema

    def ceiling_rows(self, f) -> dict:
        """The teachers' test accuracy at factor ``f``, mean ± std over the run seeds that have one: the students'
        ceiling."""
        import statistics
        out = {}
        for kind in ("debiased", "plain"):
            ms = [self.test_metrics(net) for (f_, k, role, _), net in self.experts.items()
                  if (f_, k, role) == (f, kind, "teacher")]
            fmt = lambda v: f"{statistics.mean(v):.1f}" + (f" ± {statistics.stdev(v):.1f}" if len(v) > 1 else "")
            out[f"teacher ceiling ({kind})"] = {m: fmt([x[m] for x in ms]) for m in ("acc", "acc_many", "acc_medium",
                                                                                    "acc_few")} | {"n": len(ms)}
        return out

    def class_stats(self, f, kind, data_f=None, seed=None):
        """Class statistics through the (f, kind) observer of run seed ``seed`` (default the first) of the split
        with imbalance ``data_f`` (default f)."""
        key = (f, kind, f if data_f is None else data_f, self.seed0 if seed is None else seed)
        if key not in self._stats:
            d = self.splits.get(key[2]) or self.split(key[2])
            x, y = d.tensors()
            self._stats[key] = ur.class_bn_statistics(self.experts[f, kind, "observer", key[3]], x, y, self.C,
                                                      device=self.device)
        return self._stats[key]

    # ------------------------------------------------------------------------------------------------- arms
    def init_set(self, f, ipc, init, teacher, seed):
        """The initial set of an arm; the teacher-scored crops are made once per factor, IPC, teacher and seed (the
        arms that share a teacher start from the same crops)."""
        c = self.cfg
        if init == "random_real":
            return random_subset(self.splits[f], ipc, seed)
        scored = init == "multi_round"
        key = (f, ipc, init, teacher.cache_key if scored else None, seed)
        if key not in self._inits:
            self._inits[key] = ur.multi_round_init(teacher if scored else None, self.splits[f], ipc, c.num_crops,
                                                   c.max_images, self.crop_scale, seed, self.device,
                                                   "teacher" if scored else "random")
        return self._inits[key]

    def synset(self, f, ipc, arm, seed):
        c = self.cfg
        obs_kind, t_kind, mode, init, rec = ARMS[arm]
        d = self.splits[f]
        if init == "dm":
            return distill("dm", d, c, seed, self.device, ipc=ipc, width=c.eval_width)
        teacher = self.experts[f, t_kind, "teacher", seed] if t_kind else None
        if not rec or c.recover_iterations == 0:
            return self.init_set(f, ipc, init, teacher, seed)
        obs = self.experts[f, obs_kind, "observer", seed]
        key = dict(data=d.fingerprint(), ipc=ipc, seed=seed, observer=obs.cache_key, mode=mode, init=init,
                   teacher=teacher.cache_key, crops=c.num_crops, max_images=c.max_images, scale=self.crop_scale,
                   iterations=c.recover_iterations, lr=c.recover_lr, r_bn=c.r_bn, first=c.first_bn_multiplier,
                   classwise=c.classwise_weight, ce=c.recover_ce, mixture=c.mixture_variance)
        key["versions"] = key_versions("distill.recover_balanced", "distill.multi_round_init", "distill.random")

        def compute():
            if mode == "recal":
                s = self.class_stats(f, obs_kind, seed=seed)
                glob, per_class = ur.balanced_targets(s, c.mixture_variance), s
            else:
                glob, per_class = ema_targets(obs), None
            return ur.recover_balanced(obs, self.init_set(f, ipc, init, teacher, seed), glob, per_class,
                                       c.recover_iterations, c.recover_lr, c.r_bn, c.first_bn_multiplier,
                                       c.classwise_weight, c.recover_ce, self.crop_scale, seed=seed, device=self.device)
        return cached("synsets/unbiased_recovery", key, compute, c.cache_dir)

    def shown_sets(self) -> list[dict]:
        """The sets the chapter's figures show, for the site's "Distilled sets" page (:mod:`ltdd_utils.sets`): the
        recovered sets of Full and of the baseline (i) at the main factor and IPC, first seed, with the arm that
        trained students on each. Only their experts are loaded (from the run's cache)."""
        c, f, ipc, seed = self.cfg, self.IF0, self.cfg.ipc, self.seed0
        out = []
        for arm in ("full", "base"):
            if arm not in c.methods:
                continue
            obs, teach = ARMS[arm][:2]
            for kind, role in ((obs, "observer"), (teach, "teacher")):
                if (f, kind, role, seed) not in self.experts:
                    self.experts[f, kind, role, seed] = self.expert(f, kind, role, seed)
            syn = self.synset(f, ipc, arm, seed)
            out.append({"name": f"{arm}_if{f:g}_ipc{ipc}_seed{seed}", "set": syn, "setting": {"imbalance_factor": f},
                        "title": f"{arm}: recovered images, IF {f:g}", "ipc": ipc, "seed": seed,
                        "made_by": f"recovery ({c.recover_iterations} steps) through the {obs} observer "
                                   f"({TARGETS[ARMS[arm][2]]}) from the {teach} teacher's multi-round crops",
                        "producer": key_versions("distill.recover_balanced", "distill.multi_round_init"),
                        "students": kd_protocol(c) | {"teacher": f"the {teach} expert of the seed",
                                                      "targets": "the teacher's logits minus their mean over the "
                                                      "student's KD views" if self.centred(teach) else
                                                      "the teacher's raw logits"},
                        "arms": [{"method": arm, "study": "main", "ipc": ipc, "setting": {"imbalance_factor": f}}]})
        return out

    def arm(self, study, f, ipc, arm, seed):
        """One arm: its synthetic set, then ``STUDENT_STEPS`` steps of KD students of the arm's teacher (EDC's
        recipe) or of hard-label students (the book's standard protocol: SGD, DSA)."""
        t0, c = time.time(), self.cfg
        s = self.synset(f, ipc, arm, seed)
        if seed == c.seeds[0]:
            self.examples[study, f, ipc, arm] = s
        settings, fit = self.students(f, arm, len(s), seed)
        return self.run.evaluate(s, arm, {"study": study, "imbalance_factor": f}, ipc, seed, settings=settings,
                                 groups=self.groups, train_fn=fit, t0=t0)

    CHECK_SEED_OFFSET = 100     # the targets check draws its random real images outside every run seed's draw

    def kd_target_check(self) -> list[dict]:
        """The students' targets compared on the VALIDATION split (what KD_CENTRE rests on): on random real images of
        the main split (drawn with the first seed + CHECK_SEED_OFFSET, a set no claim reads), students of the first
        seed's debiased teacher learn its raw logits or its logits centred on their own views, students of its plain
        teacher (when loaded) its raw logits, and students of the same recipe hard labels; one student each,
        records of study ``kd targets``."""
        c, f, seed = self.cfg, self.IF0, self.cfg.seeds[0]
        if seed + self.CHECK_SEED_OFFSET in c.seeds:
            raise ValueError(f"the targets check draws with seed {seed + self.CHECK_SEED_OFFSET}, a run seed")
        teacher = self.experts[f, "debiased", "teacher", seed]
        s = random_subset(self.lt, c.ipc, seed + self.CHECK_SEED_OFFSET)
        settings = eval_settings(c, label_mode="hard", epochs=student_epochs(c, len(s)), students=1)
        rows = []
        plain = self.experts.get((f, "plain", "teacher", seed))
        for name, fit in (("debiased teacher, raw logits", kd_trainer(c, teacher, self.device)),
                          ("debiased teacher, centred on the student's views",
                           kd_trainer(c, teacher, self.device, centre=True)),
                          *((("plain teacher, raw logits", kd_trainer(c, plain, self.device)),) if plain else ()),
                          ("hard labels", kd_trainer(c, None, self.device))):
            m = self.run.evaluate(s, "random_kd", {"study": "kd targets", "imbalance_factor": f, "targets": name,
                                                   "split": "validation"}, c.ipc, seed, settings=settings,
                                  groups=self.groups, test=self.val, train_fn=fit)[0]
            rows.append({"targets": name, "val acc": m["acc"],
                         **{f"val {g}": m[f"acc_{g}"] for g in ("many", "medium", "few")}})
        return rows

    def students(self, f, arm, n: int, seed: int):
        """The evaluation settings and the student trainer of an arm whose set holds ``n`` images."""
        c, t_kind = self.cfg, ARMS[arm][1]
        settings = eval_settings(c, label_mode="hard", epochs=student_epochs(c, n))
        return settings, None if t_kind is None else kd_trainer(c, self.experts[f, t_kind, "teacher", seed],
                                                                self.device, centre=self.centred(t_kind))

    def centred(self, t_kind) -> bool:
        """Whether students of a ``t_kind`` teacher learn its logits centred on their views (KD_CENTRE)."""
        return self.cfg.kd_centre == "all" or (self.cfg.kd_centre == "debiased" and t_kind == "debiased")
