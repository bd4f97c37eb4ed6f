"""``python -m ltdd_utils bench``: what the compute costs on this machine, in fp32 and on the fast path.

Prints (and with ``--out`` writes as JSON): the machine's convolution throughput (a 3x3 convolution 128->128 on
2,560 images of 16x16, in fp32 NCHW, fp32 channels_last and bf16 channels_last), one DM iteration at the
book's reference setting (CIFAR-10, ConvNet-128 with instance norm, IPC 10, 256 real images per class, DSA,
a fresh network per step) for a loop with the structure of the official DM code and for the library in
fp32 and on the fast path (compile time reported apart), student training per 1,000 steps (IPC 10, width
128, batch 25, DSA) and test-set inference (10,000 images, width 128). With ``--accuracy`` it also trains
DM sets in fp32 and bf16 for a few seeds and evaluates them the same way (the fast path's parity on real
data, a benchmark rather than a test).
"""
from __future__ import annotations

import json
import platform
import time

import torch
import torch.nn.functional as F

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


def _timed(fn, repeat: int) -> float:
    fn()                                            # warm-up (and compile)
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def conv_gflops(repeat: int = 3) -> dict:
    x = torch.randn(2560, 128, 16, 16)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1)
    flops = 2 * 2560 * 128 * 128 * 9 * 16 * 16
    out = {}
    with torch.no_grad():
        out["fp32 NCHW"] = flops / _timed(lambda: conv(x), repeat) / 1e9
        cl, xc = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        out["fp32 channels_last"] = flops / _timed(lambda: cl(xc), repeat) / 1e9
        if resolve("auto") == "bf16":
            cb, xb = cl.bfloat16(), xc.bfloat16()
            out["bf16 channels_last"] = flops / _timed(lambda: cb(xb), repeat) / 1e9
    return {k: round(v, 1) for k, v in out.items()}


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


def dm_seconds(data, iterations: int = 3) -> dict:
    from .distill import distribution_matching
    from .models import net_factory
    net_fn = net_factory("convnet", data, 128, 3, "instancenorm")
    gen = torch.Generator().manual_seed(0)
    syn = data.subset(torch.arange(100)).tensors()[0].clone().requires_grad_(True)
    out = {"official-structure loop, fp32": _timed(lambda: reference_dm_iteration(data, net_fn, syn, 10, 256, gen),
                                                   iterations)}
    kw = dict(ipc=10, net_fn=net_fn, lr=1.0, batch_real=256, use_dsa=True, seed=0)
    t = time.perf_counter()
    distribution_matching(data, iterations=1, precision="fp32", compile=False, **kw)
    t = time.perf_counter()
    distribution_matching(data, iterations=iterations, precision="fp32", compile=False, **kw)
    out["library, fp32"] = (time.perf_counter() - t) / iterations
    fast = resolve("auto")
    t = time.perf_counter()
    distribution_matching(data, iterations=1, precision=fast, compile=fast == "bf16", **kw)
    first = time.perf_counter() - t
    t = time.perf_counter()
    distribution_matching(data, iterations=iterations, precision=fast, compile=fast == "bf16", **kw)
    out[f"library, fast path ({fast})"] = (time.perf_counter() - t) / iterations
    out["fast path: first iteration (compile included)"] = first
    return {k: round(v, 3) for k, v in out.items()}


