"""Progress reporting: a bar in JupyterLab, one line per step under papermill, scripts and tests.

``LTDD_PROGRESS=lines`` (set by the batch runner and the tests) forces plain lines.
"""
from __future__ import annotations

import os
import sys
import time


def _use_bar() -> bool:
    if os.environ.get("LTDD_PROGRESS", "") == "lines":
        return False
    return "ipykernel" in sys.modules


class Progress:
    """``with Progress(total, 'dm') as p: ... p.update(loss=...)``; lines every ``every`` steps and at the end."""

    def __init__(self, total: int, desc: str, every: int | None = None):
        self.total, self.desc, self.i, self.t0 = total, desc, 0, time.time()
        self.every = every or max(1, total // 10)
        self.bar = None
        if _use_bar():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=desc, leave=False)

    def update(self, n: int = 1, **metrics):
        self.i += n
        if self.bar is not None:
            self.bar.update(n)
            if metrics:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
        elif self.i % self.every == 0 or self.i == self.total:
            text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            print(f"[{self.desc}] {self.i}/{self.total} {text} ({time.time() - self.t0:.0f}s)", flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
