"""Batch reproduction: run the chapter notebooks through papermill into the executed copies the book renders.

    python -m ltdd_utils reproduce --preset cpu [--chapters 00 ...] [-p NAME VALUE ...] [--force] [--cold]
    python -m ltdd_utils reproduce --status         # each chapter: up to date, or stale and why
    python -m ltdd_utils reproduce --preset gpu     # every chapter on a GPU, into book/runs/<chapter>_gpu.ipynb
    python -m ltdd_utils reproduce --preset paper --launcher slurm   # one job per chapter and seed (submitit)
    python -m ltdd_utils params longtail_baselines
    python -m ltdd_utils golden [--update] [NAME ...]
    python -m ltdd_utils claims [--check]           # the claims page, book/claims.md, from the claim records
    python -m ltdd_utils pack-data OUT --per-class 1000   # a small data root to carry (e.g. to a GPU lease)

Each chapter's parameters are validated before anything runs. A chapter is skipped when its executed copy
was made from the same notebook cells and parameters ('auto' precision and device as asked for: what they
resolved to on the machine that ran it is provenance, see :func:`staleness`), and every producer it called
(``ltdd_utils.versions``) is still at the version it ran with: editing library code without changing what
it computes stales nothing, and an edit of markdown cells alone is copied into the executed copy without
running it. ``--cold`` runs with an empty cache (``--keep-teachers``: but for the trained networks, those of the
teachers' recipe and TAD's trust rounds, shared products trained once per split and seed, whose training time the
chapters report; ``--keep-cache`` keeps the cold run's cache for a later run to reuse); ``--tags-only`` gives the
executed copies the notebooks' page tags (``hide-input`` and the like keep plumbing off the rendered page). The
executed copy is
written atomically, with provenance (preset, parameters, device, commit, runtime) in its metadata, so a
failed run never replaces a good one; the command exits non-zero naming the failing chapter. The book's
chapters are the ``cpu`` runs (``book/chapters/<chapter>.ipynb``); any other preset is written beside them as
``book/runs/<chapter>_<preset>.ipynb`` unless ``--output-dir`` names a folder.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "book" / "chapters"
RUNS = ROOT / "book" / "runs"
BOOK_PRESET = "cpu"                  # the preset whose executed copies are the chapters


def executed_path(stem: str, preset: str, output_dir: Path | None = None) -> Path:
    """Where a run's executed copy goes: ``<output_dir>/<stem>.ipynb`` when a folder is given, else the chapter
    itself for the book's preset and ``book/runs/<stem>_<preset>.ipynb`` for any other."""
    if output_dir is not None:
        return Path(output_dir) / f"{stem}.ipynb"
    return EXECUTED / f"{stem}.ipynb" if preset == BOOK_PRESET else RUNS / f"{stem}_{preset}.ipynb"


def chapters() -> dict[str, Path]:
    """Notebook stem (``00_longtail_baselines``) -> source path, in book order."""
    return {p.stem: p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))}


def chapter_key(stem: str) -> str:
    """The config chapter name of a notebook: its stem without the number prefix."""
    return stem.split("_", 1)[1]


def select(names: list[str] | None) -> list[str]:
    known = chapters()
    if not names:
        return list(known)
    out = []
    for n in names:
        hits = [s for s in known if s == n or s.startswith(n + "_") or chapter_key(s) == n]
        if not hits:
            raise SystemExit(f"unknown chapter {n!r}; chapters: {', '.join(known)}")
        out += hits
    return out


def cell_sources(nb_path: Path) -> list[str]:
    nb = json.loads(nb_path.read_text())
    return [c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in nb["cells"]]


# Parameters whose 'auto' the machine resolves (precision: bf16 where the hardware has it; device: CUDA when present).
# What a chapter asks for is an input of its executed copy; what that resolved to where it ran is provenance
# (``ran_with``): a copy made with 'auto' stays up to date on a machine where 'auto' resolves otherwise, and an
# explicit value makes it stale only when it differs from what ran.
ENVIRONMENT = ("precision", "device")


def _asked(chapter: str, preset: str, params: dict) -> dict:
    """The values of the ENVIRONMENT parameters a run asks for: its overrides, else its preset's ('auto', ...)."""
    from .config import presets, schema
    over, preset_values = {k.lower(): v for k, v in params.items()}, presets(chapter)[preset]
    return {k: over.get(k, preset_values.get(k, "auto")) for k in ENVIRONMENT if k in schema(chapter)}


