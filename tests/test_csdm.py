"""CSDM pieces: SDD against the exact MMD, the amplitude/phase identity, what each term sees, the alpha(c)
schedules, the exact-statistics path, gradients to the pixels, and the chapter's parameter checks."""
import pytest
import torch

from ltdd_utils.config import ConfigError, make_config
from ltdd_utils.data import ImageData
from ltdd_utils.methods import csdm
from ltdd_utils.models import get_model

D64 = torch.float64


def _freqs(kernel, m, d, seed=0):
    return csdm.sample_frequencies(kernel, m, d, 1.0, torch.Generator().manual_seed(seed), D64)


def _sample(n, d, seed, shift=0.0, scale=1.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=D64) * scale + shift


def test_sdd_is_zero_for_identical_sets_and_grows_with_a_mean_shift():
    x = _sample(200, 4, 0)
    om = _freqs("gaussian", 2048, 4)
    assert float(csdm.sdd(x, x.clone(), om)) == pytest.approx(0.0, abs=1e-12)
    values = [float(csdm.sdd(x, x + s, om)) for s in (0.0, 0.2, 0.5, 1.0)]
    assert values[0] < 1e-12 and all(a < b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("kernel", csdm.KERNELS)
def test_monte_carlo_sdd_matches_the_exact_mmd(kernel):
    x, y = _sample(150, 5, 1, scale=0.5), _sample(100, 5, 2, shift=0.3, scale=0.5)
    exact = float(csdm.mmd2(x, y, kernel, 1.0))
    est = sum(float(csdm.sdd(x, y, _freqs(kernel, 16384, 5, seed=s))) for s in range(4)) / 4
    assert exact > 0.01
    assert est == pytest.approx(exact, rel=0.03)
    # too few frequencies is visibly worse on average than many: the estimate converges
    few = [abs(float(csdm.sdd(x, y, _freqs(kernel, 8, 5, seed=s))) - exact) for s in range(20)]
    assert sum(few) / 20 > abs(est - exact)


def test_amplitude_and_phase_recombine_to_the_full_term():
    x, y = _sample(120, 6, 3), _sample(40, 6, 4, shift=0.4, scale=1.5)
    om = _freqs("gaussian", 500, 6)
    (ar, ai), (br, bi) = csdm.ecf(x, om), csdm.ecf(y, om)
    amp, phase = csdm.amplitude_phase(ar, ai, br, bi)
    full = (ar - br) ** 2 + (ai - bi) ** 2
    assert torch.allclose(amp + phase, full, atol=1e-10)
    assert (amp >= 0).all() and (phase >= 0).all()


def test_spread_shows_in_the_amplitude_and_location_in_the_phase():
    base = _sample(4000, 2, 5)
    om = _freqs("gaussian", 4096, 2, seed=6)

    def terms(other):
        (ar, ai), (br, bi) = csdm.ecf(base, om), csdm.ecf(other, om)
        a, p = csdm.amplitude_phase(ar, ai, br, bi)
        return float(a.mean()), float(p.mean())

    a, p = terms(_sample(4000, 2, 7, scale=3.0))         # same mean, larger spread
    assert a > 10 * p
    a, p = terms(_sample(4000, 2, 8, shift=torch.tensor([1.0, 0.0], dtype=D64)))   # same spread, shifted
    assert p > 10 * a


def test_class_mmd_loss_is_the_per_class_mmd_up_to_a_constant():
    g = torch.Generator().manual_seed(0)
    real, syn = torch.randn(60, 3, generator=g), torch.randn(12, 3, generator=g)
    yr, ys = torch.arange(3).repeat(20), torch.arange(3).repeat(4)
    loss = csdm.class_mmd_loss(real, yr, syn, ys, 3)
    const = sum(csdm.kernel_matrix(real[yr == c], real[yr == c], "gaussian").mean() for c in range(3))
    direct = sum(csdm.mmd2(real[yr == c], syn[ys == c]) for c in range(3))
    assert float(loss + const) == pytest.approx(float(direct), abs=1e-5)


def test_exact_class_cfs_equal_the_cf_of_each_class():
    g = torch.Generator().manual_seed(1)
    z, y = torch.randn(90, 4, generator=g, dtype=D64), torch.arange(3).repeat(30)
    om = _freqs("gaussian", 64, 4)
    re, im = csdm.class_ecf(z, y, 3, om, batch=7)
    for c in range(3):
        r, i = csdm.ecf(z[y == c], om)
        assert torch.allclose(re[c], r) and torch.allclose(im[c], i)


def test_alpha_schedule_follows_the_class_counts():
    counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    for rule in ("loglinear", "reliability", "two_level"):
        a = csdm.alpha_schedule(counts, rule)
        assert ((a >= 0) & (a <= 1)).all()
        assert all(x >= y for x, y in zip(a, a[1:])), rule            # head -> more amplitude
        r = csdm.alpha_schedule(counts, rule, reverse=True)
        assert all(x <= y for x, y in zip(r, r[1:])), rule            # reversed: tail -> more amplitude
    a = csdm.alpha_schedule(counts)
    assert float(a[0]) == pytest.approx(0.7) and float(a[-1]) == pytest.approx(0.3)
    assert torch.allclose(csdm.alpha_schedule([100] * 10), torch.full((10,), 0.5))
    with pytest.raises(ValueError, match="alpha rule"):
        csdm.alpha_schedule(counts, "cubic")


def test_weighted_loss_uses_alpha_per_class():
    amp, phase = torch.tensor([[1.0, 1.0], [1.0, 1.0]]), torch.tensor([[0.0, 0.0], [3.0, 3.0]])
    assert float(csdm.csdm_loss(amp, phase, torch.tensor([1.0, 0.0]))) == pytest.approx(1.0 + 3.0)
    assert float(csdm.csdm_loss(amp, phase, torch.tensor([0.5, 0.5]))) == pytest.approx(0.5 + 2.0)
    assert float(csdm.csdm_loss(amp, phase, torch.tensor([0.5, 0.5]), torch.tensor([True, False]))) == pytest.approx(0.5)


def _tiny_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 8, 8), generator=g, dtype=torch.uint8)
    return ImageData(x, torch.arange(2).repeat(20), ["a", "b"], "tiny", "test", (0.5,), (0.5,))


