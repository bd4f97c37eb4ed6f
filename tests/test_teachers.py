"""The teachers' recipe (ltdd_utils.teachers) on planted cases: it learns, its parts do what they say."""
import math

import pytest
import torch

from ltdd_utils.models import FastNet, bn_statistics, get_model, whiten_from
from ltdd_utils.teachers import Recipe, _Lookahead, _param_groups, fit_teacher, predict_tta
from ltdd_utils.train import fit

SMALL = Recipe(width=8, batch=50, whiten_images=200)


def planted(n: int, seed: int, classes: int = 4):
    """Class c raises channel c % 3 (first three classes) or lowers it (the fourth) on noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 3, 16, 16, generator=g) * 0.7
    for c in range(classes):
        x[y == c, c % 3] += 1.0 if c < 3 else -1.0
    return x, y


def test_the_recipe_learns_a_planted_case():
    x, y = planted(400, 0)
    xt, yt = planted(200, 1)
    net = fit_teacher(x, y, 4, epochs=8, recipe=SMALL, precision="fp32", compile=False)
    assert net.train_steps == 8 * 8 and not net.training
    acc = float((predict_tta(net, xt, precision="fp32").argmax(1) == yt).float().mean())
    assert acc >= 0.9, acc
    assert len(bn_statistics(net)) == 6                          # recovery can match its BatchNorm statistics


def test_fractional_epochs_stop_within_the_last_epoch():
    x, y = planted(200, 0)
    net = fit_teacher(x, y, 4, epochs=1.5, recipe=SMALL, precision="fp32", compile=False)
    assert net.train_steps == 6                                  # 4 steps per epoch
    with pytest.raises(ValueError, match="objective"):
        fit_teacher(x, y, 4, epochs=1, objective="focal", recipe=SMALL)
    with pytest.raises(ValueError, match="steps 9"):
        fit(get_model("convnet", 3, 4, (16, 16), width=4), x, y, epochs=2, batch=50, steps=9)


def test_logit_adjustment_lifts_the_rare_class():
    """On a long tail, training against logits shifted by the log prior leaves the plain logits less biased to the
    head: the rare class is predicted more often than under plain cross-entropy."""
    x, y = planted(800, 0, classes=2)
    keep = torch.cat([(y == 0).nonzero().flatten(), (y == 1).nonzero().flatten()[:40]])    # 400 : 40
    x, y = x[keep], y[keep]
    xt, _ = planted(400, 1, classes=2)
    rare = {}
    for objective in ("ce", "logit_adjust"):
        net = fit_teacher(x, y, 2, epochs=3, objective=objective, recipe=SMALL, precision="fp32", compile=False)
        rare[objective] = float((net(xt).argmax(1) == 1).float().mean())
    assert rare["logit_adjust"] > rare["ce"]


def test_whitening_filters_decorrelate_patches_and_stay_frozen():
    torch.manual_seed(0)
    net = FastNet(3, 10, width=8)
    x = torch.randn(64, 3, 16, 16) @ torch.eye(16) * 3 + 1
    whiten_from(net, x)
    out = torch.nn.functional.conv2d(x, net.whiten.weight[:12])   # the positive half: one channel per eigenvector
    cov = torch.cov(out.permute(1, 0, 2, 3).reshape(12, -1))
    assert torch.allclose(cov, torch.diag(cov.diagonal()), atol=0.05 * float(cov.diagonal().max()))
    assert not net.whiten.weight.requires_grad
    with pytest.raises(ValueError, match="BatchNorm only"):
        get_model("fastnet", 3, 10, norm="instancenorm")


def test_batchnorm_shifts_learn_faster_and_the_lookahead_averages():
    net = FastNet(3, 10, width=8)
    shifts, rest = _param_groups(SMALL)(net)
    assert shifts["lr"] == pytest.approx(64 * rest["lr"]) and shifts["lr"] * shifts["weight_decay"] == pytest.approx(
        rest["lr"] * rest["weight_decay"])
    assert all(p.ndim == 1 for p in shifts["params"]) and len(shifts["params"]) == 6
    look = _Lookahead(net, every=2, decay=0.8, total=4)
    w0 = net.classifier.weight.detach().clone()
    with torch.no_grad():
        net.classifier.weight.add_(1.0)
        look(1, net)                                             # not a multiple of 2: untouched
        assert torch.allclose(net.classifier.weight, w0 + 1)
        look(2, net)                                             # decay 0.8 x (2/4)^3 = 0.1 toward the average
        assert torch.allclose(net.classifier.weight, w0 + 0.9)
        net.classifier.weight.add_(1.0)
        look(4, net)                                             # the last step keeps the plain weights
        assert torch.allclose(net.classifier.weight, w0 + 1.9)


def test_the_page_includes_the_stored_teachers_as_rendered():
    """book/results/teachers.md (included by "Running the book") is what teachers.json renders to; every row names
    its seed, epochs, validation curve, machine and precision, and the test accuracy plain and flip-averaged."""
    import json
    from pathlib import Path
    from ltdd_utils import teachers
    results = Path(__file__).resolve().parent.parent / "book" / "results"
    rows = json.loads((results / "teachers.json").read_text())
    assert (results / "teachers.md").read_text() == teachers.to_markdown(rows)
    assert "```{include} results/teachers.md" in (results.parent / "running.md").read_text()
    for r in rows:
        # fit validates after every pass over the data, the last partial one too (the stored epochs are whole or
        # halves of passes of many steps)
        assert r["role"] in teachers.ROLES and r["recipe"] and len(r["validation_curve"]) == math.ceil(r["epochs"])
        assert r["device"] and r["precision"] in ("fp32", "bf16") and r["minutes"] > 0
        assert r["test"]["acc"] > 0 and r["test_tta"]["acc"] > 0
        assert not r["role"].startswith("lt_") or {"acc_many", "acc_medium", "acc_few"} <= set(r["test_tta"])
    # the settings tried on validation for the plain long-tail teacher: the page quotes their last epochs
    tried = json.loads((results / "teachers_choices.json").read_text())["rows"]
    ends = [f"{r['validation_curve'][-1]:g} %" for r in tried]
    ends = ", ".join(ends[:-1]) + " and " + ends[-1] if len(ends) > 1 else ends[0]
    assert all(len(r["validation_curve"]) == math.ceil(r["epochs"]) and "test" not in r for r in tried)
    assert f"({ends} on validation at the end;" in " ".join((results.parent / "running.md").read_text().split())


def test_chapters_01_02_and_06_get_one_cached_teacher(tmp_path, monkeypatch):
    """Chapters 01 and 02 draw one long-tailed split at a preset (same N_MAX, imbalance and tail order), so
    chapter 01's teacher and chapter 02's plain observer are one cached network, trained once; chapter 06 runs
    chapter 01 on a split chapter 01 has too and loads its teacher, and herds in that teacher's features (their
    smoke configs, as each builds them)."""
    from ltdd_utils import teachers
    from ltdd_utils.chapters.leaderboard import paper_config
    from ltdd_utils.config import make_config
    from ltdd_utils.experiment import Run
    from ltdd_utils.studies import adsa, unbiased_recovery

    trained = []
    fit = teachers.fit_teacher
    monkeypatch.setattr(teachers, "fit_teacher", lambda x, *a, **k: trained.append(len(x)) or fit(x, *a, **k))
    first = adsa.Study(Run(make_config("adsa", "smoke", cache_dir=str(tmp_path))))
    assert len(trained) == len(first.teachers)               # one per split: the long tails and the balanced one
    second = unbiased_recovery.Study(Run(make_config("unbiased_recovery", "smoke", cache_dir=str(tmp_path))))
    observer = second.expert(second.IF0, "plain", "observer")
    assert len(trained) == len(first.teachers)               # loaded, not trained again
    assert observer.cache_key == first.teachers[second.IF0].cache_key
    assert torch.equal(observer.classifier.weight, first.teachers[second.IF0].classifier.weight)
    board = dict(make_config("leaderboard", "smoke", cache_dir=str(tmp_path)))
    third = adsa.Study(Run(paper_config(board, "adsa", check_data=True)))
    assert third.IF0 in first.teachers and third.teachers[third.IF0].cache_key == first.teachers[third.IF0].cache_key
    assert len(trained) == len(first.teachers) + 1            # only its balanced teacher, of that split's size, is new
    from ltdd_utils.studies.leaderboard import Study as Board
    lb = Board(Run(make_config("leaderboard", "smoke", cache_dir=str(tmp_path))))
    value = next(v for k, v in lb.imperfections if k == "long_tail")
    assert lb.features(lb.data("long_tail", value)[0]).cache_key == third.teachers[value].cache_key
    assert len(trained) == len(first.teachers) + 1            # herding's features on the long tail: that teacher, loaded


def test_a_glmc_expert_trains_on_the_recipe_and_logit_adjustment_is_checked(tmp_path):
    """A debiased FastNet expert (GLMC's step on the teachers' recipe) keeps GLMC's second head, scaled like the
    backbone's, and learns a planted long tail through it (without the SimSiam term: at GLMC's weight 4 it holds
    this case at 50 %); logit-adjusted experts must be FastNets without GLMC variants."""
    from ltdd_utils.config import ConfigError, make_config
    from ltdd_utils.data import ImageData
    from ltdd_utils.methods.unbiased_recovery import Expert, train_expert
    from ltdd_utils.models import ScaledLinear
    x, y = planted(400, 0)
    keep = torch.cat([torch.nonzero(y == c).flatten()[:n] for c, n in enumerate((100, 60, 30, 12))])
    as_bytes = lambda v: (v * 32 + 128).clamp(0, 255).round().to(torch.uint8)   # (pixels - 0.5) / 0.125 ~ v
    data = ImageData(as_bytes(x[keep]), y[keep], list("abcd"), "planted", "test", (0.5,) * 3, (0.125,) * 3)
    expert = train_expert(data, True, "fastnet", 8, epochs=20, batch=50, contrast_weight=0.0, seed=0,
                          cache_root=tmp_path)
    head, second = expert.backbone.classifier, expert.fc_cb
    assert isinstance(expert, Expert) and isinstance(second, ScaledLinear) and second is not head
    assert second.scale == head.scale and not torch.equal(second.weight, head.weight)
    xt, yt = planted(200, 1)
    test = ImageData(as_bytes(xt), yt, list("abcd"), "planted", "test", (0.5,) * 3, (0.125,) * 3)
    with torch.no_grad():
        acc = float((expert(test.tensors()[0]).argmax(1) == yt).float().mean())
    assert acc >= 0.9, acc
    with pytest.raises(ConfigError, match="EXPERT_MODEL 'fastnet'"):
        make_config("unbiased_recovery", "smoke", check_data=False, expert_objective="logit_adjust",
                    expert_model="convnet_bn", expert_candidates=[])
    with pytest.raises(ConfigError, match="expert_candidates"):
        make_config("unbiased_recovery", "smoke", check_data=False, expert_objective="logit_adjust")


def test_recipe_overrides_are_checked_before_anything_trains():
    """The measurement's recipe overrides (``--recipe``) are Recipe's fields of its types; a role's own overrides
    come first and the caller's over them; a run that chooses a setting (no test set) writes no rows."""
    from ltdd_utils import teachers
    from ltdd_utils.config import ConfigError
    assert teachers.parse_recipe("batch=250,weight_decay=0.03") == {"batch": 250, "weight_decay": 0.03}
    assert teachers.parse_recipe("") == {}
    for bad, why in (("batch", "NAME=VALUE"), ("depth=3", "NAME=VALUE"), ("batch=2.5", "whole number"),
                     ("weight_decay=-1", "number ≥ 0"), ("lr=0", "> 0"), ("momentum=1", r"\[0, 1\)"),
                     ("lr=nan", "finite")):
        with pytest.raises(ConfigError, match=why):
            teachers.parse_recipe(bad)
    for role in teachers.ROLES:
        assert teachers.role_recipe(role, {"width": 8}).width == 8
        assert teachers.role_recipe(role).batch == teachers.ROLES[role].get("recipe", {}).get("batch", Recipe().batch)
    with pytest.raises(ValueError, match="writes no rows"):
        teachers.measure(["lt_plain"], [0], out="rows.json", test=False)
    with pytest.raises(ConfigError, match="augmentation 'crop'"):
        teachers.measure(["lt_plain"], [0], test=False, aug="crop")
    with pytest.raises(ConfigError, match="own views"):
        teachers.measure(["lt_plain", "lt_glmc"], [0], test=False, aug="cropflip")
