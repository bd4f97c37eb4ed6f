"""Producers and their versions: what a cached product and an executed chapter depend on.

A *producer* is a function whose output is a result (a dataset split, a trained network, a distilled set,
an evaluation). Each is registered here under a name with an integer version::

    @producer("distill.dm", 1, uses=("pixels", "augment", "models"))
    def distribution_matching(...): ...

* The version is part of the cache key of every product it makes (:func:`key_versions`, with the
  versions of the producers it ``uses``), so a real change, with its version bumped, never reads a stale
  product, and a docstring edit or a behaviour-preserving refactor reuses every product.
* A chapter run records which producers it called (:func:`used`; the runner collects them through
  ``$LTDD_PRODUCER_LOG``); its executed copy is stale when one of their versions changes.
* ``tests/test_golden.py`` runs every producer on a tiny case and fails when the output changed while the
  version did not, naming the version to bump.

Bump a version when a producer's output changes on purpose (a fixed bug, a new default); never otherwise.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

PRODUCERS: dict[str, int] = {}        # name -> version
USES: dict[str, tuple[str, ...]] = {}  # name -> producers it builds on
LOG_ENV = "LTDD_PRODUCER_LOG"
_used: set[str] = set()


def register(name: str, version: int, uses: tuple[str, ...] = ()) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"producer {name!r}: version {version!r} must be an integer >= 1")
    if PRODUCERS.get(name, version) != version:
        raise ValueError(f"producer {name!r} registered twice with versions {PRODUCERS[name]} and {version}")
    PRODUCERS[name], USES[name] = version, tuple(uses)


def mark_used(name: str) -> None:
    """Note that ``name`` (and what it builds on) ran in this process, once per name."""
    if name in _used:
        return
    _used.add(name)
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a") as f:
            f.write(f"{name}\n")
    for dep in USES.get(name, ()):
        mark_used(dep)


def producer(name: str, version: int, uses: tuple[str, ...] = ()) -> Callable:
    """Register a producer and record each use of the decorated function."""
    register(name, version, uses)

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            mark_used(name)
            return fn(*args, **kwargs)
        run.producer = name
        return run
    return wrap


def closure(names) -> list[str]:
    """``names`` and every producer they build on, sorted."""
    out, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n not in out:
            out.add(n)
            todo += USES.get(n, ())
    return sorted(out)


def key_versions(*names: str) -> dict[str, int]:
    """The versions a product of the producers ``names`` depends on: theirs and those of all they build on
    (the part of a cache key that changes when a producer's output changes on purpose)."""
    load_all()
    unknown = [n for n in names if n not in PRODUCERS]
    if unknown:
        raise ValueError(f"unknown producer(s) {unknown}: registered are {sorted(PRODUCERS)}")
    return {n: PRODUCERS[n] for n in closure(names)}


def used() -> dict[str, int]:
    """Producers used in this process so far, with their versions."""
    return {n: PRODUCERS[n] for n in sorted(_used)}


def load_all() -> dict[str, int]:
    """Import every module that registers producers; returns the registry."""
    import importlib
    for mod in ("data", "data.longtail", "data.bias", "data.noise", "models", "augment", "train", "distill",
                "distill.feature_nets",
                "evaluate", "results", "methods.adsa", "methods.csdm", "methods.kde_debias", "methods.debias_baselines",
                "methods.tad", "methods.unbiased_recovery", "verdicts", "teachers"):
        importlib.import_module(f"{__package__}.{mod}")
    return dict(PRODUCERS)
