"""The distilled sets the chapters show, as small files in the site, and the call that loads one.

A chapter's study lists the sets its figures show (``Study.shown_sets()``; chapter 01: the images recovered at its
main factor, first IPC and first seed); right after a chapter's run at a book preset (``cpu``, ``paper``),
``python -m ltdd_utils reproduce`` writes each into ``book/sets/<chapter>_<preset>/`` from the run's own cache, as
``<chapter>_<preset>_<name>.npz``: the images (normalised, float16), the labels and a provenance JSON (chapter, how
the images were made, setting, IPC, seed, the run's commit, parameters, device and precision, the students'
settings, and the accuracy the chapter's records give the students trained on the set at its seed).
``python -m ltdd_utils sets`` writes the site's "Distilled sets" page (``book/sets.md``) from those files, each with
its size and SHA-256; the build serves each file as a download.

``load(path_or_url)`` gives a :class:`~ltdd_utils.distill.SyntheticSet` ready for the book's evaluation protocol
(:func:`ltdd_utils.evaluate.evaluate_synset`). The files are plain NumPy archives (no pickles), so a downloaded
set is safe to open.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
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
BUDGET_MB = 20            # what the sets may add to the site, all together (MiB)
BOOK_PRESETS = ("cpu", "paper")      # the presets whose runs the site reports; other presets' sets stay out of it
MAGIC = b"PK\x03\x04"      # an .npz is a zip archive


def export(syn, path: str | Path, provenance: dict) -> Path:
    """Write ``syn`` (normalised images, hard labels) with ``provenance`` to ``path`` (``.npz``), atomically. The
    images are stored as float16: a set loads back within float16 rounding of what the students saw."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"a set file ends in .npz, not {path.name!r}")
    images = syn.images.detach().cpu().float()
    if not torch.isfinite(images).all():
        raise ValueError(f"{path.name}: the set has non-finite pixels")
    prov = {**provenance, "format": FORMAT, "images": list(images.shape), "num_classes": syn.num_classes,
            "class_counts": syn.class_counts()}
    buf = io.BytesIO()
    np.savez_compressed(buf, images=images.numpy().astype(np.float16), labels=syn.labels.cpu().numpy().astype(np.int64),
                        provenance=np.array(json.dumps(prov, sort_keys=True)))
    atomic_write_bytes(path, buf.getvalue())
    return path


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fetch(url: str, cache_root=None) -> Path:
    """Download ``url`` into the cache (``downloads/<sha of the URL>.npz``, replaced on every call: a re-exported set
    keeps its URL) after checking that it is an archive."""
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            data = r.read()
    except OSError as e:                     # URLError and HTTPError are OSErrors
        raise OSError(f"could not download the set at {url}: {e}") from e
    if not data.startswith(MAGIC):
        raise ValueError(f"{url} did not give a NumPy archive (its first bytes: {data[:16]!r}): not a set's link?")
    target = cache_dir(cache_root) / "downloads" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.npz"
    atomic_write_bytes(target, data)
    return target


def load(source: str | Path, sha256: str | None = None, cache_root=None):
    """The set at ``source`` (a path, or an ``http(s)://`` or ``file://`` URL: a set's link on the site's
    "Distilled sets" page; a download is written under the cache's ``downloads/``) as a
    :class:`~ltdd_utils.distill.SyntheticSet`: float32 normalised images, hard labels, the class count, and the
    provenance as ``meta`` (``meta["mean"]``/``["std"]`` undo the normalisation). With ``sha256`` (the page lists
    each file's), a file with other bytes is refused."""
    from .distill import SyntheticSet
    text = str(source)
    scheme = urllib.parse.urlparse(text).scheme
    if scheme in ("http", "https"):
        path = _fetch(text, cache_root)
    elif scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(text).path))
    elif scheme and len(scheme) > 1:            # one letter: a Windows drive
        raise ValueError(f"{source}: a set loads from a path or an http(s):// or file:// URL, not {scheme}://")
    else:
        path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no set at {source}")
    if sha256 is not None and (digest := file_sha256(path)) != sha256.lower():
        raise ValueError(f"{source}: its SHA-256 is {digest}, not {sha256}")
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{source}: not a set of this book (not a NumPy archive)")
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
    from .verdicts import Arm, NotRecorded, SelectionError, select
    a = Arm(arm["method"], arm["study"], arm["ipc"], arm.get("setting", {}))
    out = {}
    for metric in ("acc", "acc_many", "acc_medium", "acc_few", "acc_aligned", "acc_conflicting"):
        try:
            by_seed = select(records, a, metric)
        except NotRecorded:
            return None
        except SelectionError:
            if metric == "acc":
                raise
            continue                             # a record without this group's accuracy
        if seed not in by_seed:
            return None
        out[metric] = round(by_seed[seed], 2)
    return out


