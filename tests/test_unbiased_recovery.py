"""Unbiased recovery: fair BatchNorm recalibration, multi-round initialisation, debiasing weights, recovery,
relabelling and the chapter's parameters."""
import math

import pytest
import torch
import torch.nn as nn

from ltdd_utils.config import ConfigError, make_config
from ltdd_utils.data import ImageData
from ltdd_utils.distill import SyntheticSet
from ltdd_utils.evaluate import train_student_kd
from ltdd_utils.methods import unbiased_recovery as ur
from ltdd_utils.models import BNStatsHook, get_model


def tiny_data(counts, size=8, seed=0):
    """Random uint8 images whose brightness depends on the class, with the given class counts."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    base = (y.float() * 20 + 30).view(-1, 1, 1, 1)
    x = (base + torch.randn(len(y), 3, size, size, generator=g) * 20).clamp(0, 255).to(torch.uint8)
    return ImageData(x, y, [str(c) for c in range(len(counts))], "tiny", "generated", (0.5,) * 3, (0.25,) * 3)


def one_bn_net():
    """Identity features into one BatchNorm layer, so the layer's input is the image itself."""
    net = nn.Sequential(nn.Identity(), nn.BatchNorm2d(1), nn.Flatten(), nn.LazyLinear(2))
    net(torch.zeros(2, 1, 2, 2))
    return net


def test_recalibrated_statistics_equal_the_class_balanced_average():
    # class 0: 90 images of value 0 (+-1), class 1: 10 images of value 10 (+-1)
    y = torch.cat([torch.zeros(90, dtype=torch.long), torch.ones(10, dtype=torch.long)])
    sign = torch.where(torch.arange(100) % 2 == 0, 1.0, -1.0).view(-1, 1, 1, 1)
    x = (y.float() * 10).view(-1, 1, 1, 1) + sign * torch.ones(100, 1, 2, 2)
    stats = ur.class_bn_statistics(one_bn_net(), x, y, 2, batch=7)
    assert torch.allclose(stats["mean"][0], torch.tensor([[0.0], [10.0]]), atol=1e-5)
    assert torch.allclose(stats["var"][0], torch.ones(2, 1), atol=1e-4)
    (mu, var), = ur.balanced_targets(stats)
    assert torch.allclose(mu, torch.tensor([5.0]), atol=1e-5) and torch.allclose(var, torch.tensor([1.0]), atol=1e-4)
    (mu_m, var_m), = ur.balanced_targets(stats, mixture=True)
    assert torch.allclose(var_m, torch.tensor([1.0 + 25.0]), atol=1e-3)                # + between-class variance
    (mu_s, var_s), = ur.sample_weighted_targets(stats)
    assert torch.allclose(mu_s, torch.tensor([1.0]), atol=1e-5)                          # head-dominated
    assert torch.allclose(var_s, torch.tensor([1.0 + 0.9 * 0.1 * 100]), atol=1e-3)


def test_count_based_momentum_is_order_free_and_exact():
    data = tiny_data([40, 13, 5])
    x, y = data.tensors()
    net = get_model("convnet_bn", 3, 3, (8, 8), width=4, depth=2).eval()
    a = ur.class_bn_statistics(net, x, y, 3, batch=6)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    b = ur.class_bn_statistics(net, x[perm], y[perm], 3, batch=11)
    hook = BNStatsHook(net)
    with torch.no_grad():
        net(x)
    for l, h in enumerate(hook.inputs):
        for c in range(3):
            hc = h[y == c]
            assert torch.allclose(a["mean"][l][c], hc.mean((0, 2, 3)), atol=1e-5)
            assert torch.allclose(a["var"][l][c], hc.var((0, 2, 3), unbiased=False), atol=1e-4)
        assert torch.allclose(a["mean"][l], b["mean"][l], atol=1e-5) and torch.allclose(a["var"][l], b["var"][l], atol=1e-4)
    hook.remove()
    assert a["counts"].tolist() == [40, 13, 5]


def test_one_round_when_every_class_has_enough_images_reduces_to_best_crop_then_top_k():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(12, 4, generator=g)
    chosen, rounds = ur.select_multi_round(scores, 5)
    assert rounds == 1
    best, crop = scores.max(1)
    top = best.argsort(descending=True)[:5]
    assert chosen == [(int(i), int(crop[i])) for i in top]


