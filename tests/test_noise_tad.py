"""Label-noise injectors and the pieces of TAD (trust split, recall, dual loop), with checks that can fail."""
import math

import pytest
import torch

from conftest import need
from ltdd_utils.config import ConfigError, make_config
from ltdd_utils.data import DatasetNotFoundError, ImageData
from ltdd_utils.data.noise import (ASYMMETRIC_MAPS, cifar10n_labels, empirical_transition, inject_noise,
                                   symmetric_transition, true_noise_rate)
from ltdd_utils.methods import tad


def fake_data(n_per_class=2000, num_classes=10, name="CIFAR-10"):
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    images = torch.zeros(len(labels), 1, 2, 2, dtype=torch.uint8)
    return ImageData(images, labels, [str(c) for c in range(num_classes)], name, "test", (0.5,), (0.5,))


def three_se(p, n):
    return 3 * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------------------------------------ noise
@pytest.mark.parametrize("rate", [0.2, 0.4, 0.6])
def test_symmetric_noise_rate_and_transition(rate):
    d = inject_noise(fake_data(), "symmetric", rate, seed=0)
    n = len(d)
    assert abs(d.noise_rate() - rate) < three_se(rate, n)          # exclusive: the measured rate is the nominal one
    assert d.nominal_rate == rate and torch.equal(d.clean_labels, fake_data().labels)
    P = empirical_transition(d.labels, d.clean_labels, 10)
    assert torch.allclose(P.sum(1), torch.ones(10, dtype=P.dtype))
    assert (P.diagonal() - (1 - rate)).abs().max() < three_se(rate, 2000) * 1.5
    off = P[~torch.eye(10, dtype=torch.bool)]
    assert (off - rate / 9).abs().max() < 0.03                        # spread over the other classes


def test_symmetric_noise_never_keeps_the_true_class_when_it_flips():
    P = symmetric_transition(10, 0.4)
    assert torch.allclose(P.diagonal(), torch.full((10,), 0.6, dtype=P.dtype))
    d = inject_noise(fake_data(), "symmetric", 0.4, seed=1)
    # an inclusive draw over all classes would give 0.4 * 9 / 10 = 0.36 wrong labels
    assert abs(d.noise_rate() - 0.36) > three_se(0.36, len(d))


def test_asymmetric_noise_flips_only_the_map():
    d = inject_noise(fake_data(), "asymmetric", 0.4, seed=0)
    mapping = ASYMMETRIC_MAPS["CIFAR-10"]
    P = empirical_transition(d.labels, d.clean_labels, 10)
    for c in range(10):
        if c in mapping:
            assert abs(P[c, mapping[c]] - 0.4) < three_se(0.4, 2000)
            assert abs(P[c, c] - 0.6) < three_se(0.4, 2000)
        else:
            assert P[c, c] == 1
    wrong = d.is_noisy
    assert set(d.clean_labels[wrong].tolist()) == set(mapping)
    assert all(mapping[int(t)] == int(o) for t, o in zip(d.clean_labels[wrong], d.labels[wrong]))
    assert abs(d.noise_rate() - 0.2) < three_se(0.2, len(d))        # half the classes flip


def test_noise_is_seeded_and_recorded():
    a, b = inject_noise(fake_data(), "symmetric", 0.4, 3), inject_noise(fake_data(), "symmetric", 0.4, 3)
    c = inject_noise(fake_data(), "symmetric", 0.4, 4)
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, c.labels)
    sub = a.subset(torch.tensor([5, 2500, 7000]))
    assert torch.equal(sub.clean_labels, a.clean_labels[[5, 2500, 7000]]) and sub.noise == "symmetric"
    assert true_noise_rate(a.labels, a.labels) == 0


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_rates_outside_unit_interval_fail(rate):
    with pytest.raises(ConfigError, match="rate"):
        inject_noise(fake_data(), "symmetric", rate)


def test_unknown_kind_and_missing_map_fail():
    with pytest.raises(ConfigError, match="noise kind"):
        inject_noise(fake_data(), "pairflip", 0.2)
    with pytest.raises(ConfigError, match="asymmetric noise map"):
        inject_noise(fake_data(name="CIFAR-100"), "asymmetric", 0.2)


def test_missing_cifar10n_file_names_where_it_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="CIFAR-10_human"):
        cifar10n_labels("worse", tmp_path)


