"""Result records with provenance, written atomically to JSON and CSV, and read back for tables.

A record is one measurement: one student evaluated on the test set after one distillation run. Tables
aggregate records into mean ± std over seeds and students.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .cache import atomic_write_text


def git_commit(path: str | Path = ".") -> str:
    """The current commit (with '+dirty' when the work tree has changes), or 'unknown' outside git.
    $LTDD_COMMIT, when set, is taken instead: for a copy of the checkout run elsewhere (e.g. on a rented GPU)."""
    if os.environ.get("LTDD_COMMIT"):
        return os.environ["LTDD_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=path, capture_output=True,
                                text=True, check=True).stdout.strip()
        # the run's own outputs (executed chapters, result files, distilled sets) do not make the code dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                ":(top,exclude)book/results", ":(top,exclude)book/chapters",
                                ":(top,exclude)book/sets", ":(top,exclude)book/sets.md"], cwd=path,
                               capture_output=True, text=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device) -> str:
    import torch
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    from .precision import cpu_bf16_flags, cpu_model
    return (f"cpu:{cpu_model()} x{torch.get_num_threads()} threads "
            f"({', '.join(cpu_bf16_flags()) or 'no bf16 extension'})")


def provenance(preset: str, device, seeds) -> dict:
    """What every record of a run carries besides its numbers."""
    import torch
    return {"preset": preset, "device": device_name(device), "seeds": list(seeds), "commit": git_commit(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S")}


@dataclass
class ResultRecord:
    chapter: str
    method: str
    dataset: str
    setting: dict            # e.g. {"imbalance_factor": 100} / bias / noise
    ipc: int
    seed: int
    metrics: dict            # acc, per_class, acc_many, ... (percentages)
    preset: str
    device: str
    commit: str
    wall_time_s: float
    date: str
    data_source: str = ""
    extra: dict = field(default_factory=dict)
    student_steps: int | None = None     # optimiser steps of the student (the evaluation protocol's budget)
    precision: str | None = None         # the precision the student trained in


def make_record(chapter, method, dataset, setting, ipc, seed, metrics, prov: dict, wall_time_s: float,
                data_source: str = "", **extra) -> ResultRecord:
    """A record; ``student_steps`` and ``precision`` (from :func:`ltdd_utils.evaluate.evaluate_synset`) are
    taken out of ``metrics`` into their own fields."""
    metrics = dict(metrics)
    steps, precision = metrics.pop("student_steps", None), metrics.pop("precision", None)
    return ResultRecord(chapter, method, dataset, dict(setting), ipc, seed, metrics, prov["preset"],
                        prov["device"], prov["commit"], round(wall_time_s, 2), prov["date"], data_source, extra,
                        steps, precision)


def _flat(rec: dict) -> dict:
    row = {k: v for k, v in rec.items() if k not in ("setting", "metrics", "extra")}
    row.update({f"setting.{k}": v for k, v in rec["setting"].items()})
    for k, v in rec["metrics"].items():
        if isinstance(v, list):
            row.update({f"{k}.{i}": x for i, x in enumerate(v)})
        else:
            row[k] = v
    row.update({f"extra.{k}": v for k, v in rec.get("extra", {}).items() if not isinstance(v, (list, dict))})
    return row


def write_records(records, path: str | Path) -> tuple[Path, Path]:
    """Write records to ``<path>.json`` (complete) and ``<path>.csv`` (flat), each atomically."""
    path = Path(path)
    rows = [asdict(r) if isinstance(r, ResultRecord) else r for r in records]
    jpath, cpath = path.with_suffix(".json"), path.with_suffix(".csv")
    atomic_write_text(jpath, json.dumps(rows, indent=1))
    flat = [_flat(r) for r in rows]
    cols = list(dict.fromkeys(k for r in flat for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, cols)
    writer.writeheader()
    writer.writerows(flat)
    atomic_write_text(cpath, buf.getvalue())
    return jpath, cpath


def read_records(path: str | Path) -> list[dict]:
    return json.loads(Path(path).with_suffix(".json").read_text())


def to_frame(records):
    """A pandas DataFrame with one row per record; setting and metric keys flattened (``setting.x``, ``acc``)."""
    import pandas as pd
    rows = [asdict(r) if isinstance(r, ResultRecord) else r for r in records]
    return pd.DataFrame([_flat(r) for r in rows])


def summarize(df, by: list[str], metrics=("acc", "acc_many", "acc_medium", "acc_few"), digits: int = 1):
    """A table of 'mean ± std (n)' per group of ``by`` for each metric column present."""
    import pandas as pd
    cols = [m for m in metrics if m in df.columns]
    g = df.groupby(by, sort=False)[cols]
    mean, std, n = g.mean(), g.std(ddof=1).fillna(0.0), g.size()
    out = pd.DataFrame(index=mean.index)
    for c in cols:
        out[c] = [f"{m:.{digits}f} ± {s:.{digits}f}" if m == m else "–" for m, s in zip(mean[c], std[c])]  # NaN: –
    out["n"] = n
    return out


# -------------------------------------------------------------------------------------------- verdicts
def per_seed(records, select: dict, metric: str = "acc") -> dict[int, float]:
    """Mean of ``metric`` over the records of each seed matching ``select`` (keys of the flat view: ``method``,
    ``ipc``, ``setting.imbalance_factor``, ...), for tables and figures. Claims never use it: they select exactly
    (:mod:`ltdd_utils.verdicts`)."""
    rows = [_flat(asdict(r) if isinstance(r, ResultRecord) else r) for r in records]
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        if all(r.get(k) == v for k, v in select.items()) and r.get(metric) is not None:
            by_seed.setdefault(int(r["seed"]), []).append(float(r[metric]))
    return {s: sum(v) / len(v) for s, v in sorted(by_seed.items())}


def write_claims(claims: list[dict], path: str | Path) -> Path:
    """Judged claims (:func:`ltdd_utils.verdicts.evaluate`'s rows) to ``<path>_claims.json`` (``path`` as for :func:`write_records`), atomically."""
    path = Path(path)
    out = path.with_name(path.name + "_claims.json")
    atomic_write_text(out, json.dumps(claims, indent=1))
    return out
