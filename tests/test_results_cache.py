import json

from ltdd_utils.cache import cached, config_key
from ltdd_utils.results import make_record, read_records, summarize, to_frame, write_records

PROV = {"preset": "smoke", "device": "cpu", "commit": "abc", "date": "2026-01-01"}


def test_records_roundtrip_and_table(tmp_path):
    recs = [make_record("ch", m, "digits", {"imbalance_factor": 10}, 2, s,
                        {"acc": a, "acc_few": a - 10, "per_class": [a, a]}, PROV, 1.0, "src", student=0)
            for m, s, a in [("dm", 0, 50.0), ("dm", 1, 60.0), ("random", 0, 40.0)]]
    jpath, cpath = write_records(recs, tmp_path / "out")
    back = read_records(jpath)
    assert back[1]["metrics"]["acc"] == 60.0 and back[0]["preset"] == "smoke" and back[0]["commit"] == "abc"
    assert "per_class.1" in cpath.read_text().splitlines()[0]
    table = summarize(to_frame(back), ["method"])
    assert table.loc["dm", "acc"] == "55.0 ± 7.1" and table.loc["dm", "n"] == 2
    assert not list(tmp_path.glob(".*tmp"))          # atomic writes leave no temporaries


def test_cache_computes_once(tmp_path):
    calls = []
    f = lambda: calls.append(1) or {"x": 1}
    assert cached("k", {"a": 1}, f, tmp_path) == {"x": 1}
    assert cached("k", {"a": 1}, f, tmp_path) == {"x": 1}
    assert len(calls) == 1
    cached("k", {"a": 2}, f, tmp_path)
    assert len(calls) == 2 and config_key({"a": 1, "b": 2}) == config_key({"b": 2, "a": 1})


def _arms(values):
    return [make_record("ch", m, "d", {"imbalance_factor": 100}, 10, s, {"acc": a, "student_steps": 40,
                                                                        "precision": "fp32"}, PROV, 1.0)
            for m, per_seed in values.items() for s, a in enumerate(per_seed)]


def test_records_judged_as_paired_claims_and_written(tmp_path):
    from ltdd_utils.results import write_claims
    from ltdd_utils.verdicts import Arm, Claim, evaluate
    recs = _arms({"new": [30.0, 35.0, 40.0], "base": [29.0, 34.2, 39.1]})
    assert recs[0].student_steps == 40 and recs[0].precision == "fp32" and "precision" not in recs[0].metrics
    new, base = Arm("new"), Arm("base")
    rows = evaluate([Claim("c1", "supporting", "new beats base", new, base, margin=0.5),
                     Claim("c2", "supporting", "new beats base by 1", new, base, margin=1.0),
                     Claim("c3", "supporting", "base beats new", base, new)], recs)
    # seeds differ by 10 points, the paired difference by 0.2: an unpaired bar would hide it
    assert rows[0]["n"] == 3 and abs(rows[0]["mean"] - 0.9) < 1e-9 and rows[0]["sd"] < 0.2
    assert [r["verdict"] for r in rows] == ["held", "inconclusive", "did not hold"]
    out = write_claims(rows, tmp_path / "ch_smoke")
    assert out.name == "ch_smoke_claims.json" and len(json.loads(out.read_text())) == 3


def test_image_grid_rows_follow_the_order_and_keep_their_names():
    """A grid's rows are the classes in ``order`` (e.g. head to tail), each named by its own class; an order that
    misses or repeats a class is refused."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pytest
    import torch
    from ltdd_utils import plots
    images = torch.stack([torch.full((1, 2, 2), v / 2) for v in (0, 1, 2)])        # class c: a flat image of c / 2
    labels = torch.tensor([0, 1, 2])
    ax = plots.image_grid(images, labels, 3, per_class=1, row_names=["a", "b", "c"], order=[2, 0, 1])
    shown = ax.get_images()[0].get_array()
    assert [float(shown[2 * r, 0]) for r in range(3)] == [1.0, 0.0, 0.5]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "a", "b"]
    with pytest.raises(ValueError, match="each of the 3 classes once"):
        plots.image_grid(images, labels, 3, order=[0, 0, 1])
    plt.close("all")
