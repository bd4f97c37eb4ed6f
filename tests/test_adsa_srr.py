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
    logits, y, counts = gaussian_toy(100, per_class=300, seed=2)
    tau, acc = adsa.oracle_tau(logits, y, counts)
    assert abs(tau - 1) <= 0.3 and acc.max() > acc[0]
    balanced = logits - adsa.log_prior(counts)[None]       # the balanced-prior Bayes posterior
    assert adsa.label_term_kl(balanced, logits) > adsa.label_term_kl(balanced, balanced - 0.0) + 1e-3
    assert abs(adsa.label_term_kl(balanced, balanced)) < 1e-6


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
