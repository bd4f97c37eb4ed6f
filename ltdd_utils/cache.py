"""Atomic writes and a configuration-keyed cache for expensive products.

Teachers, experts, distilled sets and decoded datasets are stored under ``cache_dir()`` in a file whose
name is a hash of the configuration that produced them, so a changed configuration never reads a stale
product and an unchanged one is never recomputed.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

CACHE_ENV = "LTDD_CACHE"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache root: ``path``, else ``$LTDD_CACHE``, else ``~/.cache/ltdd``."""
    root = path or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ltdd"
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def content_digest(*objects) -> str:
    """A short hash of tensors (dtype, shape and bytes), networks (their state: names and tensors) and
    JSON-serialisable values, in order; ``None`` counts as a value. For keys that must name content, not a path."""
    h = hashlib.sha1()

    def tensor(t: torch.Tensor):
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for o in objects:
        if isinstance(o, torch.Tensor):
            tensor(o)
        elif isinstance(o, torch.nn.Module):
            h.update(type(o).__name__.encode())
            for name, t in o.state_dict().items():
                h.update(name.encode())
                tensor(t)
        else:
            h.update(json.dumps(o, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)                   # mkstemp makes it private; the product is a normal file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def partial_path(kind: str, config: dict, root: str | os.PathLike | None = None) -> Path:
    """Where a long computation of ``config`` keeps its resumable checkpoint (beside the final product)."""
    return cache_dir(root) / kind / f"{config_key(config)}.partial.pt"


def mark_versions(config: dict) -> None:
    """Log the producers named in ``config["versions"]`` as used by this run (:func:`ltdd_utils.versions.mark_used`):
    a product read from the cache stands for the producers that made it, so an executed copy made with a warm
    cache still records them and goes stale when one of their versions changes."""
    from .versions import mark_used
    for name in (config.get("versions") or {}):
        mark_used(name)


def cached(kind: str, config: dict, compute: Callable[[], Any], root: str | os.PathLike | None = None,
           verbose: bool = True, exact: bool = False) -> Any:
    """Return the product of ``compute()`` for ``config``, computing and storing it on first use.

    The file is ``<cache>/<kind>/<hash(config)>.pt``; the configuration is stored beside the product so a
    reader can see what a file holds. With ``exact`` a stored product is reused only when its stored configuration
    equals ``config``, not only its hash (for configurations of plain values). The producers in
    ``config["versions"]`` are logged as used either way (:func:`mark_versions`).
    """
    mark_versions(config)
    path = cache_dir(root) / kind / f"{config_key(config)}.pt"
    if path.exists():
        stored = torch.load(path, weights_only=False)
        if not exact or stored["config"] == config:
            if verbose:
                print(f"[cache] reuse {kind} {path.name}")
            return stored["product"]
    product = compute()
    atomic_torch_save({"config": config, "product": product}, path)
    if verbose:
        print(f"[cache] stored {kind} {path.name}")
    return product
