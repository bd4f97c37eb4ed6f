"""The distilled sets the chapters show, as small files in the site, and the call that loads one.

A chapter's study lists the sets its figures show (``Study.shown_sets()``); after a chapter's run,
``python -m ltdd_utils reproduce`` writes each into ``book/sets/<chapter>_<preset>/<name>.npz`` (still inside the
run's cache, so the sets are the run's own): the images (normalised, float16), the labels and a provenance JSON
(chapter, how the images were made, setting, IPC, seed, the run's commit, device and precision, and the accuracy
the chapter's records give the students trained on them). ``python -m ltdd_utils sets`` writes the site's
"Distilled sets" page (``book/sets.md``) from those files; the build serves each file as a download.

``load(path_or_url)`` gives a :class:`~ltdd_utils.distill.SyntheticSet` ready for the book's evaluation protocol
(:func:`ltdd_utils.evaluate.evaluate_synset`). The files are plain NumPy archives (no pickles), so a downloaded
set is safe to open.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .cache import atomic_write_bytes, atomic_write_text, cache_dir

ROOT = Path(__file__).resolve().parent.parent
SETS = ROOT / "book" / "sets"
PAGE = ROOT / "book" / "sets.md"
FORMAT = 1
BUDGET_MB = 20            # what the sets may add to the site, all together (issue 41)


def export(syn, path: str | Path, provenance: dict) -> Path:
    """Write ``syn`` (normalised images, hard labels) with ``provenance`` to ``path`` (``.npz``), atomically. The
    images are stored as float16: a set loads back within float16 rounding of what the students saw."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"a set file ends in .npz, not {path.name!r}")
    images = syn.images.detach().cpu().float()
    if not torch.isfinite(images).all():
        raise ValueError(f"{path.name}: the set has non-finite pixels")
    prov = {"format": FORMAT, **provenance, "images": list(images.shape), "num_classes": syn.num_classes,
            "class_counts": syn.class_counts()}
    buf = io.BytesIO()
    np.savez_compressed(buf, images=images.numpy().astype(np.float16), labels=syn.labels.cpu().numpy().astype(np.int64),
                        provenance=np.array(json.dumps(prov, sort_keys=True)))
    atomic_write_bytes(path, buf.getvalue())
    return path


def _fetch(url: str, cache_root=None) -> Path:
    """A URL's bytes in the cache (``downloads/<sha of the URL>.npz``), downloaded once."""
    target = cache_dir(cache_root) / "downloads" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.npz"
    if not target.exists():
        with urllib.request.urlopen(url, timeout=60) as r:
            atomic_write_bytes(target, r.read())
    return target


def load(source: str | Path, cache_root=None):
    """The set at ``source`` (a path, or an ``http(s)://`` or ``file://`` URL: a set's link on the site's
    "Distilled sets" page) as a :class:`~ltdd_utils.distill.SyntheticSet`: float32 normalised images, hard
    labels, the class count, and the provenance as ``meta`` (``meta["mean"]``/``["std"]`` undo the
    normalisation)."""
    from .distill import SyntheticSet
    text = str(source)
    scheme = urllib.parse.urlparse(text).scheme
    if scheme in ("http", "https"):
        path = _fetch(text, cache_root)
    elif scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(text).path))
    else:
        path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no set at {source}")
    with np.load(path, allow_pickle=False) as z:
        missing = {"images", "labels", "provenance"} - set(z.files)
        if missing:
            raise ValueError(f"{source}: not a set of this book (no {sorted(missing)})")
        prov = json.loads(str(z["provenance"]))
        if prov.get("format") != FORMAT:
            raise ValueError(f"{source}: set format {prov.get('format')}, this library reads {FORMAT}")
        images = torch.from_numpy(z["images"].astype(np.float32))
        labels = torch.from_numpy(z["labels"].astype(np.int64))
    return SyntheticSet(images, labels, prov["num_classes"], meta=prov)


def recorded_accuracy(records: list[dict], arm: dict, seed: int) -> dict | None:
    """What the records of ``arm`` (``method``, ``study``, ``ipc``, ``setting``: selected exactly, as the claims
    select) give at ``seed``: accuracy overall and per group, each the mean over the seed's students; None when
    the arm has no record at that seed."""
    from .verdicts import Arm, NotRecorded, select
    a = Arm(arm["method"], arm["study"], arm["ipc"], arm.get("setting", {}))
    out = {}
    for metric in ("acc", "acc_many", "acc_medium", "acc_few"):
        try:
            by_seed = select(records, a, metric)
        except NotRecorded:
            return None
        if seed not in by_seed:
            return None
        out[metric] = round(by_seed[seed], 2)
    return out