@need("CIFAR-10N/CIFAR-10_human.npz")
def test_cifar10n_rates_match_the_release():
    arrays = cifar10n_labels("worse")
    assert len(arrays["clean"]) == 50000
    assert abs(true_noise_rate(arrays["noisy"], arrays["clean"]) - 0.4021) < 1e-3
    assert arrays["clean"][:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]     # the official training order


@need("cifar10-jpeg/train_order.csv")
def test_cifar10n_aligns_with_the_jpeg_loader():
    from ltdd_utils.data import load_dataset
    train = load_dataset("cifar10", train=True)
    sub = train.subset(torch.arange(0, 50000, 7))
    d = inject_noise(sub, "cifar10n_worse")
    assert torch.equal(d.labels, cifar10n_labels("worse")["noisy"][::7])      # raises first if the order is off
    assert abs(d.noise_rate() - 0.4021) < three_se(0.4021, len(d)) and d.nominal_rate == d.noise_rate()


# ------------------------------------------------------------------------------------------ trust split
def test_gmm_recovers_two_separated_clusters():
    g = torch.Generator().manual_seed(0)
    low, high = torch.randn(300, generator=g) * 0.05 + 0.2, torch.randn(200, generator=g) * 0.05 + 0.8
    mu, var, pi, post = tad.fit_gmm_1d(torch.cat([low, high]))
    assert abs(float(mu.min()) - 0.2) < 0.02 and abs(float(mu.max()) - 0.8) < 0.02
    assert abs(float(pi[mu.argmin()]) - 0.6) < 0.02
    assert (post[:300] > 0.99).all() and (post[300:] < 0.01).all()


def planted_losses(seed=0):
    """Two classes with different loss scales; 30 % planted noisy samples with high losses in each."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(2).repeat_interleave(500)
    noisy = torch.rand(1000, generator=g) < 0.3
    scale = torch.where(labels == 0, 0.2, 2.0)                    # class 1 is harder: all its losses are larger
    losses = scale * torch.where(noisy, 3.0, 0.5) * (1 + 0.2 * torch.rand(1000, generator=g))
    return losses, labels, noisy


def test_classwise_split_recovers_planted_clean_samples():
    losses, labels, noisy = planted_losses()
    trusted, prob = tad.trust_split(losses, labels, 2, tau=0.5, mode="classwise")
    assert torch.equal(trusted, ~noisy)
    assert (prob[~noisy] > 0.99).all() and (prob[noisy] < 0.01).all()


def test_global_split_fails_where_class_scales_differ():
    losses, labels, noisy = planted_losses()
    trusted, _ = tad.trust_split(losses, labels, 2, tau=0.5, mode="global")
    assert not torch.equal(trusted, ~noisy)                        # the reason for a class-wise mixture


def test_small_loss_split_keeps_the_ratio_per_class():
    losses, labels, _ = planted_losses()
    trusted, _ = tad.trust_split(losses, labels, 2, mode="small_loss", keep_ratio=0.4)
    assert [int(trusted[labels == c].sum()) for c in range(2)] == [200, 200]


def test_noisy_component_test_trusts_a_clean_class_whole():
    """Our variant: a class whose losses hold no separate high-loss component (a class the asymmetric map
    leaves clean) is trusted whole; the paper's loop splits it anyway."""
    losses, labels, noisy = planted_losses()
    g = torch.Generator().manual_seed(3)
    losses[labels == 1] = 1.0 + 0.1 * torch.randn(500, generator=g)     # class 1: one unimodal blob, no noise
    noisy[labels == 1] = False
    assert tad.has_noisy_component(tad._minmax(losses[labels == 0]), "ashman")
    assert not tad.has_noisy_component(tad._minmax(losses[labels == 1]), "ashman")
    assert tad.has_noisy_component(tad._minmax(losses[labels == 1]), "none")
    assert tad.has_noisy_component(tad._minmax(losses[labels == 0]), "bic")
    paper, _ = tad.trust_split(losses, labels, 2, mode="classwise")
    ours, _ = tad.trust_split(losses, labels, 2, mode="classwise", noisy_test="ashman")
    assert paper[labels == 1].float().mean() < 0.9                    # clean samples pushed into U
    assert torch.equal(ours, ~noisy)
    with pytest.raises(ValueError, match="noisy-component test"):
        tad.has_noisy_component(losses, "kurtosis")


def _recall_case(flip_every=10):
    z, true, centres = clusters()
    noisy = true.clone()
    flipped = torch.arange(0, len(true), flip_every)
    noisy[flipped] = (true[flipped] + 1) % 4
    trusted = torch.ones(len(true), dtype=torch.bool)
    trusted[flipped] = False
    return z, true, noisy, trusted, -torch.cdist(z, centres)


