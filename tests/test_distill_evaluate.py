import time

import pytest
import torch

from ltdd_utils.data import load_dataset
from ltdd_utils.data.longtail import make_longtail
from ltdd_utils.distill import SyntheticSet, class_mean_embeddings, distribution_matching, dm_loss, herding, random_subset
from ltdd_utils.evaluate import (EvalSettings, accuracy_metrics, class_balanced_weights, evaluate_synset,
                                 soft_label_loss, train_teacher)
from ltdd_utils.models import get_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train=True), load_dataset("digits", train=False)


def net_fn():
    return get_model("convnet", 1, 10, (8, 8), width=8)


def test_dm_loss_zero_for_identical_sets_and_positive_otherwise():
    f, y = torch.randn(40, 16), torch.arange(4).repeat(10)
    means = class_mean_embeddings(f, y, 4)
    assert float(dm_loss(means, f, y)) == pytest.approx(0.0, abs=1e-10)
    assert float(dm_loss(means, f + 0.1, y)) > 0


def test_uniform_weights_give_the_plain_mean():
    f, y = torch.randn(30, 5, generator=torch.Generator().manual_seed(0)), torch.arange(3).repeat(10)
    assert torch.allclose(class_mean_embeddings(f, y, 3), class_mean_embeddings(f, y, 3, torch.full((30,), 2.5)), atol=1e-6)
    w = torch.zeros(30)
    w[0] = 1.0
    assert torch.allclose(class_mean_embeddings(f, y, 3, w)[0], f[0])


def test_random_subset_and_short_classes(digits):
    lt = make_longtail(digits[0], 100, seed=0)
    syn = random_subset(lt, 5, seed=0)
    counts = lt.class_counts()
    assert syn.class_counts() == [min(5, c) for c in counts]
    assert syn.meta["per_class"] == syn.class_counts()
    assert torch.equal(digits[0].labels[torch.tensor(syn.meta["indices"])], syn.labels)


def test_herding_picks_the_point_nearest_the_mean_first(digits):
    tr = digits[0]
    feats = torch.randn(len(tr), 4)
    c0 = (tr.labels == 0).nonzero().flatten()
    feats[c0] = torch.randn(len(c0), 4) * 5
    feats[c0[17]] = feats[c0].mean(0)              # a point exactly at the class mean
    syn = herding(tr, 3, None, features=feats)
    assert syn.meta["indices"][0] == int(c0[17])
    assert syn.class_counts() == [3] * 10


def test_dm_lowers_its_loss_and_is_deterministic(digits):
    tr = digits[0]
    kw = dict(iterations=30, lr=1.0, batch_real=32, net_pool=1, seed=0)
    a = distribution_matching(tr, 2, net_fn, **kw)
    b = distribution_matching(tr, 2, net_fn, **kw)
    assert torch.equal(a.images, b.images)                      # fixed seed: exact repeat on CPU
    h = a.meta["loss_history"]
    assert sum(h[-5:]) < sum(h[:5])
    assert not torch.equal(a.images, random_subset(tr, 2, 0).images)  # the pixels moved


def test_gradients_reach_synthetic_pixels():
    syn = torch.randn(4, 1, 8, 8, requires_grad=True)
    net = net_fn()
    real = class_mean_embeddings(net.embed(torch.randn(20, 1, 8, 8)), torch.arange(2).repeat(10), 2)
    dm_loss(real, net.embed(syn), torch.tensor([0, 0, 1, 1])).backward()
    assert syn.grad.abs().sum() > 0


def test_accuracy_metrics_hand_made():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 0, 1, 0, 0, 0])
    m = accuracy_metrics(pred, labels, 3, {"many": [0], "medium": [1], "few": [2]})
    assert m["acc"] == pytest.approx(50.0)
    assert m["per_class"] == pytest.approx([100.0, 50.0, 0.0])
    assert (m["acc_many"], m["acc_medium"], m["acc_few"]) == pytest.approx((100.0, 50.0, 0.0))


def test_soft_label_losses():
    t = torch.randn(5, 3)
    teacher_logits = soft_label_loss("soft_kl", stored_logits=t, temperature=2.0)
    assert float(teacher_logits(t.clone(), None, torch.arange(5))) == pytest.approx(0.0, abs=1e-6)
    assert float(teacher_logits(torch.zeros(5, 3), None, torch.arange(5))) > 0
    mse = soft_label_loss("soft_mse", stored_logits=t, logit_offset=torch.ones(3))
    assert float(mse(t - 1, None, torch.arange(5))) == pytest.approx(0.0, abs=1e-10)


