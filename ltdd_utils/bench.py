"""``python -m ltdd_utils bench``: what the compute costs on this machine, in fp32 and on the fast path.

Prints (and with ``--out F.json`` writes as JSON, with the page's tables beside it in ``F.md``):

* the machine's convolution throughput: a 3x3 convolution 128->128 on 2,560 images of 16x16 in one call
  (fp32 NCHW, fp32 channels_last, bf16 channels_last) and in bf16 64 images at a time (as the library runs it);
* one DM iteration at the book's reference setting (CIFAR-10, ConvNet-128 with instance norm, IPC 10, 256 real
  images per class, DSA, a fresh network per step): a loop with the structure of the official DM code, the
  library in fp32 and the library on the fast path (its compile time reported apart);
* student training per 1,000 steps (IPC 10, width 128, DSA) at batch 25 and at the chapters' batch (all 100
  images of IPC 10 in one step): the fp32 path before this fast path (eager, whole batches), fp32 micro-batched
  and the fast path; and test-set inference (10,000 images, width 128).

Every timing is interleaved: after one warm-up call each (which compiles), ``rounds`` rounds call every
variant in turn, and the median per variant is reported with its range, so that a slow spell of a shared
machine hits all variants alike. With ``--accuracy`` it also trains DM sets in fp32 and on the fast path for
three seeds and evaluates them the same way (the fast path's parity on real data: a benchmark, not a test).
"""
from __future__ import annotations

import copy
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from .precision import cpu_bf16_flags, resolve


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, dict]:
    """Time each variant: one warm-up call each, then ``rounds`` rounds calling every variant in turn.

    A variant returns the seconds of its unit of work (an iteration, 1,000 steps, a pass); the result holds,
    per variant, the ``median``, ``min`` and ``max`` over the rounds and the warm-up call's figure
    (``first``: compile time included)."""
    first = {k: fn() for k, fn in variants.items()}
    runs: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for k, fn in variants.items():
            runs[k].append(fn())
    return {k: {"median": round(statistics.median(v), 3), "min": round(min(v), 3), "max": round(max(v), 3),
                "first": round(first[k], 3), "rounds": rounds} for k, v in runs.items()}


def _per_call(fn: Callable[[], None], units: float = 1.0) -> Callable[[], float]:
    """``fn`` as a variant for :func:`interleaved`: its seconds divided by ``units``."""
    def timed():
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) / units
    return timed


CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "fma")


def cpu_flags() -> list[str]:
    """The CPU's vector and matrix extensions that decide its convolution throughput (from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [x for x in CPU_FLAGS if x in have]
    except OSError:
        pass
    return []


def conv_gflops(rounds: int = 3) -> dict:
    """GFLOP/s of a 3x3 convolution 128->128 on 2,560 images of 16x16 (no gradients): fp32 NCHW and
    channels_last (also 64 images at a time, as the library runs it), and bf16 where the CPU has it."""
    x = torch.randn(2560, 128, 16, 16)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1)
    flops = 2 * 2560 * 128 * 128 * 9 * 16 * 16
    cl, xc = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    variants = {"fp32 NCHW": _per_call(lambda: conv(x)), "fp32 channels_last": _per_call(lambda: cl(xc)),
                "fp32 channels_last, 64 images at a time": _per_call(lambda: [cl(c) for c in xc.split(64)])}
    if resolve("auto") == "bf16":
        cb, xb = copy.deepcopy(cl).bfloat16(), xc.bfloat16()      # (.bfloat16() converts in place)
        variants["bf16 channels_last"] = _per_call(lambda: cb(xb))
        variants["bf16 channels_last, 64 images at a time"] = _per_call(lambda: [cb(c) for c in xb.split(64)])
    with torch.no_grad():
        t = interleaved(variants, rounds)
    return {k: round(flops / v["median"] / 1e9, 1) for k, v in t.items()}


def _convnet_flops(width: int, depth: int, channels: int, hw: int) -> int:
    """Multiply-adds x 2 of the ConvNet's convolutions for one image (forward)."""
    total, c = 0, channels
    for _ in range(depth):
        total += 2 * c * width * 9 * hw * hw
        c, hw = width, hw // 2
    return total


