"""End to end: every chapter runs in the smoke preset through the batch runner; notebook hygiene."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from ltdd_utils import claims, cli

SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "ltdd_utils", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("nb", SOURCES, ids=lambda p: p.stem)
def test_sources_have_no_outputs_and_a_parameters_cell_first(nb):
    cells = json.loads(nb.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert "PRESET" in "".join(code[0]["source"])
    # plumbing stays in the notebook, off the rendered page: parameters, the Colab install, the config, the imports
    tags = [set(c["metadata"].get("tags", [])) for c in code[:4]]
    assert tags == [{"parameters", "hide-input"}, {"remove-cell"}, {"hide-input"}, {"hide-input"}]


def test_page_tags_reach_an_executed_copy_without_running_it(tmp_path):
    """An executed copy takes the notebook's page tags for the cells it ran (by id, else by source), papermill's
    injected parameters get hide-input, other tags stay."""
    cell = lambda src, *tags, id=None: {"cell_type": "code", "source": src, "metadata": {"tags": list(tags)},
                                        "outputs": [], **({"id": id} if id else {})}
    now = [cell("PRESET = 'cpu'", "parameters", "hide-input"), cell("import x", "hide-input"),
           cell("import x, y", "hide-input", id="imports"), cell("new()", "remove-cell")]
    ex = {"cells": [cell("PRESET = 'cpu'", "parameters"), cell("PRESET = 'smoke'", "injected-parameters"),
                    cell("import x", "remove-input"), cell("import x  # an older edit", id="imports"),
                    cell("old()", "hide-output")], "metadata": {}}
    assert cli.page_tags(ex, now) == 4
    assert [c["metadata"]["tags"] for c in ex["cells"]] == [["parameters", "hide-input"],
                                                            ["injected-parameters", "hide-input"], ["hide-input"],
                                                            ["hide-input"], ["hide-output"]]
    assert cli.page_tags(ex, now) == 0


@pytest.mark.parametrize("nb", SOURCES, ids=lambda p: p.stem)
def test_every_chapter_has_a_config_schema_and_is_in_the_toc(nb):
    from ltdd_utils.config import chapter_names
    assert cli.chapter_key(nb.stem) in chapter_names()
    assert f"book/chapters/{nb.stem}" in (ROOT / "book" / "_toc.yml").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("nb", SOURCES, ids=lambda p: p.stem)
def test_chapter_runs_in_smoke_preset(nb, tmp_path):
    out, res = tmp_path / "executed", tmp_path / "results"
    r = run_cli("reproduce", "--preset", "smoke", "--chapters", nb.stem[:2], "--output-dir", str(out),
                "-p", "RESULTS_DIR", str(res))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "done in" in r.stdout
    assert (out / nb.name).stat().st_mode & 0o777 == 0o644
    executed = json.loads((out / nb.name).read_text())
    meta = executed["metadata"]["ltdd"]
    assert meta["preset"] == "smoke" and meta["runtime_s"] > 0 and meta["commit"] and meta["device"]
    assert meta["inputs"]["config"]["precision"] == "auto"          # asked for; what it resolved to is provenance
    assert meta["resolved"]["precision"] in ("fp32", "bf16") and meta["resolved"]["device"] == "cpu"
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert not _widgets(executed)              # plain progress lines: the site shows no "kernel required" boxes
    injected = next(c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert "hide-input" in injected["metadata"]["tags"]
    path = next(p for p in res.glob("*_smoke.json") if not p.stem.endswith("_claims"))
    records = json.loads(path.read_text())
    assert records and all(r["preset"] == "smoke" and r["metrics"] for r in records)
    assert any("acc" in r["metrics"] for r in records)
    # the verdicts it printed and wrote are what its declared claims give on its records, recomputed independently
    assert claims.recompute(out / nb.name, path) == []
    # the sets its figures show, beside the executed copy (never into the book's sets at the smoke preset)
    from ltdd_utils import sets
    shown = sorted((out / "sets").glob("*/*.npz"))
    assert bool(shown) == sets.shows_sets(cli.chapter_key(nb.stem))
    assert all(sets.load(p).meta["run"]["commit"] == meta["commit"] for p in shown)
    assert not list(sets.SETS.glob("*_smoke/*"))
    # a second run with nothing changed is skipped
    again = run_cli("reproduce", "--preset", "smoke", "--chapters", nb.stem[:2], "--output-dir", str(out),
                    "-p", "RESULTS_DIR", str(res))
    assert again.returncode == 0 and "up to date, skipped" in again.stdout


def test_bad_parameter_fails_before_compute(tmp_path):
    r = run_cli("reproduce", "--preset", "smoke", "--output-dir", str(tmp_path), "-p", "IPCC", "3")
    assert r.returncode == 2 and "did you mean 'IPC'" in r.stderr and "running" not in r.stdout
    r = run_cli("reproduce", "--preset", "smoke", "--output-dir", str(tmp_path), "-p", "IMBALANCE_FACTORS", "[0.5]")
    assert r.returncode == 2 and "imbalance_factors[0]" in r.stderr
    assert not list(tmp_path.glob("*.ipynb"))


def test_failing_chapter_is_named_and_keeps_the_old_copy(tmp_path, monkeypatch):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('PRESET = "cpu"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("raise RuntimeError('boom')")]
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(nb, src / "00_longtail_baselines.ipynb")
    out = tmp_path / "out"
    out.mkdir()
    (out / "00_longtail_baselines.ipynb").write_text("{}")
    monkeypatch.setattr(cli, "NOTEBOOKS", src)
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    code = cli.reproduce("smoke", None, {}, output_dir=out)
    assert code == 1
    assert (out / "00_longtail_baselines.ipynb").read_text() == "{}"
    assert (tmp_path / ".failed" / "00_longtail_baselines.ipynb").exists()


def test_a_run_records_and_prints_the_commit_it_started_from(tmp_path, monkeypatch):
    """The kernel sees the commit the run started from (LTDD_COMMIT), whatever is committed while it runs: the
    provenance a chapter prints mid-run and its records agree; the environment is restored afterwards."""
    import json
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('PRESET = "cpu"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("from ltdd_utils.results import git_commit\nprint('seen', git_commit())")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(nb, src / "00_longtail_baselines.ipynb")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(cli, "NOTEBOOKS", src)
    monkeypatch.setattr(cli, "_export_sets", lambda *a, **k: True)
    monkeypatch.delenv("LTDD_COMMIT", raising=False)
    import ltdd_utils.results as results
    monkeypatch.setattr(results, "git_commit", lambda path=".": "abc123+dirty")
    assert cli.reproduce("smoke", None, {}, output_dir=out) == 0
    ran = json.loads((out / "00_longtail_baselines.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in ran["cells"] for o in c.get("outputs", []))
    assert "seen abc123+dirty" in printed and ran["metadata"]["ltdd"]["commit"] == "abc123+dirty"
    import os
    assert "LTDD_COMMIT" not in os.environ


def test_unknown_chapter_selection():
    with pytest.raises(SystemExit, match="unknown chapter"):
        cli.select(["99"])


def _copy_with_executed(tmp_path):
    """A copy of the library and notebooks, with an executed copy of chapter 00 recorded as made now."""
    import shutil
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "ltdd_utils", root / "ltdd_utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    (root / "book" / "runs").mkdir(parents=True)          # a run at a preset other than cpu lives in book/runs
    src = root / "notebooks" / "00_longtail_baselines.ipynb"
    nb = json.loads(src.read_text())
    nb["metadata"]["ltdd"] = {"inputs": cli.chapter_inputs(src, "smoke", {}), "preset": "smoke", "cold": True,
                              "commit": "test", "producers": {"distill.dm": 1, "evaluate": 1, "train.fit": 1}}
    (root / "book" / "runs" / f"{src.stem}_smoke.ipynb").write_text(json.dumps(nb))
    return root


def _status(root, *args, **env):
    r = subprocess.run([sys.executable, "-m", "ltdd_utils", "reproduce", "--preset", "smoke", "--status",
                        "--chapters", "00", *args], cwd=root, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(root), **env})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_copy_made_with_auto_in_bf16_is_current_where_auto_resolves_to_fp32(tmp_path, monkeypatch, capsys):
    """The machine is provenance, not identity: a copy made with PRECISION='auto' on a bf16 CPU stays up to date
    where 'auto' resolves to fp32 ($LTDD_PRECISION stands in for that CPU), and says what it ran in; an explicit
    PRECISION (or DEVICE) that differs from what ran makes it stale, one that matches does not."""
    src = ROOT / "notebooks" / "00_longtail_baselines.ipynb"
    monkeypatch.setenv("LTDD_PRECISION", "bf16")              # made where 'auto' meant bf16
    nb = json.loads(src.read_text())
    nb["metadata"]["ltdd"] = {"inputs": cli.chapter_inputs(src, "smoke", {}), "preset": "smoke", "commit": "test",
                              "resolved": cli.resolved("longtail_baselines", "smoke", {}), "producers": {}}
    assert nb["metadata"]["ltdd"]["inputs"]["config"]["precision"] == "auto"
    assert nb["metadata"]["ltdd"]["resolved"]["precision"] == "bf16"
    (tmp_path / src.name).write_text(json.dumps(nb))

    def status(*params, env="fp32"):
        monkeypatch.setenv("LTDD_PRECISION", env)
        assert cli.main(["reproduce", "--preset", "smoke", "--status", "--chapters", "00", "--output-dir",
                         str(tmp_path), *[a for p in params for a in ("-p", *p)]]) == 0
        return capsys.readouterr().out

    assert "up to date, ran in bf16 on cpu:" in status()
    assert "up to date" in status(("PRECISION", "bf16"))
    assert ("stale: parameter precision is 'fp32' (was 'auto'); the copy ran in 'bf16'"
            in status(("PRECISION", "fp32")))
    assert "stale: parameter precision is 'fp32'" in status(("PRECISION", "fp32"), env="bf16")
    assert "stale: parameter device is 'cuda'" in status(("DEVICE", "cuda"))
    assert "up to date" in status(("DEVICE", "cpu"))
    assert "stale: parameter device is 0" in status(("DEVICE", "0"))            # a GPU by its index
    monkeypatch.setenv("LTDD_PRECISION", "fp16")
    assert cli.main(["reproduce", "--preset", "smoke", "--status", "--output-dir", str(tmp_path)]) == 2
    assert "$LTDD_PRECISION = 'fp16' is not allowed" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_books_chapters_are_not_stale_for_the_precision_this_machine_resolves(precision, monkeypatch):
    """The executed chapters (made with PRECISION='auto', some before asked-for and resolved values were recorded
    apart) are not stale because 'auto' means another precision here."""
    monkeypatch.setenv("LTDD_PRECISION", precision)
    for stem, src in cli.chapters().items():
        out = cli.executed_path(stem, cli.BOOK_PRESET)
        reasons = cli.staleness(out, src, cli.BOOK_PRESET, {})
        assert not [r for r in reasons if "precision" in r or "device" in r], (stem, reasons)
        assert cli.ran_with(cli._metadata(out))["precision"] in ("fp32", "bf16")


def test_comments_and_refactors_stale_nothing_but_a_version_bump_does(tmp_path):
    root = _copy_with_executed(tmp_path)
    assert "up to date" in _status(root)
    dm = root / "ltdd_utils" / "distill" / "dm.py"
    text = dm.read_text()
    # a comment, a docstring edit and a behaviour-preserving refactor (a renamed local)
    edited = ("# a comment-only edit\n" + text.replace("Run DM on ``data``", "Run Distribution Matching on ``data``")
              .replace("step_seed", "draw_seed"))
    dm.write_text(edited)
    (root / "ltdd_utils" / "progress.py").write_text("# edited\n" + (root / "ltdd_utils" / "progress.py").read_text())
    assert "up to date" in _status(root)
    dm.write_text(edited.replace('@producer("distill.dm", 1,', '@producer("distill.dm", 2,'))
    out = _status(root)
    assert "stale" in out and "producer distill.dm version 1 -> 2" in out


def test_changed_cells_and_parameters_are_reasons():
    src = ROOT / "notebooks" / "00_longtail_baselines.ipynb"
    a = cli.chapter_inputs(src, "smoke", {})
    b = cli.chapter_inputs(src, "smoke", {"IPC": 3})
    assert a["cells"] == b["cells"] and a["config"]["ipc"] != 3 and b["config"]["ipc"] == 3


def test_a_changed_output_without_a_version_bump_fails_its_golden_test(tmp_path):
    root = _copy_with_executed(tmp_path)
    dm = root / "ltdd_utils" / "distill" / "dm.py"
    dm.write_text(dm.read_text().replace("return ((real_means - syn_means)[present] ** 2).sum()",
                                         "return 2 * ((real_means - syn_means)[present] ** 2).sum()"))
    (root / "tests" / "golden").mkdir(parents=True)
    (root / "tests" / "golden" / "producers.json").write_text((ROOT / "tests" / "golden" / "producers.json").read_text())
    r = subprocess.run([sys.executable, "-m", "ltdd_utils", "golden", "distill.dm"], cwd=root, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 1 and "output of producer 'distill.dm' changed but its version did not" in r.stdout
    assert "bump it to 2" in r.stdout


def test_a_prose_edit_is_copied_into_the_executed_copy_without_running_it(tmp_path):
    root = _copy_with_executed(tmp_path)
    src = root / "notebooks" / "00_longtail_baselines.ipynb"
    nb = json.loads(src.read_text())
    md = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown")
    nb["cells"][md]["source"] = "# A reworded title\n"
    src.write_text(json.dumps(nb))
    assert "only its prose changed" in _status(root)
    r = subprocess.run([sys.executable, "-m", "ltdd_utils", "reproduce", "--preset", "smoke", "--chapters", "00"],
                       cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0 and "1 markdown cell(s) refreshed, nothing run" in r.stdout, r.stdout + r.stderr
    executed = json.loads((root / "book" / "runs" / f"{src.stem}_smoke.ipynb").read_text())
    assert executed["cells"][md]["source"] == "# A reworded title\n" and executed["metadata"]["ltdd"]["commit"] == "test"
    assert "up to date" in _status(root)
    code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and i > md)
    nb["cells"][code]["source"] += "\nprint('changed')"
    src.write_text(json.dumps(nb))
    assert "the notebook's cells changed" in _status(root)


def test_source_notebooks_pass_nbval_at_the_smoke_preset(tmp_path):
    """`LTDD_PRESET=smoke pytest --nbval-lax notebooks/`: every source notebook runs top to bottom as a reader
    would open it, at the smoke preset, with its results outside the checkout. It shares the session's cache (a
    reader's warm cache): what the runner's smoke runs above distilled is reused, not computed a second time."""
    env = {**os.environ, "LTDD_PRESET": "smoke", "LTDD_RESULTS": str(tmp_path / "results"), "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                        str(ROOT / "notebooks")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    notebooks = list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(list((tmp_path / "results").glob("*_smoke_claims.json"))) == len(notebooks)


@pytest.mark.parametrize("nb", SOURCES, ids=lambda p: p.stem)
def test_what_a_chapter_is_made_from_does_not_depend_on_the_data_root(nb, tmp_path, monkeypatch):
    """An executed copy must not look stale on a machine whose data root lacks a dataset: the cpu preset's
    resolved parameters (what staleness compares) are the same with an empty data root."""
    with_data = cli.chapter_inputs(nb, "cpu", {})["config"]
    monkeypatch.setenv("LTDD_DATA", str(tmp_path))
    empty = cli.chapter_inputs(nb, "cpu", {})["config"]
    drop = lambda cfg: {k: v for k, v in cfg.items() if k != "data_root"}
    assert drop(empty) == drop(with_data)


def test_a_cold_run_removes_its_cache_and_restores_the_callers(tmp_path, monkeypatch):
    """A cold run computes in a new, empty cache and removes it when every chapter ran (unless asked to keep it); a
    bad parameter fails before compute and leaves no cache behind; the caller's LTDD_CACHE is the same afterwards."""
    import glob
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    before = os.environ.get("LTDD_CACHE")
    params = {"RESULTS_DIR": str(tmp_path / "results"), "METHODS": ["random"], "IMBALANCE_FACTORS": [10],
              "BALANCED_CONTROL": False}
    assert cli.reproduce("smoke", ["00"], params, output_dir=tmp_path / "out", cold=True) == 0
    assert json.loads((tmp_path / "out" / "00_longtail_baselines.ipynb").read_text())["metadata"]["ltdd"]["cold"]
    assert not glob.glob(str(tmp_path / "tmp" / "ltdd-cold-*")) and os.environ.get("LTDD_CACHE") == before
    from ltdd_utils.config import ConfigError
    with pytest.raises(ConfigError):
        cli.reproduce("smoke", ["00"], {"IPCC": 3}, output_dir=tmp_path / "out", cold=True)
    assert not glob.glob(str(tmp_path / "tmp" / "ltdd-cold-*")) and os.environ.get("LTDD_CACHE") == before
    assert cli.reproduce("smoke", ["00"], params, output_dir=tmp_path / "out", cold=True, keep_cache=True) == 0
    kept = glob.glob(str(tmp_path / "tmp" / "ltdd-cold-*"))
    assert len(kept) == 1 and list(Path(kept[0]).rglob("*.pt")) and os.environ.get("LTDD_CACHE") == before
    with pytest.raises(ConfigError, match="--cold"):
        cli.reproduce("smoke", ["00"], params, output_dir=tmp_path / "out", keep_cache=True)