@pytest.mark.parametrize("loss", ["spectral", "mmd", "linear"])
def test_gradients_reach_the_synthetic_images(loss):
    data = _tiny_data()
    net_fn = lambda: get_model("convnet", 1, 2, (8, 8), width=4, depth=2, norm="instancenorm")   # noqa: E731
    alphas = None if loss == "mmd" else torch.tensor([0.7, 0.3])
    syn = csdm.spectral_matching(data, 2, net_fn, alphas, loss=loss, iterations=3, lr=0.05, batch_real=8,
                                 use_dsa=False, net_pool=1, num_freqs=16, seed=0)
    from ltdd_utils.distill import random_subset
    init = random_subset(data, 2, 0)
    assert syn.images.shape == init.images.shape
    assert (syn.images - init.images).abs().max() > 1e-4            # the pixels moved
    assert len(syn.meta["loss_history"]) == 3


def _pool_and_features(data, seed=0):
    from ltdd_utils.distill.dm import make_net_pool, pool_embeddings
    net_fn = lambda: get_model("convnet", 1, 2, (8, 8), width=4, depth=2, norm="instancenorm")   # noqa: E731
    nets = make_net_pool(net_fn, 1, seed, "cpu")
    return net_fn, nets, pool_embeddings(data, nets, "cpu", precision="fp32")