def _data(data_root):
    from .data import is_available, load_dataset
    if is_available("cifar10", data_root):
        return load_dataset("cifar10", data_root, train=True), "CIFAR-10 (data root)"
    from .data import ImageData
    g = torch.Generator().manual_seed(0)
    imgs = (torch.rand(5000, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    return (ImageData(imgs, torch.arange(5000) % 10, [str(i) for i in range(10)], "random", "random pixels",
                      (0.5,) * 3, (0.25,) * 3), "random 32x32 images (CIFAR-10 not in the data root)")


def reference_dm_iteration(data, net_fn, syn: torch.Tensor, ipc: int, batch_real: int, gen: torch.Generator) -> None:
    """One iteration with the structure of the official DM code (main_DM.py): a fresh network, then per class a
    real batch embedded in fp32 (NCHW) with its own DSA draw shared with that class's synthetic images, the
    squared distance of the means summed over classes, one SGD step on the pixels."""
    from .augment import dsa
    from .models import frozen
    net = frozen(net_fn())
    loss = torch.zeros(())
    for c in range(data.num_classes):
        pool = (data.labels == c).nonzero().flatten()
        xr, _ = data.subset(pool[torch.randperm(len(pool), generator=gen)[:batch_real]]).tensors()
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        fr = net.embed(dsa(xr, seed)).detach()
        fs = net.embed(dsa(syn[c * ipc:(c + 1) * ipc], seed))
        loss = loss + ((fr.mean(0) - fs.mean(0)) ** 2).sum()
    if syn.grad is not None:
        syn.grad = None
    loss.backward()
    with torch.no_grad():
        syn -= 1.0 * syn.grad


def dm_seconds(data, rounds: int = 5, iterations: int = 2, fast: str | None = None) -> dict:
    """Seconds per DM iteration (``iterations`` per call): the official-structure loop, the library in fp32
    eager, the library on the fast path in ``fast`` (compiled, as a long run compiles; default: what ``auto``
    means here); interleaved (:func:`interleaved`)."""
    from .distill import distribution_matching
    from .models import net_factory
    net_fn = net_factory("convnet", data, 128, 3, "instancenorm")
    gen = torch.Generator().manual_seed(0)
    syn = data.subset(torch.arange(100)).tensors()[0].clone().requires_grad_(True)
    kw = dict(ipc=10, net_fn=net_fn, lr=1.0, batch_real=256, use_dsa=True, seed=0, iterations=iterations)
    fast = fast or resolve("auto")

    def reference():
        for _ in range(iterations):
            reference_dm_iteration(data, net_fn, syn, 10, 256, gen)
    return interleaved({
        "official-structure loop, fp32": _per_call(reference, iterations),
        "library, fp32": _per_call(lambda: distribution_matching(data, precision="fp32", compile=False, **kw),
                                   iterations),
        f"library, fast path ({fast})": _per_call(
            lambda: distribution_matching(data, precision=fast, compile=True, **kw), iterations),
    }, rounds)


def student_seconds(data, rounds: int = 3, steps: int = 100, fast: str | None = None) -> dict:
    """Seconds per 1,000 student steps (IPC 10: 100 images, width 128, DSA, the book's SGD recipe) at batch 25
    and at batch 100 (the chapters' batch of 256 over IPC 10), for the fp32 path before the fast path (eager,
    whole batches), fp32 micro-batched, and the fast path; each call trains about ``steps`` steps. Also the
    test-set inference of 10,000 images in fp32 (eager) and on the fast path."""
    from .evaluate import predict
    from .models import get_model
    from .train import fit
    x, y = data.subset(torch.arange(100)).tensors()
    xt = data.subset(torch.arange(min(10000, len(data)))).tensors()[0]
    fast = fast or resolve("auto")
    paths = {"fp32, whole batches (before the fast path)": dict(precision="fp32", compile=False, micro_batch=0),
             "fp32, micro-batched": dict(precision="fp32", compile=False, micro_batch="auto"),
             f"fast path ({fast}, micro-batched)": dict(precision=fast, compile=True, micro_batch="auto")}

    def student(batch: int, kw: dict) -> Callable[[], float]:
        epochs = max(1, steps * batch // len(x))

        def train():
            torch.manual_seed(0)
            fit(get_model("convnet", 3, 10, (32, 32), width=128), x, y, epochs=epochs, batch=batch, lr=0.01,
                aug="dsa", seed=0, **kw)
        return _per_call(train, epochs * -(-len(x) // batch) / 1000)
    out = {"students": interleaved({f"batch {b}, {name}": student(b, kw) for b in (25, 100)
                                    for name, kw in paths.items()}, rounds)}
    m = get_model("convnet", 3, 10, (32, 32), width=128)
    out["inference"] = interleaved({"fp32 (eager)": _per_call(lambda: predict(m, xt, precision="fp32", compile=False)),
                                    f"fast path ({fast})": _per_call(lambda: predict(m, xt, precision=fast))}, rounds)
    return out


class _StackedConvNets(torch.nn.Module):
    """``len(nets)`` ConvNets (instance norm) as one model: their convolutions as one grouped convolution, their
    norms as one instance norm over all channels, their classifiers as one batched product. Input
    ``[batch, students * channels, H, W]``, output ``[students, batch, classes]``: each student sees only its own
    images and weights. Measured, not used by the chapters (see :func:`batched_student_seconds`)."""

    def __init__(self, nets):
        super().__init__()
        import torch.nn as nn
        self.students = len(nets)
        convs = [[m for m in n.features if isinstance(m, nn.Conv2d)] for n in nets]
        norms = [[m for m in n.features if isinstance(m, nn.GroupNorm)] for n in nets]
        cat = lambda mods, attr: nn.ParameterList(nn.Parameter(torch.cat([getattr(m[i], attr).detach() for m in mods]))
                                                  for i in range(len(mods[0])))
        self.conv_w, self.conv_b, self.norm_w, self.norm_b = (cat(convs, "weight"), cat(convs, "bias"),
                                                              cat(norms, "weight"), cat(norms, "bias"))
        self.fc_w = nn.Parameter(torch.stack([n.classifier.weight.detach() for n in nets]))
        self.fc_b = nn.Parameter(torch.stack([n.classifier.bias.detach() for n in nets]))

    def forward(self, x):
        F = torch.nn.functional
        for w, b, nw, nb in zip(self.conv_w, self.conv_b, self.norm_w, self.norm_b):
            x = F.conv2d(x, w, b, padding=1, groups=self.students)
            x = F.avg_pool2d(F.relu(F.instance_norm(x, weight=nw, bias=nb)), 2)
        x = x.reshape(len(x), self.students, -1).transpose(0, 1)
        return torch.baddbmm(self.fc_b.unsqueeze(1), x, self.fc_w.transpose(1, 2))


def batched_student_seconds(data, rounds: int = 3, steps: int = 40, fast: str | None = None, students: int = 5,
                            widths=(32, 128)) -> dict:
    """Seconds per 1,000 steps of each of ``students`` students (IPC 10: 100 images, DSA, SGD, batch 100), trained
    one after another through :func:`ltdd_utils.train.fit` on the fast path, against the same students trained
    together as one stacked model (:class:`_StackedConvNets`, compiled, channels_last; each student its own
    seed, data order and augmentation draws)."""
    import torch.nn.functional as F
    from .augment import augment
    from .models import get_model, quiet_compile
    from .precision import autocast
    from .train import fit
    x, y = data.subset(torch.arange(100)).tensors()
    fast = fast or resolve("auto")

    def alone(width):
        def train():
            for s in range(students):
                torch.manual_seed(s)
                fit(get_model("convnet", 3, 10, (32, 32), width=width), x, y, epochs=steps, batch=100, lr=0.01,
                    aug="dsa", seed=s, precision=fast, compile=True, micro_batch="auto")
        return _per_call(train, students * steps / 1000)

    def together(width):
        quiet_compile()
        compiled = {}

        def train():
            nets = []
            for s in range(students):
                torch.manual_seed(s)
                nets.append(get_model("convnet", 3, 10, (32, 32), width=width))
            model = _StackedConvNets(nets).to(memory_format=torch.channels_last)
            run = compiled.setdefault("fn", torch.compile(model, dynamic=False))
            if run._orig_mod is not model:                 # same architecture: reuse the compiled code
                run._orig_mod.load_state_dict(model.state_dict())
                model = run._orig_mod
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
            gens = [torch.Generator().manual_seed(s) for s in range(students)]
            for _ in range(steps):
                parts = [(augment(x[p], "dsa", g), y[p]) for g in gens for p in [torch.randperm(len(x), generator=g)]]
                xb = torch.stack([a for a, _ in parts], 1).flatten(1, 2).contiguous(memory_format=torch.channels_last)
                yb = torch.stack([b for _, b in parts])
                opt.zero_grad(set_to_none=True)
                with autocast(fast, "cpu"):
                    out = run(xb).float()
                (F.cross_entropy(out.flatten(0, 1), yb.flatten(), reduction="sum") / len(x)).backward()
                opt.step()
        return _per_call(train, students * steps / 1000)
    return interleaved({f"width {w}, {how}": fn(w) for w in widths
                        for how, fn in (("one after another", alone), ("stacked", together))}, rounds)


def accuracy(data, seeds=(0, 1, 2), iterations: int = 100, student_epochs: int = 300, data_root=None,
             fast: str | None = None) -> list[dict]:
    """DM at IPC 10 in eager fp32 (the reference: nothing compiled) and on the fast path in ``fast`` (default: what
    ``auto`` means here), one student per seed (width 128, DSA), same seeds."""
    import os
    from .data import load_dataset
    from .distill import distribution_matching
    from .evaluate import EvalSettings, evaluate_synset
    from .models import net_factory
    from .precision import default
    test = load_dataset("cifar10", data_root, train=False) if data.name == "cifar10" else data
    fast = fast or resolve("auto")
    rows, before = [], os.environ.get("LTDD_COMPILE")
    try:
        for path, prec, env in (("fp32 eager", "fp32", "0"), (f"fast path ({fast})", fast, before)):
            if env is None:
                os.environ.pop("LTDD_COMPILE", None)
            else:
                os.environ["LTDD_COMPILE"] = env
            for seed in seeds:
                with default(prec):
                    t = time.perf_counter()
                    syn = distribution_matching(data, 10, net_factory("convnet", data, 128, 3, "instancenorm"),
                                                iterations=iterations, lr=1.0, batch_real=256, use_dsa=True, seed=seed)
                    dm_s = time.perf_counter() - t
                    m = evaluate_synset(syn, test, EvalSettings(width=128, epochs=student_epochs, batch=256,
                                                                students=1), seed=seed, name=f"bench {path} seed {seed}")[0]
                rows.append({"path": path, "precision": prec, "seed": seed, "acc": round(m["acc"], 2),
                             "dm_seconds": round(dm_s, 1), "student_steps": m["student_steps"],
                             "student_seconds": round(m["train_seconds"], 1)})
    finally:
        if before is None:
            os.environ.pop("LTDD_COMPILE", None)
        else:
            os.environ["LTDD_COMPILE"] = before
    return rows


def run(quick: bool = False, data_root=None, out=None, with_accuracy: bool = False, precision: str | None = None) -> dict:
    """Every figure above; ``precision`` (fp32 | bf16; default: what ``auto`` means here) is the fast path's, so
    ``--precision fp32`` on a bf16 CPU measures what a CPU without bf16 runs."""
    data, source = _data(data_root)
    fast = precision or resolve("auto")
    res = {"date": time.strftime("%Y-%m-%d"), "machine": _cpu_name(), "precision asked": precision,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "bf16 flags": list(cpu_bf16_flags()),
           "cpu flags": cpu_flags(), "fast path": fast, "data": source}
    print(json.dumps(res, indent=1), flush=True)
    res["conv GFLOP/s"] = conv_gflops(2 if quick else 5)
    print("conv GFLOP/s:", res["conv GFLOP/s"], flush=True)
    res["DM seconds per iteration"] = dm = dm_seconds(data, 2 if quick else 5, fast=fast)
    print("DM:", json.dumps(dm, indent=1), flush=True)
    ref, fast = dm["official-structure loop, fp32"]["median"], dm[_fast_key(dm)]["median"]
    flops = 2560 * _convnet_flops(128, 3, 3, 32) + 3 * 100 * _convnet_flops(128, 3, 3, 32)
    conv = res["conv GFLOP/s"]
    peak = max(v for k, v in conv.items() if k.startswith(res["fast path"]))     # in the precision DM ran in
    res["DM speed-up over the official-structure loop"] = round(ref / fast, 2)
    res["DM GFLOP/s on the fast path"] = round(flops / fast / 1e9, 1)
    res["DM share of the best measured convolution throughput"] = round(flops / fast / 1e9 / peak, 3)
    st = student_seconds(data, 2 if quick else 3, 40 if quick else 100, fast=res["fast path"])
    res["student seconds per 1,000 steps"], res["inference seconds, 10,000 images"] = st["students"], st["inference"]
    print("students:", json.dumps(st, indent=1), flush=True)
    res["five students, seconds per 1,000 steps each"] = five = batched_student_seconds(
        data, 2 if quick else 3, 10 if quick else 40, fast=res["fast path"])
    print("five students:", json.dumps(five, indent=1), flush=True)
    if with_accuracy:
        res["accuracy"] = accuracy(data, iterations=20 if quick else 100, student_epochs=20 if quick else 300,
                                   data_root=data_root, fast=fast)
        print("accuracy:", res["accuracy"], flush=True)
    if out:
        from .cache import atomic_write_text
        atomic_write_text(out, json.dumps(res, indent=1) + "\n")
        atomic_write_text(Path(out).with_suffix(".md"), page_markdown(res))
    print(page_markdown(res))
    return res


def _fast_key(d: dict) -> str:
    return next(k for k in d if "fast path" in k)


def _fmt(t: dict, digits: int = 2) -> str:
    return f"{t['median']:.{digits}f} ({t['min']:.{digits}f}–{t['max']:.{digits}f})"


def to_markdown(res: dict) -> str:
    """The speed figures of one :func:`run` as the table of the "Running the book" page."""
    conv, dm = res["conv GFLOP/s"], res["DM seconds per iteration"]
    p = res["fast path"]
    flag = f" --precision {p}" if res.get("precision asked") else ""
    lines = [f"Measured with `python -m ltdd_utils bench{flag}{' --accuracy' if res.get('accuracy') else ''}` on "
             f"{res['date']}: {res['machine']}, {res['threads']} threads, CPU flags "
             f"{', '.join(res.get('cpu flags', [])) or 'not recorded by that run'} (bf16 extensions "
             f"{', '.join(res['bf16 flags']) or 'none'}), torch {res['torch']}, {res['data']}; the fast path in "
             f"**{p}**. Each figure is the median of {dm[_fast_key(dm)]['rounds']} interleaved rounds (range in "
             "brackets), after a warm-up call that compiles.", "",
             "| what | before the fast path (fp32) | fast path | speed-up |", "|---|---|---|---|"]
    best = max((v for k, v in conv.items() if k.startswith(p)), default=float("nan"))
    lines.append(f"| 3x3 convolution 128→128, 2,560 images of 16x16 (GFLOP/s) | {conv['fp32 NCHW']:.0f} (NCHW) | "
                 + ", ".join(f"{v:.0f} ({k})" for k, v in conv.items() if k != "fp32 NCHW")
                 + f" | {best / conv['fp32 NCHW']:.1f}x ({p}) |")
    ref, lib, fast = dm["official-structure loop, fp32"], dm["library, fp32"], dm[_fast_key(dm)]
    lines.append(f"| DM iteration (s), against a loop with the official code's structure | {_fmt(ref)} | {_fmt(fast)} | "
                 f"**{ref['median'] / fast['median']:.1f}x** |")
    lines.append(f"| DM iteration (s), against the library in fp32 | {_fmt(lib)} | {_fmt(fast)} | "
                 f"{lib['median'] / fast['median']:.1f}x |")
    st = res["student seconds per 1,000 steps"]
    for b in sorted({int(k.split(",")[0].split()[1]) for k in st}):
        before = st[f"batch {b}, fp32, whole batches (before the fast path)"]
        mb = st[f"batch {b}, fp32, micro-batched"]
        fp = next(v for k, v in st.items() if k.startswith(f"batch {b}, fast path"))
        lines.append(f"| student, IPC 10, width 128, DSA, batch {b} (s per 1,000 steps) | {_fmt(before, 1)} | "
                     f"{_fmt(fp, 1)} (fp32 micro-batched: {mb['median']:.1f}) | **{before['median'] / fp['median']:.1f}x** |")
    inf = res["inference seconds, 10,000 images"]
    a, b = inf["fp32 (eager)"], inf[_fast_key(inf)]
    lines.append(f"| test-set inference, 10,000 images, width 128 (s) | {_fmt(a)} | {_fmt(b)} | "
                 f"**{a['median'] / b['median']:.1f}x** |")
    lines += ["", f"The fast path's first DM call, compile included, took {fast['first']:.1f} s per iteration. On the "
              f"fast path DM runs at {res['DM GFLOP/s on the fast path']:.0f} GFLOP/s, "
              f"{res['DM share of the best measured convolution throughput']:.0%} of the best {p} convolution "
              "throughput measured above."]
    five = res.get("five students, seconds per 1,000 steps each", {})
    if five:
        lines += ["", f"| five students of one recipe on the fast path (IPC 10, DSA, batch 100; s per 1,000 steps of "
                  "each) | one after another | alone: GFLOP/s, share of the convolution peak | as one stacked model | "
                  "stacked against alone |", "|---|---|---|---|---|"]
        for w in sorted({int(k.split(",")[0].split()[1]) for k in five}):
            a, b = five[f"width {w}, one after another"], five[f"width {w}, stacked"]
            rate = _student_step_flops(w) * 1000 / a["median"] / 1e9
            lines.append(f"| width {w} | {_fmt(a, 1)} | {rate:.0f}, {rate / best:.0%} | {_fmt(b, 1)} | "
                         f"{a['median'] / b['median']:.2f}x |")
        lines += ["", "GFLOP/s of a student alone: its convolutions' multiply-adds x 2, forward and backward taken as "
                  "three forward passes of the batch of 100, per second; the share is of the best convolution "
                  f"throughput above in {p}. Stacking can at most make up the rest: a student that already runs "
                  "near the peak cannot train in half the time batched."]
    return "\n".join(lines)


def _student_step_flops(width: int) -> int:
    """A ConvNet-3 student's convolution FLOPs per training step on 100 CIFAR-sized images (forward and backward
    as three forward passes; DSA, norms and the optimiser not counted)."""
    return 3 * 100 * _convnet_flops(width, 3, 3, 32)


def accuracy_markdown(res: dict) -> str:
    """The fp32-versus-fast-path accuracy table of a run with ``--accuracy`` (empty without one). Its seconds stay
    in the JSON only: the speed figures are the interleaved ones of :func:`to_markdown`."""
    if not res.get("accuracy"):
        return ""
    lines = ["| DM, IPC 10, 100 iterations, one student (300 steps) per seed | seeds | accuracy (%) |", "|---|---|---|"]
    label = lambda r: r.get("path", r["precision"])          # runs before paths were named: the precision alone
    for name in dict.fromkeys(map(label, res["accuracy"])):
        rows = [r for r in res["accuracy"] if label(r) == name]
        accs = [r["acc"] for r in rows]
        lines.append(f"| {name} | {', '.join(str(r['seed']) for r in rows)} | {statistics.mean(accs):.1f} ± "
                     f"{statistics.stdev(accs) if len(accs) > 1 else 0:.1f} ({', '.join(f'{a:.1f}' for a in accs)}) |")
    names = list(dict.fromkeys(map(label, res["accuracy"])))
    by = {(label(r), r["seed"]): r["acc"] for r in res["accuracy"]}
    if len(names) == 2:
        ref, other = names
        diffs = [by[(other, s)] - by[(ref, s)] for (q, s) in by if q == ref and (other, s) in by]
        if diffs:
            lines.append(f"\nPaired per seed, {other} − {ref}: {statistics.mean(diffs):+.2f} ± "
                         f"{statistics.stdev(diffs) if len(diffs) > 1 else 0:.2f} points (mean ± std over seeds).")
    return "\n".join(lines)


def page_markdown(res: dict) -> str:
    """What the "Running the book" page includes (``bench.md`` beside ``bench.json``): both tables."""
    acc = accuracy_markdown(res)
    return to_markdown(res) + ("\n\nAccuracy of the same run:\n\n" + acc if acc else "") + "\n"