def _study(chapter: str):
    import importlib
    return importlib.import_module(f".studies.{chapter}", __package__)


def shows_sets(chapter: str) -> bool:
    """Whether ``chapter``'s study lists the sets its figures show (``Study.shown_sets``)."""
    return hasattr(_study(chapter).Study, "shown_sets")


def export_chapter(chapter: str, preset: str, params: dict, run_meta: dict | None, folder: Path,
                   from_run: bool) -> list[Path]:
    """Write every set ``chapter``'s study shows (``Study.shown_sets()``) at ``preset`` into ``folder``
    (``<chapter>_<preset>_<name>.npz``; the folder's other sets of this chapter and preset are removed), with the
    accuracy its records give each arm trained on it at the set's seed. The sets come through the study's cached
    producers: ``from_run`` says they are the run's own (its cache, right after it); otherwise they were read from
    the cache, or computed again, at export. Returns the files written (none where the study shows no set)."""
    from .config import make_config
    from .experiment import Run
    from .results import read_records
    if not shows_sets(chapter):
        return []
    cfg = make_config(chapter, preset, **params)
    study = _study(chapter).Study
    run = Run(cfg, load=not getattr(study, "builds_its_data", False))     # a study that builds its datasets itself
    if not run.path.with_suffix(".json").exists():
        raise FileNotFoundError(f"no records of {chapter} at preset {preset} in {run.path}.json: run the chapter first")
    records = read_records(run.path)
    st = study(run)
    meta = run_meta or {}
    resolved = meta.get("resolved", {})
    written = []
    for item in st.shown_sets():
        arms = [{**a, "recorded": recorded_accuracy(records, a, item["seed"])} for a in item["arms"]]
        data = item.get("data", getattr(run, "train", None))            # the training data the set was made from
        prov = {"chapter": chapter, "preset": preset, "name": item["name"], "title": item["title"],
                "made_by": item["made_by"], "producer": item.get("producer"), "setting": item["setting"],
                "ipc": item["ipc"], "seed": item["seed"], "set_meta": _plain(item["set"].meta),
                "dataset": data.name, "data_source": data.source, "classes": list(data.classes),
                "mean": list(data.mean), "std": list(data.std), "arms": arms,
                "students": item.get("students", {}),
                "run": {k: meta.get(k) for k in ("commit", "device", "date", "runtime_s", "cold", "parameters")}
                | {"precision": resolved.get("precision", run.prov["precision"])},
                "exported": {"commit": run.prov["commit"], "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "from": "the run's own cache, right after it" if from_run else
                             "the cache at export (or computed again where it held no copy)"}}
        written.append(export(item["set"], folder / f"{chapter}_{preset}_{item['name']}.npz", prov))
    for old in folder.glob(f"{chapter}_{preset}_*.npz"):
        if old not in written:
            old.unlink()
    return written


def _plain(meta: dict) -> dict:
    """A set's own meta, JSON-ready, without its per-step history (recovery losses)."""
    return json.loads(json.dumps({k: v for k, v in meta.items() if k != "history"}, default=str))


# ---------------------------------------------------------------------------------------------- the site's page
def _files(root: Path = SETS) -> list[Path]:
    return sorted(root.glob("*/*.npz"))


