"""Numerical precision of the compute: ``fp32`` or ``bf16`` (``auto``: bf16 where the hardware has it).

bf16 applies to convolutions and matrix products only (``torch.autocast``); master copies (synthetic
images, weights, optimiser state) stay fp32, and losses, class means and statistics reduce in fp32.
``auto`` resolves to bf16 on a CPU with AMX-bf16 or AVX512-bf16 and on a CUDA device that supports bf16,
to fp32 elsewhere (silently: no bf16 is not an error). ``$LTDD_PRECISION`` (``fp32`` or ``bf16``, any case;
``auto`` or unset: the hardware decides) says what ``auto`` means on this machine instead, e.g.
``LTDD_PRECISION=fp32 make test`` runs the suite as a CPU without bf16 would; an explicit ``fp32`` or ``bf16``
and the :func:`default` context are never overridden. ``bf16`` is taken as asked for even where the hardware lacks
it (a CPU without bf16 emulates it, slowly). The resolved precision is part of the cache key
of every product computed under it and of each run's provenance; what a chapter *asked for* (``auto`` or an
explicit value) is what decides whether its executed copy is up to date (:func:`ltdd_utils.cli.staleness`).
"""
from __future__ import annotations

import contextlib
import functools
import os

import torch

from .checks import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_ENV = "LTDD_PRECISION"        # what 'auto' means on this machine: fp32 or bf16 (unset or auto: the hardware)


@functools.lru_cache(maxsize=None)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU's bf16 matrix/vector extensions (``amx_bf16``, ``avx512_bf16``), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(sorted(flags & {"amx_bf16", "avx512_bf16"}))
    except OSError:
        pass
    return ()


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name (``AMD EPYC``, ``Intel(R) Xeon(R) ...``) from /proc/cpuinfo, else the platform's
    machine name."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve(precision: str = "auto", device="cpu") -> str:
    """``fp32`` or ``bf16`` for ``precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not allowed: expected one of {PRECISIONS}")
    if precision == "auto" and _DEFAULT and _DEFAULT[-1] != "auto":
        precision = _DEFAULT[-1]
    if precision == "auto":
        precision = environment_default()
    if precision != "auto":
        return precision
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if dev.type == "cpu" and cpu_bf16_flags() else "fp32"


def environment_default() -> str:
    """``$LTDD_PRECISION`` when set (``auto``, ``fp32`` or ``bf16``), else ``auto``; any other value is an error
    naming the variable."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ConfigError(f"${PRECISION_ENV} = {os.environ[PRECISION_ENV]!r} is not allowed: expected one of "
                          f"{PRECISIONS} (or unset: bf16 where the hardware has it, else fp32)")
    return value


def autocast(precision: str, device="cpu"):
    """A context running convolutions and matrix products in bf16 when ``precision`` resolves to bf16."""
    dev = torch.device(device)
    if resolve(precision, dev) == "bf16":
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


_DEFAULT: list[str] = []       # a stack: what "auto" means inside :func:`default`


@contextlib.contextmanager
def default(precision: str):
    """Inside this context ``auto`` resolves to ``precision`` (e.g. the golden cases pin fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not allowed: expected one of {PRECISIONS}")
    _DEFAULT.append(precision)
    try:
        yield
    finally:
        _DEFAULT.pop()
