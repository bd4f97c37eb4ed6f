"""Glue every chapter uses between a validated config and the library: model factories, evaluation
settings, the test split, provenance and where results go."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .config import Config, resolve_device
from .data import ImageData, load_dataset
from .evaluate import EvalSettings
from . import models


class Verdicts(list):
    """The judged claims of a run (one dict per claim). A notebook shows them as one line of counts: the claims
    themselves are on the page above it, as text."""

    def _repr_pretty_(self, p, cycle):
        from collections import Counter
        counts = Counter(r["verdict"] or "not judged" for r in self)
        p.text(f"{len(self)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.most_common()))


def load_split(cfg: Config) -> tuple[ImageData, ImageData]:
    """The training split and the balanced test split (a class-balanced subset when ``test_limit`` is set)."""
    train = load_dataset(cfg.dataset, cfg.data_root, train=True)
    test = load_dataset(cfg.dataset, cfg.data_root, train=False)
    if cfg.get("test_limit"):
        per_class = cfg.test_limit // test.num_classes
        gen = torch.Generator().manual_seed(0)
        keep = [p[torch.randperm(len(p), generator=gen)[:per_class]]
                for p in ((test.labels == c).nonzero().flatten() for c in range(test.num_classes))]
        test = test.subset(torch.cat(keep).sort().values)
    return train, test


def net_factory(cfg: Config, data: ImageData, width: int | None = None):
    """A function returning a fresh randomly initialised network of the config's architecture."""
    return models.net_factory(cfg.model, data, width or cfg.width, cfg.depth, cfg.norm)


def eval_settings(cfg: Config, **overrides) -> EvalSettings:
    """The evaluation protocol of ``cfg`` (``eval_*`` parameters), with ``overrides``; a chapter whose students
    train for a number of steps (``student_steps``) passes ``epochs`` and needs no ``eval_epochs``."""
    fields = dict(model=cfg.model, width=cfg.eval_width, depth=cfg.depth, norm=cfg.norm, lr=cfg.eval_lr,
                  batch=cfg.eval_batch, aug=cfg.eval_aug, students=cfg.eval_students)
    if "epochs" not in overrides:
        fields["epochs"] = cfg.eval_epochs
    return EvalSettings(**{**fields, **overrides})


def student_epochs(cfg: Config, n: int) -> int:
    """Epochs that give every student at least ``cfg.student_steps`` optimiser steps on ``n`` images."""
    from .train import steps_per_epoch
    return math.ceil(cfg.student_steps / steps_per_epoch(n, cfg.eval_batch))


def kd_protocol(cfg: Config, width: int | None = None) -> dict:
    """What :func:`kd_trainer`'s students are, for a record of it (a shown set's provenance): the student network,
    its steps, batch, optimiser settings and augmentation."""
    from .evaluate import KD_CROP_SCALE
    return {"model": cfg.model, "width": width or cfg.eval_width, "depth": cfg.depth, "norm": cfg.norm,
            "steps": cfg.student_steps, "batch": cfg.eval_batch, "lr": cfg.kd_lr, "ce_weight": cfg.kd_ce_weight,
            "cutmix": cfg.kd_cutmix, "crop_scale": list(cfg.get("crop_scale", KD_CROP_SCALE)),
            "recipe": "EDC's recipe (ltdd_utils.evaluate.train_student_kd)"}


def hard_protocol(cfg: Config, n: int, epochs: int | None = None) -> dict:
    """What the book's hard-label students (:func:`eval_settings`) are, for a record of them (a shown set's
    provenance), on a set of ``n`` images: the settings and the optimiser steps they take. ``epochs``: a chapter
    whose students train for a number of steps (:func:`student_epochs`) passes their epochs."""
    from dataclasses import asdict
    from .train import steps_per_epoch
    settings = eval_settings(cfg, **({} if epochs is None else {"epochs": epochs}))
    return asdict(settings) | {"steps": settings.epochs * steps_per_epoch(n, cfg.eval_batch),
                               "recipe": "hard labels, SGD, DSA (the book's protocol)"}


