"""The experiments of the soft-label-bias chapter (notebooks/01_adsa.ipynb): long-tailed splits with a seeded
class -> tail-rank order, teachers, a held-out validation set (student width), recovered images, the label arms
with EDC's student recipe, the tau* diagnostics, the image term and the two-sources grid."""
from __future__ import annotations

import time

import torch

from ..augment import resized_crops
from ..cache import cached
from ..data.bias import stream_seed
from ..data.longtail import balanced_like, class_groups, held_out, make_longtail, tail_order
from ..distill import SyntheticSet, random_subset
from ..distill.srr import recover
from ..evaluate import KD_CROP_SCALE, EvalSettings, predict
from ..experiment import Run, kd_protocol, kd_trainer
from ..methods import adsa
from .. import teachers
from ..models import embed_in_chunks
from ..versions import key_versions


def initial_set(d, ipc: int, seed: int, duplicate_noise: float) -> SyntheticSet:
    """``ipc`` real images per class of ``d`` (a seeded draw); a class with fewer than ``ipc`` images repeats
    them in turn, each copy with Gaussian noise of std ``duplicate_noise`` so that recovery can move copies apart.
    ``meta["duplicated"]``: the copies per class."""
    sub = random_subset(d, ipc, stream_seed(seed, "adsa-init"))
    xs, ys = [], []
    gen = torch.Generator().manual_seed(stream_seed(seed, "adsa-duplicates"))
    for c in range(d.num_classes):
        xc = sub.images[sub.labels == c]
        if len(xc) < ipc:
            reps = xc[torch.arange(ipc - len(xc)) % len(xc)]
            xc = torch.cat([xc, reps + duplicate_noise * torch.randn(reps.shape, generator=gen)])
        xs.append(xc)
        ys.append(torch.full((ipc,), c))
    meta = {**sub.meta, "duplicated": [max(0, ipc - n) for n in sub.meta["per_class"]]}
    return SyntheticSet(torch.cat(xs), torch.cat(ys), d.num_classes, meta=meta)