def test_class_balanced_weights():
    w = class_balanced_weights([100, 10, 1])
    assert w[0] < w[1] < w[2] and float(w.mean()) == pytest.approx(1.0)


def test_evaluate_synset_learns_digits(digits):
    tr, te = digits
    syn = random_subset(tr, 10, 0)
    res = evaluate_synset(syn, te, EvalSettings(width=16, epochs=100, lr=0.05, batch=100, aug="none", students=2), seed=0)
    assert len(res) == 2 and all(r["acc"] > 50 for r in res)   # chance is 10%
    from ltdd_utils.precision import resolve
    assert all(r["student_steps"] == 100 * 1 and r["precision"] == resolve("auto") for r in res)   # 100 images, batch 100


def test_students_are_cached_by_what_they_depend_on(digits, tmp_path, capsys, monkeypatch):
    """A second evaluation of the same set under the same protocol reuses each student's metrics and leaves the
    global random state as training did; another set, seed, protocol or labeller trains again, and a train_fn
    without a key is never cached."""
    from ltdd_utils.evaluate import student_key
    from ltdd_utils.experiment import kd_trainer
    from ltdd_utils.config import make_config
    tr, te = digits
    syn = random_subset(tr, 5, 0)
    st = EvalSettings(width=8, depth=2, epochs=20, lr=0.05, batch=25, aug="dsa", students=2)
    kw = dict(use_cache=True, cache_root=tmp_path)
    a = evaluate_synset(syn, te, st, seed=3, **kw)
    after_training = torch.rand(3)
    assert "(cached)" not in capsys.readouterr().out and len(list((tmp_path / "students").glob("*.pt"))) == 2
    from ltdd_utils import versions
    monkeypatch.setattr(versions, "_used", set())
    monkeypatch.setenv(versions.LOG_ENV, str(tmp_path / "producers.txt"))
    b = evaluate_synset(syn, te, st, seed=3, **kw)
    assert torch.equal(torch.rand(3), after_training)            # the same draws next, trained or reused
    assert {"evaluate", "train.fit"} <= set((tmp_path / "producers.txt").read_text().split())   # a hit logs them
    assert capsys.readouterr().out.count("(cached)") == 2
    assert [x["acc"] for x in a] == [x["acc"] for x in b] and a[1]["per_class"] == b[1]["per_class"]
    evaluate_synset(syn, te, st, seed=4, **kw)                                 # another seed
    evaluate_synset(random_subset(tr, 5, 1), te, st, seed=3, **kw)            # other pixels
    evaluate_synset(syn, te, EvalSettings(**{**st.__dict__, "lr": 0.02}), seed=3, **kw)   # another protocol
    assert "(cached)" not in capsys.readouterr().out
    assert len(list((tmp_path / "students").glob("*.pt"))) == 8
    plain = lambda m, x, y, seed: m
    assert student_key(syn, te, st, None, 0, "cpu", train_fn=plain) is None
    cfg = make_config("adsa", "smoke", check_data=False)
    t1, t2 = (get_model("convnet", 1, 10, (8, 8), width=8) for _ in range(2))
    k1, k2 = (student_key(syn, te, st, None, 0, "cpu", train_fn=kd_trainer(cfg, t, "cpu")) for t in (t1, t2))
    assert k1["trainer"]["teacher"] != k2["trainer"]["teacher"] and k1["versions"]["student.kd"] == 2


def test_teacher_is_cached_by_configuration(digits, tmp_path):
    tr = make_longtail(digits[0], 10, 0)
    kw = dict(width=8, epochs=3, batch=128, cache_root=tmp_path)
    t0 = time.time()
    a = train_teacher(tr, **kw)
    files = list((tmp_path / "nets" / "net.teacher").glob("*.pt"))
    assert len(files) == 1
    b = train_teacher(tr, **kw)                     # loaded, not retrained
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    train_teacher(tr, loss="logit_adjust", **kw)
    assert len(list((tmp_path / "nets" / "net.teacher").glob("*.pt"))) == 2
    assert time.time() - t0 < 120


def test_synset_roundtrip(tmp_path):
    s = SyntheticSet(torch.randn(4, 1, 8, 8), torch.tensor([0, 0, 1, 1]), 2, meta={"method": "x"})
    s.save(tmp_path / "s.pt")
    r = SyntheticSet.load(tmp_path / "s.pt")
    assert torch.equal(r.images, s.images) and r.meta == s.meta


