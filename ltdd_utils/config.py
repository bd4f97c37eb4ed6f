"""Presets and parameter validation: the one place that knows every knob.

A chapter has a *schema* (every parameter it accepts, with a check and a one-line description) and three
*presets* (``smoke``, ``cpu``, ``paper``), each a complete set of values; both live in the chapter's own
module, ``ltdd_utils/chapters/<chapter>.py``, built from the shared parameters and checks here. ``make_config(chapter, preset,
**overrides)`` starts from the preset, applies the overrides and validates everything before any compute:
an unknown name, a value of the wrong kind or out of range raises ``ConfigError`` naming the parameter,
the value and what is allowed.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch


from .checks import (ConfigError, _fail, a_bool, a_string, int_at_least, list_of, number_at_least,  # noqa: F401
                     one_of, optional, positive_number, rate)
from .data import DATASETS
from .models import MODELS


def _registry_check(kind: str) -> Callable:
    def check(name, v):
        one_of("auto", *DATASETS)(name, v) if kind == "dataset" else one_of(*MODELS)(name, v)
    return check


def device_check(name, v):
    if v == "auto":
        return
    try:
        torch.device(v)
    except (RuntimeError, TypeError):
        _fail(name, v, "'auto', 'cpu', 'cuda' or 'cuda:N'")


@dataclass(frozen=True)
class Param:
    check: Callable
    doc: str


# ---------------------------------------------------------------------------------- shared parameters
COMMON: dict[str, Param] = {
    "dataset": Param(_registry_check("dataset"), "dataset name; 'auto' = CIFAR-10 if in the data root, else FashionMNIST"),
    "data_root": Param(optional(a_string), "data root; None = $LTDD_DATA, else ~/.cache/ltdd/data"),
    "cache_dir": Param(optional(a_string), "cache for teachers, experts and distilled sets; None = $LTDD_CACHE"),
    "device": Param(device_check, "'auto' (CUDA if present, else CPU), 'cpu' or 'cuda'"),
    "precision": Param(one_of("auto", "fp32", "bf16"), "compute precision: 'auto' = bf16 where the CPU (AMX or "
                       "AVX512-bf16) or the GPU has it, else fp32; resolved when the config is made"),
    "seeds": Param(list_of(int_at_least(0)), "seeds; every result is repeated per seed"),
    "support_seed_count": Param(int_at_least(2), "seeds of SUPPORT_METHODS: the first this many of the run's seeds "
                                "(the other arms take every seed)"),
    "run_seeds": Param(optional(list_of(int_at_least(0))), "the whole run's seeds where SEEDS is one seed job's share "
                       "(the cluster launcher sets it, so that a seed job runs SUPPORT_METHODS only on the seeds the "
                       "merged run reads); None = SEEDS"),
    "ipc": Param(int_at_least(1), "images per class of the synthetic set"),
    "model": Param(_registry_check("model"), "architecture, by name (models.MODELS)"),
    "width": Param(int_at_least(1), "ConvNet width (channels per layer)"),
    "depth": Param(int_at_least(1), "ConvNet depth (conv blocks)"),
    "norm": Param(one_of("instancenorm", "batchnorm", "none"), "ConvNet normalisation"),
    "group_scheme": Param(one_of("thirds", "shots"), "many/medium/few definition (data.longtail.class_groups)"),
    # distribution matching
    "dm_iterations": Param(int_at_least(0), "DM optimisation steps on the synthetic images"),
    "dm_lr": Param(positive_number, "DM learning rate on pixels (SGD, momentum 0.5)"),
    "dm_batch_real": Param(int_at_least(1), "real images per class per DM step"),
    "dm_dsa": Param(a_bool, "apply siamese DSA to real and synthetic batches in DM"),
    "dm_net_pool": Param(int_at_least(0), "0 = fresh random net per DM step (paper); K = fixed pool of K random nets"),
    # evaluation protocol
    "eval_students": Param(int_at_least(1), "student models trained per synthetic set"),
    "eval_epochs": Param(int_at_least(1), "student training epochs (lr x0.1 at half)"),
    "eval_lr": Param(positive_number, "student SGD learning rate"),
    "eval_batch": Param(int_at_least(1), "student batch size"),
    "eval_aug": Param(one_of("dsa", "cropflip", "none"), "student augmentation"),
    "eval_width": Param(int_at_least(1), "student ConvNet width"),
    # EDC's student recipe (evaluate.train_student_kd: soft-label arms relabelled online)
    "kd_lr": Param(positive_number, "student AdamW learning rate (soft-label arms)"),
    "kd_ce_weight": Param(number_at_least(0), "weight of the hard-label CE beside the logit MSE (EDC: 0.025)"),
    "kd_cutmix": Param(a_bool, "CutMix in the student batches of the soft-label arms"),
    "student_steps": Param(int_at_least(1), "optimiser steps of every student (its epochs follow from the set's size)"),
    "val_per_class": Param(int_at_least(1), "held-out balanced validation images per class (training images outside "
                           "every split)"),
    # verdicts
    "claim_margin": Param(number_at_least(0), "points by which an arm must beat another for a claim to hold "
                          "(paired per-seed differences; fixed before the run)"),
    # output and test set
    "test_limit": Param(optional(int_at_least(10)), "use only this many test images (None = the full balanced test set)"),
    "results_dir": Param(optional(a_string), "where result files go; None = book/results of the checkout"),
    # recovery (squeeze-recover-relabel chapters)
    "recover_iterations": Param(int_at_least(0), "recovery Adam steps on the pixels (0 = the initialisation as it is)"),
    "recover_lr": Param(positive_number, "recovery Adam learning rate on the pixels"),
    "r_bn": Param(number_at_least(0), "weight of the BatchNorm-statistics terms"),
    "first_bn_multiplier": Param(positive_number, "extra weight of the first BatchNorm layer"),
    # teacher / expert
    "teacher_epochs": Param(int_at_least(1), "teacher (expert) training epochs on the real data"),
    "teacher_lr": Param(positive_number, "teacher SGD learning rate"),
    "teacher_width": Param(int_at_least(1), "teacher ConvNet width"),
}


def schema_from(*names: str, **extra: Param) -> dict[str, Param]:
    """A chapter's schema: the named shared parameters plus its own."""
    out = {n: COMMON[n] for n in names}
    out.update(extra)
    return out