def test_few_images_give_distinct_crops_spread_over_rounds_and_padding_is_never_chosen():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 5, generator=g)
    valid = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool)          # 3 real images, 3 placeholders
    scores[~valid] = 100.0                                                 # placeholders would win if scored
    chosen, rounds = ur.select_multi_round(scores, 10, valid)
    assert len(chosen) == 10 and len(set(chosen)) == 10
    assert all(i < 3 for i, _ in chosen)
    per_image = torch.bincount(torch.tensor([i for i, _ in chosen]), minlength=3)
    assert int(per_image.max()) <= math.ceil(10 / 3) and rounds == 4
    with pytest.raises(ValueError, match="crops per image"):
        ur.select_multi_round(scores, 16, valid)


def test_initialiser_returns_ipc_images_per_class_even_when_a_class_has_fewer():
    data = tiny_data([30, 9, 3])
    teacher = get_model("convnet_bn", 3, 3, (8, 8), width=4, depth=2).eval()
    syn = ur.multi_round_init(teacher, data, ipc=8, num_crops=3, max_images=10, seed=0)
    assert syn.class_counts() == [8, 8, 8] and syn.images.shape == (24, 3, 8, 8)
    assert syn.meta["distinct_images"] == [8, 8, 3] and syn.meta["rounds"][2] == 3
    src = syn.meta["source_indices"][2]
    assert set(src) <= set((data.labels == 2).nonzero().flatten().tolist())
    rnd = ur.multi_round_init(None, data, ipc=8, num_crops=3, seed=0, score="random")
    assert rnd.class_counts() == [8, 8, 8]
    with pytest.raises(ValueError, match="class 2 has 3 images"):
        ur.multi_round_init(teacher, data, ipc=10, num_crops=3)


def test_debiasing_weights_follow_the_class_counts():
    counts = [500, 100, 20, 5]
    w = ur.reweighting(counts, q=1.2)
    assert torch.isclose(w.mean(), torch.tensor(1.0))
    assert all(a < b for a, b in zip(w, w[1:]))                           # fewer images, larger weight
    ratio = torch.tensor(counts, dtype=torch.float) ** -1.2
    assert torch.allclose(w / w[0], ratio / ratio[0])
    assert torch.allclose(ur.reweighting([7, 7, 7], 1.0), torch.ones(3))


def test_recovery_moves_pixels_toward_the_targets_and_the_classwise_term_is_zero_at_its_own_statistics():
    data = tiny_data([20, 20])
    net = get_model("convnet_bn", 3, 2, (8, 8), width=4, depth=2).eval()
    x, y = data.tensors()
    stats = ur.class_bn_statistics(net, x, y, 2)
    init = SyntheticSet(torch.randn(4, 3, 8, 8), torch.tensor([0, 0, 1, 1]), 2)
    out = ur.recover_balanced(net, init, ur.balanced_targets(stats), stats, iterations=25, lr=0.1, ce_weight=0.0,
                              r_bn=1.0, crop_scale=(1.0, 1.0), flip=False, seed=0)
    h = out.meta["history"]
    assert not torch.equal(out.images, init.images)
    assert h["bn_global"][-1] < h["bn_global"][0] and h["bn_class"][-1] < h["bn_class"][0]
    own = ur.class_bn_statistics(net, out.images, out.labels, 2)
    again = ur.recover_balanced(net, out, ur.balanced_targets(stats), own, iterations=1, lr=1e-9, ce_weight=0.0,
                                crop_scale=(1.0, 1.0), flip=False, seed=0)
    assert again.meta["history"]["bn_class"][0] < 1e-3


def test_experts_train_once_and_are_cached(tmp_path):
    data = tiny_data([24, 8, 4])
    kw = dict(width=4, depth=2, epochs=1, batch=16, cache_root=tmp_path)
    a = ur.train_expert(data, debias=True, heads=1, **kw)
    b = ur.train_expert(data, debias=True, heads=1, **kw)
    assert a.cache_key == b.cache_key and a.train_seconds == b.train_seconds
    assert ur.train_expert(data, debias=False, **kw).cache_key != a.cache_key
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    two = ur.train_expert(data, debias=True, **kw)                         # GLMC's re-weighted head teaches
    assert two.cache_key != a.cache_key and two.fc_cb is not None
    x8 = data.tensors()[0][:5]
    assert torch.allclose(two(x8), two.fc_cb(two.embed(x8))) and not torch.allclose(two(x8), two.backbone(x8))