def kd_trainer(cfg: Config, teacher, device, logit_offset=None, centre: bool = False):
    """A ``train_fn(model, x, y, seed)`` for :meth:`Run.evaluate`: EDC's student recipe
    (:func:`ltdd_utils.evaluate.train_student_kd`) for ``student_steps`` steps of batch ``eval_batch``, learning
    ``teacher``'s logits (minus ``logit_offset``; with ``centre``, minus the teacher's mean logit over KD views of
    the student's own set, :func:`ltdd_utils.evaluate.view_logit_offset`), or, with ``teacher`` None, hard labels
    under the same augmentation and optimiser."""
    from .cache import content_digest
    from .evaluate import train_student_kd, view_logit_offset
    if centre and (teacher is None or logit_offset is not None):
        raise ValueError("centre needs a teacher and no logit_offset of its own")
    crop = {"crop_scale": tuple(cfg.crop_scale)} if "crop_scale" in cfg else {}      # a chapter's own crops

    def fit(model, x, y, seed):
        off = logit_offset
        if centre:
            off = view_logit_offset(teacher, x, y, seed, cfg.eval_batch, cutmix=cfg.kd_cutmix, device=device, **crop)
        return train_student_kd(model, x, y, teacher, student_epochs(cfg, len(x)), lr=cfg.kd_lr, batch=cfg.eval_batch,
                                ce_weight=cfg.kd_ce_weight, cutmix=cfg.kd_cutmix, seed=seed, device=device,
                                logit_offset=off, **crop)
    # what a student trained by fit depends on besides its set and seed (evaluate.student_key)
    fit.key = {"producers": ["student.kd"] + (["student.kd_centre"] if centre else []),
               "teacher": content_digest(teacher, logit_offset),
               "student_steps": cfg.student_steps, "batch": cfg.eval_batch, "lr": cfg.kd_lr,
               "ce_weight": cfg.kd_ce_weight, "cutmix": cfg.kd_cutmix, **crop,
               **({"centre": "views"} if centre else {})}
    return fit


def device(cfg: Config) -> torch.device:
    return resolve_device(cfg.device)


def results_path(cfg: Config, name: str | None = None) -> Path:
    """``<results_dir>/<chapter>_<preset>`` (no suffix); results_dir defaults to ``$LTDD_RESULTS``, else the
    checkout's book/results."""
    import os
    default = os.environ.get("LTDD_RESULTS") or Path(__file__).resolve().parent.parent / "book" / "results"
    root = Path(cfg.results_dir) if cfg.get("results_dir") else Path(default)
    return root / f"{name or cfg.chapter}_{cfg.preset}"