def student_seconds(data, steps: int = 1000) -> dict:
    from .evaluate import predict, train_model
    from .models import get_model
    x, y = data.subset(torch.arange(100)).tensors()
    xt = data.subset(torch.arange(min(10000, len(data)))).tensors()[0]
    import os
    from .precision import default
    out, env = {}, os.environ.get("LTDD_COMPILE")
    for prec in dict.fromkeys(["fp32", resolve("auto")]):
        os.environ["LTDD_COMPILE"] = "1" if prec == "bf16" else "0"   # as a chapter's long run would (>= 500 steps)
        try:
            with default(prec):
                train_model(get_model("convnet", 3, 10, (32, 32), width=128), x, y, epochs=2, batch=25, aug="dsa")
                torch.manual_seed(0)                  # (the warm-up above compiled the fast path)
                m = get_model("convnet", 3, 10, (32, 32), width=128)
                t = time.perf_counter()
                train_model(m, x, y, epochs=max(1, steps // 4), lr=0.01, batch=25, aug="dsa", seed=0)
                out[f"student per 1,000 steps, {prec}"] = (time.perf_counter() - t) * 1000 / (max(1, steps // 4) * 4)
                out[f"inference of {len(xt)} images, {prec}"] = _timed(lambda: predict(m, xt, precision=prec), 1)
        finally:
            if env is None:
                del os.environ["LTDD_COMPILE"]
            else:
                os.environ["LTDD_COMPILE"] = env
    return {k: round(v, 2) for k, v in out.items()}


def accuracy(data, seeds=(0, 1, 2), iterations: int = 100, student_epochs: int = 300) -> list[dict]:
    """DM at IPC 10 in fp32 and on the fast path, one student per seed (width 128, DSA), same seeds."""
    from .data import load_dataset
    from .distill import distribution_matching
    from .evaluate import EvalSettings, evaluate_synset
    from .models import net_factory
    from .precision import default
    test = load_dataset("cifar10", None, train=False) if data.name == "cifar10" else data
    rows = []
    for prec in dict.fromkeys(["fp32", resolve("auto")]):
        for seed in seeds:
            with default(prec):
                t = time.perf_counter()
                syn = distribution_matching(data, 10, net_factory("convnet", data, 128, 3, "instancenorm"),
                                            iterations=iterations, lr=1.0, batch_real=256, use_dsa=True, seed=seed)
                dm_s = time.perf_counter() - t
                m = evaluate_synset(syn, test, EvalSettings(width=128, epochs=student_epochs, batch=256, students=1),
                                    seed=seed, name=f"bench {prec} seed {seed}")[0]
            rows.append({"precision": prec, "seed": seed, "acc": round(m["acc"], 2), "dm_seconds": round(dm_s, 1),
                         "student_steps": m["student_steps"]})
    return rows


def run(quick: bool = False, data_root=None, out=None, with_accuracy: bool = False) -> dict:
    data, source = _data(data_root)
    res = {"date": time.strftime("%Y-%m-%d"), "machine": _cpu_name(),
           "threads": torch.get_num_threads(), "torch": torch.__version__, "bf16 flags": list(cpu_bf16_flags()),
           "fast path": resolve("auto"), "data": source}
    print(json.dumps(res, indent=1), flush=True)
    res["conv GFLOP/s"] = conv_gflops(2 if quick else 5)
    print("conv GFLOP/s:", res["conv GFLOP/s"], flush=True)
    res["DM seconds per iteration"] = dm = dm_seconds(data, 2 if quick else 5)
    fast_key = next(k for k in dm if k.startswith("library, fast path"))
    ref = dm["official-structure loop, fp32"]
    flops = 2560 * _convnet_flops(128, 3, 3, 32) + 3 * 100 * _convnet_flops(128, 3, 3, 32)
    peak = res["conv GFLOP/s"].get("bf16 channels_last", res["conv GFLOP/s"]["fp32 channels_last"])
    res["DM speed-up over the official-structure loop"] = round(ref / dm[fast_key], 2)
    res["DM share of the measured convolution peak"] = round(flops / dm[fast_key] / 1e9 / peak, 3)
    print("DM:", dm, flush=True)
    res["students"] = student_seconds(data, 200 if quick else 1000)
    print("students:", res["students"], flush=True)
    if with_accuracy:
        res["accuracy"] = accuracy(data, iterations=20 if quick else 100, student_epochs=20 if quick else 300)
        print("accuracy:", res["accuracy"], flush=True)
    if out:
        from .cache import atomic_write_text
        atomic_write_text(out, json.dumps(res, indent=1) + "\n")
    return res


def to_markdown(res: dict) -> str:
    """The speed figures of one :func:`run` as the table of the "Running the book" page."""
    dm = res["DM seconds per iteration"]
    lines = [f"Measured with `python -m ltdd_utils bench --accuracy` on {res['date']}: {res['machine']}, "
             f"{res['threads']} threads, bf16 extensions {', '.join(res['bf16 flags']) or 'none'}, torch {res['torch']}, "
             f"{res['data']}.", "",
             "| what | fp32 | fast path | speed-up |", "|---|---|---|---|"]
    conv = res["conv GFLOP/s"]
    lines.append(f"| 3x3 convolution 128→128, 2,560 images of 16x16 (GFLOP/s) | {conv['fp32 NCHW']:.0f} (NCHW), "
                 f"{conv['fp32 channels_last']:.0f} (channels_last) | {conv.get('bf16 channels_last', float('nan')):.0f} "
                 f"(bf16, channels_last) | {conv.get('bf16 channels_last', float('nan')) / conv['fp32 NCHW']:.1f}x |")
    fast = next(k for k in dm if k.startswith("library, fast path"))
    ref = dm["official-structure loop, fp32"]
    lines.append(f"| DM iteration, official-structure loop (s) | {ref:.2f} | {dm[fast]:.2f} | {ref / dm[fast]:.1f}x |")
    lines.append(f"| DM iteration, library (s) | {dm['library, fp32']:.2f} | {dm[fast]:.2f} | "
                 f"{dm['library, fp32'] / dm[fast]:.1f}x |")
    st = res["students"]
    p = res["fast path"]
    for what, key in (("student training, IPC 10, width 128, batch 25 (s per 1,000 steps)", "student per 1,000 steps"),
                      ("test-set inference, width 128 (s)", next(k.rsplit(",", 1)[0] for k in st if k.startswith("inference")))):
        a, b = st[f"{key}, fp32"], st[f"{key}, {p}"]
        lines.append(f"| {what} | {a:.1f} | {b:.1f} | {a / b:.1f}x |")
    lines += ["", f"The fast path's first DM iteration, compile included: {dm['fast path: first iteration (compile included)']:.1f} s. "
              f"DM on the fast path uses {res['DM share of the measured convolution peak']:.0%} of the measured bf16 "
              "convolution throughput."]
    return "\n".join(lines)


def accuracy_markdown(res: dict) -> str:
    """The fp32-versus-fast-path accuracy table of a run with ``--accuracy``."""
    p, lines = res["fast path"], [f"Accuracy, measured with `python -m ltdd_utils bench --accuracy` on {res['date']} "
                                  f"({res['machine']}, {res['threads']} threads):"]
    if res.get("accuracy"):
        import statistics
        lines += ["", "| DM, IPC 10, 100 iterations, one student (300 steps) per seed | seeds | accuracy (%) | DM seconds |",
                  "|---|---|---|---|"]
        for prec in dict.fromkeys(r["precision"] for r in res["accuracy"]):
            rows = [r for r in res["accuracy"] if r["precision"] == prec]
            accs = [r["acc"] for r in rows]
            lines.append(f"| {prec} | {', '.join(str(r['seed']) for r in rows)} | {statistics.mean(accs):.1f} ± "
                         f"{statistics.stdev(accs) if len(accs) > 1 else 0:.1f} ({', '.join(f'{a:.1f}' for a in accs)}) | "
                         f"{statistics.mean(r['dm_seconds'] for r in rows):.0f} |")
        by = {(r["precision"], r["seed"]): r["acc"] for r in res["accuracy"]}
        diffs = [by[(p, s)] - by[("fp32", s)] for (q, s) in by if q == "fp32" and (p, s) in by]
        if p != "fp32" and diffs:
            lines.append(f"\nPaired per seed, {p} − fp32: {statistics.mean(diffs):+.2f} ± "
                         f"{statistics.stdev(diffs) if len(diffs) > 1 else 0:.2f} points.")
    return "\n".join(lines)
