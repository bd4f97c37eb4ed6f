"""The book builds strictly (warnings are errors) and the site has every chapter, executed."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("stem", CHAPTERS)
def test_executed_chapter_is_committed_with_provenance(stem):
    nb = json.loads((ROOT / "book" / "chapters" / f"{stem}.ipynb").read_text())
    meta = nb["metadata"]["ltdd"]
    assert meta["preset"] in ("cpu", "paper") and meta["commit"] != "unknown"
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    assert not [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.slow
def test_book_builds_strictly_with_every_chapter(tmp_path):
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(ROOT), "--toc", str(ROOT / "book" / "_toc.yml"),
           "--config", str(ROOT / "_config.yml"), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    for page in ["book/intro", "book/running", "book/bibliography"] + [f"book/chapters/{s}" for s in CHAPTERS]:
        assert (html / f"{page}.html").exists(), page
    index = (html / "book" / "intro.html").read_text()
    for stem in CHAPTERS:
        assert f"chapters/{stem}.html" in index
        assert "cell_output" in (html / "book" / "chapters" / f"{stem}.html").read_text()