def runs_on(cfg, method: str, seed: int) -> bool:
    """Whether a chapter's arm ``method`` runs at ``seed``: SUPPORT_METHODS on the first SUPPORT_SEED_COUNT of the
    run's seeds (RUN_SEEDS where a seed job runs one of them, else SEEDS), every other arm on every seed."""
    return method not in cfg.support_methods or seed in (cfg.run_seeds or cfg.seeds)[:cfg.support_seed_count]


# Defaults every chapter's presets start from.
BASE_PRESET = dict(data_root=None, cache_dir=None, results_dir=None, device="auto", model="convnet", depth=3,
                   norm="instancenorm", group_scheme="thirds", dm_lr=1.0, dm_dsa=True, eval_lr=0.01, eval_aug="dsa",
                   claim_margin=1.0, precision="auto",
                   teacher_lr=0.01)

_CHAPTERS_DIR = Path(__file__).resolve().parent / "chapters"


def chapter_names() -> list[str]:
    """Chapters with parameters: one module per chapter in ``ltdd_utils/chapters/`` (SCHEMA and PRESETS)."""
    return sorted(p.stem for p in _CHAPTERS_DIR.glob("*.py") if p.stem != "__init__")


def chapter_module(chapter: str):
    """The module holding a chapter's SCHEMA and PRESETS (kept apart so that editing one chapter's presets
    does not change the code every other chapter depends on)."""
    if chapter not in chapter_names():
        one_of(*chapter_names())("chapter", chapter)
    return importlib.import_module(f"{__package__}.chapters.{chapter}")


def schema(chapter: str) -> dict[str, Param]:
    return chapter_module(chapter).SCHEMA


def presets(chapter: str) -> dict[str, dict[str, Any]]:
    return chapter_module(chapter).PRESETS


