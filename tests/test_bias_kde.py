import pytest
import torch

from conftest import need
from ltdd_utils.config import ConfigError
from ltdd_utils.data import ImageData, load_dataset
from ltdd_utils.data.bias import CMNIST_COLORS, CORRUPTIONS, background_fmnist, bias_attributes, colored_mnist
from ltdd_utils.distill import distribution_matching
from ltdd_utils.methods.kde_debias import conflict_weight_share, kde_weights
from ltdd_utils.models import get_model


@pytest.mark.parametrize("rho", [0.005, 0.01, 0.02, 0.05])
def test_bias_attributes_have_the_asked_conflict_ratio(rho):
    labels = torch.arange(10).repeat_interleave(2000)
    bias = bias_attributes(labels, 10, rho, seed=0)
    for c in range(10):
        b = bias[labels == c]
        assert (b != c).sum() == round(rho * 2000)
        counts = torch.bincount(b[b != c], minlength=10)
        others = counts[torch.arange(10) != c]
        assert others.max() - others.min() <= 1        # spread evenly over the other colours


def test_unbiased_attributes_are_independent_of_the_label():
    labels = torch.arange(10).repeat_interleave(1000)
    bias = bias_attributes(labels, 10, None, seed=1)
    assert abs(float((bias == labels).float().mean()) - 0.1) < 0.02
    assert torch.bincount(bias[labels == 3], minlength=10).min() > 60


def test_bad_conflict_ratio():
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        bias_attributes(torch.zeros(5, dtype=torch.long), 10, 1.0, 0)