def test_dm_resumes_from_a_checkpoint_to_the_same_result(digits, tmp_path, monkeypatch):
    tr = digits[0]
    kw = dict(iterations=12, lr=1.0, batch_real=16, net_pool=2, seed=3)
    full = distribution_matching(tr, 2, net_fn, **kw)
    ck = tmp_path / "dm.partial.pt"
    # interrupt after the checkpoint at step 6
    import ltdd_utils.distill.dm as dm_mod
    real_loss = dm_mod.dm_loss
    calls = {"n": 0}

    def failing(*a):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real_loss(*a)
    monkeypatch.setattr(dm_mod, "dm_loss", failing)
    with pytest.raises(KeyboardInterrupt):
        distribution_matching(tr, 2, net_fn, checkpoint=ck, checkpoint_every=6, **kw)
    assert ck.exists()
    monkeypatch.setattr(dm_mod, "dm_loss", real_loss)
    resumed = distribution_matching(tr, 2, net_fn, checkpoint=ck, checkpoint_every=6, **kw)
    assert torch.allclose(resumed.images, full.images, atol=1e-6) and not ck.exists()
    assert resumed.meta["loss_history"] == pytest.approx(full.meta["loss_history"], rel=1e-5)


def test_evaluation_repeats_exactly_under_a_seed(digits):
    tr, te = digits
    syn = random_subset(tr, 3, 0)
    s = EvalSettings(width=8, epochs=5, batch=32, students=1)
    a, b = evaluate_synset(syn, te, s, seed=4), evaluate_synset(syn, te, s, seed=4)
    assert a[0]["per_class"] == b[0]["per_class"]


def test_soft_labels_stored_logits_train_students(digits):
    tr, te = digits
    syn = random_subset(tr, 10, 0)
    syn.soft_labels = torch.nn.functional.one_hot(syn.labels, 10).float() * 8
    s = EvalSettings(width=16, epochs=100, lr=0.05, batch=100, aug="none", students=1, label_mode="soft_kl",
                     temperature=1.0)
    assert evaluate_synset(syn, te, s, seed=0)[0]["acc"] > 40


def test_online_teacher_relabels_the_augmented_batch():
    teacher = get_model("convnet", 1, 3, (8, 8), width=4)
    x, student = torch.randn(6, 1, 8, 8), torch.randn(6, 3)
    offset = torch.tensor([0.5, 0.0, -0.5])
    loss = soft_label_loss("soft_kl", teacher, temperature=2.0, logit_offset=offset)(student, x, torch.arange(6))
    with torch.no_grad():
        t = teacher(x) - offset
    expected = torch.nn.functional.kl_div(torch.log_softmax(student / 2, 1), torch.softmax(t / 2, 1),
                                          reduction="batchmean") * 4
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_distiller_by_name_is_one_product_across_chapters(digits, tmp_path):
    from ltdd_utils.distill import distill
    from ltdd_utils.models import get_model
    tr = make_longtail(digits[0], 10, 0)
    common = dict(ipc=2, model="convnet", width=8, depth=2, norm="instancenorm", dm_iterations=3, dm_lr=1.0,
                  dm_batch_real=8, dm_dsa=True, dm_net_pool=0, cache_dir=str(tmp_path))
    ch_a, ch_b = {**common, "eval_width": 8, "seeds": [0]}, {**common, "teacher_epochs": 3}   # two chapters' configs
    a, b = distill("dm", tr, ch_a, 1), distill("dm", tr, ch_b, 1)
    assert len(list((tmp_path / "synsets" / "dm").glob("*.pt"))) == 1 and torch.equal(a.images, b.images)
    net_fn = lambda: get_model("convnet", 1, 10, (8, 8), width=8, depth=2, norm="instancenorm")
    direct = distribution_matching(tr, 2, net_fn, iterations=3, lr=1.0, batch_real=8, seed=1)
    assert torch.equal(direct.images, a.images)
    distill("dm", tr, ch_a, 1, width=16)                       # another setting, another product
    assert len(list((tmp_path / "synsets" / "dm").glob("*.pt"))) == 2
    with pytest.raises(ValueError, match="no setting"):
        distill("dm", tr, ch_a, 1, widht=16)


def _spectral_cfg(tmp_path, **kw):
    return dict(ipc=2, model="convnet", width=8, depth=2, norm="instancenorm", dm_iterations=2, dm_lr=1.0,
                dm_batch_real=8, dm_dsa=False, dm_net_pool=2, spectral_lr=0.05, kernel="gaussian", sigma=1.0,
                num_freqs=16, cf_form="mmd", alpha_rule="loglinear", alpha_head=0.7, alpha_tail=0.3, alpha0=0.8,
                n0=100.0, cache_dir=str(tmp_path), **kw)