class Config(dict):
    """A validated parameter set; keys are also attributes (``cfg.ipc``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("Config is read-only; pass overrides to make_config")


def _unknown(name: str, known) -> ConfigError:
    hint = difflib.get_close_matches(name.lower(), list(known), n=1)
    return ConfigError(f"unknown parameter {name!r}" + (f" (did you mean {hint[0].upper()!r}?)" if hint else "")
                       + f"; known parameters: {', '.join(sorted(k.upper() for k in known))}")


def make_config(chapter: str, preset: str = "cpu", check_data: bool = True, **overrides) -> Config:
    """Preset ``preset`` of ``chapter`` with ``overrides`` applied, validated before any compute.

    Override names are case-insensitive (notebook parameters are upper case). With ``check_data`` the
    dataset is resolved ('auto') and its files are checked, so a missing dataset fails here.
    """
    schema_, presets_ = schema(chapter), presets(chapter)
    one_of(*presets_)("preset", preset)
    values = dict(presets_[preset])
    for name, value in overrides.items():
        key = name.lower()
        if key not in schema_:
            raise _unknown(name, schema_)
        values[key] = list(value) if isinstance(value, tuple) else value
    for key, param in schema_.items():
        if key not in values:
            raise ConfigError(f"preset {preset!r} of {chapter!r} does not set {key!r}")
        param.check(key, values[key])
    values["chapter"], values["preset"] = chapter, preset
    if "precision" in values:                    # 'auto' -> what this machine runs, recorded with the run
        from .precision import resolve
        try:
            values["precision"] = resolve(values["precision"], resolve_device(values.get("device", "auto")))
        except ConfigError:
            values["precision"] = resolve(values["precision"], "cpu")
    module = chapter_module(chapter)
    if hasattr(module, "check"):                 # rules between parameters, raising ConfigError
        module.check(values)
    if hasattr(module, "resolve_data"):          # a chapter whose datasets are built from registry datasets
        values = module.resolve_data(values, check_data)
    elif check_data and "dataset" in values:
        from .data import resolve_dataset
        values["dataset"] = resolve_dataset(values["dataset"], values.get("data_root"))
    return Config(values)


_NOTEBOOK_RESERVED = {"In", "Out", "get_ipython", "exit", "quit", "open", "PRESET"}


PRESET_ENV = "LTDD_PRESET"


def notebook_config(chapter: str, namespace: dict, **kwargs) -> Config:
    """Build the chapter's config from a notebook's globals (its parameters cell plus papermill's injection).

    Every plain-data global that is not private is taken as a parameter, so a misspelt name injected by
    papermill (``-p IPCC 10``) fails here instead of being silently ignored. ``None`` means "the preset's
    value".

    A notebook run outside the runner (JupyterLab, ``pytest --nbval-lax``) takes its preset from
    ``$LTDD_PRESET`` when that is set, instead of the parameters cell's ``PRESET``: ``LTDD_PRESET=smoke pytest
    --nbval-lax notebooks/`` runs every chapter at the smoke preset. The runner (``python -m ltdd_utils
    reproduce``) passes its preset explicitly and ignores the variable.
    """
    import os
    plain = (bool, int, float, str, list, tuple, dict)
    params = {k: v for k, v in namespace.items()
              if not k.startswith("_") and k not in _NOTEBOOK_RESERVED and isinstance(v, plain)}
    preset = os.environ.get(PRESET_ENV)
    if preset:
        print(f"preset {preset!r} from ${PRESET_ENV}")
    return make_config(chapter, preset or namespace.get("PRESET", "cpu"), **params, **kwargs)


def describe(chapter: str) -> str:
    """One line per parameter of a chapter: name, description and each preset's value."""
    lines, presets_ = [], presets(chapter)
    for key, p in schema(chapter).items():
        vals = ", ".join(f"{pr}={presets_[pr][key]!r}" for pr in presets_)
        lines.append(f"{key.upper():20s} {p.doc}  [{vals}]")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- device
def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"parameter 'device' = {device!r}: CUDA is not available on this machine; use 'auto' or 'cpu'")
    return dev