class Run:
    """One execution of a chapter: its device and provenance, the data, and the records and claims it writes.

    ``run.evaluate(syn, method, setting, ipc, seed, settings=..., groups=...)`` runs the evaluation protocol
    and keeps one record per student; ``run.record(...)`` keeps any other measurement a claim is on (a tau*, a
    slope); ``run.verdicts(lines)`` judges the chapter's declared claims (:mod:`ltdd_utils.claims`) on the records,
    writes records and verdicts, and shows the chapter's "What we saw".
    """

    def __init__(self, cfg: Config, load: bool = True):
        import time
        from .results import provenance
        self.cfg, self.device = cfg, device(cfg)
        self.prov = {**provenance(cfg.preset, self.device, cfg.seeds), "precision": cfg.get("precision", "fp32")}
        self.t_start = time.time()
        self.records: list = []
        self.claims: list[dict] = []
        print(f"preset {cfg.preset} | device {self.prov['device']} | precision {self.prov['precision']} | seeds "
              f"{cfg.seeds} | commit {self.prov['commit']}")
        if load:
            self.train, self.test = load_split(cfg)
            print(f"pixels: {self.train.source}; test set: {len(self.test)} images")

    @property
    def path(self) -> Path:
        return results_path(self.cfg)

    def record(self, method: str, setting: dict, ipc: int, seed: int, metrics: dict, wall_s: float, data=None,
               **extra):
        from .results import make_record
        data = data if data is not None else self.train
        keep = {k: v for k, v in metrics.items() if k not in ("student", "train_seconds")}
        rec = make_record(self.cfg.chapter, method, data.name, setting, ipc, seed, keep, self.prov, wall_s,
                          data.source, **extra)
        self.records.append(rec)
        return rec

    def evaluate(self, syn, method: str, setting: dict, ipc: int, seed: int, settings=None, groups=None, data=None,
                 test=None, t0: float | None = None, add: dict | None = None, **kw) -> list[dict]:
        """The evaluation protocol on ``syn`` (keywords go to :func:`ltdd_utils.evaluate.evaluate_synset`);
        one record per student, with the metrics ``add`` besides, ``wall_time_s`` counted from ``t0``. Students are
        cached by what they depend on (:func:`ltdd_utils.evaluate.student_key`): a re-run that leaves a set and its
        protocol alone reuses its students' metrics."""
        import time
        from .evaluate import evaluate_synset
        t0 = time.time() if t0 is None else t0
        label = " ".join(f"{k} {v}" for k, v in setting.items() if k != "study")
        out = evaluate_synset(syn, self.test if test is None else test, settings or eval_settings(self.cfg), groups,
                              seed=seed, device=self.device, name=f"{label} IPC {ipc} {method} seed {seed}",
                              use_cache=True, cache_root=self.cfg.get("cache_dir"), **kw)
        for m in out:
            self.record(method, setting, ipc, seed, {**m, **(add or {})}, time.time() - t0, data, student=m["student"])
        return out

    def write(self):
        from .results import write_records
        return write_records(self.records, self.path)

    def frame(self):
        from .results import to_frame
        return to_frame(self.records)

    def per_seed(self, select: dict, metric: str = "acc") -> dict:
        from .results import per_seed
        return per_seed(self.records, select, metric)

    def verdicts(self, lines=()) -> list[dict]:
        """Judge the chapter's declared claims (``ltdd_utils.claims.<chapter>``) on this run's records, write the
        records and the judged rows, and show them (headline claims first, then supporting claims, controls, gates,
        diagnostics), then what every claim a failed gate left not testable would read without its gate
        (:func:`~ltdd_utils.verdicts.without_gates`, not a verdict), then ``lines`` (the chapter's other
        observations). Returns the rows (:class:`Verdicts`: a notebook shows them as one line of counts)."""
        from IPython.display import Markdown, display
        from . import claims
        from .results import write_claims
        from .verdicts import LEVELS, describe, without_gates
        self.claims = claims.judge(self.cfg.chapter, self.cfg, self.records)
        self.write()
        write_claims(self.claims, self.path)
        text = []
        for level in LEVELS:
            rows = [r for r in self.claims if r["level"] == level]
            if rows:
                text += [f"**{level.capitalize()} claims**", ""] + [f"* `{r['id']}` {describe(r)}" for r in rows] + [""]
        ungated = [x for x in without_gates(self.claims) if x not in lines]
        if ungated:
            text += ["**Read without their gates** (not verdicts: each gate was fixed before the run)", ""] + ungated + [""]
        shared = claims.shared(self.cfg.chapter, self.records)
        if shared:
            text += [f"*Every seed shares {shared}.*", ""]
        display(Markdown("\n".join(text + list(lines))))
        return Verdicts(self.claims)

    def finish(self):
        import time
        print(f"chapter finished in {time.time() - self.t_start:.0f}s on {self.prov['device']} (preset "
              f"{self.cfg.preset}, commit {self.prov['commit']})")