@pytest.mark.parametrize("loss", ["spectral", "linear"])
def test_exact_statistics_equal_the_batched_regime_on_whole_class_batches(loss):
    """Fixed nets and frequencies, no augmentation, a real batch as large as every class: the precomputed
    whole-class statistics and the per-step batches give the same steps, so the same images."""
    data = _tiny_data()
    net_fn, nets, feats = _pool_and_features(data)
    omegas = [csdm.sample_frequencies("gaussian", 32, feats[0].shape[1], 1.0, torch.Generator().manual_seed(3))]
    stats = csdm.real_statistics(feats, data.labels, 2, loss, omegas)
    alphas = torch.tensor([0.7, 0.3]) if loss == "spectral" else None
    kw = dict(loss=loss, iterations=4, lr=0.05, use_dsa=False, seed=0, precision="fp32", nets=nets, omegas=omegas)
    exact = csdm.spectral_matching(data, 2, None, alphas, real_stats=stats, **kw)
    batched = csdm.spectral_matching(data, 2, net_fn, alphas, batch_real=1000, **kw)
    assert torch.allclose(exact.images, batched.images, atol=1e-5)
    assert exact.meta["exact_real_statistics"] and not batched.meta["exact_real_statistics"]
    short = csdm.spectral_matching(data, 2, net_fn, alphas, batch_real=3, **kw)   # a smaller batch is another loss
    assert not torch.allclose(exact.images, short.images, atol=1e-5)


def test_linear_loss_is_the_squared_distance_of_class_means():
    from ltdd_utils.distill.dm import dm_loss       # the linear arm uses DM's own loss
    real_means = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    # class 0: mean (2, 1), distance (1, 1) -> 2; class 1: mean (0, 0), distance (0, 2) -> 4
    assert float(dm_loss(real_means, z, y)) == pytest.approx(6.0)
    assert float(dm_loss(real_means, z[:2], y[:2])) == pytest.approx(2.0)      # a class without synthetic images


def test_amplitude_only_and_phase_only_weights_reach_different_sets():
    """The class-aware weights change the optimisation: matching amplitudes only leaves the phase unmatched and
    the other way round, each lowering its own term below what the other weighting leaves."""
    data = _tiny_data()
    net_fn, nets, feats = _pool_and_features(data)
    omegas = [csdm.sample_frequencies("gaussian", 64, feats[0].shape[1], 1.0, torch.Generator().manual_seed(3))]
    cfs = csdm.real_statistics(feats, data.labels, 2, "spectral", omegas)
    out = {}
    for name, a in (("amplitude", 1.0), ("phase", 0.0)):
        syn = csdm.spectral_matching(data, 4, None, torch.tensor([a, a]), loss="spectral", iterations=60, lr=0.05,
                                     use_dsa=False, seed=0, precision="fp32", nets=nets, omegas=omegas, real_stats=cfs)
        out[name] = (syn, csdm.class_spectral_errors(syn, nets, omegas, cfs))
    (sa, ea), (sp, ep) = out["amplitude"], out["phase"]
    assert (sa.images - sp.images).abs().max() > 1e-2
    assert float(ea["amplitude"].sum()) < float(ep["amplitude"].sum())
    assert float(ep["phase"].sum()) < float(ea["phase"].sum())


def test_exact_statistics_need_matching_nets_and_no_augmentation():
    data = _tiny_data()
    with pytest.raises(ValueError, match="exact real statistics"):
        csdm.spectral_matching(data, 2, None, torch.tensor([0.5, 0.5]), real_stats=[None], nets=None, use_dsa=False)


