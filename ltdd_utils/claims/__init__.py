"""Every chapter's claims, as data: one module per chapter (``claims/<chapter>.py``) whose ``claims(cfg)`` lists the
:class:`~ltdd_utils.verdicts.Claim` objects the chapter judges under that configuration (the arms a preset runs
decide which claims exist; never the results), and, where a claim is on a quantity computed from the records (an
amplification index), ``derive(records, cfg)`` giving those quantities as records of their own.

:func:`judge` is the one call a chapter's "What we saw", the claims page and the recomputation test make: the
chapter's declared claims, judged by :func:`ltdd_utils.verdicts.evaluate` on the same records.
"""
from __future__ import annotations

import importlib
from typing import Mapping

from ..config import Config
from ..verdicts import Arm, Claim, Contrast, evaluate

__all__ = ["Arm", "Claim", "Contrast", "declared", "derived", "judge", "shared", "PAPERS"]

# each paper's chapter: who wrote it, as the claims page names it
PAPERS = {
    "adsa": "Jiang et al., NeurIPS 2025 (ADSA)",
    "unbiased_recovery": "Cui et al., AAAI 2026 (unbiased recovery and relabeling)",
    "csdm": "Wu, Wang, Chen et al., 2026 (CSDM)",
    "kde_debias": "Cui, Wang, Xiong, Hsieh, ICML 2024 (KDE reweighting)",
    "tad": "Wu et al., 2025 (TAD)",
}


def _module(chapter: str):
    return importlib.import_module(f"{__name__}.{chapter}")


def declared(chapter: str, cfg: Mapping) -> list[Claim]:
    """The claims ``chapter`` judges under ``cfg`` (a Config, or a recorded configuration dict)."""
    return _module(chapter).claims(cfg if isinstance(cfg, Config) else Config(cfg))


def shared(chapter: str, records=()) -> str:
    """What every seed of the chapter shares (a note beside its verdicts; empty: seeds re-draw everything). A
    chapter's ``SHARED`` is a text, or a function of its run's records (flat dicts) where what the seeds share
    changed between versions of the chapter, so that an older run's note says what that run shared."""
    from ..verdicts import _flat
    note = getattr(_module(chapter), "SHARED", "")
    return note([_flat(r) for r in records]) if callable(note) else note


def derived(chapter: str, records, cfg: Mapping) -> list[dict]:
    """The chapter's records with the quantities its claims compute from them (none for most chapters)."""
    from dataclasses import asdict
    rows = [r if isinstance(r, dict) else asdict(r) for r in records]
    derive = getattr(_module(chapter), "derive", None)
    return rows + (derive(rows, cfg if isinstance(cfg, Config) else Config(cfg)) if derive else [])


def judge(chapter: str, cfg: Mapping, records, missing: str = "raise") -> list[dict]:
    """One row per declared claim of ``chapter``, judged on ``records`` (see :func:`ltdd_utils.verdicts.evaluate`)."""
    return evaluate(declared(chapter, cfg), derived(chapter, records, cfg), missing=missing)


def config_of(meta: Mapping, records=()) -> Config:
    """The configuration a chapter's run had, from its executed copy's metadata (``metadata.ltdd``: preset and
    parameters), resolved without touching the data root: a dataset left at ``auto`` is the one its records name
    (:data:`ltdd_utils.data.AUTO_BY_NAME`), so that what a preset derives from it (e.g. CIFAR-10N sweeps) is what
    ran, on any machine."""
    from ..config import make_config
    from ..data import AUTO_BY_NAME
    chapter, preset = meta["inputs"]["config"]["chapter"], meta["preset"]
    params = {k.lower(): v for k, v in meta.get("parameters", {}).items() if k.upper() != "PRESET"}
    cfg = make_config(chapter, preset, check_data=False, **params)
    if cfg.get("dataset") == "auto":
        names = {AUTO_BY_NAME.get(r["dataset"] if isinstance(r, dict) else r.dataset) for r in records} - {None}
        if len(names) == 1:
            cfg = make_config(chapter, preset, check_data=False, **{**params, "dataset": names.pop()})
    return cfg


def recompute(executed, records_path) -> list[str]:
    """An independent check of one executed chapter: its declared claims re-judged from its records
    (``records_path``, the ``.json`` the run wrote) must give the rows it wrote beside them (``<stem>_claims.json``)
    and the lines its "What we saw" printed. Returns the differences (empty: it agrees)."""
    import json
    import math
    from pathlib import Path
    from ..verdicts import describe
    records_path = Path(records_path)
    records, nb = json.loads(records_path.read_text()), json.loads(Path(executed).read_text())
    cfg = config_of(nb["metadata"]["ltdd"], records)
    rows = judge(cfg.chapter, cfg, records)
    written = {r.get("id"): r for r in json.loads(records_path.with_name(records_path.stem + "_claims.json").read_text())}
    text = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nb["cells"]
                     for o in c.get("outputs", []))
    out = []
    for r in rows:
        w = written.get(r["id"])
        same = lambda a, b: a == b or (isinstance(a, float) and isinstance(b, float) and
                                       (math.isclose(a, b, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))))
        if w is None:
            out.append(f"{r['id']}: not among the rows the run wrote")
        elif not (w["verdict"] == r["verdict"] and same(w["mean"], r["mean"]) and w["n"] == r["n"]):
            out.append(f"{r['id']}: the run wrote {w['verdict']} ({w['mean']}, n = {w['n']}), recomputed "
                       f"{r['verdict']} ({r['mean']}, n = {r['n']})")
        if describe(r) not in text:
            out.append(f"{r['id']}: its line is not in the chapter's output: {describe(r)}")
    out += [f"{i}: written by the run but not declared" for i in set(written) - {r["id"] for r in rows}]
    return out