def chapter_inputs(nb_path: Path, preset: str, params: dict) -> dict:
    """What an executed copy is made from, besides the producers it calls: the notebook's cells and the
    chapter's parameters (its preset with the overrides, validated; not the bytes of the module holding them), with
    the ENVIRONMENT parameters as asked for ('auto' stays 'auto': what it resolves to is :func:`resolved`)."""
    from .config import make_config
    chapter = chapter_key(nb_path.stem)
    cfg = make_config(chapter, preset, check_data=False, **params)
    values = json.loads(json.dumps({**cfg, **_asked(chapter, preset, params)}, sort_keys=True, default=str))
    return {"cells": hashlib.sha1(json.dumps(cell_sources(nb_path)).encode()).hexdigest(), "config": values}


def resolved(chapter: str, preset: str, params: dict) -> dict:
    """What the ENVIRONMENT parameters resolve to on this machine: the precision ('fp32' or 'bf16'), the device kind
    ('cpu' or 'cuda') and its name (``cpu:AMD EPYC x2 threads (avx512_bf16)``)."""
    from .config import make_config, resolve_device
    from .results import device_name
    cfg = make_config(chapter, preset, check_data=False, **params)
    dev = resolve_device(cfg.get("device", "auto"))
    return {"precision": cfg.get("precision", "fp32"), "device": dev.type, "device_name": device_name(dev)}


def ran_with(meta: dict) -> dict:
    """What an executed copy's ENVIRONMENT parameters resolved to where it ran (``precision``, ``device``)."""
    if "resolved" in meta:
        return meta["resolved"]
    # made before asked-for and resolved values were told apart: its config holds the precision that ran (none
    # before the precision parameter existed, when everything ran in fp32)
    device = str(meta.get("device") or "")
    return {"precision": meta["inputs"]["config"].get("precision", "fp32"), "device": device.split(":")[0] or None,
            "device_name": device or None}


def _asked_then(meta: dict, chapter: str, preset: str) -> dict:
    """What an executed copy asked for: its config's values, or (a copy made before they were told apart, whose
    config holds the resolved precision) its overrides, else its preset's."""
    if "resolved" in meta:
        return {k: meta["inputs"]["config"][k] for k in ENVIRONMENT if k in meta["inputs"]["config"]}
    return _asked(chapter, preset, meta.get("parameters") or {})


PROSE_ONLY = "only its prose changed (markdown cells; `reproduce` copies them in without running)"