def _fake_grey(n=200):
    x = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 8:20, 10:18] = 255
    return ImageData(x, torch.arange(10).repeat(n // 10), [str(i) for i in range(10)], "fake", "test", (0.5,), (0.5,))


def test_colored_mnist_colours_strokes_by_attribute():
    cm = colored_mnist(_fake_grey(), 0.1, seed=0)
    assert cm.images.shape[1] == 3 and cm.conflict_ratio() == pytest.approx(0.1)
    stroke = cm.images[:, :, 12, 12].float() / 255
    assert torch.allclose(stroke, CMNIST_COLORS[cm.bias], atol=0.03)
    assert cm.images[:, :, 0, 0].sum() == 0                       # background stays black
    sub = cm.subset([0, 3, 7])
    assert torch.equal(sub.bias, cm.bias[[0, 3, 7]]) and torch.equal(sub.labels, cm.labels[[0, 3, 7]])


def test_background_fmnist_paints_the_background_and_keeps_the_object():
    grey = _fake_grey()
    grey.images[:, :, 8:20, 10:18] = 200                            # an object lighter than black, darker than white
    bg = background_fmnist(grey, None, seed=0)
    assert torch.all(bg.images[:, :, 12, 12] == 200)                # the object keeps its grey level
    assert not torch.all(bg.images[:, :, 0, 0] == bg.images[0, :, 0, 0])   # backgrounds differ
    white = bg.bias == 9                                             # the template's white background
    assert white.any() and torch.all(bg.images[white, :, 0, 0] == 255)
    assert all(len(img.unique()) > 1 for img in bg.images[white])  # the object stays visible on white


@need("MNIST/raw")
def test_colored_mnist_from_real_mnist():
    cm = colored_mnist(load_dataset("mnist", train=True), 0.05, seed=0)
    assert len(cm) == 60000 and cm.conflict_ratio() == pytest.approx(0.05, abs=1e-3)


def test_kde_weights_are_higher_for_rare_samples():
    gen = torch.Generator().manual_seed(0)
    z = torch.cat([torch.tensor([1.0, 0, 0]) + 0.02 * torch.randn(95, 3, generator=gen),   # aligned cluster
                   torch.randn(5, 3, generator=gen)])                                     # scattered conflicting
    labels = torch.zeros(100, dtype=torch.long)
    aligned = torch.arange(100) < 95
    w = kde_weights(z, labels, 1, bandwidth=0.2)
    assert float(w.sum()) == pytest.approx(1.0)
    assert w[~aligned].min() > w[aligned].max()
    share = conflict_weight_share(w, labels, aligned, 1)
    assert share[0] > 0.5 and float(conflict_weight_share(torch.ones(100), labels, aligned, 1)[0]) == pytest.approx(0.05)


def test_weighted_dm_with_uniform_weights_equals_plain_dm():
    tr = load_dataset("digits", train=True)
    net = lambda: get_model("convnet", 1, 10, (8, 8), width=8)
    kw = dict(iterations=5, batch_real=16, net_pool=1, seed=0, precision="fp32")      # exact equality: fp32
    plain = distribution_matching(tr, 2, net, **kw)
    uniform = distribution_matching(tr, 2, net, sample_weights=torch.full((len(tr),), 0.3), **kw)
    assert torch.allclose(plain.images, uniform.images, atol=1e-6)
    skewed = distribution_matching(tr, 2, net, sample_weights=torch.rand(len(tr), generator=torch.Generator().manual_seed(0)), **kw)
    assert not torch.allclose(plain.images, skewed.images, atol=1e-6)


def test_supcon_loss_prefers_label_clusters_and_has_gradients():
    from ltdd_utils.methods.kde_debias import supcon_loss
    labels = torch.arange(4).repeat(8)
    centres = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    clustered = torch.nn.functional.normalize(centres[labels] + 0.05 * torch.randn(32, 16), dim=1)
    scattered = torch.nn.functional.normalize(torch.randn(32, 16), dim=1).requires_grad_(True)
    assert supcon_loss(clustered, labels) < supcon_loss(scattered, labels)
    supcon_loss(scattered, labels).backward()
    assert scattered.grad.abs().sum() > 0


@need("MNIST/raw")
def test_kde_on_a_briefly_trained_supcon_embedding_upweights_conflicting_samples(tmp_path):
    """The method's premise on real data: bias-conflicting CMNIST samples get more than their share of weight."""
    from ltdd_utils.data.longtail import make_longtail
    from ltdd_utils.methods.kde_debias import train_supcon
    mnist = make_longtail(load_dataset("mnist", train=True), 1, seed=0, n_max=200)   # 200 per class
    cm = colored_mnist(mnist, 0.05, seed=0)
    net = train_supcon(cm, width=16, epochs=2, batch=128, cache_root=tmp_path)
    x, y = cm.tensors()
    with torch.no_grad():
        z = net(x)
    share = conflict_weight_share(kde_weights(z, y, 10, bandwidth=0.2), y, cm.aligned, 10)
    assert float(share.mean()) > 0.05 * 1.5        # uniform weights would give 0.05


def test_gce_down_weights_hard_samples():
    from ltdd_utils.methods.debias_baselines import gce_loss
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    y = torch.tensor([0, 0])                                   # first easy, second hard
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    gce = gce_loss(logits, y)
    assert gce[0] / ce[0] > gce[1] / ce[1]


@need("MNIST/raw")
def test_lff_weights_bias_conflicting_samples_more():
    from ltdd_utils.data.longtail import make_longtail
    from ltdd_utils.methods.debias_baselines import train_lff
    cm = colored_mnist(make_longtail(load_dataset("mnist", train=True), 1, seed=0, n_max=60), 0.1, seed=0)
    x, y = cm.tensors()
    net = lambda: get_model("convnet", 3, 10, (28, 28), width=8)
    _, w = train_lff(net(), net(), x, y, epochs=40, lr=0.05, batch=100, aug="none")
    assert float(w[~cm.aligned].mean()) > float(w[cm.aligned].mean())


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corruptions_change_images_more_with_severity(kind):
    from ltdd_utils.data.bias import corrupt
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 32, 32, generator=gen) * 0.5 + 0.25
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)                 # some spatial structure for the blurs
    errs = [float((corrupt(x, kind, s, torch.Generator().manual_seed(1)) - x).abs().mean()) for s in (1, 5)]
    out = corrupt(x, kind, 3, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert errs[1] > errs[0] > 0
    assert torch.equal(out, corrupt(x, kind, 3, torch.Generator().manual_seed(1)))   # seeded


def test_corrupted_cifar10_ties_corruption_to_class():
    from ltdd_utils.data.bias import corrupted_cifar10
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(100, 3, 32, 32, generator=gen) * 255).to(torch.uint8)
    base = ImageData(x, torch.arange(10).repeat(10), [str(i) for i in range(10)], "fake", "test", (0.5,) * 3, (0.5,) * 3)
    cc = corrupted_cifar10(base, 0.1, seed=0)
    assert cc.conflict_ratio() == pytest.approx(0.1) and cc.images.dtype == torch.uint8
    assert not torch.equal(cc.images, x)
    with pytest.raises(ConfigError, match="one per class"):
        corrupted_cifar10(base, 0.1, corruptions=["jpeg"])


