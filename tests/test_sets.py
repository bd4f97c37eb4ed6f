"""The distilled sets in the site (ltdd_utils.sets): a chapter's shown set is written with its provenance and the
records' accuracy, loads back by path or URL, and its students reach that accuracy again."""
import json

import numpy as np
import pytest
import torch

from ltdd_utils import sets


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Chapter 01 at the smoke preset: its hard-label arm on the shown set, recorded; then the set exported."""
    from ltdd_utils.config import make_config
    from ltdd_utils.experiment import Run
    from ltdd_utils.studies.adsa import Study
    tmp = tmp_path_factory.mktemp("sets")
    params = {"cache_dir": str(tmp / "cache"), "results_dir": str(tmp / "results"), "precision": "fp32"}
    st = Study(Run(make_config("adsa", "smoke", **params)))
    st.choose_width()
    st.arm("main", st.IF0, st.ipc0, "hard", st.seed0)
    st.run.write()
    meta = {"commit": "abc", "device": "cpu", "parameters": params, "resolved": {"precision": "fp32"}}
    folder = tmp / "book" / "sets" / "adsa_smoke"
    folder.mkdir(parents=True)
    (folder / "adsa_smoke_old.npz").write_bytes(b"")              # a set of an earlier run: removed
    path, = sets.export_chapter("adsa", "smoke", params, meta, folder, from_run=True)
    assert sorted(folder.iterdir()) == [path]
    return st, path


def test_a_shown_set_loads_by_path_and_url_and_evaluates_to_its_recorded_accuracy(exported):
    st, path = exported
    s = sets.load(path)
    shown = st.shown_sets()[0]
    assert path.name == f"adsa_smoke_{shown['name']}.npz"
    assert torch.allclose(s.images, shown["set"].images, atol=2e-3) and torch.equal(s.labels, shown["set"].labels)
    again = sets.load(path.as_uri())
    assert torch.equal(again.images, s.images) and again.meta == s.meta
    hard = next(a for a in s.meta["arms"] if a["method"] == "hard")
    assert s.meta["run"]["commit"] == "abc" and s.meta["seed"] == st.seed0 and s.meta["ipc"] == st.ipc0
    assert s.meta["run"]["parameters"]["precision"] == "fp32" and s.meta["students"]["width"] == st.width
    assert s.meta["producer"]["distill.recover"] >= 1 and "history" not in s.meta["set_meta"]
    with pytest.raises(ValueError, match="SHA-256"):
        sets.load(path, sha256="0" * 64)
    assert sets.load(path, sha256=sets.file_sha256(path)).meta == s.meta
    assert {a["method"] for a in s.meta["arms"] if a["recorded"] is None} == {
        m for m in st.cfg.methods if not m.startswith("random")} - {"hard"}   # only hard ran here
    # the loaded set through the book's protocol, as the chapter trained its hard-label students
    rec, = st.run.evaluate(s, "hard (loaded)", {"study": "loaded", "imbalance_factor": st.IF0}, st.ipc0, st.seed0,
                           groups=st.groups, settings=st.settings(), train_fn=st.trainer(None))
    assert rec["acc"] == pytest.approx(hard["recorded"]["acc"], abs=1.0)     # float16 pixels: within 2 of 200 tests


def test_a_set_downloads_over_http(exported, tmp_path):
    """What a reader does with a set's link on the site: the download is checked and loaded."""
    import functools
    import http.server
    import threading
    _, path = exported
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    handler.log_message = lambda *a: None
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            s = sets.load(url + path.name, cache_root=tmp_path)
            assert s.meta == sets.load(path).meta
            with pytest.raises(OSError, match="could not download"):
                sets.load(url + "missing.npz", cache_root=tmp_path)
        finally:
            server.shutdown()


def test_a_file_that_is_not_a_set_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no set"):
        sets.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a set of this book"):
        sets.load(tmp_path / "other.npz")
    np.savez(tmp_path / "future.npz", images=np.zeros((1, 1, 2, 2), np.float16), labels=np.zeros(1, np.int64),
             provenance=np.array(json.dumps({"format": sets.FORMAT + 1})))
    with pytest.raises(ValueError, match="format"):
        sets.load(tmp_path / "future.npz")
    with pytest.raises(ValueError, match=".npz"):
        sets.export(None, tmp_path / "x.pt", {})
    with pytest.raises(ValueError, match="http"):
        sets.load("s3://bucket/set.npz")


def test_the_page_lists_each_file_with_its_provenance_accuracy_and_download(exported, tmp_path, monkeypatch):
    st, path = exported
    monkeypatch.setattr(sets, "PAGE", path.parent.parent.parent / "sets.md")
    page = sets.sets_markdown(path.parent.parent)
    hard = next(a for a in sets.load(path).meta["arms"] if a["method"] == "hard")["recorded"]
    assert f"{{download}}`{path.name} <sets/adsa_smoke/{path.name}>`" in page and "adsa, `smoke`" in page
    assert f"| `hard` | {hard['acc']:.1f} | {hard['acc_few']:.1f} |" in page and sets.file_sha256(path) in page
    assert "commit `abc`" in page and "1 file(s)" in page and "## recovered images" in page
    assert sets.sets_markdown(tmp_path).count("No chapter run has written a set yet") == 1


def test_the_books_sets_page_is_current_and_within_its_budget():
    assert sets.write_page(check=True) == 0, "run `python -m ltdd_utils sets`"
    assert sum(p.stat().st_size for p in sets.SETS.glob("*/*.npz")) <= sets.BUDGET_MB * 2 ** 20


def test_the_books_sets_train_their_hard_label_students_to_the_recorded_accuracy():
    """Every committed set, loaded by the library call, trains the hard-label student of its chapter's protocol
    (its seed, the students' settings in its provenance) to the accuracy its chapter recorded, within seed noise:
    3 points (the hard arm's spread over seeds is about 1; another CPU, or fp32, changes the numerics)."""
    from ltdd_utils.config import make_config
    from ltdd_utils.evaluate import EvalSettings, evaluate_synset
    from ltdd_utils.experiment import Run, kd_trainer
    files = sorted(sets.SETS.glob("*/*.npz"))
    for path in files:
        s = sets.load(path, sha256=sets.file_sha256(path))
        hard = next((a["recorded"] for a in s.meta["arms"] if a["method"] == "hard" and a["recorded"]), None)
        if hard is None:
            continue
        params = {k: v for k, v in (s.meta["run"]["parameters"] or {}).items() if k.lower() not in
                  ("results_dir", "cache_dir", "data_root")}
        run = Run(make_config(s.meta["chapter"], s.meta["preset"], **params))
        st = s.meta["students"]
        settings = EvalSettings(model=st["model"], width=st["width"], depth=st["depth"], norm=st["norm"],
                                batch=st["batch"], students=1)
        m, = evaluate_synset(s, run.test, settings, seed=s.meta["seed"], device=run.device,
                             train_fn=kd_trainer(run.cfg, None, run.device))
        assert abs(m["acc"] - hard["acc"]) <= 3.0, (path.name, m["acc"], hard["acc"])