def export_chapter(chapter: str, preset: str, params: dict, run_meta: dict | None = None,
                   out_dir: Path | None = None) -> list[Path]:
    """Write every set ``chapter``'s study shows (``Study.shown_sets()``) at ``preset``, with the accuracy its
    records give each arm trained on it. The sets come through the study's cached producers: right after the
    chapter's run they are the run's own. Returns the files written (none where the study shows no set)."""
    import importlib
    from .config import make_config
    from .experiment import Run
    from .results import read_records
    study = importlib.import_module(f".studies.{chapter}", __package__)
    if not hasattr(study.Study, "shown_sets"):
        return []
    cfg = make_config(chapter, preset, **params)
    run = Run(cfg)
    records = read_records(run.path)
    st = study.Study(run)
    folder = (out_dir or SETS) / f"{chapter}_{preset}"
    meta = run_meta or {}
    written = []
    for item in st.shown_sets():
        arms = [{**a, "recorded": recorded_accuracy(records, a, item["seed"])} for a in item["arms"]]
        prov = {"chapter": chapter, "preset": preset, "name": item["name"], "title": item["title"],
                "made_by": item["made_by"], "setting": item["setting"], "ipc": item["ipc"], "seed": item["seed"],
                "dataset": run.train.name, "data_source": run.train.source, "classes": list(run.train.classes),
                "mean": list(run.train.mean), "std": list(run.train.std), "arms": arms,
                "run": {k: meta.get(k) for k in ("commit", "device", "date", "runtime_s", "cold")}
                | {"precision": run.prov["precision"], "student_steps": cfg.get("student_steps")},
                "exported": {"commit": run.prov["commit"], "date": time.strftime("%Y-%m-%d %H:%M:%S")}}
        written.append(export(item["set"], folder / f"{item['name']}.npz", prov))
    return written


# ---------------------------------------------------------------------------------------------- the site's page
def _files(root: Path = SETS) -> list[Path]:
    return sorted(root.glob("*/*.npz"))


def _provenance(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["provenance"]))


def _accuracies(prov: dict) -> str:
    parts = [f"`{a['method']}` {a['recorded']['acc']:.1f} (few {a['recorded'].get('acc_few', float('nan')):.1f})"
             for a in prov["arms"] if a.get("recorded")]
    return "; ".join(parts) or "not in the records"


def sets_markdown(root: Path = SETS) -> str:
    """The "Distilled sets" page: every set file with its provenance, the records' accuracy of the students
    trained on it, a download link, and how to load one."""
    files = _files(root)
    total = sum(p.stat().st_size for p in files) / 2 ** 20
    lines = ["# Distilled sets", "",
             "The distilled sets the chapters show, as the runs that the chapters report made them, each a small "
             "NumPy archive with its provenance (chapter, how the images were made, setting, IPC, seed, the run's "
             "commit, device and precision). The accuracy beside each set is what the chapter's records give the "
             "students trained on it, one per label arm (overall and on the few group, in %): the `hard` arm needs "
             "the file alone; the soft-label arms relabel every crop with the chapter's teacher, which is not part of "
             "the file.", "",
             "Load one, by its link below or a local path, into tensors ready for the book's evaluation protocol:", "",
             "```python", "from ltdd_utils import sets",
             "s = sets.load(\"https://…/adsa_cpu/….npz\")   # or a path",
             "s.images, s.labels, s.meta[\"arms\"]   # normalised float32 images, hard labels, provenance", "```", "",
             f"{len(files)} file(s), {total:.1f} MB in all (the site's budget for sets: {BUDGET_MB} MB). Images are "
             "stored as float16.", ""]
    if not files:
        return "\n".join(lines + ["No chapter run has written a set yet.", ""])
    lines += ["| set | chapter | made by | setting | IPC | seed | images | run | students' test accuracy (records) |"
              " file |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in files:
        prov = _provenance(p)
        rel = p.relative_to(PAGE.parent) if p.is_relative_to(PAGE.parent) else p
        setting = ", ".join(f"{k} {v}" for k, v in prov["setting"].items())
        run = prov["run"]
        lines.append(f"| {prov['title']} | {prov['chapter']} ({prov['preset']}) | {prov['made_by']} | {setting} | "
                     f"{prov['ipc']} | {prov['seed']} | {prov['images'][0]} | commit `{run.get('commit')}`, "
                     f"{run.get('precision')} | {_accuracies(prov)} | "
                     f"{{download}}`{p.name} <{rel.as_posix()}>` ({p.stat().st_size / 2 ** 10:.0f} kB) |")
    return "\n".join(lines + [""])


def write_page(check: bool = False) -> int:
    """Write ``book/sets.md``; with ``check``, return 1 when it differs from what the set files give."""
    text = sets_markdown()
    if check:
        same = PAGE.exists() and PAGE.read_text() == text
        print("book/sets.md is up to date" if same else "book/sets.md is stale: run `python -m ltdd_utils sets`")
        return 0 if same else 1
    atomic_write_text(PAGE, text)
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(_files())} set file(s))")
    return 0