# ------------------------------------------------------------------ chapter pieces: splits, metrics, DM paths
def test_bias_metrics_on_a_hand_made_case():
    from ltdd_utils.evaluate import bias_metrics
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    bias = torch.tensor([0, 1, 1, 1, 0, 0])          # aligned: samples 0 and 3
    pred = torch.tensor([0, 0, 1, 1, 1, 0])          # right: 0, 1, 3, 4
    m = bias_metrics(pred, labels, bias, min_group=1)
    assert m["acc_aligned"] == pytest.approx(100.0)
    assert m["acc_conflicting"] == pytest.approx(50.0)            # 2 of 4
    assert m["acc_worst_group"] == pytest.approx(50.0)            # groups (0,1): 1/2, (1,0): 1/2
    assert m["acc_worst_class_conflicting"] == pytest.approx(50.0)
    m = bias_metrics(pred, labels, bias, min_group=3)              # no group has 3 images
    assert m["acc_worst_group"] != m["acc_worst_group"] and m["acc_worst_class_conflicting"] != m["acc_worst_class_conflicting"]


def _planted_predictions(shortcut_share: float, n_per_group: int = 30, tiny_group: int = 2):
    """Two classes, two attributes; a model that follows the attribute on a share of each conflicting group
    and a tiny (class 0, attribute 1) group it always gets wrong."""
    labels, bias, pred = [], [], []
    for c in (0, 1):
        for b in (0, 1):
            n = tiny_group if (c, b) == (0, 1) else n_per_group
            wrong = n if (c, b) == (0, 1) else (round(shortcut_share * n) if b != c else 0)
            labels += [c] * n
            bias += [b] * n
            pred += [b] * wrong + [c] * (n - wrong)
    return torch.tensor(pred), torch.tensor(labels), torch.tensor(bias)


def test_worst_group_ignores_groups_too_small_to_measure_and_orders_models():
    """A planted case: the worst (class, attribute) group with enough test images is the conflicting group the
    model gives to its shortcut; a 2-image group does not pin the metric at 0, and a less biased model scores
    higher on both worst-group metrics."""
    from ltdd_utils.evaluate import bias_metrics
    strong = bias_metrics(*_planted_predictions(0.9), min_group=10)
    weak = bias_metrics(*_planted_predictions(0.3), min_group=10)
    assert strong["acc_worst_group"] == pytest.approx(100 / 30 * 3)        # (1, 0): 3 of 30 right
    assert weak["acc_worst_group"] == pytest.approx(70.0)
    assert weak["acc_worst_class_conflicting"] > strong["acc_worst_class_conflicting"] + 50
    assert bias_metrics(*_planted_predictions(0.3), min_group=1)["acc_worst_group"] == 0.0     # the tiny group