def _provenance(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["provenance"]))


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _entry(p: Path) -> list[str]:
    """One set's section: its download, provenance and the records' accuracy per label arm."""
    prov = _provenance(p)
    if not p.resolve().is_relative_to(PAGE.parent.resolve()):
        raise ValueError(f"{p}: the page links sets under {PAGE.parent} only")
    rel = p.resolve().relative_to(PAGE.parent.resolve())
    run, st = prov["run"], prov.get("students", {})
    setting = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in prov["setting"].items())
    lines = [f"## {prov['title']}: {prov['chapter']}, `{prov['preset']}`", "",
             f"{{download}}`{p.name} <{rel.as_posix()}>` ({p.stat().st_size / 2 ** 10:.0f} KiB; SHA-256 "
             f"`{file_sha256(p)}`)", "",
             f"* **Images**: {prov['images'][0]} ({prov['ipc']} per class) of {prov['dataset']}, {setting}, seed "
             f"{prov['seed']}; made by {prov['made_by']}.",
             f"* **Run**: commit `{run.get('commit')}`, {run.get('precision')}, {run.get('device')}, {run.get('date')}"
             + (f" (the chapter's run took {run['runtime_s'] / 60:.0f} min)" if run.get("runtime_s") else "") + ".",
             f"* **Students** (the chapter's protocol): {st.get('model', '?')} of width {st.get('width', '?')}, "
             f"{st.get('steps', '?')} steps of batch {st.get('batch', '?')}, {st.get('recipe', '')}.", ""]
    arms = [a for a in prov["arms"] if a.get("recorded")]
    if arms:
        # the second column: the tail classes (long-tailed data) or the bias-conflicting test images (biased data)
        columns = (("acc_few", "few group"), ("acc_conflicting", "bias-conflicting test images"))
        metric, name = next(((m, n) for m, n in columns if any(m in a["recorded"] for a in arms)), columns[0])
        lines += [f"| arm | students' test accuracy at this seed (%) | {name} (%) |", "|---|---|---|"]
        lines += [f"| `{_cell(a['method'])}` | {a['recorded']['acc']:.1f} | "
                  + (f"{a['recorded'][metric]:.1f} |" if metric in a["recorded"] else " |") for a in arms]
    else:
        lines.append("The chapter's records hold no student trained on this set at its seed.")
    return lines + [""]


def sets_markdown(root: Path = SETS) -> str:
    """The "Distilled sets" page: every set file with its provenance, the records' accuracy of the students
    trained on it, a download link, its size and SHA-256, and how to load one."""
    files = _files(root)
    total = sum(p.stat().st_size for p in files) / 2 ** 20
    lines = ["# Distilled sets", "",
             "The distilled sets the chapters show (those their studies list), as the runs that the chapters report "
             "made them, each a NumPy archive with its provenance (chapter, how the images were made, setting, IPC, "
             "seed, the run's commit, parameters, device and precision, the students' settings). Beside each set: "
             "what the chapter's records give the students trained on it at the set's seed, one row per arm. An arm "
             "that trains on hard labels needs the file alone; a soft-label arm relabels every crop with its "
             "chapter's teacher, which is not part of the file.", "",
             "Load one, by its link below (copy the link) or a local path, into tensors ready for the book's "
             "evaluation protocol:", "",
             "```python", "from ltdd_utils import sets",
             "s = sets.load(\"https://…/_downloads/…/adsa_cpu_….npz\", sha256=\"…\")   # or a path",
             "s.images, s.labels, s.meta[\"arms\"]   # normalised float32 images, hard labels, provenance", "```", "",
             f"{len(files)} file(s), {total:.1f} MiB in all (the site's budget for sets: {BUDGET_MB} MiB). Images "
             "are stored as float16.", ""]
    if not files:
        return "\n".join(lines + ["No chapter run has written a set yet.", ""])
    for p in files:
        lines += _entry(p)
    return "\n".join(lines)


def write_page(check: bool = False) -> int:
    """Write ``book/sets.md``; with ``check``, return 1 when it differs from what the set files give. Either way,
    1 when the sets exceed the site's budget."""
    text, files = sets_markdown(), _files()
    size = sum(p.stat().st_size for p in files) / 2 ** 20
    over = size > BUDGET_MB
    if over:
        print(f"the sets take {size:.1f} MiB, over the site's budget of {BUDGET_MB} MiB", file=sys.stderr)
    if check:
        same = PAGE.exists() and PAGE.read_text() == text
        print("book/sets.md is up to date" if same else "book/sets.md is stale: run `python -m ltdd_utils sets`")
        return 0 if same and not over else 1
    atomic_write_text(PAGE, text)
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(files)} set file(s), {size:.1f} MiB)")
    return 1 if over else 0