class _Heads(nn.Module):
    """An expert stand-in whose four outputs are separate parameters, to see which term reaches which head."""

    def __init__(self):
        super().__init__()
        self.plain, self.cb = nn.Linear(12, 3), nn.Linear(12, 3)
        self.proj, self.pred = nn.Linear(12, 4), nn.Linear(4, 4)

    def heads(self, x):
        h = x.flatten(1)[:, :12]
        z = self.proj(h)
        return self.plain(h), self.cb(h), z, self.pred(z)


def _glmc_grads(alpha, contrast_weight=0.0, seed=0):
    torch.manual_seed(seed)
    net = _Heads()
    g = torch.Generator().manual_seed(seed)
    xa, xb = torch.randn(6, 3, 8, 8, generator=g), torch.randn(6, 3, 8, 8, generator=g)
    ya, yb = torch.tensor([0, 0, 0, 0, 1, 2]), torch.tensor([2, 2, 1, 1, 0, 2])
    loss, parts = ur.glmc_step_loss(net, xa, ya, xb, yb, 3, torch.tensor([0.2, 1.0, 1.8]), alpha, contrast_weight,
                                    torch.Generator().manual_seed(1))
    loss.backward()
    return net, loss, parts


def test_glmc_loss_moves_from_the_plain_head_to_the_reweighted_head():
    early, _, _ = _glmc_grads(alpha=0.0)          # start of training: plain cross-entropy only, on the plain head
    assert early.plain.weight.grad.abs().sum() > 0 and float(early.cb.weight.grad.abs().sum()) == 0.0
    late, _, _ = _glmc_grads(alpha=1.0)           # end of training: the re-weighted term only, on the second head
    assert late.cb.weight.grad.abs().sum() > 0 and float(late.plain.weight.grad.abs().sum()) == 0.0
    _, mid, parts = _glmc_grads(alpha=0.25)
    assert torch.isclose(mid, torch.tensor(2 * (0.75 * parts["ce"] + 0.25 * parts["reweighted"])), rtol=1e-5)


def test_glmc_reweighted_term_weighs_the_targets_by_class():
    logits = torch.zeros(2, 3)                    # uniform predictions: CE = -sum_k t_k log(1/3)
    t = torch.tensor([[1.0, 0, 0], [0, 0.5, 0.5]])
    w = torch.tensor([0.5, 1.0, 2.0])
    from ltdd_utils.evaluate import soft_cross_entropy
    expected = math.log(3) * (0.5 + (0.5 * 1.0 + 0.5 * 2.0)) / 2
    assert math.isclose(float(soft_cross_entropy(logits, t, w)), expected, rel_tol=1e-6)


def test_simsiam_stop_gradient_is_on_the_projection_side():
    p1, z1, p2, z2 = (torch.randn(5, 4, requires_grad=True) for _ in range(4))
    ur.simsiam_loss(p1, z1, p2, z2).backward()
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0
    assert z1.grad is None and z2.grad is None
    net, _, _ = _glmc_grads(alpha=0.0, contrast_weight=1.0)
    assert net.pred.weight.grad.abs().sum() > 0   # the predictor learns from the consistency term


def test_cutmix_kept_fraction_is_the_share_of_pixels_left_from_the_first_batch():
    from ltdd_utils.augment import cutmix_images
    g = torch.Generator().manual_seed(0)
    for lam in (0.1, 0.37, 0.8, 0.99):
        a, b = torch.zeros(4, 3, 16, 16), torch.ones(4, 3, 16, 16)
        out, kept = cutmix_images(a, b, lam, g)
        assert math.isclose(kept, float((out == 0).float().mean()), abs_tol=1e-6)
        assert torch.equal(out[0], out[3])                                # one box for the whole batch


