"""Batch reproduction: run the chapter notebooks through papermill into the executed copies the book renders.

    python -m ltdd_utils reproduce --preset cpu [--chapters 00 ...] [-p NAME VALUE ...] [--force]
    python -m ltdd_utils params longtail_baselines

Each chapter's parameters are validated before anything runs. A chapter whose executed copy was made
from the same notebook source, preset, parameters and library modules it imports is skipped. The executed copy is
written atomically, with provenance (preset, parameters, device, commit, runtime) in its metadata, so a
failed run never replaces a good one; the command exits non-zero naming the failing chapter.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "book" / "chapters"


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


def _module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for f in (path / "__init__.py", path.with_suffix(".py")):
        if f.exists():
            return f
    return None


def _imported(source: str, package: str | None) -> set[str]:
    """ltdd_utils modules (and their parent packages) that ``source`` imports, relative imports resolved."""
    try:
        tree = ast.parse(source)
    except SyntaxError:      # a cell with IPython magics
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    out = set()
    for name in found:
        parts = name.split(".")
        if parts[0] == "ltdd_utils":
            out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return out


def dependencies(nb_path: Path) -> list[Path]:
    """The library files a chapter runs: its ltdd_utils imports, followed transitively (a static import graph)."""
    nb = json.loads(nb_path.read_text())
    todo = set()
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            todo |= _imported(c["source"] if isinstance(c["source"], str) else "".join(c["source"]), None)
    todo.add(f"ltdd_utils.chapters.{chapter_key(nb_path.stem)}")   # loaded by name from config
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        f = _module_file(name)
        if name in seen or f is None:
            continue
        seen[name] = f
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        todo |= _imported(f.read_text(), package) - set(seen)
    return sorted(set(seen.values()))


def source_hash(nb_path: Path, preset: str, params: dict) -> str:
    """Identifies an executed copy: notebook source, preset, parameters and the library files the chapter uses
    (so work on other chapters' modules does not mark it stale)."""
    nb = json.loads(nb_path.read_text())
    cells = [c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in nb["cells"]]
    code = {str(f.relative_to(ROOT)): hashlib.sha1(f.read_bytes()).hexdigest() for f in dependencies(nb_path)}
    blob = json.dumps({"cells": cells, "preset": preset, "params": params, "code": code}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()


def is_up_to_date(out: Path, digest: str) -> bool:
    if not out.exists():
        return False
    try:
        return json.loads(out.read_text()).get("metadata", {}).get("ltdd", {}).get("source_hash") == digest
    except (json.JSONDecodeError, OSError):
        return False


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def reproduce(preset: str, names: list[str] | None, params: dict, force: bool = False,
              output_dir: Path = EXECUTED, timeout: int | None = None) -> int:
    import papermill as pm
    from . import config
    from .results import device_name, git_commit
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
    output_dir.mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(todo, 1):
        src, out = chapters()[stem], output_dir / f"{stem}.ipynb"
        digest = source_hash(src, preset, params)
        head = f"[{i}/{len(todo)}] {stem} (preset {preset})"
        if not force and is_up_to_date(out, digest):
            print(f"{head}: up to date, skipped", flush=True)
            continue
        print(f"{head}: running ...", flush=True)
        t0, commit = time.time(), git_commit(ROOT)
        fd, tmp = tempfile.mkstemp(dir=output_dir, prefix=f".{stem}.", suffix=".ipynb")
        os.close(fd)
        try:
            pm.execute_notebook(str(src), tmp, parameters={"PRESET": preset, **params}, cwd=str(NOTEBOOKS),
                                kernel_name="python3", progress_bar=False, log_output=True,
                                execution_timeout=timeout)
        except Exception as e:  # papermill's execution error carries the failing cell
            failed = ROOT / ".failed" / f"{stem}.ipynb"
            failed.parent.mkdir(exist_ok=True)
            os.replace(tmp, failed)
            print(f"{head}: FAILED after {time.time() - t0:.0f}s: {type(e).__name__}: {str(e)[:2000]}\n"
                  f"the partial run is in {failed}", file=sys.stderr, flush=True)
            return 1
        nb = json.loads(Path(tmp).read_text())
        nb["metadata"]["ltdd"] = {"source_hash": digest, "preset": preset, "parameters": params,
                                  "commit": commit, "runtime_s": round(time.time() - t0, 1),
                                  "device": device_name(config.resolve_device("auto")),
                                  "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        Path(tmp).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        os.chmod(tmp, 0o644)                   # mkstemp makes it private; the executed copy is a normal file
        os.replace(tmp, out)
        print(f"{head}: done in {time.time() - t0:.0f}s -> {out}", flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ltdd_utils", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reproduce", help="run chapters through papermill into book/chapters/")
    r.add_argument("--preset", default="cpu", help="smoke | cpu | paper (default cpu)")
    r.add_argument("--chapters", nargs="*", help="chapter numbers or names (default: all)")
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter (Python literal), e.g. -p SEEDS '[0, 1]'")
    r.add_argument("--force", action="store_true", help="run even if the executed copy is up to date")
    r.add_argument("--output-dir", type=Path, default=EXECUTED)
    r.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    p = sub.add_parser("params", help="list a chapter's parameters and preset values")
    p.add_argument("chapter")
    args = ap.parse_args(argv)
    from .config import ConfigError, describe
    try:
        if args.cmd == "params":
            print(describe(args.chapter))
            return 0
        params = {k.upper(): _parse_value(v) for k, v in args.param}
        return reproduce(args.preset, args.chapters, params, args.force, args.output_dir, args.timeout)
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