def test_choose_delta_recalls_only_when_the_holdout_says_recalls_are_right():
    z, true, noisy, trusted, logits = _recall_case()
    holdout = torch.arange(0, len(true), 2)                            # half the samples, true labels known
    s = tad.TADSettings(delta_grid=(0.5, 0.9, 0.99))
    assert tad.choose_delta(z, noisy, trusted, 4, logits, s, holdout, true[holdout]) == 0.5
    wrong = (true[holdout] + 2) % 4                                    # a hold-out whose labels the recalls miss
    wrong[trusted[holdout]] = noisy[holdout][trusted[holdout]]         # trusted labels still count as right
    assert tad.choose_delta(z, noisy, trusted, 4, logits, s, holdout, wrong) is None


def test_revert_restarts_each_round_from_the_noisy_labels():
    torch.manual_seed(0)
    from ltdd_utils.data import load_dataset
    from ltdd_utils.data.noise import inject_noise
    from ltdd_utils.models import get_model
    d = inject_noise(load_dataset("digits", train=True), "symmetric", 0.4, seed=0)
    x, y = d.tensors()
    net = get_model("convnet", 1, 10, (8, 8), width=8)
    tad.train_trust_net(net, x, y, None, 5, 0.01, 64, gen=torch.Generator().manual_seed(0))
    s = tad.TADSettings(rounds=3, epochs_per_round=1, batch=64, lambda_cons=0.0, revert=True, delta=0.5)
    states = tad.trust_aware_diversion(net, x, y, 10, s, 0, "cpu", d.clean_labels)
    for st in states:                                                 # only this round's recalls differ from y
        assert torch.equal(st.labels != y, st.recalled & (st.labels != y))
        assert torch.equal(st.labels[~st.recalled], y[~st.recalled])
    assert sum(int(st.recalled.sum()) for st in states) > 0


# ---------------------------------------------------------------------------------------------- recall
def clusters(seed=0, n=100, d=16, C=4):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(C, d, generator=g) * 3
    labels = torch.arange(C).repeat_interleave(n)
    z = centres[labels] + 0.3 * torch.randn(len(labels), d, generator=g)
    return z, labels, centres


def test_recall_fixes_planted_flips():
    z, true, centres = clusters()
    noisy = true.clone()
    flipped = torch.arange(0, len(true), 10)                       # every 10th label is wrong ...
    noisy[flipped] = (true[flipped] + 1) % 4
    trusted = torch.ones(len(true), dtype=torch.bool)
    trusted[flipped] = False                                       # ... and the split put exactly those in U
    logits = -torch.cdist(z, centres)                              # a model that agrees with the geometry
    new, recalled, post = tad.recalibrate(z, noisy, trusted, 4, logits, delta=0.9)
    assert torch.equal(recalled, ~trusted)
    assert torch.equal(new, true)
    assert torch.equal(new[trusted], noisy[trusted])               # trusted samples are never relabelled
    assert torch.allclose(post[~trusted].sum(1), torch.ones(len(flipped)))


def test_recall_is_a_noop_without_untrusted_samples_and_checks_its_tests():
    z, labels, centres = clusters()
    everyone = torch.ones(len(labels), dtype=torch.bool)
    new, recalled, _ = tad.recalibrate(z, labels, everyone, 4, None, tests=("mahalanobis", "cosine"))
    assert torch.equal(new, labels) and not recalled.any()
    with pytest.raises(ValueError, match="model_logits"):
        tad.recalibrate(z, labels, ~everyone | (labels > 0), 4, None, tests=("model",))
    with pytest.raises(ValueError, match="reliability tests"):
        tad.recalibrate(z, labels, everyone, 4, None, tests=("oracle",))