def test_second_batch_is_drawn_class_rebalanced():
    y = torch.cat([torch.zeros(900, dtype=torch.long), torch.ones(100, dtype=torch.long)])
    w = ur.reweighting([900, 100], 1.0)            # n^-1: every class equally likely
    idx = ur.rebalanced_draw(y, w, 20000, torch.Generator().manual_seed(0))
    assert abs(float((y[idx] == 1).float().mean()) - 0.5) < 0.02
    idx = ur.rebalanced_draw(y, ur.reweighting([900, 100], 0.0), 20000, torch.Generator().manual_seed(0))
    assert abs(float((y[idx] == 1).float().mean()) - 0.1) < 0.01  # q = 0: uniform over images


def overlapping_data(counts, seed=0):
    """Two classes whose images differ only in brightness, drawn per image from overlapping distributions
    (means 110 and 130, std 20): which class a mid-bright image gets depends on the class prior."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    level = 110 + 20 * y.float() + 20 * torch.randn(len(y), generator=g)
    x = (level.view(-1, 1, 1, 1) + 5 * torch.randn(len(y), 3, 8, 8, generator=g)).clamp(0, 255).to(torch.uint8)
    return ImageData(x, y, ["head", "tail"], "overlap", "generated", (0.5,) * 3, (0.25,) * 3)


def test_debiased_expert_predicts_the_tail_more_often_than_the_plain_one(tmp_path):
    data = overlapping_data([200, 20], seed=0)
    test = overlapping_data([300, 300], seed=1)    # balanced
    kw = dict(width=8, depth=2, epochs=30, batch=32, q=1.0, lr=0.05, contrast_weight=1.0, cache_root=tmp_path)
    xt, yt = test.tensors()
    share = {}
    for debias in (False, True):
        net = ur.train_expert(data, debias=debias, **kw)
        with torch.no_grad():
            share[debias] = float((net(xt).argmax(1) == 1).float().mean())
    assert share[True] > share[False] + 0.1, share


def test_kd_targets_are_the_teachers_logits_on_the_augmented_batch():
    """A student that starts as a copy of its teacher has zero KD loss on every augmented batch, so with no
    cross-entropy and no weight decay it does not move; a student trained by KD ends closer to the teacher."""
    import copy
    data = tiny_data([12, 12, 12])
    x, y = data.tensors()
    teacher = get_model("convnet", 3, 3, (8, 8), width=4, depth=2).eval()
    same = copy.deepcopy(teacher)
    train_student_kd(same, x, y, teacher, epochs=2, batch=12, ce_weight=0.0, weight_decay=0.0, seed=0)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(same.parameters(), teacher.parameters()))
    torch.manual_seed(3)
    student = get_model("convnet", 3, 3, (8, 8), width=4, depth=2)
    with torch.no_grad():
        before = float(((student.eval()(x) - teacher(x)) ** 2).mean())
    train_student_kd(student, x, y, teacher, epochs=40, batch=12, ce_weight=0.0, lr=1e-2, crop_scale=(1.0, 1.0),
                     cutmix=False, seed=0)
    with torch.no_grad():
        after = float(((student(x) - teacher(x)) ** 2).mean())
    assert after < 0.25 * before, (before, after)


def test_centred_kd_targets_remove_a_planted_class_offset():
    """view_logit_offset is the teacher's mean logit over KD views: a teacher with constant logits gives them back,
    and a planted class offset added to a teacher moves it by exactly that offset; a student of kd_trainer with
    centre learns what a student given that offset explicitly learns, and its cache key names the centring."""
    from ltdd_utils.evaluate import view_logit_offset
    from ltdd_utils.experiment import kd_trainer

    class Shifted(nn.Module):
        def __init__(self, net, shift):
            super().__init__()
            self.net = net
            self.register_buffer("shift", shift)

        def forward(self, x):
            return self.net(x) + self.shift

    class Constant(nn.Module):
        def __init__(self, v):
            super().__init__()
            self.register_buffer("v", v)
            self.lin = nn.Linear(1, 1)

        def forward(self, x):
            return self.v.expand(len(x), -1)

    data = tiny_data([12, 12, 12])
    x, y = data.tensors()
    shift = torch.tensor([0.0, 3.0, -2.0])
    assert torch.allclose(view_logit_offset(Constant(shift), x, y, seed=0, batch=8), shift)
    torch.manual_seed(0)
    base = get_model("convnet", 3, 3, (8, 8), width=4, depth=2).eval()
    off_base = view_logit_offset(base, x, y, seed=0, batch=8)
    assert torch.allclose(view_logit_offset(Shifted(base, shift), x, y, seed=0, batch=8) - off_base, shift, atol=1e-3)
    cfg = make_config("unbiased_recovery", "smoke", check_data=False, student_steps=6, eval_batch=12)
    shifted = Shifted(base, shift).eval()
    fits = {"centred": kd_trainer(cfg, shifted, "cpu", centre=True),
            "offset given": kd_trainer(cfg, shifted, "cpu",
                                       logit_offset=view_logit_offset(shifted, x, y, 0, 12, cutmix=cfg.kd_cutmix))}
    assert "student.kd_centre" in fits["centred"].key["producers"] and fits["centred"].key["centre"] == "views"
    assert "centre" not in fits["offset given"].key
    students = {}
    for name, fit in fits.items():
        torch.manual_seed(1)
        students[name] = fit(get_model("convnet", 3, 3, (8, 8), width=4, depth=2), x, y, 0)
    for p, q in zip(students["centred"].parameters(), students["offset given"].parameters()):
        assert torch.allclose(p, q, atol=1e-3)
    with pytest.raises(ValueError, match="centre"):
        kd_trainer(cfg, None, "cpu", centre=True)


def test_chapter_parameters_fail_before_compute():
    make_config("unbiased_recovery", "smoke", check_data=False)
    for bad, match in [({"ipc": 0}, "'ipc'"), ({"imbalance_factor": 0.5}, "imbalance_factor"),
                       ({"methods": ["full", "fulll"]}, "did you mean 'full'"), ({"crop_scale": [0.5, 1.5]}, "crop_scale"),
                       ({"expert_model": "convnet"}, "expert_model"), ({"other_ipcs": [0]}, "other_ipcs")]:
        with pytest.raises(ConfigError, match=match):
            make_config("unbiased_recovery", "smoke", check_data=False, **bad)
    with pytest.raises(ConfigError, match="did you mean 'SHARE_EXPERTS'"):
        make_config("unbiased_recovery", "smoke", check_data=False, share_expert=True)


def test_experts_are_drawn_per_seed_and_the_shown_sets_are_the_arms_sets(tmp_path):
    """Each run seed gets its own experts (the observer under the seed; the teacher under the seed + 1000 when the
    two are not shared), the arms of a seed use that seed's, and the sets the site shows (Full and base, first seed)
    are the sets those arms trained on."""
    from ltdd_utils.config import make_config
    from ltdd_utils.experiment import Run
    from ltdd_utils.studies.unbiased_recovery import TEACHER_SEED_OFFSET, Study
    cfg = make_config("unbiased_recovery", "smoke", cache_dir=str(tmp_path), results_dir=str(tmp_path), seeds=[0, 1],
                      expert_candidates=[], other_factors=[], other_ipcs=[], methods=["full", "base", "random_kd"])
    st = Study(Run(cfg))
    shown = st.shown_sets()                                     # before any expert was selected: loads only its own
    assert [s["name"] for s in shown] == ["full_if10_ipc2_seed0", "base_if10_ipc2_seed0"]
    st.select_experts()
    assert {k[3] for k in st.experts} == {0, 1} and {s for _, s in st.few_gain} == {0, 1}
    assert st.expert_seed("teacher", 1) == 1 + TEACHER_SEED_OFFSET and st.expert_seed("observer", 1) == 1
    key = lambda seed: st.experts[st.IF0, "debiased", "observer", seed].cache_key
    assert key(0) != key(1)
    for item, arm in zip(shown, ("full", "base")):
        assert torch.equal(item["set"].images, st.synset(st.IF0, cfg.ipc, arm, 0).images)
    assert Study(Run(make_config("unbiased_recovery", "smoke", cache_dir=str(tmp_path), results_dir=str(tmp_path),
                                 seeds=[3, 1, 2], ipc_seed_count=2))).ipc_seeds() == [3, 1]