def test_chapter_parameter_errors():
    with pytest.raises(ConfigError, match="alpha_head"):
        make_config("csdm", "smoke", check_data=False, alpha_head=0.2, alpha_tail=0.6)
    with pytest.raises(ConfigError, match="kernel"):
        make_config("csdm", "smoke", check_data=False, kernel="gausian")
    with pytest.raises(ConfigError, match="ipc"):
        make_config("csdm", "smoke", check_data=False, ipc=0)
    with pytest.raises(ConfigError, match="ablations"):
        make_config("csdm", "smoke", check_data=False, ablations=["reverse"])
    with pytest.raises(ConfigError):
        make_config("csdm", "smoke", check_data=False, sweep_factors=[0.5])
    with pytest.raises(ConfigError, match="median"):
        make_config("csdm", "smoke", check_data=False, sigma="mean")
    with pytest.raises(ConfigError, match="dm_net_pool = 0"):
        make_config("csdm", "smoke", check_data=False, feature_nets="trained")       # smoke: a pool of 2 random nets
    with pytest.raises(ConfigError, match="exact MMD"):
        make_config("csdm", "smoke", check_data=False, sigma="median")               # smoke: the exact regime, mmd
    assert make_config("csdm", "smoke", check_data=False, sigma_ablation=[0.25, "median"]).sigma_ablation[1] == "median"
    assert make_config("csdm", "smoke", check_data=False, sigma="median", methods=["dm", "sdd"]).sigma == "median"


def test_median_bandwidth_is_the_median_distance():
    z = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])     # distances 3, 4, 5
    assert csdm.median_bandwidth(z) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="two"):
        csdm.median_bandwidth(z[:1])


def test_median_bandwidth_in_the_batched_regime_is_recorded():
    data = _tiny_data()
    net_fn = lambda: get_model("convnet", 1, 2, (8, 8), width=4, depth=2, norm="instancenorm")   # noqa: E731
    syn = csdm.spectral_matching(data, 2, net_fn, torch.tensor([0.5, 0.5]), iterations=2, lr=0.05, batch_real=8,
                                 use_dsa=False, num_freqs=16, sigma="median", seed=0, precision="fp32")
    assert syn.meta["sigma"] == "median" and 0 < syn.meta["mean_bandwidth"] <= 2     # unit-norm features
    with pytest.raises(ValueError, match="sigma"):
        csdm.spectral_matching(data, 2, net_fn, torch.tensor([0.5, 0.5]), iterations=1, sigma=-1.0)


def test_blended_nets_interpolate_between_initialisation_and_trained_weights():
    from ltdd_utils.distill.feature_nets import BlendedNets
    make = lambda: get_model("convnet", 1, 2, (8, 8), width=4, depth=2, norm="instancenorm")   # noqa: E731
    torch.manual_seed(0)
    init, trained = make(), make()
    draw = BlendedNets([(init, trained)])
    torch.manual_seed(3)
    nets = [draw() for _ in range(3)]
    for net, (k, b) in zip(nets, draw.draws):
        assert k == 0 and 0 <= b <= 1
        for name, p in net.state_dict().items():
            expect = (1 - b) * init.state_dict()[name] + b * trained.state_dict()[name]
            assert torch.allclose(p, expect, atol=1e-6)
    again = BlendedNets([(init, trained)])
    torch.manual_seed(3)
    [again() for _ in range(3)]
    assert again.draws == draw.draws            # the global RNG, seeded by the distiller: every arm of a seed alike
    with pytest.raises(ValueError, match="pair"):
        BlendedNets([])