def test_a_cold_run_may_keep_the_teachers_and_nothing_else(tmp_path, monkeypatch):
    """--keep-teachers links the warm cache's trained networks (the teachers' recipe's, TAD's trust rounds) and the
    decoded datasets into the cold cache, nothing else; it needs --cold."""
    warm = tmp_path / "warm"
    for d in ("datasets", "nets/net.fast_teacher", "nets/net.expert", "synsets/recover", "tad/rounds"):
        (warm / d).mkdir(parents=True)
        (warm / d / "x.pt").write_text(d)
    monkeypatch.setenv("LTDD_CACHE", str(warm))
    cold = cli._cold_cache(keep_teachers=True)
    try:
        links = sorted(str(p.relative_to(cold)) for p in cold.rglob("*") if p.is_symlink())
        assert links == ["datasets", "nets/net.fast_teacher", "tad/rounds"]
        assert not [p for p in cold.rglob("*") if p.is_file()]
        assert (cold / "nets" / "net.fast_teacher" / "x.pt").read_text() == "nets/net.fast_teacher"
    finally:
        import shutil
        shutil.rmtree(cold)
    from ltdd_utils.config import ConfigError
    with pytest.raises(ConfigError, match="--cold"):
        cli.reproduce("smoke", ["00"], {}, output_dir=tmp_path / "out", keep_teachers=True)