def _source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def _ran_cells(nb: dict) -> list[dict]:
    """A notebook's cells without the parameters cell that papermill injects into an executed copy."""
    return [c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def prose_changes(out: Path, nb_path: Path) -> list[int] | None:
    """Positions of the markdown cells in which the notebook differs from its executed copy ``out``, when the copy
    ran exactly the notebook's code cells in the same layout of cells; None when a code cell or the layout differs."""
    return _prose_diff(_ran_cells(json.loads(out.read_text())), json.loads(nb_path.read_text())["cells"])


def _prose_diff(ran: list[dict], now: list[dict]) -> list[int] | None:
    if [c["cell_type"] for c in ran] != [c["cell_type"] for c in now]:
        return None
    if any(_source(a) != _source(b) for a, b in zip(ran, now) if a["cell_type"] == "code"):
        return None
    return [i for i, (a, b) in enumerate(zip(ran, now)) if _source(a) != _source(b)]


# jupyter-book's cell tags that keep plumbing (parameters, the Colab install, the config and imports) off the page
PAGE_TAGS = ("hide-input", "remove-input", "remove-cell", "hide-cell", "hide-output", "remove-output")


def page_tags(ex: dict, now: list[dict]) -> int:
    """Give the cells of executed notebook ``ex`` the page tags of the notebook cells ``now`` that they ran: the cell
    with the same id (a cell keeps its id when edited), else with the same source (other cells keep theirs), and
    papermill's injected parameters ``hide-input``; returns the number of cells changed."""
    page = lambda c: [t for t in c.get("metadata", {}).get("tags", []) if t in PAGE_TAGS]
    by_id = {c["id"]: page(c) for c in now if c.get("id")}
    by_source = {_source(c): page(c) for c in now}
    changed = 0
    for c in ex["cells"]:
        tags = c.setdefault("metadata", {}).get("tags", [])
        want = ["hide-input"] if "injected-parameters" in tags else by_id.get(c.get("id"), by_source.get(_source(c)))
        if want is None:
            continue
        new = [t for t in tags if t not in PAGE_TAGS] + want
        if new != tags:
            c["metadata"]["tags"] = new
            changed += 1
    return changed


def sync_page_tags(out: Path, nb_path: Path) -> int:
    """:func:`page_tags` on the executed copy ``out`` in place (atomically; nothing written when nothing changed):
    a tag is not an input, so an executed copy takes the notebook's without running again."""
    from .cache import atomic_write_text
    ex = json.loads(out.read_text())
    n = page_tags(ex, json.loads(nb_path.read_text())["cells"])
    if n:
        atomic_write_text(out, json.dumps(ex, indent=1, ensure_ascii=False) + "\n")
    return n


def sync_tags(preset: str, names: list[str] | None, output_dir: Path | None = None) -> int:
    """``reproduce --tags-only``: every executed copy takes its notebook's page tags; nothing runs, no data needed."""
    for stem in select(names):
        out = executed_path(stem, preset, output_dir)
        if not out.exists():
            print(f"{stem} (preset {preset}): no executed copy", flush=True)
            continue
        n = sync_page_tags(out, chapters()[stem])
        print(f"{stem} (preset {preset}): page tags of {n} cell(s) updated, nothing run", flush=True)
    return 0


def refresh_prose(out: Path, nb_path: Path, preset: str, params: dict) -> int:
    """Copy the notebook's markdown cells into its executed copy (nothing runs: no code cell changed) and record
    the new cells as the copy's inputs, atomically; returns the number of cells replaced."""
    from .cache import atomic_write_text
    ex, now = json.loads(out.read_text()), json.loads(nb_path.read_text())["cells"]
    ran = _ran_cells(ex)
    changed = _prose_diff(ran, now) or []
    for i in changed:
        ran[i]["source"] = now[i]["source"]
    meta = ex["metadata"]["ltdd"]
    meta["inputs"]["cells"] = chapter_inputs(nb_path, preset, params)["cells"]
    meta["prose_refreshed"] = time.strftime("%Y-%m-%d %H:%M:%S")
    atomic_write_text(out, json.dumps(ex, indent=1, ensure_ascii=False) + "\n")
    return len(changed)


def _metadata(out: Path) -> dict | None:
    """The runner's provenance in an executed copy, or None when there is no readable copy."""
    try:
        return json.loads(out.read_text()).get("metadata", {}).get("ltdd", {})
    except (json.JSONDecodeError, OSError):
        return None


def staleness(out: Path, nb_path: Path, preset: str, params: dict, meta: dict | None = None) -> list[str]:
    """Why the executed copy ``out`` is stale (empty: up to date). It is stale when its notebook's cells, its
    parameters or the version of a producer it called changed; edits to library code that leave every
    producer's version alone (comments, refactors) do not stale it, and a change of markdown cells alone is
    the reason ``PROSE_ONLY``, which :func:`reproduce` mends by copying the prose in, without running. The
    ENVIRONMENT parameters (precision, device) follow what is asked now: 'auto' accepts whatever the copy ran in
    or on; an explicit value stales it only when it differs from what ran (for the device, its kind)."""
    import torch
    from .versions import load_all
    meta = _metadata(out) if meta is None else meta
    if meta is None:
        return ["no executed copy" if not out.exists() else "the executed copy cannot be read"]
    if "producers" not in meta or "inputs" not in meta:
        return ["made before producers were tracked (no record of what it computed with)"]
    reasons, now = [], chapter_inputs(nb_path, preset, params)
    if meta.get("preset") != preset:
        reasons.append(f"made with preset {meta.get('preset')!r}, not {preset!r}")
    if meta["inputs"]["cells"] != now["cells"]:
        reasons.append(PROSE_ONLY if prose_changes(out, nb_path) is not None else "the notebook's cells changed")
    old_cfg, new_cfg = meta["inputs"]["config"], now["config"]
    changed = sorted(k for k in set(old_cfg) | set(new_cfg)
                     if k not in ENVIRONMENT and old_cfg.get(k) != new_cfg.get(k))
    if changed:
        reasons.append("parameters changed: " + ", ".join(f"{k} {old_cfg.get(k)!r} -> {new_cfg.get(k)!r}"
                                                          for k in changed))
    asked_then, ran = _asked_then(meta, chapter_key(nb_path.stem), preset), ran_with(meta)
    for k in ENVIRONMENT:                  # 'auto' accepts whatever ran; an explicit value must be what ran
        want = new_cfg.get(k, "auto")
        if want == "auto":
            continue
        kind = want if k == "precision" else torch.device(want).type     # a device by its kind: cuda:1 ~ cuda:0
        if ran.get(k) != kind:
            reasons.append(f"parameter {k} is {want!r} (was {asked_then.get(k)!r}); the copy ran "
                           f"{'in' if k == 'precision' else 'on'} {ran.get(k)!r}")
    versions = load_all()
    for name, v in sorted(meta["producers"].items()):
        if name not in versions:
            reasons.append(f"producer {name} is gone")
        elif versions[name] != v:
            reasons.append(f"producer {name} version {v} -> {versions[name]}")
    return reasons


def status(preset: str, names: list[str] | None, params: dict, output_dir: Path | None = None) -> int:
    """Print, per chapter, 'up to date' or 'stale' with the reasons; returns the number of stale chapters."""
    stale = 0
    for stem in select(names):
        out = executed_path(stem, preset, output_dir)
        meta = _metadata(out)
        reasons = staleness(out, chapters()[stem], preset, params, meta)
        stale += bool(reasons)
        how = ""
        if not reasons:
            ran = ran_with(meta)
            how = (f", ran in {ran.get('precision')} on {ran.get('device_name') or ran.get('device')} "
                   f"({_how_cold(meta.get('cold'))}, commit {meta.get('commit')})")
        print(f"{stem} (preset {preset}): " + ("up to date" + how if not reasons else "stale: " + "; ".join(reasons)))
    return stale


def _how_cold(cold) -> str:
    return {True: "cold", "teachers kept": "cold, teachers from the cache",     # runs before TAD's rounds were kept
            "networks kept": "cold, trained networks from the cache"}.get(cold, "with a warm cache")


def _cold_cache(keep_teachers: bool = False) -> Path:
    """A new, empty cache directory for a cold run; decoded datasets (not computed by the book) are linked in, and
    with ``keep_teachers`` the warm cache's trained networks: the networks of the teachers' recipe (the teachers, and
    the experts, trust networks and herding's networks trained by it) and TAD's trust rounds (its trust network
    trained on)."""
    from .cache import cache_dir
    from .teachers import KIND
    warm = cache_dir().expanduser().resolve()
    cold = Path(tempfile.mkdtemp(prefix="ltdd-cold-"))
    trained = [Path("nets") / KIND, Path("tad") / "rounds"]   # the teachers' recipe's networks, TAD's rounds
    links = [Path("datasets")] + (trained if keep_teachers else [])
    if keep_teachers:                     # networks trained in the run go to the warm cache through the links
        for rel in trained:
            (warm / rel).mkdir(parents=True, exist_ok=True)
    for rel in links:
        if (warm / rel).is_dir():
            (cold / rel).parent.mkdir(parents=True, exist_ok=True)
            (cold / rel).symlink_to(warm / rel, target_is_directory=True)
    return cold


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def reproduce(preset: str, names: list[str] | None, params: dict, force: bool = False,
              output_dir: Path | None = None, timeout: int | None = None, cold: bool = False,
              keep_teachers: bool = False, keep_cache: bool = False) -> int:
    """Run the chapters ``names`` (default all) at ``preset``; returns 0, or 1 naming the chapter that failed. A cold
    run computes in a new, empty cache (with ``keep_teachers``, the warm cache's trained networks linked in), which it
    removes when every chapter ran (a failed run, or one with ``keep_cache``, keeps it and says where: a later run
    with ``LTDD_CACHE`` set to it reuses what the cold run computed); the caller's cache setting is restored either
    way."""
    from .config import ConfigError
    if (keep_teachers or keep_cache) and not cold:
        raise ConfigError("--keep-teachers and --keep-cache go with --cold (a warm run takes everything from the "
                          "cache)")
    if not cold:
        return _reproduce(preset, names, params, force, output_dir, timeout, cold)
    previous, rc = os.environ.get("LTDD_CACHE"), 1
    empty = _cold_cache(keep_teachers)
    os.environ["LTDD_CACHE"] = str(empty)
    try:
        rc = _reproduce(preset, names, params, force, output_dir, timeout, "networks kept" if keep_teachers else cold)
    finally:
        if previous is None:
            os.environ.pop("LTDD_CACHE", None)
        else:
            os.environ["LTDD_CACHE"] = previous
        computed = [p for p in empty.rglob("*") if p.is_file()]      # rglob does not enter the warm cache's links
        if not computed or (rc == 0 and not keep_cache):
            shutil.rmtree(empty, ignore_errors=True)
        else:
            print(f"the cold run's cache is kept in {empty}", file=sys.stderr, flush=True)
    return rc


def _reproduce(preset: str, names: list[str] | None, params: dict, force: bool, output_dir: Path | None,
               timeout: int | None, cold: bool) -> int:
    import papermill as pm
    from . import config
    from .results import git_commit
    from .versions import LOG_ENV, load_all
    logging.basicConfig(level=logging.INFO, format="    %(message)s")   # papermill logs cell output here
    todo = select(names)
    # notebooks run with notebooks/ as their working directory: make relative paths absolute first
    for var in ("LTDD_DATA", "LTDD_CACHE"):
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).expanduser().resolve())
    params = {k: str(Path(v).expanduser().resolve()) if k.lower() in ("data_root", "cache_dir", "results_dir")
              and isinstance(v, str) else v for k, v in params.items()}
    for stem in todo:   # validate everything before any compute
        config.make_config(chapter_key(stem), preset, **params)
    os.environ["LTDD_PROGRESS"] = "lines"
    if os.environ.pop(config.PRESET_ENV, None):          # the runner's --preset is the one that runs and is recorded
        print(f"${config.PRESET_ENV} is ignored by reproduce: preset {preset!r}", flush=True)
    if cold:
        print(f"cold run: empty cache {os.environ['LTDD_CACHE']}", flush=True)
    failed_sets = []
    for i, stem in enumerate(todo, 1):
        src, out = chapters()[stem], executed_path(stem, preset, output_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        head = f"[{i}/{len(todo)}] {stem} (preset {preset})"
        if not force and not cold:
            reasons = staleness(out, src, preset, params)
            if reasons in ([], [PROSE_ONLY]):       # not run: the copy takes the notebook's page tags here
                sync_page_tags(out, src)
            if not reasons:
                print(f"{head}: up to date, skipped", flush=True)
                continue
            if reasons == [PROSE_ONLY]:
                n = refresh_prose(out, src, preset, params)
                print(f"{head}: {n} markdown cell(s) refreshed, nothing run (the code cells are those that ran)", flush=True)
                continue
        print(f"{head}: running ...", flush=True)
        t0, commit = time.time(), git_commit(ROOT)
        # the notebook as it is now: what runs and what the copy records as its inputs, even if it is edited meanwhile
        snapshot = Path(tempfile.mkdtemp(prefix="ltdd-source-")) / src.name
        shutil.copyfile(src, snapshot)
        inputs = chapter_inputs(snapshot, preset, params)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{stem}.", suffix=".ipynb")
        os.close(fd)
        fd, log = tempfile.mkstemp(prefix=f"ltdd-producers-{stem}.", suffix=".txt")
        os.close(fd)
        os.environ[LOG_ENV] = log
        # one commit for the whole run: what the kernel prints and records is the commit it started from (with
        # '+dirty' when the code had uncommitted changes then), even if commits are made while it runs
        pinned = os.environ.get("LTDD_COMMIT")
        os.environ["LTDD_COMMIT"] = commit
        try:
            pm.execute_notebook(str(snapshot), tmp, parameters={"PRESET": preset, **params}, cwd=str(NOTEBOOKS),
                                kernel_name="python3", progress_bar=False, log_output=True,
                                execution_timeout=timeout)
        except Exception as e:  # papermill's execution error carries the failing cell
            failed = ROOT / ".failed" / f"{stem}.ipynb"
            failed.parent.mkdir(exist_ok=True)
            os.replace(tmp, failed)
            print(f"{head}: FAILED after {time.time() - t0:.0f}s: {type(e).__name__}: {str(e)[:2000]}\n"
                  f"the partial run is in {failed}", file=sys.stderr, flush=True)
            return 1
        finally:
            os.environ.pop(LOG_ENV, None)
            if pinned is None:
                os.environ.pop("LTDD_COMMIT", None)
            else:
                os.environ["LTDD_COMMIT"] = pinned
            ran_cells = json.loads(snapshot.read_text())["cells"]
            shutil.rmtree(snapshot.parent, ignore_errors=True)
        used = sorted(set(Path(log).read_text().split()))
        os.unlink(log)
        versions = load_all()
        nb = json.loads(Path(tmp).read_text())
        page_tags(nb, ran_cells)
        ran = resolved(chapter_key(stem), preset, params)
        nb["metadata"]["ltdd"] = {"inputs": inputs,
                                  "producers": {n: versions[n] for n in used if n in versions},
                                  "cold": cold, "preset": preset, "parameters": params,
                                  "commit": commit, "runtime_s": round(time.time() - t0, 1),
                                  "resolved": ran, "device": ran["device_name"],
                                  "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        Path(tmp).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        os.chmod(tmp, 0o644)                   # mkstemp makes it private; the executed copy is a normal file
        os.replace(tmp, out)
        print(f"{head}: done in {time.time() - t0:.0f}s -> {out}", flush=True)
        if not _export_sets(head, stem, preset, params, nb["metadata"]["ltdd"], output_dir):
            failed_sets.append(stem)
    if failed_sets:
        print(f"sets not written for {', '.join(failed_sets)} (above); the chapters ran", file=sys.stderr, flush=True)
        return 1
    return 0


def _export_sets(head: str, stem: str, preset: str, params: dict, meta: dict, output_dir: Path | None) -> bool:
    """After a chapter's run, while its cache (a cold run's own) still holds them: the sets its figures show
    (:mod:`ltdd_utils.sets`), into book/sets/ at a book preset (then the page is written again), into
    ``<output_dir>/sets`` with an output folder, nowhere else. False, saying why, when that failed."""
    from . import sets
    if output_dir is None and preset not in sets.BOOK_PRESETS:
        return True
    folder = (sets.SETS if output_dir is None else Path(output_dir) / "sets") / f"{chapter_key(stem)}_{preset}"
    try:
        paths = sets.export_chapter(chapter_key(stem), preset, params, meta, folder, from_run=True)
        if paths and output_dir is None:
            sets.write_page()
    except Exception as e:                   # the executed copy is written: say what failed, run the next chapter
        print(f"{head}: its sets were not written ({type(e).__name__}: {e}); `python -m ltdd_utils sets --export "
              f"--chapters {stem[:2]} --preset {preset}` writes them from the cache", file=sys.stderr, flush=True)
        return False
    for path in paths:
        print(f"{head}: set {path.name} written", flush=True)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ltdd_utils", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reproduce", help="run chapters through papermill into book/chapters/")
    r.add_argument("--preset", default="cpu", help="smoke | cpu | gpu | paper (default cpu)")
    r.add_argument("--chapters", nargs="*", help="chapter numbers or names (default: all)")
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter (Python literal), e.g. -p SEEDS '[0, 1]'")
    r.add_argument("--force", action="store_true", help="run even if the executed copy is up to date")
    r.add_argument("--output-dir", type=Path, default=None,
                   help="folder for the executed copies (default: book/chapters for cpu, book/runs/<chapter>_<preset> else)")
    r.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    r.add_argument("--status", action="store_true", help="list each chapter: up to date, or stale and why; run nothing")
    r.add_argument("--cold", action="store_true", help="run with an empty cache directory (recorded in the provenance)")
    r.add_argument("--keep-teachers", action="store_true", help="with --cold: link the warm cache's trained "
                   "networks (those of the teachers' recipe: the teachers, and the experts and trust networks it "
                   "trains; TAD's trust rounds) into the empty cache; the chapters report the teachers' training time")
    r.add_argument("--keep-cache", action="store_true", help="with --cold: keep the cold run's cache when it succeeds "
                   "and print where (a later run with LTDD_CACHE set to it reuses what the cold run computed)")
    r.add_argument("--tags-only", action="store_true", help="copy the notebooks' page tags (hide-input, remove-cell, "
                   "...) into the executed copies; run nothing")
    r.add_argument("--launcher", choices=["slurm", "local"], default=None,
                   help="run one job per chapter and seed through submitit, then merge each chapter's seeds into "
                        "book/runs/<chapter>_<preset>.ipynb (local: submitit's local executor)")
    r.add_argument("--cache-dir", type=Path, default=None, help="with --launcher: the cache every job shares "
                   "(default $LTDD_CACHE); on a file system every node sees")
    r.add_argument("--slurm-partition", default=None)
    r.add_argument("--timeout-min", type=int, default=240, help="with --launcher: each job's time limit")
    r.add_argument("--gpus", type=int, default=1, help="with --launcher slurm: GPUs per job")
    g = sub.add_parser("golden", help="check or regenerate the producers' golden numbers (tests/golden)")
    g.add_argument("--update", action="store_true", help="store the current numbers (after a version bump)")
    g.add_argument("names", nargs="*", help="producers (default: all)")
    p = sub.add_parser("params", help="list a chapter's parameters and preset values")
    p.add_argument("chapter")
    c = sub.add_parser("claims", help="write the claims page (book/claims.md) from the chapters' claim records")
    c.add_argument("--preset", default="cpu")
    c.add_argument("--check", action="store_true", help="exit 1 when book/claims.md differs from what the records give")
    e = sub.add_parser("sets", help="write the site's Distilled sets page (book/sets.md) from book/sets/; with "
                       "--export, first write the sets the chapters show (from the cache, computing what is missing)")
    e.add_argument("--check", action="store_true", help="exit 1 when book/sets.md differs from what the files give")
    e.add_argument("--export", action="store_true", help="write the chapters' shown sets into book/sets/ first")
    e.add_argument("--preset", default="cpu")
    e.add_argument("--chapters", nargs="*", help="with --export: chapter numbers or names (default: all)")
    b = sub.add_parser("bench", help="time DM, students and inference in fp32 and on the fast path on this machine")
    b.add_argument("--quick", action="store_true", help="fewer repeats (a minute or two)")
    b.add_argument("--accuracy", action="store_true", help="also DM + evaluation accuracy, fp32 vs fast path, 3 seeds")
    b.add_argument("--data-root", default=None)
    b.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    b.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="the fast path's precision (default: what 'auto' means here); fp32 on a bf16 CPU measures "
                        "what a CPU without bf16 runs")
    t = sub.add_parser("teachers", help="train the teachers' recipe per role and seed on CIFAR-10 and write their "
                       "validation curves and test accuracies (a measurement: nothing cached)")
    t.add_argument("--roles", default="balanced,lt_plain,lt_debiased,lt_glmc,noisy_sym40")
    t.add_argument("--seeds", default="0,1,2")
    t.add_argument("--epochs", type=float, default=None, help="override every role's epochs")
    t.add_argument("--data-root", default=None)
    t.add_argument("--out", type=Path, default=None, help="write the rows as JSON (book/results/teachers.json)")
    t.add_argument("--recipe", default="", help="override the recipe, e.g. batch=250,weight_decay=0.03 (fields of "
                   "ltdd_utils.teachers.Recipe)")
    t.add_argument("--aug", default=None, help="the training batches' augmentation instead of the recipe's "
                   "translate_flip (a name of ltdd_utils.augment.AUGMENTS, e.g. cropflip: 4 px crops and flips)")
    t.add_argument("--validation-only", action="store_true", help="choose a setting: train and print the validation "
                   "curve and flip-averaged validation accuracy; the test set is not read and nothing is written")
    k = sub.add_parser("pack-data", help="write a small data root to carry where there is no network (a CIFAR-10 "
                       "subset, MNIST, FashionMNIST)")
    k.add_argument("out", type=Path)
    k.add_argument("--per-class", type=int, default=1000, help="CIFAR-10 training images per class (official order)")
    k.add_argument("--test-per-class", type=int, default=None, help="CIFAR-10 test images per class (default: all)")
    k.add_argument("--datasets", nargs="*", default=["cifar10", "mnist"], help="cifar10 | mnist | fashionmnist")
    k.add_argument("--data-root", default=None)
    args = ap.parse_args(argv)
    from .config import ConfigError, describe
    try:
        if args.cmd == "params":
            print(describe(args.chapter))
            return 0
        if args.cmd == "claims":
            from . import claims_page
            if args.check:
                same = claims_page.PAGE.exists() and claims_page.PAGE.read_text() == claims_page.claims_markdown(preset=args.preset)
                print("book/claims.md is up to date" if same else "book/claims.md differs from the claim records: "
                      "run `python -m ltdd_utils claims`")
                return 0 if same else 1
            print(f"wrote {claims_page.write(preset=args.preset)}")
            return 0
        if args.cmd == "sets":
            from . import sets
            if args.export:
                for stem in [s for s in select(args.chapters) if sets.shows_sets(chapter_key(s))]:
                    out, src = executed_path(stem, args.preset), chapters()[stem]
                    meta = _metadata(out)
                    if meta is None:
                        raise ConfigError(f"{stem} has no executed copy at preset {args.preset}: run it first")
                    stale = staleness(out, src, args.preset, meta.get("parameters", {}), meta)
                    if [r for r in stale if r != PROSE_ONLY]:
                        raise ConfigError(f"{stem}'s executed copy is stale ({'; '.join(stale)}): its sets would not "
                                          "be the ones it shows; run the chapter again (its sets are written then)")
                    folder = sets.SETS / f"{chapter_key(stem)}_{args.preset}"
                    for path in sets.export_chapter(chapter_key(stem), args.preset, meta.get("parameters", {}), meta,
                                                    folder, from_run=False):
                        print(f"wrote {path.relative_to(sets.ROOT)}")
            return sets.write_page(check=args.check)
        if args.cmd == "bench":
            from . import bench
            bench.run(args.quick, args.data_root, args.out, args.accuracy, args.precision)
            return 0
        if args.cmd == "teachers":
            from . import teachers
            roles = [r for r in args.roles.split(",") if r]
            bad = [r for r in roles if r not in teachers.ROLES]
            if bad:
                raise ConfigError(f"roles {bad} are not allowed: expected some of {list(teachers.ROLES)}")
            teachers.measure(roles, [int(s) for s in args.seeds.split(",")], args.data_root, args.out, args.epochs,
                             recipe=teachers.parse_recipe(args.recipe), test=not args.validation_only, aug=args.aug)
            return 0
        if args.cmd == "pack-data":
            from .data.pack import pack
            sizes = pack(args.out, args.per_class, args.data_root, args.datasets, args.test_per_class)
            print("\n".join(f"{d}: {n / 1e6:.1f} MB" for d, n in sizes.items())
                  + f"\ntotal {sum(sizes.values()) / 1e6:.1f} MB in {args.out}")
            return 0
        if args.cmd == "golden":
            from . import golden
            from .versions import load_all
            if args.update:
                golden.update(args.names or None)
                return 0
            versions, stored = load_all(), golden.load()
            problems = [p for n, v in golden.compute(args.names or None).items()
                        if (p := golden.check(n, stored, v, versions[n]))]
            print("\n".join(problems) or "every producer matches its golden numbers")
            return 1 if problems else 0
        params = {k.upper(): _parse_value(v) for k, v in args.param}
        if args.status:
            status(args.preset, args.chapters, params, args.output_dir)
            return 0
        if args.tags_only:
            return sync_tags(args.preset, args.chapters, args.output_dir)
        if args.launcher:
            if args.cold or args.keep_teachers or args.keep_cache:
                raise ConfigError("--cold, --keep-teachers and --keep-cache are for a run on this machine, not with "
                                  "--launcher (the jobs share --cache-dir)")
            from .launch import launch
            return launch(select(args.chapters), args.preset, params, args.launcher, args.output_dir, args.cache_dir,
                          timeout_min=args.timeout_min, gpus=args.gpus, partition=args.slurm_partition)
        return reproduce(args.preset, args.chapters, params, args.force, args.output_dir, args.timeout, args.cold,
                         args.keep_teachers, args.keep_cache)
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