def test_trained_feature_nets_enter_the_settings_and_the_key(tmp_path):
    """A trained pool: the distiller's settings name it (random-network settings stay as they were), its networks
    are trained once per split and seed (cached), and DM and SDD of one seed draw the same blends."""
    from ltdd_utils.distill.feature_nets import step_nets
    from ltdd_utils.distill.registry import settings_of
    cfg = make_config("csdm", "smoke", check_data=False, dm_net_pool=0, dm_dsa=True)
    assert "feature_nets" not in settings_of("dm", cfg)
    cfg_t = make_config("csdm", "smoke", check_data=False, dm_net_pool=0, dm_dsa=True, feature_nets="trained",
                        feature_pool=2, feature_epochs=1)
    s = settings_of("sdd", cfg_t)
    assert (s["feature_nets"], s["feature_pool"], s["feature_epochs"]) == ("trained", 2, 1)
    data = _tiny_data()
    s = {**s, "model": "convnet", "width": 4, "depth": 2}
    draw = step_nets(s, data, 0, cache_root=tmp_path)
    assert len(draw.pairs) == 2

    assert len(list(tmp_path.rglob("*.pt"))) == 2                  # one cached network per pool member
    again = step_nets(s, data, 0, cache_root=tmp_path)           # read from the cache: the same pool
    for (a0, b0, _), (a1, b1, _) in zip(draw.pairs, again.pairs):
        assert all(torch.equal(a0[n], a1[n]) and torch.equal(b0[n], b1[n]) for n in a0)
    assert not all(torch.equal(draw.pairs[0][0][n], draw.pairs[0][1][n]) for n in draw.pairs[0][0])   # it trained


def test_the_blend_starts_from_the_initialisation_the_pool_trained_from(tmp_path, monkeypatch):
    """With training switched off, each pool network's 'trained' state is the state its training started from:
    it must equal the initialisation the blend interpolates from."""
    import ltdd_utils.evaluate as ev
    from ltdd_utils.distill.feature_nets import step_nets
    monkeypatch.setattr(ev, "train_model", lambda *a, **k: None)
    s = {"model": "convnet", "width": 4, "depth": 2, "norm": "instancenorm", "feature_nets": "trained",
         "feature_pool": 2, "feature_epochs": 1}
    draw = step_nets(s, _tiny_data(), 1, cache_root=tmp_path)
    for init, trained, _ in draw.pairs:
        assert all(torch.equal(init[n], trained[n]) for n in init)
    first = [next(iter(init.values())) for init, _, _ in draw.pairs]
    assert not torch.equal(*first)                        # two networks, two initialisations


def test_dm_random_is_the_control_of_trained_networks():
    with pytest.raises(ConfigError, match="dm_random"):
        make_config("csdm", "smoke", check_data=False, methods=["dm", "dm_random"])
    cfg = make_config("csdm", "smoke", check_data=False, dm_net_pool=0, dm_dsa=True, feature_nets="trained",
                      methods=["random", "dm", "dm_random", "csdm"])
    from ltdd_utils.claims.csdm import claims
    ids = [c.id for c in claims(cfg)]
    assert "csdm.g.imbalance_hurts_dm" not in ids            # smoke: one imbalance factor in the main comparison
    cfg2 = make_config("csdm", "smoke", check_data=False, dm_net_pool=0, dm_dsa=True, feature_nets="trained",
                       methods=["random", "dm", "dm_random", "csdm"], imbalance_factors=[10, 20])
    by_id = {c.id: c for c in claims(cfg2)}
    assert "csdm.d.imbalance_hurts_dm_random" in by_id
    assert set(by_id["csdm.h.stability"].gates) == {"csdm.g.dm_distils.if20", "csdm.g.imbalance_hurts_dm"}


def test_the_leaderboard_runs_csdm_through_dm_s_random_networks():
    """The leaderboard holds one DM recipe for every method: its CSDM embeds through random networks even where the
    chapter's own preset trains a pool (cpu), and PAPERS may not change that."""
    from ltdd_utils.chapters.leaderboard import paper_config
    from ltdd_utils.config import ConfigError, make_config
    assert make_config("csdm", "cpu", check_data=False).feature_nets == "trained"
    for preset in ("smoke", "cpu", "gpu", "paper"):
        board = dict(make_config("leaderboard", preset, check_data=False))
        cfg = paper_config(board, "csdm")
        assert cfg.feature_nets == "random" and "dm_random" not in cfg.methods + cfg.support_methods
    with pytest.raises(ConfigError, match="set by the leaderboard"):
        make_config("leaderboard", "smoke", check_data=False, papers={"csdm": {"feature_nets": "trained"}})