WIDGET = "application/vnd.jupyter.widget-view+json"


def _widgets(nb: dict) -> list:
    """Widget outputs and widget state in an executed notebook."""
    outs = [o for c in nb["cells"] for o in c.get("outputs", []) if WIDGET in o.get("data", {})]
    return outs + ([nb["metadata"]["widgets"]] if "widgets" in nb["metadata"] else [])


def test_a_kernel_draws_progress_as_a_widget_without_a_warning(tmp_path, monkeypatch):
    """What a reader sees in JupyterLab: the progress setting unset, a real kernel, tqdm's widget bar (ipywidgets
    is a dependency), nothing on stderr."""
    import nbformat
    from nbclient import NotebookClient
    monkeypatch.delenv("LTDD_PROGRESS", raising=False)          # the kernel inherits this environment
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from ltdd_utils.progress import Progress\n"
        "with Progress(3, 'demo') as p:\n"
        "    for _ in range(3):\n"
        "        p.update(loss=1.0)")])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert any(WIDGET in o.get("data", {}) for o in outputs), outputs
    assert not [o for o in outputs if o.get("name") == "stderr"], outputs


def test_a_notebook_edited_while_it_runs_records_what_ran(tmp_path, monkeypatch):
    """The runner executes a snapshot of the notebook and records the snapshot's cells as the copy's inputs: prose
    edited during a long run leaves the copy stale by its prose (mended by copying it in), not falsely up to date."""
    import papermill
    stem = "00_longtail_baselines"
    src = tmp_path / f"{stem}.ipynb"
    src.write_text((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
    monkeypatch.setattr(cli, "chapters", lambda: {stem: src})

    def fake_execute(input_path, output_path, **kw):        # "runs" the notebook, which is edited meanwhile
        nb = json.loads(src.read_text())
        md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
        md["source"] = "".join(md["source"]) + "\nAn edit made during the run."
        src.write_text(json.dumps(nb))
        with open(input_path) as f:
            ran = json.load(f)
        for c in ran["cells"]:
            c.setdefault("metadata", {})
            if c["cell_type"] == "code":
                c["outputs"] = []
        with open(output_path, "w") as f:
            json.dump(ran, f)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(cli, "_export_sets", lambda *a, **k: True)    # the fake run writes no records to export from
    out = tmp_path / "out"
    assert cli.reproduce("smoke", [stem], {"RESULTS_DIR": str(tmp_path / "res")}, output_dir=out) == 0
    copy = cli.executed_path(stem, "smoke", out)
    assert "An edit made during the run." not in copy.read_text()
    assert cli.staleness(copy, src, "smoke", {"RESULTS_DIR": str(tmp_path / "res")}) == [cli.PROSE_ONLY]