def test_classwise_covariance_recalls_by_each_class_shape():
    """With one covariance per class (the spec's ablation), a point nearer a tight class's anchor but well inside
    a wide class's spread goes to the wide class (Gaussian score: distance under the class's own covariance plus
    its log-determinant)."""
    g = torch.Generator().manual_seed(0)
    wide = torch.randn(400, 2, generator=g) * 3.0                                   # anchor (0, 0)
    tight = torch.randn(400, 2, generator=g) * 0.3 + torch.tensor([4.0, 0.0])      # anchor (4, 0)
    u = torch.tensor([[2.5, 0.0], [4.1, 0.0]])       # 2.5 from the wide anchor, 1.5 from the tight; inside the tight
    xy = torch.cat([wide, tight, u])
    z = torch.cat([xy, torch.full((len(xy), 1), 100.0)], 1)      # L2-normalising then nearly just rescales x, y
    labels = torch.cat([torch.zeros(400), torch.ones(400), torch.tensor([1.0, 0.0])]).long()   # u's labels flipped
    trusted = torch.ones(len(z), dtype=torch.bool)
    trusted[-2:] = False
    new, recalled, post = tad.recalibrate(z, labels, trusted, 2, None, delta=0.9, tests=("mahalanobis",),
                                          covariance="classwise")
    assert recalled[-2:].all() and new[-2:].tolist() == [0, 1]
    assert torch.allclose(post[-2:].sum(1), torch.ones(2))
    _, _, pooled = tad.recalibrate(z, labels, trusted, 2, None, delta=0.9, tests=("mahalanobis",))
    assert pooled[-2, 1] > pooled[-2, 0]                 # one shared covariance leans to the nearer, tight anchor
    with pytest.raises(ValueError, match="covariance"):
        tad.recalibrate(z, labels, trusted, 2, None, covariance="diagonal")


def test_disagreeing_model_blocks_the_recall():
    z, true, centres = clusters()
    noisy, trusted = true.clone(), torch.ones(len(true), dtype=torch.bool)
    noisy[:5], trusted[:5] = 3, False
    logits = torch.zeros(len(true), 4)
    logits[:, 2] = 1                                               # the network always says class 2
    _, recalled, _ = tad.recalibrate(z, noisy, trusted, 4, logits)
    assert not recalled.any()
    _, recalled, _ = tad.recalibrate(z, noisy, trusted, 4, logits, tests=("mahalanobis", "cosine"))
    assert recalled[:5].all()


# ------------------------------------------------------------------------------------------- dual loop
def test_consistency_loss_has_gradients_and_dual_loop_records_rounds():
    torch.manual_seed(0)
    from ltdd_utils.models import get_model
    net = get_model("convnet", 1, 3, (8, 8), width=4, depth=2, norm="instancenorm")
    x = torch.randn(60, 1, 8, 8)
    true = torch.arange(3).repeat_interleave(20)
    x += true.view(-1, 1, 1, 1).float()                           # learnable
    noisy = true.clone()
    noisy[::6] = (noisy[::6] + 1) % 3
    loss = tad.consistency_loss(net, x[:8], torch.Generator().manual_seed(0))
    loss.backward()
    assert loss > 0 and any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    net.zero_grad()
    s = tad.TADSettings(rounds=3, epochs_per_round=1, batch=16, tests=("mahalanobis", "cosine"))
    states = tad.trust_aware_diversion(net, x, noisy, 3, s, seed=0, clean_labels=true)
    assert [st.round for st in states] == [1, 2, 3]
    for st in states:
        assert torch.equal(st.trusted, st.split_trusted | st.recalled)
        right = st.labels[st.trusted] == true[st.trusted]
        assert st.diagnostics["precision"] == pytest.approx(float(right.float().mean()))
        assert st.diagnostics["trusted"] == int(st.trusted.sum())
    outer = tad.TADSettings(**{**s.__dict__, "recall": False})
    states = tad.trust_aware_diversion(net, x, noisy, 3, outer, seed=0, clean_labels=true)
    assert all(not st.recalled.any() and torch.equal(st.labels, noisy) for st in states)