def test_weighted_subset_favours_heavy_images_and_seeds_dm():
    from ltdd_utils.distill import distill, random_subset, weighted_subset
    from ltdd_utils.config import make_config
    tr = load_dataset("digits", train=True)
    heavy = torch.zeros(len(tr), dtype=torch.bool)
    for c in range(10):
        heavy[(tr.labels == c).nonzero().flatten()[:5]] = True
    w = torch.where(heavy, torch.tensor(1000.0), torch.tensor(1.0))
    picked = torch.tensor(weighted_subset(tr, 5, w, seed=0).meta["indices"])
    assert heavy[picked].float().mean() > 0.8                    # uniform draws would give about 5 / 180
    assert heavy[torch.tensor(random_subset(tr, 5, seed=0).meta["indices"])].float().mean() < 0.3
    with pytest.raises(ValueError, match="one per image"):
        weighted_subset(tr, 5, w[:10])
    cfg = make_config("kde_debias", "smoke", check_data=False, model="convnet", width=8, dm_iterations=1, dm_lr=1e-12)
    init = weighted_subset(tr, 2, w, seed=0)
    out = distill("dm", tr, cfg, 0, weights=w, init=init, ipc=2)
    assert torch.allclose(out.images, init.images)              # a negligible step: DM returns its initial images
    assert not torch.allclose(distill("dm", tr, cfg, 0, weights=w, ipc=2).images, init.images)
    with pytest.raises(ValueError, match="needs 3 per class"):
        distill("dm", tr, cfg, 0, init=init, ipc=3)


def test_conflicting_share_of_a_subset_and_matched_oracle_weights():
    from ltdd_utils.distill import random_subset
    from ltdd_utils.methods.kde_debias import conflicting_share, oracle_group_weights
    cm = colored_mnist(_fake_grey(400), 0.1, seed=0).subset(torch.arange(10, 400))     # indices not 0..n-1
    whole = random_subset(cm, 39, seed=0)                        # every image of every class
    assert conflicting_share(cm, whole) == pytest.approx(cm.conflict_ratio())
    w = oracle_group_weights(cm.labels, cm.aligned, 10, conflict_mass=0.73)
    assert float(conflict_weight_share(w, cm.labels, cm.aligned, 10).mean()) == pytest.approx(0.73)


def test_random_subset_of_a_biased_set_is_not_the_conflicting_samples():
    """Seeded per-class shuffles of equal class sizes must not line up (they did once: the 'random' subset
    was exactly the bias-conflicting samples)."""
    from ltdd_utils.distill import random_subset
    data = _fake_grey(4000)
    cm = colored_mnist(data, 0.05, seed=0)
    for seed in (0, 1, 2):
        idx = torch.tensor(random_subset(cm, 10, seed).meta["indices"])
        assert int((~cm.aligned[idx]).sum()) < 20                  # expected 5 of 100


def test_biased_splits_are_disjoint_and_have_the_asked_ratios():
    from ltdd_utils.data.bias import biased_splits
    gen = torch.Generator().manual_seed(0)
    base = ImageData((torch.rand(1000, 1, 28, 28, generator=gen) * 255).to(torch.uint8), torch.arange(10).repeat(100),
                     [str(i) for i in range(10)], "fake", "test", (0.5,), (0.5,))
    sp = biased_splits("cmnist", base, base, 0.1, per_class=40, val_per_class=20, test_per_class=50, seed=0)
    assert sp["train"].conflict_ratio() == pytest.approx(0.1)
    assert set(sp["train"].indices.tolist()).isdisjoint(sp["val"].indices.tolist())
    assert torch.equal(sp["unbiased"].indices, sp["train"].indices)
    assert sp["unbiased"].conflict_ratio() > 0.6 and sp["test"].class_counts() == [50] * 10
    assert sp["train"].source != sp["unbiased"].source              # cache keys tell the draws apart
    with pytest.raises(ConfigError, match="asked for"):
        biased_splits("cmnist", base, base, 0.1, per_class=90, val_per_class=20)


