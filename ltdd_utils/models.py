"""Models created by name: the dataset-distillation ConvNet and a CIFAR ResNet-18.

``get_model(name, channels, num_classes, im_size, **kw)`` builds any registered model. Every model has
``embed(x)`` (the penultimate features, what DM matches) and ``forward(x)`` (logits). BatchNorm variants
expose their running statistics through :func:`bn_statistics`, and :class:`BNStatsHook` records the batch
statistics of a forward pass (what recovery methods match).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .versions import producer


class InstanceNorm(nn.GroupNorm):
    """The DD convention's instance norm: ``nn.GroupNorm(channels, channels)`` (one group per channel, affine;
    the same parameters and state dict), exact in either memory format.

    PyTorch's CPU GroupNorm kernel for channels_last inputs takes the variance as E[x²] - E[x]², which cancels
    when a channel's mean is large against its spread: at a mean 100 times the standard deviation its output is
    off by 6e-3 (relative, against float64), at 1,000 times it is wrong outright, while contiguous inputs stay
    within 4e-6. A ConvNet-128 run eagerly in channels_last gave input gradients 8e-3 off float64 at their
    largest element. ``F.instance_norm`` stays within 2e-6 in both formats (the ConvNet's input gradients too),
    compiled as well; it takes every input that is not contiguous."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous():              # the contiguous kernel is exact enough and up to 5x faster in eager
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instancenorm":      # the DD convention: GroupNorm with one group per channel, affine
        return InstanceNorm(channels, channels, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm {kind!r} is not allowed: expected 'instancenorm', 'batchnorm' or 'none'")


class ConvNet(nn.Module):
    """``depth`` blocks of [3x3 conv (width) -> norm -> ReLU -> 2x2 avg-pool], then a linear classifier."""

    def __init__(self, channels: int, num_classes: int, im_size=(32, 32), width: int = 128, depth: int = 3,
                 norm: str = "instancenorm"):
        super().__init__()
        layers, c, (h, w) = [], channels, im_size
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1), _norm(norm, width), nn.ReLU(inplace=True)]
            if h > 1 and w > 1:
                layers.append(nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            c = width
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * h * w
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(norm, cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for small images (3x3 stem, no max-pool), as used on CIFAR in the DD literature."""

    def __init__(self, channels: int, num_classes: int, im_size=(32, 32), width: int = 64, norm: str = "batchnorm",
                 **_):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.bn1 = _norm(norm, width)
        blocks, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            for j in range(2):
                blocks.append(_BasicBlock(cin, width * mult, 2 if (i > 0 and j == 0) else 1, norm))
                cin = width * mult
        self.layers = nn.Sequential(*blocks)
        self.feature_dim = cin
        self.classifier = nn.Linear(cin, num_classes)

    def embed(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x):
        return self.classifier(self.embed(x))


class _FastGroup(nn.Module):
    """3x3 conv -> 2x2 max-pool -> BN -> GELU -> 3x3 conv -> BN -> GELU, the convolutions identity-initialised."""

    def __init__(self, cin: int, cout: int, bn_momentum: float):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(cout, momentum=bn_momentum, eps=1e-12)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(cout, momentum=bn_momentum, eps=1e-12)
        for conv in (self.conv1, self.conv2):       # the first cin filters pass their input channel through
            nn.init.dirac_(conv.weight.data[:min(cin, cout)])
        for bn in (self.norm1, self.norm2):         # scale fixed at 1: only the BatchNorm shifts learn
            bn.weight.requires_grad_(False)

    def forward(self, x):
        x = self.conv1(x)
        if min(x.shape[-2:]) >= 2:                  # small images (8x8 digits) stop halving at 1x1
            x = F.max_pool2d(x, 2)
        x = F.gelu(self.norm1(x))
        return F.gelu(self.norm2(self.conv2(x)))


class ScaledLinear(nn.Linear):
    """A linear layer whose outputs are multiplied by ``scale`` (FastNet's bias-free head, logits / 9)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, scale: float = 1 / 9):
        super().__init__(in_features, out_features, bias=bias)
        self.scale = scale

    def forward(self, x):
        return super().forward(x) * self.scale


class FastNet(nn.Module):
    """The teachers' network: strong in a few epochs on a CPU (the recipe is :mod:`ltdd_utils.teachers`).

    After Page (2018), hlb-CIFAR10 and airbench (Jordan, 2024): a 2x2 patch-whitening convolution (frozen; its
    filters are the training patches' scaled eigenvectors and their negatives, set by :func:`whiten_from`), then
    three groups of [3x3 conv -> 2x2 max-pool -> BatchNorm -> GELU -> 3x3 conv -> BatchNorm -> GELU] of widths
    ``width``, ``4 width``, ``4 width``, a global max-pool and a bias-free linear layer whose logits are scaled by
    1/9. BatchNorm throughout (recovery matches its running statistics); ``depth`` is ignored."""

    def __init__(self, channels: int, num_classes: int, im_size=(32, 32), width: int = 64, norm: str = "batchnorm",
                 bn_momentum: float = 0.4, **_):
        super().__init__()
        if norm != "batchnorm":
            raise ValueError(f"fastnet has BatchNorm only: norm {norm!r} is not allowed")
        widths = (width, 4 * width, 4 * width)
        self.whiten = nn.Conv2d(channels, 2 * channels * 4, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        cin, groups = self.whiten.out_channels, []
        for w in widths:
            groups.append(_FastGroup(cin, w, bn_momentum))
            cin = w
        self.groups = nn.Sequential(*groups)
        self.feature_dim = cin
        self.classifier = ScaledLinear(cin, num_classes, bias=False, scale=1 / 9)

    def embed(self, x):
        return F.adaptive_max_pool2d(self.groups(F.gelu(self.whiten(x))), 1).flatten(1)

    def forward(self, x):
        return self.classifier(self.embed(x))


@torch.no_grad()
def whiten_from(net: FastNet, images: torch.Tensor, eps: float = 5e-4) -> FastNet:
    """Set ``net``'s whitening filters from ``images`` (normalised, N x C x H x W; a few thousand suffice): the
    eigenvectors of the covariance of their 2x2 patches, each divided by the square root of its eigenvalue plus
    ``eps``, and their negatives; the bias to zero."""
    c = images.shape[1]
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4).double()
    values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    filters = (vectors.T / (values + eps).sqrt().unsqueeze(1)).reshape(c * 4, c, 2, 2).float()
    net.whiten.weight.copy_(torch.cat([filters, -filters]))
    net.whiten.bias.zero_()
    return net


MODELS: dict[str, Callable[..., nn.Module]] = {
    "convnet": ConvNet,
    "convnet_bn": lambda *a, **k: ConvNet(*a, **{**k, "norm": "batchnorm"}),
    "resnet18": ResNet18,   # ignores ``depth``; ``norm`` defaults to batchnorm
    "fastnet": FastNet,     # ignores ``depth``; BatchNorm only; whitening set by whiten_from
}


@producer("models", 3)      # 2: long fp32 runs compile too; 3: exact instance norm in channels_last, CPU chunks by size
def get_model(name: str, channels: int, num_classes: int, im_size=(32, 32), **kwargs) -> nn.Module:
    """Build a registered model by name (``MODELS``); ``kwargs`` go to its constructor (width, depth, norm)."""
    if name not in MODELS:
        raise ValueError(f"model {name!r} is not allowed: expected one of {sorted(MODELS)}")
    return MODELS[name](channels, num_classes, tuple(im_size), **kwargs)


def net_factory(name: str, data, width: int | None = None, depth: int = 3, norm: str = "instancenorm"):
    """A function returning a fresh randomly initialised network ``name`` for ``data``'s images and classes."""
    return lambda: get_model(name, data.shape[0], data.num_classes, data.shape[1:], width=width, depth=depth, norm=norm)


def bn_statistics(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(running_mean, running_var) of every BatchNorm layer, in module order."""
    return [(m.running_mean, m.running_var) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


class BNStatsHook:
    """Keeps the input of every BatchNorm layer during a forward pass.

    ``stats`` gives the per-channel batch mean and variance of each (what recovery matches); ``inputs`` the
    inputs themselves (class-wise statistics). ``clear()`` before each forward, ``remove()`` when done; or use
    it as a context manager.
    """

    def __init__(self, model: nn.Module):
        self.inputs: list[torch.Tensor] = []
        self._handles = [m.register_forward_hook(self._hook) for m in model.modules()
                         if isinstance(m, nn.BatchNorm2d)]

    def _hook(self, module, inputs, output):
        self.inputs.append(inputs[0])

    @property
    def stats(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)) for x in self.inputs]

    def clear(self):
        self.inputs = []

    def remove(self):
        for h in self._handles:
            h.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def frozen(net: nn.Module, device="cpu") -> nn.Module:
    """``net`` on ``device`` in eval mode with gradients off (an embedding or a teacher that only looks)."""
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


_COMPILED: dict = {}


def compile_wanted(precision: str, device, work: int, setting=None, threshold: int = 100, fp32: bool = False) -> bool:
    """Whether to compile: ``setting`` True/False decides; ``None`` (auto, or $LTDD_COMPILE=0/1) compiles on a
    CPU in bf16 when the run repeats the compiled computation ``work >= threshold`` times (compiling takes
    seconds to tens of seconds; a short run, e.g. a test, never pays for it), and in fp32 too where the caller
    says it pays there (``fp32=True``: the embeddings of DM-like losses, :data:`FP32_COMPILE_GAIN`)."""
    import os
    import shutil
    from .precision import resolve
    env = os.environ.get("LTDD_COMPILE")
    if setting is None and env in ("0", "1"):
        setting = env == "1"
    if setting is not None:
        return bool(setting)
    return (torch.device(device).type == "cpu" and (fp32 or resolve(precision, device) == "bf16")
            and work >= threshold and shutil.which(os.environ.get("CXX", "g++")) is not None)


# In fp32, compiled channels_last against eager, both in chunks of :func:`embed_chunk`: one DM iteration 1.3x
# (2.15 -> 1.64 s; 2.2x the official code's loop, 178 GFLOP/s, 82 % of the fp32 convolution peak), students 1.1x
# (batch 25) and 1.5x (batch 100), inference of 10,000 images 1.3x (2-core AVX512 CPU,
# `python -m ltdd_utils bench --precision fp32`, book/results/bench_fp32.json).
FP32_COMPILE_GAIN = 1.31

# Whether an architecture's compiled code agrees with eager on this machine, checked on its first call:
# signature -> True, or False (then eager from there on, with a warning). A compiler bug on one CPU must not move a
# number silently.
_AGREES: dict = {}


def _agrees(sig, compiled: torch.Tensor, eager: Callable[[], torch.Tensor], precision: str, what: str,
            norm: bool = False) -> bool:
    """Compare a compiled output with eager on the same input the first time ``sig`` runs: the largest difference
    relative to the largest value, or with ``norm`` the norm of the difference relative to the norm of eager's
    (within 1e-3 in fp32, 5e-2 in bf16).

    ``norm`` is for input gradients through ReLU after instance norm. A channel that is constant over an image
    (a blank region) normalises to exactly 0 in eager, and to about ±1e-7 / √eps compiled; the ReLU after it
    then passes or blocks a gradient scaled by 1/√eps (316). A ConvNet-128's input gradient on 100 CIFAR images,
    compiled, differed from float64 by 8e-3 at its largest element (26 elements of 307,200 off by more than 1e-3
    of the largest) and by 4e-4 in norm; eager fp32 by 5e-7 and 4e-7; neither is more right where the gradient
    is not defined."""
    if sig in _AGREES:
        return _AGREES[sig]
    import warnings
    from .precision import resolve
    with torch.no_grad():
        ref = eager().float()
        a = compiled.detach().float()
        same_nonfinite = bool((a.isfinite() == ref.isfinite()).all() and (a[~a.isfinite()] == ref[~ref.isfinite()]).all())
        fin = ref.isfinite()
        if not fin.any():
            err = 0.0
        elif norm:
            err = float((a[fin] - ref[fin]).norm() / (ref[fin].norm() + 1e-12))
        else:
            err = float((a[fin] - ref[fin]).abs().max() / (ref[fin].abs().max() + 1e-6))
    tol = 5e-2 if resolve(precision, compiled.device) == "bf16" else 1e-3
    if not same_nonfinite:
        err = float("inf")
    _AGREES[sig] = err <= tol
    if not _AGREES[sig]:
        warnings.warn(f"the compiled {what} differs from eager by {err:.1e} ({'in norm, ' if norm else ''}relative, "
                      f"tolerance {tol:g}) on this "
                      "machine: running it eager from now on", RuntimeWarning, stacklevel=3)
    return _AGREES[sig]


# Elements of the first convolution's output per chunk of a micro-batched step (12 MiB in fp32): measured on a
# 2-core AVX512-bf16 CPU (book/results/bench*.json), the best chunk for ConvNet widths 16-128 at 32x32 lies
# within a factor of two of this budget, up to 1.8x faster per image than one batch of 256 (activations stay
# in cache).
ACTIVATION_BUDGET = 3 * 2**20


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer (its training step mixes the images of a batch)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def micro_batch_size(model: nn.Module, im_size, device="cpu") -> int:
    """How many images a CPU training step should forward and backward at a time (0: the whole batch).

    Splitting a batch into chunks and summing their gradients is the same step only when the model treats
    its images independently, so a model with BatchNorm (batch statistics in training) gets 0, as does any
    non-CPU device (a GPU wants large batches). Otherwise the chunk keeps the first convolution's output at
    full resolution within :data:`ACTIVATION_BUDGET` elements."""
    if torch.device(device).type != "cpu":
        return 0
    if has_batchnorm(model):
        return 0
    n = _images_within_budget(model, im_size)
    return 0 if n is None else max(4, n)


def _images_within_budget(model: nn.Module, im_size) -> int | None:
    """How many images keep the first convolution's full-resolution output within :data:`ACTIVATION_BUDGET`
    elements (None: the model has no convolution)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return None
    return ACTIVATION_BUDGET // (conv.out_channels * int(im_size[0]) * int(im_size[1]))


def embed_chunk(net: nn.Module, im_size, device="cpu") -> int:
    """Images per chunk of :func:`embed_in_chunks`: on a GPU 4,096; on a CPU as many as keep the first
    convolution's output within :data:`ACTIVATION_BUDGET` elements (8 to 256; 64 without a convolution).

    A larger chunk costs more than cache misses: an output above glibc's largest mmap threshold (32 MiB) is
    mapped afresh and page-faulted on every call. DM's real side (ConvNet-128, 2,560 CIFAR-sized images, compiled,
    fp32) took 1.90 s in chunks of 64 (a 32 MiB first output), 1.31 s in chunks of 32 and 1.29 s in chunks of 16;
    in bf16 0.79 / 0.77 / 0.72 s (2-core AVX512-bf16 CPU)."""
    if torch.device(device).type != "cpu":
        return 4096
    n = _images_within_budget(net, im_size)
    return 64 if n is None else min(256, max(8, n))


def quiet_compile():
    """Silence the one-line notice torch's C++ builder prints on a machine without CUDA, and let one model class
    keep more compiled variants than torch's default of 8: ``ConvNet.forward`` is one code object for every
    width, norm, batch shape and grad mode a chapter compiles (students, teachers, inference), and past the
    limit torch falls back to eager with a warning."""
    import logging
    import torch._dynamo.config as dynamo_config
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)


def _signature(net: nn.Module, device, method: str, grad: bool) -> tuple:
    return (type(net).__name__, tuple((k, tuple(v.shape)) for k, v in net.state_dict().items()), str(device), method,
            grad)


def _check_key(net: nn.Module, device, method: str, grad: bool, precision: str) -> tuple:
    """What a compiled-against-eager check holds for: the architecture, the call and the precision it ran in."""
    from .precision import resolve
    return _signature(net, device, method, grad) + (resolve(precision, device),)


def _compiled_embed(net: nn.Module, device, method: str = "embed", grad: bool = False):
    """One compiled ``embed`` (or ``forward``) per architecture (a persistent copy of the network): each call
    copies ``net``'s weights into it, so a fresh random network per step does not recompile. ``grad``: a
    separate copy whose compiled code also differentiates with respect to the input (the frozen networks of
    DM and spectral matching)."""
    import copy
    sig = _signature(net, device, method, grad)
    if sig not in _COMPILED:
        quiet_compile()
        mod = copy.deepcopy(net).to(device).eval().to(memory_format=torch.channels_last)
        for p in mod.parameters():
            p.requires_grad_(False)
        _COMPILED[sig] = (mod, torch.compile(getattr(mod, method), dynamic=False))
    mod, fn = _COMPILED[sig]
    with torch.no_grad():
        for dst, src in zip(mod.state_dict().values(), net.state_dict().values()):
            dst.copy_(src)
    return fn


def embed_in_chunks(net: nn.Module, x: torch.Tensor, precision: str = "fp32", chunk: int | None = None,
                    compile: bool = False, method: str = "embed") -> torch.Tensor:
    """``net.embed(x)`` (or ``net.<method>(x)``) without gradients, ``chunk`` images at a time (default
    :func:`embed_chunk`: on a CPU small activations stay in cache, several times faster than one large batch),
    under ``precision``; fp32 features. ``compile``: through
    one compiled copy of the network (channels_last; see :func:`compile_wanted`), a short last chunk padded so
    that every call has one input shape. Images are embedded independently (instance norm, or batch norm in
    eval mode), so the padding changes nothing."""
    from .precision import autocast
    chunk = chunk or embed_chunk(net, x.shape[-2:], x.device)
    if not compile:
        with torch.no_grad(), autocast(precision, x.device):
            return torch.cat([getattr(net, method)(x[i:i + chunk]).float() for i in range(0, len(x), chunk)])
    sig = _check_key(net, x.device, method, False, precision)
    if _AGREES.get(sig) is False:
        return embed_in_chunks(net, x, precision, chunk, False, method)
    fn, out = _compiled_embed(net, x.device, method), []
    with torch.no_grad(), autocast(precision, x.device):
        for i in range(0, len(x), chunk):
            xb = x[i:i + chunk]
            n = len(xb)
            if n < chunk:                          # one input shape: no recompilation for a short last chunk
                xb = torch.cat([xb, xb.new_zeros((chunk - n, *xb.shape[1:]))])
            out.append(fn(xb.contiguous(memory_format=torch.channels_last)).float()[:n])
            if i == 0 and not _agrees(sig, out[0], lambda: getattr(net, method)(xb[:n]), precision,
                                      f"{type(net).__name__}.{method}"):
                return embed_in_chunks(net, x, precision, chunk, False, method)
    return torch.cat(out)


def embed_with_input_grad(net: nn.Module, x: torch.Tensor, precision: str = "fp32", compile: bool = False) -> torch.Tensor:
    """``net.embed(x)`` differentiable with respect to ``x`` (the synthetic images) under ``precision``; fp32
    features. ``compile``: through one compiled channels_last copy of the (frozen) network, as in
    :func:`embed_in_chunks`."""
    from .precision import autocast
    sig = _check_key(net, x.device, "embed", True, precision)
    with autocast(precision, x.device):
        if not compile or _AGREES.get(sig) is False:
            return net.embed(x).float()
        fn = _compiled_embed(net, x.device, "embed", grad=True)
        if sig not in _AGREES and not _input_grad_agrees(sig, fn, net, x, precision):
            return net.embed(x).float()
        return fn(x.contiguous(memory_format=torch.channels_last)).float()


def _input_grad_agrees(sig, fn, net: nn.Module, x: torch.Tensor, precision: str) -> bool:
    """The first compiled call of an embedding differentiated with respect to its input: its features and the
    gradient of a fixed random projection of them (a private generator: no global random draw) against eager."""
    v = None
    outs = []
    for run in (lambda xi: fn(xi.contiguous(memory_format=torch.channels_last)), net.embed):
        xi = x.detach().clone().requires_grad_(True)
        f = run(xi).float()
        if v is None:
            v = torch.randn(f.shape, generator=torch.Generator().manual_seed(0)).to(f.device)
        outs.append((f.detach(), torch.autograd.grad(f, xi, v)[0]))
    (fc, gc), (fe, ge) = outs
    what = f"{type(net).__name__}.embed (with input gradients)"
    return (_agrees(sig + ("features",), fc, lambda: fe, precision, what)
            and _agrees(sig, gc, lambda: ge, precision, what + ", its input gradient", norm=True))