def test_planted_asymmetric_noise_our_loop_keeps_label_precision_where_the_papers_loop_loses_it():
    """End to end in about 12 s: digits with 48 % of classes 0-4 flipped to c + 5, eight draws of the noise and the
    networks. The paper's loop recalls wrong labels and the trusted space loses precision over four rounds; our loop
    (revert, recall threshold chosen on a labelled hold-out) does not lower it (on average, by more than a point).

    One draw is too noisy to tell this (its drop moves by several points between fp32 and bf16, or one thread and
    two), so the test is on the eight paired draws, with margins that hold in fp32 and bf16 alike. Measured on an
    AMD EPYC with avx512_bf16, 2 threads and 1, fp32 and bf16: the paper's loop loses 4.4-8.1 points on average,
    ours gains 1.9-3.7, paired by draw 6.3-11.8 points apart; ours is above the paper's in every round of every draw,
    by at least 4 points."""
    from ltdd_utils.data import load_dataset
    from ltdd_utils.models import get_model
    x, true = load_dataset("digits", train=True).tensors()
    hold = torch.randperm(len(true), generator=torch.Generator().manual_seed(1))[:len(true) // 10]
    common = dict(rounds=4, epochs_per_round=4, batch=64, lambda_cons=0.0, delta=0.3)
    drop = {"paper": [], "ours": []}
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        noisy = true.clone()
        for c in range(5):
            pos = (true == c).nonzero().flatten()
            noisy[pos[torch.randperm(len(pos), generator=g)[: int(0.48 * len(pos))]]] = c + 5
        precision = {}
        for name, s in (("paper", tad.TADSettings(**common)),
                        ("ours", tad.TADSettings(**common, revert=True, delta_grid=(0.5, 0.9, 0.99, 0.999)))):
            torch.manual_seed(seed)
            net = get_model("convnet", 1, 10, (8, 8), width=8)
            tad.train_trust_net(net, x, noisy, None, 6, 0.01, 64, gen=torch.Generator().manual_seed(seed))
            states = tad.trust_aware_diversion(net, x, noisy, 10, s, seed, "cpu", true, hold, true[hold])
            precision[name] = [st.diagnostics["precision"] for st in states]
            drop[name].append(precision[name][0] - precision[name][-1])
        assert all(o > p for o, p in zip(precision["ours"], precision["paper"])), (seed, precision)
    paired = [p - o for p, o in zip(drop["paper"], drop["ours"])]
    assert sum(drop["paper"]) / 8 > 0.01, drop             # the damage the issue reported, on average
    assert sum(drop["ours"]) / 8 < 0.01, drop              # rounds do not lower ours
    assert sum(paired) / 8 > 0.03, paired                   # and the paper's loses more than ours, paired by draw


def test_trust_diagnostics_on_a_hand_made_case():
    clean = torch.tensor([0, 0, 1, 1])
    noisy = torch.tensor([0, 1, 1, 0])                            # samples 1 and 3 are mislabeled
    labels = torch.tensor([0, 0, 1, 0])                           # sample 1 recalled to its true class
    trusted = torch.tensor([True, True, True, False])
    recalled = torch.tensor([False, True, False, False])
    d = tad.trust_diagnostics(trusted, labels, recalled, noisy, clean, 2)
    assert d["coverage"] == 0.75 and d["precision"] == 1.0 and d["recall_clean"] == 1.0
    assert d["recalled_acc"] == 1.0 and d["recalled_noisy_acc"] == 0.0


# ----------------------------------------------------------------------------------------- parameters
def test_chapter_parameters_fail_before_compute():
    with pytest.raises(ConfigError, match=r"noise_settings\[0\]\[1\]"):
        make_config("tad", "smoke", NOISE_SETTINGS=[["symmetric", 1.0]])
    with pytest.raises(ConfigError, match=r"noise_settings\[0\]\[0\]"):
        make_config("tad", "smoke", NOISE_SETTINGS=[["symetric", 0.4]])
    with pytest.raises(ConfigError, match="did you mean 'ROUNDS'"):
        make_config("tad", "smoke", ROUND=3)
    with pytest.raises(ConfigError, match="ipc"):
        make_config("tad", "smoke", IPC=0)
    with pytest.raises(ConfigError, match="CIFAR-10N labels exist only"):
        make_config("tad", "smoke", REAL_NOISE=["worse"])
    with pytest.raises(ConfigError, match="tau"):
        make_config("tad", "smoke", TAU=1.0)
    cfg = make_config("tad", "smoke", SWEEP_RATES=[0.6])
    assert cfg.sweep_rates == [0.6] and cfg.real_noise == [] and cfg.dataset == "digits"
    with pytest.raises(ConfigError, match="support_methods"):
        make_config("tad", "smoke", SUPPORT_METHODS=["tad"])
    with pytest.raises(ConfigError, match="warmup_epochs"):
        make_config("tad", "smoke", TRUST_MODEL="convnet", WARMUP_EPOCHS=1.5)


def test_each_seed_draws_its_own_noise_and_balanced_subset_outside_the_validation_split(tmp_path):
    """With PER_SEED_DRAW two run seeds see different noise and subsets, each balanced by the true labels and drawn
    from the pool outside the validation split; without it every seed sees one draw (the leaderboard's)."""
    from ltdd_utils.experiment import Run
    from ltdd_utils.studies.tad import Study
    cfg = make_config("tad", "smoke", cache_dir=str(tmp_path), results_dir=str(tmp_path))
    st = Study(Run(cfg))
    s = ("symmetric", 0.4)
    a, b = st.noisy_of(s, 0), st.noisy_of(s, 1)
    assert not torch.equal(a.indices, b.indices) and a.noise_rate() > 0.2 and b.noise_rate() > 0.2
    for d in (a, b):
        assert torch.bincount(d.clean_labels, minlength=st.C).tolist() == [cfg.per_class] * st.C
        assert not set(d.indices.tolist()) & set(st.val.indices.tolist())
        assert torch.equal(st.pool_of(s, 0).subset(st.positions(0)).labels, a.labels) if d is a else True
    assert torch.bincount(st.val.labels, minlength=st.C).tolist() == [cfg.val_per_class] * st.C
    assert st.holdout_of(0).max() < len(a) and st.noisy_of(s, 0) is a              # built once per draw
    assert torch.equal(st.noisy_of(s, 0).labels, a.labels)
    one = Study(Run(make_config("tad", "smoke", cache_dir=str(tmp_path), results_dir=str(tmp_path),
                                PER_SEED_DRAW=False)))
    assert torch.equal(one.noisy_of(s, 0).labels, one.noisy_of(s, 1).labels)
    assert torch.equal(one.noisy_of(s, 1).indices, a.indices)          # seed 0's draw is NOISE_SEED's either way


def test_a_trust_network_below_the_gate_blocks_every_claim_resting_on_it():
    """tad.g.trust_learns (TRUST_GATE) gates TAD's claims, C2 and the sweep's, not the DM gate; every seed's network
    must reach the bar."""
    from ltdd_utils import claims
    from ltdd_utils.verdicts import VERDICTS, evaluate
    cfg = make_config("tad", "smoke", check_data=False, METHODS=["random", "noisy_dm", "filter_dm", "tad"],
                      NOISE_SETTINGS=[["symmetric", 0.4]], SWEEP_RATES=[0.2], SWEEP_METHODS=["noisy_dm", "tad"],
                      SWEEP_SEEDS=[0, 1, 2], ABLATION_CONSISTENCY=False, SUPPORT_METHODS=[], SEEDS=[0, 1, 2, 3, 4])
    declared = claims.declared("tad", cfg)
    by_id = {c.id: c for c in declared}
    assert "tad.g.trust_learns.symmetric.0.4" in by_id["tad.h.beats_dm.symmetric.0.4"].gates
    assert "tad.g.trust_learns.symmetric.0.4" in by_id["tad.s.c2_precision.symmetric.0.4"].gates
    assert by_id["tad.s.sweep.tad_vs_noisy_dm.symmetric.0.2"].gates == ("tad.g.trust_learns.symmetric.0.2",)
    assert not by_id["tad.g.dm_distils.symmetric.0.4"].gates

    def recs(val_accs):
        out = []
        for seed in range(5):
            for m, acc in (("random", 20.0), ("noisy_dm", 25.0 + seed % 2), ("filter_dm", 30.0), ("tad", 35.0 + seed % 2)):
                out.append({"chapter": "tad", "method": m, "dataset": "D", "ipc": 2, "seed": seed,
                            "setting": {"study": "main", "noise": "symmetric", "rate": 0.4}, "metrics": {"acc": acc}})
            out.append({"chapter": "tad", "method": "trust_net", "dataset": "D", "ipc": 2, "seed": seed,
                        "setting": {"study": "trust", "noise": "symmetric", "rate": 0.4},
                        "metrics": {"val_acc": val_accs[seed]}})
        return out
    pick = lambda rows, i: next(r for r in rows if r["id"] == i)
    low = evaluate(declared, recs([80, 80, 80, 80, 69]), missing="report")        # one seed below the bar
    assert pick(low, "tad.g.trust_learns.symmetric.0.4")["verdict"] == VERDICTS[1]
    assert pick(low, "tad.h.beats_dm.symmetric.0.4")["verdict"] == VERDICTS[3]
    assert pick(low, "tad.g.dm_distils.symmetric.0.4")["verdict"] == VERDICTS[0]
    high = evaluate(declared, recs([80] * 5), missing="report")
    assert pick(high, "tad.h.beats_dm.symmetric.0.4")["verdict"] == VERDICTS[0]
    off = make_config("tad", "smoke", check_data=False, TRUST_GATE=0)
    assert not [c for c in claims.declared("tad", off) if "trust_learns" in c.id]