def test_exact_pooled_means_equal_the_full_class_batch():
    """The cpu path (precomputed weighted class means) equals DM with a real batch that is the whole class."""
    from ltdd_utils.distill import make_net_pool, pool_embeddings, pooled_class_means
    tr = load_dataset("digits", train=True)
    fn = lambda: get_model("convnet", 1, 10, (8, 8), width=8)
    w = torch.rand(len(tr), generator=torch.Generator().manual_seed(0))
    nets = make_net_pool(fn, 2, seed=0)
    means = pooled_class_means(pool_embeddings(tr, nets), tr.labels, 10, w)
    kw = dict(iterations=6, use_dsa=False, seed=0)
    exact = distribution_matching(tr, 2, fn, nets=nets, real_means=means, **kw)
    batch = distribution_matching(tr, 2, fn, nets=nets, batch_real=10_000, sample_weights=w, **kw)
    assert torch.allclose(exact.images, batch.images, atol=1e-5)
    with pytest.raises(ValueError, match="real_means"):
        distribution_matching(tr, 2, fn, real_means=means, iterations=1)


def test_oracle_weights_and_label_free_bandwidth():
    from ltdd_utils.methods.kde_debias import label_free_bandwidth, oracle_group_weights
    labels = torch.zeros(100, dtype=torch.long)
    aligned = torch.arange(100) >= 5
    w = oracle_group_weights(labels, aligned, 1)
    assert float(conflict_weight_share(w, labels, aligned, 1)[0]) == pytest.approx(0.5)
    z = torch.cat([torch.eye(3)[0].repeat(50, 1), torch.eye(3)[1].repeat(50, 1)]) + 0.01 * torch.randn(100, 3)
    assert label_free_bandwidth(z, labels, 1) < 0.1                 # nearest neighbours sit inside the tight clusters


def test_colour_purity_reads_the_shortcut():
    from ltdd_utils.methods.kde_debias import colour_purity
    grey = _fake_grey(200)
    biased, unbiased = colored_mnist(grey, 0.0, seed=0), colored_mnist(grey, None, seed=0)
    assert colour_purity(biased.images.float() / 255, biased.labels, CMNIST_COLORS) == pytest.approx(1.0)
    assert colour_purity(unbiased.images.float() / 255, unbiased.labels, CMNIST_COLORS) < 0.3


def test_lff_trainer_plugs_into_the_evaluation_protocol():
    from ltdd_utils.distill import random_subset
    from ltdd_utils.evaluate import EvalSettings, evaluate_synset
    from ltdd_utils.methods.kde_debias import lff_trainer
    tr, te = load_dataset("digits", train=True), load_dataset("digits", train=False)
    s = EvalSettings(width=8, epochs=100, students=1, batch=32, aug="none")
    called = []

    def spy(model, x, y, seed):
        called.append(seed)
        return lff_trainer(s)(model, x, y, seed)
    out = evaluate_synset(random_subset(tr, 10, 0), te, s, seed=1, train_fn=spy)
    assert called == [1000] and out[0]["acc"] > 15              # the debiased net learned (chance 10; plain CE 34)


def test_lff_trains_past_the_compile_threshold():
    """LfF's pair is a ModuleList that its loss indexes: past the step count at which train.fit compiles a network
    (500), the container is trained as it is, not compiled (compiling it failed: a ModuleList has no forward)."""
    from ltdd_utils.methods.debias_baselines import train_lff
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8), torch.arange(16) % 2
    nets = [get_model("convnet", 1, 2, (8, 8), width=4, depth=1, norm="none") for _ in range(2)]
    model, w = train_lff(nets[0], nets[1], x, y, epochs=500, batch=16, aug="none")
    assert model.train_steps == 500 and w.shape == (16,)


