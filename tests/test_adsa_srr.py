"""ADSA's criterion on a Gaussian toy with a Bayes teacher, and the recover step of squeeze-recover-relabel."""
import pytest
import torch

from ltdd_utils.distill import SyntheticSet
from ltdd_utils.distill.srr import bn_matching_loss, bn_statistics_of, recover
from ltdd_utils.methods import adsa
from ltdd_utils.models import bn_statistics, get_model

K, D = 10, 16


def lt_counts(imbalance_factor, n_max=5000):
    return [n_max * (1 / imbalance_factor) ** (k / (K - 1)) for k in range(K)]


def gaussian_toy(imbalance_factor, per_class=50, seed=0):
    """10 isotropic Gaussian classes; the teacher is the exact Bayes log-posterior under the LT prior."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(K, D, generator=g) * 0.45
    counts = lt_counts(imbalance_factor)
    lp = adsa.log_prior(counts)
    y = torch.arange(K).repeat_interleave(per_class)
    x = mu[y] + torch.randn(len(y), D, generator=g)
    logits = -0.5 * ((x[:, None, :] - mu[None]) ** 2).sum(-1) + lp[None]
    return logits, y, counts


@pytest.mark.parametrize("imbalance_factor", [10, 50, 100])
def test_tau_star_is_near_one_for_a_bayes_teacher(imbalance_factor):
    """Averaged over five draws of the class means (class difficulty moves a single draw's tau* a little)."""
    stars = []
    for seed in range(5):
        logits, y, counts = gaussian_toy(imbalance_factor, per_class=200, seed=seed)
        tau, taus, values = adsa.adaptive_soft_label_alignment(logits, y, counts)
        assert values[0] > values.min() * 1.2             # plain soft labels are clearly worse than tau*
        stars.append(tau)
    assert abs(sum(stars) / len(stars) - 1) <= 0.2 and max(abs(t - 1) for t in stars) <= 0.3


def test_adjustment_helps_the_tail_on_the_toy():
    logits, y, counts = gaussian_toy(100, per_class=500, seed=1)
    lp = adsa.log_prior(counts)
    tau, _, _ = adsa.adaptive_soft_label_alignment(logits, y, counts)
    plain = adsa.class_confidence(logits, y, K)
    aligned = adsa.class_confidence(logits, y, K, lp, tau)
    assert aligned[-3:].mean() > plain[-3:].mean() + 0.1 and plain[0] > aligned[0]
    assert adsa.balanced_accuracy(adsa.adjusted_logits(logits, lp, tau), y, K) > adsa.balanced_accuracy(logits, y, K)


def test_criterion_is_flat_for_uniform_priors_and_ignores_constant_shifts():
    logits, y, _ = gaussian_toy(1)
    uniform = [500] * K
    _, _, values = adsa.adaptive_soft_label_alignment(logits, y, uniform)
    assert float(values.max() - values.min()) < 1e-6
    _, _, counts = gaussian_toy(50)
    t1, _, v1 = adsa.adaptive_soft_label_alignment(logits, y, counts)
    t2, _, v2 = adsa.adaptive_soft_label_alignment(logits, y, [3 * c for c in counts])   # log pi + log 3 cancels
    assert t1 == t2 and torch.allclose(v1, v2, atol=1e-6)


def test_oracle_tau_and_label_term():
    """The label term of a Bayes teacher for the long-tailed prior is the Jensen gap of the spec (computed here
    independently), grows with the imbalance and is cancelled by the adjustment at tau = 1."""
    logits, y, counts = gaussian_toy(100, per_class=300, seed=2)
    tau, acc = adsa.oracle_tau(logits, y, counts)
    assert abs(tau - 1) <= 0.3 and acc.max() > acc[0]
    lp = adsa.log_prior(counts)
    balanced = logits - lp[None]                           # the balanced-prior Bayes posterior
    p, k_pi = torch.softmax(balanced, 1).double(), K * lp.double().exp()
    gap = float(((p * k_pi).sum(1).log() - (p * k_pi.log()).sum(1)).mean())
    assert adsa.label_term_kl(balanced, logits) == pytest.approx(gap, rel=1e-3) and gap > 0.05
    assert adsa.label_term_kl(balanced, adsa.adjusted_logits(logits, lp, 1.0)) < 1e-5
    assert adsa.label_term_kl(balanced, adsa.adjusted_logits(logits, lp, 0.5)) < gap
    mild, _, mild_counts = gaussian_toy(10, per_class=300, seed=2)
    assert adsa.label_term_kl(mild - adsa.log_prior(mild_counts)[None], mild) < gap


def test_rank_slope_and_gaussian_image_term():
    assert adsa.rank_slope([0.9, 0.8, 0.7, 0.6]) == pytest.approx(-0.1)
    design = torch.tensor([[0.0, 1, 2, 3], [1, 1, 1, 1]]).T          # least squares with an intercept
    assert adsa.rank_slope([0.2, 0.9, 0.1, 0.5]) == pytest.approx(
        float((design.pinverse() @ torch.tensor([0.2, 0.9, 0.1, 0.5]))[0]), rel=1e-5)
    g = torch.Generator().manual_seed(0)
    test = torch.randn(2000, 32, generator=g)
    assert adsa.gaussian_kl(test, test) == pytest.approx(0.0, abs=1e-6)
    kls = [adsa.gaussian_kl(test, torch.randn(100, 32, generator=g) + shift) for shift in (0.0, 0.5, 1.0)]
    assert 0 < kls[0] < kls[1] < kls[2]


def test_initial_set_duplicates_a_short_tail_with_noise():
    from ltdd_utils.data import ImageData
    from ltdd_utils.studies.adsa import initial_set
    imgs = (torch.rand(12, 1, 4, 4) * 255).to(torch.uint8)
    labels = torch.tensor([0] * 6 + [1] * 4 + [2] * 2)
    d = ImageData(imgs, labels, ["a", "b", "c"], "toy", "toy", (0.5,), (0.25,))
    s = initial_set(d, 5, seed=0, duplicate_noise=0.1)
    assert s.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5 and s.meta["duplicated"] == [0, 1, 3]
    real = d.tensors()[0]
    tail = s.images[s.labels == 2]
    originals = [i for i in range(len(tail)) if any(torch.equal(tail[i], r) for r in real[labels == 2])]
    assert originals == [0, 1]                              # the two real tail images, then three noisy copies
    for j, copy in enumerate(tail[2:]):
        diff = copy - tail[j % 2]
        assert 0.03 < float(diff.std()) < 0.3               # noise of std duplicate_noise, around its source
    assert torch.equal(initial_set(d, 5, 0, 0.1).images, s.images) and not torch.equal(initial_set(d, 5, 1, 0.1).images, s.images)


def test_tau_star_on_initial_images_and_real_crops():
    """tau* is computed on any image set through the teacher's logits; real crops are k crops of every real image."""
    from ltdd_utils.data import load_dataset
    from ltdd_utils.data.longtail import make_longtail
    from ltdd_utils.evaluate import predict
    from ltdd_utils.studies.adsa import initial_set, real_crops, tau_star_of
    d = make_longtail(load_dataset("digits", train=True), 10, seed=0, n_max=40)
    torch.manual_seed(0)
    teacher = get_model("convnet", 1, 10, (8, 8), width=8, depth=2, norm="batchnorm").eval()
    taus = torch.arange(0, 3.0001, 0.25)
    xc, yc = real_crops(d, 3, seed=0)
    assert xc.shape == (3 * len(d), 1, 8, 8) and torch.equal(yc, d.labels.repeat_interleave(3))
    assert not torch.allclose(xc[::3], d.tensors()[0])          # crops, not the images themselves
    init = initial_set(d, 5, 0, 0.1)
    for images, labels in ((init.images, init.labels), (xc, yc)):
        tau, grid, values = tau_star_of(teacher, images, labels, d.class_counts(), taus)
        direct = [adsa.alignment_criterion(predict(teacher, images), labels, adsa.log_prior(d.class_counts()),
                                           float(t), 10) for t in taus]
        assert torch.allclose(values, torch.tensor(direct), atol=1e-6) and tau == float(taus[int(values.argmin())])


def test_kd_student_recipe_applies_the_logit_offset_and_trains_hard_labels():
    from ltdd_utils.evaluate import train_student_kd
    torch.manual_seed(0)
    teacher = get_model("convnet", 1, 3, (8, 8), width=4, depth=2).eval()
    x, y = torch.randn(12, 1, 8, 8), torch.arange(3).repeat(4)

    def trained(**kw):
        torch.manual_seed(1)
        return torch.cat([p.detach().flatten() for p in train_student_kd(
            get_model("convnet", 1, 3, (8, 8), width=4, depth=2), x, y, epochs=2, batch=6, seed=0, **kw).parameters()])
    plain = trained(teacher=teacher)
    assert torch.equal(plain, trained(teacher=teacher, logit_offset=torch.zeros(3)))
    assert not torch.allclose(plain, trained(teacher=teacher, logit_offset=torch.tensor([2.0, 0.0, -2.0])))
    hard = trained(teacher=None)
    assert not torch.allclose(plain, hard) and torch.isfinite(hard).all()


def test_students_of_one_teacher_set_and_seed_share_its_labels():
    """The teacher labels a student's batches once; the next student of the same teacher, set, seed and schedule
    (another offset: another ADSA arm) reads them back and ends exactly where it ends with the teacher run again;
    another seed draws other batches and runs the teacher."""
    from ltdd_utils import evaluate
    from ltdd_utils.evaluate import train_student_kd
    torch.manual_seed(0)
    teacher = get_model("convnet", 1, 3, (8, 8), width=4, depth=2).eval()
    calls, forward = [], teacher.forward
    teacher.forward = lambda xb: calls.append(1) or forward(xb)
    x, y = torch.randn(12, 1, 8, 8), torch.arange(3).repeat(4)

    def trained(seed=0, **kw):
        torch.manual_seed(1)
        return torch.cat([p.detach().flatten() for p in train_student_kd(
            get_model("convnet", 1, 3, (8, 8), width=4, depth=2), x, y, teacher, epochs=2, batch=6, seed=seed,
            **kw).parameters()])
    evaluate._RELABELS.clear()
    trained()
    first = len(calls)
    offset = torch.tensor([1.0, 0.0, -1.0])
    shared = trained(logit_offset=offset)
    assert len(calls) == first and first > 0                  # the second student ran no teacher forward
    evaluate._RELABELS.clear()
    assert torch.equal(shared, trained(logit_offset=offset)) and len(calls) == 2 * first
    trained(seed=1)
    assert len(calls) == 3 * first


def small_teacher():
    torch.manual_seed(0)
    net = get_model("convnet", 1, 3, (8, 8), width=4, depth=2, norm="batchnorm")
    net.train()
    with torch.no_grad():                                  # give the running statistics real values
        for _ in range(20):
            net(torch.randn(64, 1, 8, 8) * 2 + 1)
    return net.eval()


def test_recover_lowers_the_bn_statistics_loss_and_keeps_labels():
    teacher = small_teacher()
    init = SyntheticSet(torch.rand(12, 1, 8, 8), torch.arange(3).repeat(4), 3, meta={"method": "random"})
    before = bn_matching_loss(bn_statistics_of(teacher, init.images), bn_statistics(teacher))
    out = recover(teacher, init, iterations=60, lr=0.05, r_bn=1.0, jitter=0, seed=0)
    after = bn_matching_loss(bn_statistics_of(teacher, out.images), bn_statistics(teacher))
    assert after < 0.5 * before
    assert torch.equal(out.labels, init.labels) and out.meta["init"] == "random"
    assert out.meta["history"]["bn"][-1] < out.meta["history"]["bn"][0]
    assert not torch.equal(out.images, init.images) and init.images.grad is None


def test_recover_on_random_resized_crops():
    """With crop_scale every step sees a fresh random resized crop of every image: the result differs from the
    jittered recovery, is reproducible per seed, records the scale, and a bad scale fails before any step."""
    teacher = small_teacher()
    init = SyntheticSet(torch.rand(12, 1, 8, 8), torch.arange(3).repeat(4), 3, meta={"method": "random"})
    run = lambda seed, **kw: recover(teacher, init, iterations=20, lr=0.05, r_bn=1.0, seed=seed, **kw)
    crops = run(0, crop_scale=(0.3, 1.0))
    assert torch.equal(crops.images, run(0, crop_scale=(0.3, 1.0)).images)
    assert not torch.equal(crops.images, run(1, crop_scale=(0.3, 1.0)).images)
    assert not torch.equal(crops.images, run(0).images) and crops.meta["crop_scale"] == [0.3, 1.0]
    assert "crop_scale" not in run(0).meta
    assert crops.meta["history"]["ce"][-1] < crops.meta["history"]["ce"][0]
    with pytest.raises(ValueError, match="crop_scale"):
        run(0, crop_scale=(0.0, 1.0))


def test_the_main_teacher_is_seeded_per_run_seed_and_tau_star_uses_the_students_views(tmp_path):
    """With per_seed_teacher the main split's teacher of run seed s has teacher seed s (one training each, cached),
    the other splits' teachers are shared; tau* is the criterion on tau_crops crop-and-flip views of every image."""
    from ltdd_utils.config import make_config
    from ltdd_utils.experiment import Run
    from ltdd_utils.studies.adsa import Study, tau_star_of
    st = Study(Run(make_config("adsa", "smoke", cache_dir=str(tmp_path), results_dir=str(tmp_path), seeds=[0, 1])))
    t0, t1 = st.teacher(st.IF0, 0), st.teacher(st.IF0, 1)
    assert t0 is st.teachers[st.IF0] and t1.cache_key != t0.cache_key and st.teacher(st.IF0, 1) is t1
    assert st.teacher("balanced", 1) is st.teachers["balanced"]
    other = next(f for f in st.factors if f != st.IF0)
    assert st.teacher(other, 1) is st.teachers[other]
    assert len(st.teacher_table([0, 1])) == len(st.teachers) + 1
    s = st.init_set(st.lt, 3, 0)
    x, y = st.student_views(s, 0)
    k = st.cfg.tau_crops
    assert x.shape == (k * len(s), *s.images.shape[1:]) and torch.equal(y, s.labels.repeat_interleave(k))
    assert torch.equal(x, st.student_views(s, 0)[0]) and not torch.equal(x, st.student_views(s, 1)[0])
    tau, _, values = st.tau_star(s, st.IF0, 1)
    assert (tau, values.tolist()) == (lambda r: (r[0], r[2].tolist()))(
        tau_star_of(t1, *st.student_views(s, 1), st.lt.class_counts(), st.taus))


def test_recover_needs_batchnorm_and_matching_targets():
    net = get_model("convnet", 1, 3, (8, 8), width=4, depth=2, norm="instancenorm")
    init = SyntheticSet(torch.rand(3, 1, 8, 8), torch.arange(3), 3)
    with pytest.raises(ValueError, match="BatchNorm"):
        recover(net, init, iterations=1)
    with pytest.raises(ValueError, match="targets"):
        bn_matching_loss([(torch.zeros(2), torch.ones(2))], [])


def test_chapter_parameters_fail_before_compute():
    from ltdd_utils.config import ConfigError, make_config
    with pytest.raises(ConfigError, match="imbalance_factor"):
        make_config("adsa", "smoke", IMBALANCE_FACTOR=0.5)
    with pytest.raises(ConfigError, match="tau_grid"):
        make_config("adsa", "smoke", TAU_GRID=[1, 0, 0.1])
    with pytest.raises(ConfigError, match=r"ipcs\[0\]"):
        make_config("adsa", "smoke", IPCS=[0])
    with pytest.raises(ConfigError, match="did you mean 'METHODS'"):
        make_config("adsa", "smoke", METHOD=["soft"])
    with pytest.raises(ConfigError, match=r"methods\[0\]"):
        make_config("adsa", "smoke", METHODS=["adsaa"])
