"""Glue every chapter uses between a validated config and the library: model factories, evaluation
settings, the test split, provenance and where results go."""
from __future__ import annotations

from pathlib import Path

import torch

from .config import Config, resolve_device
from .data import ImageData, load_dataset
from .evaluate import EvalSettings
from .models import get_model


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
    return lambda: get_model(cfg.model, data.shape[0], data.num_classes, data.shape[1:],
                             width=width or cfg.width, depth=cfg.depth, norm=cfg.norm)


def eval_settings(cfg: Config, **overrides) -> EvalSettings:
    s = EvalSettings(model=cfg.model, width=cfg.eval_width, depth=cfg.depth, norm=cfg.norm, epochs=cfg.eval_epochs,
                     lr=cfg.eval_lr, batch=cfg.eval_batch, aug=cfg.eval_aug, students=cfg.eval_students)
    for k, v in overrides.items():
        setattr(s, k, v)
    return s


def device(cfg: Config) -> torch.device:
    return resolve_device(cfg.device)


def results_path(cfg: Config, name: str | None = None) -> Path:
    """``<results_dir>/<chapter>_<preset>`` (no suffix); results_dir defaults to the checkout's book/results."""
    root = Path(cfg.results_dir) if cfg.get("results_dir") else Path(__file__).resolve().parent.parent / "book" / "results"
    return root / f"{name or cfg.chapter}_{cfg.preset}"