def test_kde_chapter_parameters_fail_before_compute(tmp_path):
    from ltdd_utils.config import make_config
    from ltdd_utils.data import DatasetNotFoundError
    for bad, fragment in [({"settings": [[1.0, 10]]}, r"\[0, 1\)"), ({"settings": [[0.05, 0]]}, ">= 1"),
                          ({"settings": [[0.0, 10]]}, "ratio > 0"), ({"datasets": ["cmnst"]}, "did you mean 'cmnist'"),
                          ({"kde_bandwidht": 0.2}, "unknown parameter"), ({"severity": 0}, "one of"),
                          ({"methods": ["dm_kde_int"]}, "did you mean 'dm_kde_init'"), ({"full_eval_every": 0}, ">= 1"),
                          ({"selection_seed": 0}, "outside SEEDS"),
                          ({"datasets": ["bg_fmnist"], "headline_settings": [[0.05, 50]]}, "leaves out 'cmnist'"),
                          ({"lff_ema": 1.0}, r"\[0, 1\)"), ({"support_methods": ["dm"]}, "amplification")]:
        with pytest.raises(ConfigError, match=fragment):
            make_config("kde_debias", "smoke", check_data=False, **bad)
    with pytest.raises(DatasetNotFoundError, match="MNIST"):
        make_config("kde_debias", "smoke", data_root=str(tmp_path))
    cfg = make_config("kde_debias", "smoke", check_data=False, datasets="auto", data_root=str(tmp_path))
    assert cfg.datasets == ["cmnist", "bg_fmnist"]                 # no CIFAR-10 in an empty root


def test_kde_headline_settings_run_on_colored_mnist_alone_and_gate_claim_3():
    """HEADLINE_SETTINGS add a setting on Colored MNIST only, with HEADLINE_METHODS; the abstract's setting (5 %,
    IPC 50) carries the headline claims; "reweighting beats LfF" is gated on LfF helping DM; the KDE-weighted
    subset is the control of DM + KDE from it."""
    from ltdd_utils.chapters.kde_debias import methods_at, settings_for
    from ltdd_utils.claims.kde_debias import claims
    from ltdd_utils.config import make_config
    cfg = make_config("kde_debias", "cpu", check_data=False)
    assert settings_for(cfg, "cmnist") == [(0.05, 10), (0.05, 50)] and settings_for(cfg, "bg_fmnist") == [(0.05, 10)]
    assert methods_at(cfg, 0.05, 10) == cfg.methods and methods_at(cfg, 0.05, 50) == cfg.headline_methods
    by_id = {c.id: c for c in claims(cfg)}
    heads = sorted(i for i, c in by_id.items() if c.level == "headline" and ".r0.05." in i)
    assert heads == ["kde.h.beats_dm.cmnist.r0.05.ipc50", "kde.h.beats_lff.cmnist.r0.05.ipc50"]
    assert "kde.g.lff_helps.cmnist.r0.05.ipc50" in by_id["kde.h.beats_lff.cmnist.r0.05.ipc50"].gates
    assert by_id["kde.s.dm_adds_to_kde_subset.cmnist.r0.05.ipc10"].b.method == "kde_subset"
    assert by_id["kde.d.kde_subset_vs_dm_kde.cmnist.r0.05.ipc50"].a.method == "kde_subset"
    assert not any(".ipc50" in i for i in by_id if ".bg_fmnist." in i)


def test_fit_calls_on_epoch_without_changing_training():
    from ltdd_utils.train import fit
    tr = load_dataset("digits", train=True)
    x, y = tr.tensors()
    seen, states = [], []
    for hook in (None, lambda epoch, model: seen.append((epoch, model.training))):
        torch.manual_seed(0)
        net = get_model("convnet", 1, 10, (8, 8), width=8)
        fit(net, x[:200], y[:200], epochs=3, batch=50, seed=0, on_epoch=hook, precision="fp32")
        states.append(net.state_dict())
    assert seen == [(1, False), (2, False), (3, False)]           # after each epoch, in eval mode
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_amplification_index_per_seed_from_planted_records():
    """A(M) per seed from the biased and unbiased sources; the biased-source random and DM rows come from the
    main study; paired differences A(DM) - A(full data) follow."""
    import pandas as pd
    from ltdd_utils.studies.kde_debias import amplification_diffs, amplification_frame
    rows = []
    acc = {("full data", "biased"): 60, ("full data", "unbiased"): 90, ("dm", "biased"): 25, ("dm", "unbiased"): 80,
           ("random", "biased"): 26, ("random", "unbiased"): 70}
    for seed in (0, 1):
        for (m, src), a in acc.items():
            study = "main" if (src == "biased" and m != "full data") else "amplification"
            rows.append({"setting.study": study, "setting.bias": "cmnist", "setting.conflict_ratio": 0.05, "ipc": 10,
                         "method": m, "seed": seed, "setting.source": None if study == "main" else src, "acc": a + seed})
    rows.append({"setting.study": "main", "setting.bias": "cmnist", "setting.conflict_ratio": 0.02, "ipc": 10,
                 "method": "dm", "seed": 0, "setting.source": None, "acc": 99.0})       # another setting: left out
    frame = amplification_frame(pd.DataFrame(rows))
    assert frame.loc[("cmnist", "dm", 0), "A"] == pytest.approx((80 - 25) / 80)
    d = amplification_diffs(frame, "cmnist", "dm", "full data")
    assert list(d) == [0, 1] and d[0] == pytest.approx((80 - 25) / 80 - (90 - 60) / 90)