def test_exact_pool_rule_weights_and_spectral_variants(digits, tmp_path):
    from ltdd_utils.distill import distill, pool_embeddings, pooled_class_means
    from ltdd_utils.distill.registry import exact_pool, is_exact, settings_of
    tr = make_longtail(digits[0], 10, 0)
    cfg = _spectral_cfg(tmp_path)
    s = settings_of("dm", cfg)
    assert is_exact(s) and not is_exact({**s, "dsa": True}) and not is_exact({**s, "net_pool": 0})
    # exact DM = DM on the pool's precomputed whole-class means
    nets, feats = exact_pool(tr, s, 1)
    direct = distribution_matching(tr, 2, None, iterations=2, lr=1.0, use_dsa=False, seed=1, nets=nets,
                                   real_means=pooled_class_means(feats, tr.labels, 10))
    assert torch.equal(distill("dm", tr, cfg, 1).images, direct.images)
    # the pool's embeddings follow the images, not the labels
    from dataclasses import replace
    relabelled = replace(tr, labels=torch.roll(tr.labels, 1))
    assert relabelled.fingerprint() != tr.fingerprint() and exact_pool(relabelled, s, 1)[1][0] is feats[0]
    # per-image weights are part of the product
    w = torch.rand(len(tr), generator=torch.Generator().manual_seed(0))
    weighted = distill("dm", tr, cfg, 1, weights=w)
    assert not torch.equal(weighted.images, direct.images)
    assert len(list((tmp_path / "synsets" / "dm").glob("*.pt"))) == 2
    # sdd and csdm with the same alpha variant are one product; another variant is another
    a = distill("sdd", tr, cfg, 1, variant="reversed")
    b = distill("csdm", tr, cfg, 1, variant="reversed")
    assert torch.equal(a.images, b.images) and len(list((tmp_path / "synsets" / "spectral").glob("*.pt"))) == 1
    distill("csdm", tr, cfg, 1)
    distill("mmd", tr, cfg, 1)
    assert len(list((tmp_path / "synsets" / "spectral").glob("*.pt"))) == 3
    with pytest.raises(ValueError, match="no IPC"):
        distill("dm", tr, {**cfg, "ipc": None}, 1)


def test_class_alphas_variants():
    from ltdd_utils.methods.csdm import alpha_schedule, class_alphas
    counts = [500, 100, 20]
    assert torch.allclose(class_alphas(counts, "sdd"), torch.full((3,), 0.5))
    assert class_alphas(counts, "amplitude_only").tolist() == [1, 1, 1]
    assert class_alphas(counts, "phase_only").tolist() == [0, 0, 0]
    assert torch.allclose(class_alphas(counts, "csdm"), alpha_schedule(counts, "loglinear"))
    assert torch.allclose(class_alphas(counts, "reversed"), alpha_schedule(counts, "loglinear", reverse=True))
    assert torch.allclose(class_alphas(counts, "two_level"), alpha_schedule(counts, "two_level"))
    with pytest.raises(ValueError, match="variant"):
        class_alphas(counts, "sqrt")


def test_run_records_claims_and_report(tmp_path, monkeypatch):
    from ltdd_utils.config import make_config
    from ltdd_utils.experiment import Run
    from ltdd_utils.results import read_records
    import json
    cfg = make_config("longtail_baselines", "smoke", results_dir=str(tmp_path), cache_dir=str(tmp_path / "c"),
                      seeds=[0, 1], eval_epochs=2)
    run = Run(cfg)
    tr = make_longtail(run.train, 10, 0)
    for seed in cfg.seeds:
        for method in ("a", "b"):
            run.evaluate(random_subset(tr, 2, seed), method, {"imbalance_factor": 10}, 2, seed, add={"tag": 1})
    assert len(run.records) == 4 and all(r.student_steps and r.metrics["tag"] == 1 for r in run.records)
    from ltdd_utils import claims as declared
    from ltdd_utils.verdicts import Arm, Claim
    monkeypatch.setattr(declared, "declared", lambda chapter, cfg: [
        Claim("x.same", "supporting", "a beats b", Arm("a"), Arm("b")),
        Claim("x.bar", "gate", "a reaches 0 on every seed", Arm("a"), 0.0, kind="check", margin=0.0)])
    rows = run.verdicts(["* a line"])
    assert rows[0]["n"] == 2 and rows[0]["diffs"] == [0.0, 0.0] and rows[0]["verdict"] == "did not hold"   # same sets
    assert rows[1]["verdict"] == "held" and rows[1]["n"] == 2
    assert len(read_records(run.path)) == 4
    claims = json.loads((tmp_path / "longtail_baselines_smoke_claims.json").read_text())
    assert [x["id"] for x in claims] == ["x.same", "x.bar"] and claims[0]["statement"] == "a beats b, by at least 1 point"
