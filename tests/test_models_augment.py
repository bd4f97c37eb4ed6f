import pytest
import torch

from ltdd_utils.augment import OPS, crop_flip, dsa
from ltdd_utils.models import BNStatsHook, bn_statistics, get_model


@pytest.mark.parametrize("name, kw", [("convnet", dict(width=8, depth=3)), ("convnet", dict(width=8, depth=4, norm="none")),
                                      ("convnet_bn", dict(width=8)), ("resnet18", dict(width=8))])
def test_models_by_name(name, kw):
    m = get_model(name, 3, 10, (32, 32), **kw)
    x = torch.randn(4, 3, 32, 32)
    assert m(x).shape == (4, 10) and m.embed(x).shape == (4, m.feature_dim)


def test_unknown_model():
    with pytest.raises(ValueError, match="resnet18"):
        get_model("vgg", 3, 10)


def test_batchnorm_statistics_exposed():
    m = get_model("convnet_bn", 1, 10, (28, 28), width=8)
    stats = bn_statistics(m)
    assert len(stats) == 3 and torch.all(stats[0][0] == 0)
    m.train()(torch.randn(16, 1, 28, 28) + 3)
    assert stats[0][0].abs().sum() > 0              # running statistics move with data
    hook = BNStatsHook(m)
    m.eval()(torch.randn(8, 1, 28, 28))
    assert len(hook.stats) == 3 and hook.stats[0][0].shape == (8,)
    hook.remove()


@pytest.mark.parametrize("op", sorted(OPS))
def test_dsa_siamese_same_parameters(op):
    """The same seed applies the same transformation to batches of different sizes."""
    a, b = torch.rand(3, 3, 16, 16), torch.rand(5, 3, 16, 16)
    both = dsa(torch.cat([a, b]), seed=123, strategy=op)
    assert torch.allclose(both, torch.cat([dsa(a, 123, op), dsa(b, 123, op)]), atol=1e-6)


def test_dsa_changes_images_and_differs_by_seed():
    x = torch.rand(4, 3, 16, 16)
    outs = [dsa(x, s) for s in range(20)]
    assert any(not torch.allclose(o, x) for o in outs)
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])
    assert torch.equal(dsa(x, 7), dsa(x, 7))


def test_dsa_is_differentiable():
    for op in OPS:
        x = torch.rand(2, 3, 16, 16, requires_grad=True)
        dsa(x, 0, op).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all(), op


def test_dsa_per_sample_mode_differs_within_batch():
    x = torch.rand(1, 3, 16, 16).repeat(8, 1, 1, 1)
    y = dsa(x, 1, "scale", siamese=False)
    assert not torch.allclose(y[0], y[1])


def test_crop_flip_shape_and_content():
    x = torch.rand(6, 3, 16, 16)
    y = crop_flip(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(x, y)


def test_instance_norm_is_exact_in_either_memory_format():
    """PyTorch's channels_last GroupNorm kernel cancels (E[x^2] - E[x]^2) where a channel's mean dwarfs its spread;
    the ConvNet's instance norm must not: same parameters as GroupNorm(C, C), float64's answer in both formats."""
    from ltdd_utils.models import InstanceNorm
    torch.manual_seed(0)
    norm = InstanceNorm(16, 16)
    with torch.no_grad():
        norm.weight.normal_(), norm.bias.normal_()
    assert list(norm.state_dict()) == list(torch.nn.GroupNorm(16, 16).state_dict())
    x = torch.randn(4, 16, 8, 8) * 0.1 + 100                  # mean 1,000 standard deviations
    ref = torch.nn.functional.group_norm(x.double(), 16, norm.weight.double(), norm.bias.double())
    for fmt in (torch.contiguous_format, torch.channels_last):
        xi = x.contiguous(memory_format=fmt).requires_grad_(True)
        out = norm(xi)
        assert (out.double() - ref).abs().max() < 1e-3, fmt
        out.sum().backward()
    assert torch.equal(norm(x), torch.nn.functional.group_norm(x, 16, norm.weight, norm.bias))   # contiguous: as before


def test_embedding_chunks_keep_the_first_activation_small():
    from ltdd_utils.models import ACTIVATION_BUDGET, embed_chunk, embed_in_chunks
    net = get_model("convnet", 3, 10, (32, 32), width=128)
    assert embed_chunk(net, (32, 32)) == ACTIVATION_BUDGET // (128 * 32 * 32) == 24
    assert embed_chunk(get_model("convnet", 3, 10, (32, 32), width=2), (32, 32)) == 256      # at most 256
    assert embed_chunk(net, (32, 32), "cuda") == 4096
    x = torch.randn(50, 3, 32, 32)
    assert torch.allclose(embed_in_chunks(net, x), net.embed(x), atol=1e-5)


def test_an_input_gradient_is_compared_in_norm():
    """A few elements far off (ReLU masks flipped on constant channels) fail the largest-element test and pass
    the norm test; a difference spread over every element fails both."""
    from ltdd_utils.models import _AGREES, _agrees
    ref = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
    few = ref.clone()
    few[:3] += 0.02 * ref.abs().max()            # 2e-2 of the largest; 5e-4 in norm
    with pytest.warns(RuntimeWarning, match="relative"):
        assert not _agrees(("test", "max"), few, lambda: ref, "fp32", "test")
    assert _agrees(("test", "norm"), few, lambda: ref, "fp32", "test", norm=True)
    with pytest.warns(RuntimeWarning, match="in norm"):
        assert not _agrees(("test", "spread"), ref * 1.01, lambda: ref, "fp32", "test", norm=True)
    for k in [("test", "max"), ("test", "norm"), ("test", "spread")]:
        _AGREES.pop(k)