@need("MNIST/raw")
def test_kde_shown_sets_are_the_arms_sets_and_export_with_their_own_data(tmp_path):
    """The sets the site shows (vanilla DM, DM + KDE, DM + KDE from the KDE-weighted subset; Colored MNIST, first
    setting and seed) are the sets those arms trained on; the export takes the bandwidth from the run's records and
    the dataset from the study's own data; LfF's settings are chosen on validation from LFF_GRID, apart from the
    run's seeds; SUPPORT_METHODS run on their first seeds only."""
    from ltdd_utils import sets
    from ltdd_utils.chapters.kde_debias import runs
    from ltdd_utils.config import make_config
    from ltdd_utils.experiment import Run
    from ltdd_utils.studies.kde_debias import Study
    params = {"cache_dir": str(tmp_path / "cache"), "results_dir": str(tmp_path / "results"), "precision": "fp32",
              "datasets": ["cmnist"], "amplification": False, "sensitivity": False, "seeds": [0, 1],
              "support_methods": ["dm_kde_init"], "support_seed_count": 2}
    cfg = make_config("kde_debias", "smoke", **params)
    st = Study(Run(cfg, load=False))
    st.select_bandwidth("cmnist")
    (r, ipc), = st.settings["cmnist"][:1]
    for m in ("dm", "dm_kde", "dm_kde_init", "dm_lff"):
        st.arm("cmnist", r, ipc, m, 0)
    assert st.lff["cmnist"] in [tuple(p) for p in cfg.lff_grid]
    assert {x.setting["study"] for x in st.run.records} == {"selection", "lff selection", "main"}
    assert all(x.seed == cfg.selection_seed for x in st.run.records if x.setting["study"] != "main")
    three = make_config("kde_debias", "smoke", check_data=False, support_methods=["oracle"], support_seed_count=2,
                        seeds=[0, 1, 2])
    assert runs(cfg, "cmnist", r, ipc, "dm_kde_init", 1) and not runs(three, "cmnist", r, ipc, "oracle", 2)
    assert runs(three, "cmnist", 0.05, 50, "oracle", 2)                 # the headline setting: every seed
    st.run.write()
    fresh = Study(Run(cfg, load=False))                         # as the export builds it: no bandwidth chosen yet
    shown = fresh.shown_sets()
    assert [s["name"] for s in shown] == [f"{m}_cmnist_r{r:g}_ipc{ipc}_seed0" for m in ("dm", "dm_kde", "dm_kde_init")]
    assert fresh.chosen_h["cmnist"] == st.chosen_h["cmnist"] and not fresh.selection
    for item, m in zip(shown, ("dm", "dm_kde", "dm_kde_init")):
        assert torch.equal(item["set"].images, st.sets["cmnist", r, ipc, m, 0].images)
    folder = tmp_path / "sets"
    folder.mkdir()
    paths = sets.export_chapter("kde_debias", "smoke", params, {"commit": "abc"}, folder, from_run=True)
    prov = sets.load(paths[1]).meta
    assert prov["dataset"] == st.data["cmnist", r]["train"].name and prov["arms"][0]["recorded"]["acc_conflicting"] >= 0