def real_crops(d, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` random resized crops (area 8-100 %, flipped at random) of every real image of ``d``, and their labels."""
    x, y = d.tensors()
    gen = torch.Generator().manual_seed(stream_seed(seed, "adsa-real-crops"))
    return resized_crops(x, k, KD_CROP_SCALE, gen, flip=True).flatten(0, 1), y.repeat_interleave(k)


def tau_star_of(teacher, images, labels, class_counts, taus, device="cpu"):
    """ADSA's (tau*, taus, criterion) with ``teacher``'s logits on ``images`` (any image set: distilled, initial
    or real crops)."""
    logits = predict(teacher, images, device=device)
    return adsa.adaptive_soft_label_alignment(logits, labels, class_counts, taus)


class Study:
    """Splits at every imbalance factor (class ``order[r]`` has the r-th largest count), a balanced split of the
    same size as the main one, a balanced validation set outside every split, one teacher per split and the test
    logits of each; ``choose_width()`` then ``arm(...)`` evaluate students and keep their records in ``run``."""

    def __init__(self, run: Run):
        self.run, cfg = run, run.cfg
        self.cfg, self.device, self.full = cfg, run.device, run.train
        self.C = self.full.num_classes
        self.order = tail_order(self.C, cfg.tail_order_seed)            # order[r]: the class of rank r (0 = head)
        self.taus = torch.arange(cfg.tau_grid[0], cfg.tau_grid[1] + 1e-9, cfg.tau_grid[2])
        self.x_test, self.y_test = run.test.tensors()
        self.IF0, self.ipc0, self.seed0 = cfg.imbalance_factor, cfg.ipcs[0], cfg.seeds[0]
        self.factors = list(dict.fromkeys([cfg.imbalance_factor, *cfg.sweep_factors]))
        self.splits = {f: make_longtail(self.full, f, seed=0, n_max=cfg.n_max, order=self.order) for f in self.factors}
        self.lt = self.splits[self.IF0]
        self.bal = balanced_like(self.full, self.lt)
        self.val = held_out(self.full, [*self.splits.values(), self.bal], cfg.val_per_class)
        self.groups = class_groups(self.lt.class_counts(), cfg.group_scheme)
        # one teacher per split, seed 0; the main split's teacher is trained again per run seed (teacher())
        self.teachers = {f: self.teacher_for(d) for f, d in self.splits.items()}
        self.teachers["balanced"] = self.teacher_for(self.bal)
        self._seeded = {(self.IF0, 0): self.teachers[self.IF0]}
        self._logits, self._ceiling = {}, {}
        self.width = cfg.eval_widths[0]
        self._test_feats = None                  # the balanced teacher's features of the test set (image term)

    # ------------------------------------------------------------------------------------------ data, teachers
    def teacher_for(self, d, seed: int = 0):
        """The teachers' recipe (cross-entropy, teacher seed ``seed``) on ``d``: the cached network chapter 02's
        plain experts and chapter 06 load for the same split."""
        c = self.cfg
        return teachers.teacher(d, epochs=c.teacher_epochs, objective="ce", seed=seed,
                                recipe=teachers.Recipe(width=c.teacher_width, batch=c.teacher_batch),
                                device=self.device, cache_root=c.cache_dir)

    def teacher(self, f, seed: int):
        """The labeller of split ``f`` (a factor or "balanced") for run seed ``seed``: with ``per_seed_teacher``
        the main split's teacher is trained with the run seed (teacher-to-teacher variation enters the spread over
        seeds); every other split's teacher has seed 0 and is shared by all run seeds."""
        if f != self.IF0 or not self.cfg.per_seed_teacher:
            return self.teachers[f]
        if (f, seed) not in self._seeded:
            self._seeded[f, seed] = self.teacher_for(self.splits[f], seed)
        return self._seeded[f, seed]

    def logits_test(self, f, seed: int) -> torch.Tensor:
        """Test-set logits of :meth:`teacher` ``(f, seed)``."""
        t = self.teacher(f, seed)
        if t.cache_key not in self._logits:
            self._logits[t.cache_key] = predict(t, self.x_test, device=self.device)
        return self._logits[t.cache_key]

    def ceiling(self, f, seed: int):
        """(oracle tau, accuracies over ``taus``): the adjusted teacher's balanced test accuracy against tau (the
        ceiling curve; the oracle tau is its argmax; it reads the test labels: a diagnostic, never a choice)."""
        key = self.teacher(f, seed).cache_key
        if key not in self._ceiling:
            self._ceiling[key] = adsa.oracle_tau(self.logits_test(f, seed), self.y_test,
                                                 self.splits[f].class_counts(), self.taus)
        return self._ceiling[key]

    def oracle(self, f, seed: int) -> float:
        return self.ceiling(f, seed)[0]

    def by_rank(self, per_class) -> list:
        """Per-class values in tail-rank order (head first)."""
        return [per_class[c] for c in self.order]

    def teacher_table(self, seeds=()) -> list[dict]:
        """Balanced test accuracy (overall and per group) and training minutes of every teacher: the shared ones
        and, for ``seeds``, the main split's per-seed teachers."""
        own = sorted(set(seeds)) if self.cfg.per_seed_teacher and seeds else [0]
        nets = [(k, 0) for k in self.teachers if k != self.IF0] + [(self.IF0, s) for s in own]
        rows = []
        for k, seed in nets:
            logits = self.logits_test(k, seed)
            acc = [float((logits.argmax(1)[self.y_test == c] == c).float().mean() * 100) for c in range(self.C)]
            counts = (self.bal if k == "balanced" else self.splits[k]).class_counts()
            rows.append({"teacher": "balanced (same size)" if k == "balanced" else f"IF {k:g}",
                         "teacher seed": seed, "train images": sum(counts),
                         "head / tail images": f"{counts[self.order[0]]} / {counts[self.order[-1]]}",
                         "test acc": sum(acc) / self.C,
                         **{f"acc {g}": sum(acc[c] for c in cl) / len(cl) for g, cl in self.groups.items()},
                         "train minutes": self.teacher(k, seed).train_seconds / 60})
        return rows

    # ------------------------------------------------------------------------------------------------- images
    def init_set(self, d, ipc, seed) -> SyntheticSet:
        return initial_set(d, ipc, seed, self.cfg.duplicate_noise)

    def recovered(self, d, teacher, ipc, seed) -> SyntheticSet:
        c = self.cfg
        crop = None if c.recover_crop_scale is None else tuple(c.recover_crop_scale)
        key = dict(data=d.fingerprint(), teacher=teacher.cache_key, ipc=ipc, seed=seed, iterations=c.recover_iterations,
                   lr=c.recover_lr, r_bn=c.r_bn, first=c.first_bn_multiplier, dup=c.duplicate_noise,
                   **({"jitter": c.jitter} if crop is None else {"crop_scale": crop}))
        key["versions"] = key_versions("distill.recover", "distill.random")
        return cached("synsets/recover", key, lambda: recover(
            teacher, self.init_set(d, ipc, seed), c.recover_iterations, c.recover_lr, c.r_bn, c.first_bn_multiplier,
            c.jitter, seed=seed, device=self.device, crop_scale=crop), c.cache_dir)

    def student_views(self, s: SyntheticSet, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``tau_crops`` views of every image of ``s`` drawn as the students' batches draw them (a random resized
        crop of area ``crop_scale``, flipped at random; CutMix left out, as a mixed crop has no single class), and
        their labels: the inputs the teacher labels for the students."""
        gen = torch.Generator().manual_seed(stream_seed(seed, "adsa-student-views"))
        scale = tuple(self.cfg.get("crop_scale", KD_CROP_SCALE))
        x = resized_crops(s.images, self.cfg.tau_crops, scale, gen, flip=True).flatten(0, 1)
        return x, s.labels.repeat_interleave(self.cfg.tau_crops)

    # ---------------------------------------------------------------------------------------------- tau*
    def tau_star(self, s: SyntheticSet, f, seed: int, labeller=None):
        """ADSA's (tau*, taus, criterion) on the views of ``s`` the students see (:meth:`student_views`), labelled
        by the IF-``f`` teacher of ``seed`` (or ``labeller``): the tau* every ADSA arm uses."""
        x, y = self.student_views(s, seed)
        return tau_star_of(self.teacher(f, seed) if labeller is None else labeller, x, y,
                           self.splits[f].class_counts(), self.taus, self.device)

    def tau_sources(self, f, ipc, seed) -> dict:
        """tau* of the IF-``f`` teacher of ``seed`` on the recovered images' student views (ADSA's, as used), and
        as diagnostics on the recovered images without augmentation, on the initial real images (before
        recovery) and on random resized crops of every real long-tailed image; as a control, on the student views
        with the balanced teacher as labeller. Each: (tau*, taus, criterion)."""
        d, t = self.splits[f], self.teacher(f, seed)
        init, rec = self.init_set(d, ipc, seed), self.recovered(d, t, ipc, seed)
        xc, yc = real_crops(d, self.cfg.real_crops, seed)
        on = lambda x, y: tau_star_of(t, x, y, d.class_counts(), self.taus, self.device)
        return {"student views": self.tau_star(rec, f, seed),
                "recovered images": on(rec.images, rec.labels),
                "initial real images": on(init.images, init.labels),
                "real crops": on(xc, yc),
                "student views, balanced labeller": self.tau_star(rec, f, seed, self.teachers["balanced"])}

    # ------------------------------------------------------------------------------------------- students
    def shown_sets(self) -> list[dict]:
        """The sets the chapter's figures show, for the site's "Distilled sets" page (:mod:`ltdd_utils.sets`): the
        images recovered at the main factor, first IPC and seed, with the label arms of the main comparison that
        trained students on them."""
        f, ipc, seed, c = self.IF0, self.ipc0, self.seed0, self.cfg
        self.choose_width()            # the students' width, as the run chose it (its validation students are cached)
        arms = [a for a in c.methods if not a.startswith("random")]
        syn = self.recovered(self.lt, self.teacher(f, seed), ipc, seed)
        return [{"name": f"recovered_if{f:g}_ipc{ipc}_seed{seed}", "set": syn, "title": f"recovered images, IF {f:g}",
                 "setting": {"imbalance_factor": f}, "ipc": ipc, "seed": seed,
                 "made_by": "recovery through the long-tailed teacher from real images (SRe2L's recovery, EDC's "
                            "initialisation)", "producer": key_versions("distill.recover"),
                 "students": kd_protocol(c, self.width),
                 "arms": [{"method": a, "study": "main", "ipc": ipc, "setting": {"imbalance_factor": f}}
                          for a in arms]}]

    def settings(self, width: int | None = None) -> EvalSettings:
        c = self.cfg
        return EvalSettings(model=c.model, width=width or self.width, depth=c.depth, norm=c.norm,
                            batch=c.eval_batch, students=c.eval_students)

    def trainer(self, teacher, offset=None):
        """EDC's student recipe for ``student_steps`` steps (:func:`ltdd_utils.experiment.kd_trainer`)."""
        return kd_trainer(self.cfg, teacher, self.device, offset)

    def choose_width(self) -> list[dict]:
        """The student width with the best **validation** accuracy of the base pipeline (plain soft labels on the
        recovered images, main factor, first IPC and seed); used by every arm. One row per candidate."""
        c = self.cfg
        if len(c.eval_widths) == 1:
            self.width = c.eval_widths[0]
            return []
        t = self.teacher(self.IF0, self.seed0)
        s = self.recovered(self.lt, t, self.ipc0, self.seed0)
        rows = []
        for w in c.eval_widths:
            m = self.run.evaluate(s, "soft", {"study": "width selection", "imbalance_factor": self.IF0, "width": w,
                                              "evaluated on": "validation"}, self.ipc0, self.seed0,
                                  settings=self.settings(w), groups=self.groups, test=self.val,
                                  train_fn=self.trainer(t))
            rows.append({"width": w, "validation acc": sum(r["acc"] for r in m) / len(m),
                         "validation acc few": sum(r["acc_few"] for r in m) / len(m),
                         "train seconds": sum(r["train_seconds"] for r in m) / len(m)})
        self.width = max(rows, key=lambda r: r["validation acc"])["width"]
        return rows

    def arm(self, study, f, ipc, arm, seed, tau: float | None = None, **setting):
        """One label arm: its images (recovered, or the initial real subset for random_*), teacher and tau.
        ``arm="fixed"`` with ``tau`` gives the sensitivity arm ``tau=<tau>``."""
        t0 = time.time()
        s, fit, tau = self.labelled(f, ipc, arm, seed, tau)
        method = f"tau={tau:g}" if arm == "fixed" else arm
        return self.run.evaluate(s, method, {"study": study, "imbalance_factor": f, **setting}, ipc, seed,
                                 groups=self.groups, settings=self.settings(), train_fn=fit, t0=t0,
                                 add={"tau": tau, "width": self.width})

    def labelled(self, f, ipc, arm, seed, tau: float | None = None):
        """An arm's images, its students' trainer and its tau (None: plain soft labels or hard labels)."""
        d = self.splits[f]
        own = self.teacher(f, seed)
        s = self.init_set(d, ipc, seed) if arm.startswith("random") else self.recovered(d, own, ipc, seed)
        teacher = self.teachers["balanced"] if arm == "balanced_teacher" else own
        if arm in ("adsa", "random_adsa"):
            tau = self.tau_star(s, f, seed)[0]
        elif arm == "tau1":
            tau = 1.0
        elif arm == "oracle":
            tau = self.oracle(f, seed)
        elif arm != "fixed":
            tau = None
        offset = None if not tau else tau * adsa.log_prior(d.class_counts())   # tau = 0: the plain labels
        return s, self.trainer(None if arm == "hard" else teacher, offset), tau

    # ------------------------------------------------------------------------------------- the bound's terms
    def image_term(self, images: torch.Tensor, dims: int = 16) -> float:
        """KL(p_test(x) || p_images(x)) between Gaussians fitted to the balanced teacher's features of the test
        images and of ``images``, in the test features' top ``dims`` principal directions (an estimate of the
        bound's image term; the balanced teacher's feature space is shared by every image set)."""
        t = self.teachers["balanced"]
        if self._test_feats is None:
            self._test_feats = embed_in_chunks(t, self.x_test.to(self.device)).cpu()
        return adsa.gaussian_kl(self._test_feats, embed_in_chunks(t, images.to(self.device)).cpu(), dims)

    def label_term(self, f, tau: float | None, seed: int = 0) -> float:
        """E_x KL(p_balanced teacher || p_soft) on the test images, soft labels of the IF-``f`` teacher of
        ``seed`` adjusted with ``tau`` (None: plain)."""
        logits = self.logits_test(f, seed)
        if tau is not None:
            logits = adsa.adjusted_logits(logits, adsa.log_prior(self.splits[f].class_counts()), tau)
        return adsa.label_term_kl(self.logits_test("balanced", 0), logits)

    # -------------------------------------------------------------------------------- two sources of bias
    def two_sources(self, ipc, seed) -> tuple[list[dict], list[dict]]:
        """Balanced vs long-tailed images x balanced vs long-tailed teacher, one seed: per cell the labeller's
        mean true-class confidence per class on the views the students see (:meth:`student_views`; on the
        un-augmented images recovery saturates the labeller's confidence in its own images) in tail-rank order,
        its spread, its head-to-tail slope per rank (negative: head over-confident) and one student with that
        labeller's soft labels (the cells with long-tailed images are the main comparison's ``soft`` and
        ``balanced_teacher`` arms, reused when they ran)."""
        f = self.IF0
        own = self.teacher(f, seed)
        images = {"balanced images": self.recovered(self.bal, self.teachers["balanced"], ipc, seed),
                  "long-tailed images": self.recovered(self.lt, own, ipc, seed)}
        labellers = {"balanced teacher": self.teachers["balanced"], "long-tailed teacher": own}
        rows, conf = [], []
        for iname, s in images.items():
            x, y = self.student_views(s, seed)
            for lname, t in labellers.items():
                c = self.by_rank(adsa.class_confidence(predict(t, x, device=self.device), y, self.C).tolist())
                conf += [{"cell": f"{iname} / {lname}", "seed": seed, "rank": r, "confidence": v}
                         for r, v in enumerate(c)]
                reuse = {("long-tailed images", "long-tailed teacher"): "soft",
                         ("long-tailed images", "balanced teacher"): "balanced_teacher"}.get((iname, lname))
                acc = None if reuse is None else self.run.per_seed(
                    {"method": reuse, "ipc": ipc, "setting.study": "main", "setting.imbalance_factor": f}).get(seed)
                if acc is None:
                    acc = self.run.evaluate(s, "soft", {"study": "2x2", "imbalance_factor": f, "images": iname,
                                                        "labeller": lname}, ipc, seed, groups=self.groups,
                                            settings=self.settings(), train_fn=self.trainer(t))[0]["acc"]
                spread, slope = float(torch.tensor(c).std(unbiased=False)), adsa.rank_slope(c)
                self.run.record("labeller confidence", {"study": "2x2 confidence", "imbalance_factor": f,
                                                        "images": iname, "labeller": lname}, ipc, seed,
                                {"slope": slope, "spread": spread}, 0.0)        # what Claim 3 is judged on
                rows.append({"seed": seed, "images": iname, "labeller": lname, "confidence spread (std)": spread,
                             "head-to-tail slope per rank": slope, "student acc": acc})
        return rows, conf
