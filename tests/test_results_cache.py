
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
