"""The precision setting and the fast path: resolution, the config, and parity of fp32 and bf16 on real data."""
import pytest
import torch

from ltdd_utils import precision
from ltdd_utils.data import load_dataset
from ltdd_utils.distill import distribution_matching
from ltdd_utils.evaluate import EvalSettings, evaluate_synset
from ltdd_utils.models import embed_in_chunks, embed_with_input_grad, get_model


def test_resolution_and_the_default_context(monkeypatch):
    monkeypatch.delenv("LTDD_PRECISION", raising=False)
    assert precision.resolve("fp32") == "fp32" and precision.resolve("bf16") == "bf16"
    assert precision.resolve("auto", "cpu") == ("bf16" if precision.cpu_bf16_flags() else "fp32")
    with precision.default("fp32"):
        assert precision.resolve("auto") == "fp32" and precision.resolve("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        precision.resolve("fp16")


@pytest.mark.parametrize("forced", ["fp32", "bf16"])
def test_the_environment_says_what_auto_means_and_nothing_else(forced, monkeypatch):
    """$LTDD_PRECISION sets what 'auto' resolves to (the suite runs as a CPU with or without bf16 would); an explicit
    precision and the default() context (the golden cases' fp32) are never overridden; a bad value is an error
    naming the variable, raised when the config is made."""
    from ltdd_utils.config import ConfigError, make_config
    monkeypatch.setenv("LTDD_PRECISION", forced)
    other = "bf16" if forced == "fp32" else "fp32"
    assert precision.resolve("auto", "cpu") == forced and precision.resolve(other) == other
    assert make_config("longtail_baselines", "smoke", check_data=False).precision == forced
    with precision.default(other):
        assert precision.resolve("auto") == other
    monkeypatch.setenv("LTDD_PRECISION", "auto")
    assert precision.resolve("auto", "cpu") == ("bf16" if precision.cpu_bf16_flags() else "fp32")
    monkeypatch.setenv("LTDD_PRECISION", "half")
    with pytest.raises(ConfigError, match=r"\$LTDD_PRECISION = 'half' is not allowed"):
        make_config("longtail_baselines", "smoke", check_data=False)


def test_the_config_records_the_resolved_precision():
    from ltdd_utils.config import make_config
    cfg = make_config("longtail_baselines", "smoke", check_data=False)
    assert cfg.precision == precision.resolve("auto", "cpu")
    assert make_config("longtail_baselines", "smoke", check_data=False, precision="fp32").precision == "fp32"


def test_fp32_and_bf16_dm_and_evaluation_agree_on_real_digits():
    """Tolerances, fixed here: the DM loss per step within 5 % relative, every synthetic pixel within 0.1
    (normalised units), the mean accuracy of three students within 5 points (measured: 1.3 %, 0.022, 1.1)."""
    tr, te = load_dataset("digits", train=True), load_dataset("digits", train=False)
    net = lambda: get_model("convnet", 1, 10, (8, 8), width=32)
    out = {}
    for p in ("fp32", "bf16"):
        syn = distribution_matching(tr, 5, net, iterations=30, lr=1.0, batch_real=64, seed=0, precision=p)
        with precision.default(p):
            res = evaluate_synset(syn, te, EvalSettings(width=32, epochs=60, lr=0.05, batch=50, aug="none", students=3),
                                  seed=0)
        assert syn.meta["precision"] == p and all(r["precision"] == p for r in res)
        out[p] = syn, sum(r["acc"] for r in res) / len(res)
    (a, acc_a), (b, acc_b) = out["fp32"], out["bf16"]
    la, lb = torch.tensor(a.meta["loss_history"]), torch.tensor(b.meta["loss_history"])
    assert float(((la - lb).abs() / la.abs()).max()) < 0.05
    assert float((a.images - b.images).abs().max()) < 0.1
    assert abs(acc_a - acc_b) < 5


def test_compiled_embedding_follows_each_fresh_network():
    """One compiled copy serves every network of an architecture: the weights are copied in at each call."""
    x = torch.randn(40, 1, 8, 8)
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = get_model("convnet", 1, 10, (8, 8), width=8).eval()
        eager = embed_in_chunks(net, x, "fp32", chunk=16)
        compiled = embed_in_chunks(net, x, "fp32", chunk=16, compile=True)
        assert torch.allclose(eager, compiled, atol=1e-4)
        grads = []                                 # the synthetic side: gradients reach the input images
        for c in (False, True):
            xg = x.clone().requires_grad_(True)
            embed_with_input_grad(net, xg, "fp32", compile=c).pow(2).sum().backward()
            grads.append(xg.grad)
        assert torch.allclose(grads[0], grads[1], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("flags, expected", [(("amx_bf16", "avx512_bf16"), "bf16"), (("avx512_bf16",), "bf16"),
                                             ((), "fp32")], ids=["intel-amx", "amd-avx512-bf16", "avx2-only"])
def test_auto_on_each_kind_of_cpu_the_book_has_met(flags, expected, monkeypatch):
    """The three CPUs this project's machines have had, as /proc/cpuinfo shows them: 'auto' is bf16 with AMX or
    AVX512-bf16 and fp32 with AVX2 alone, and the fast path (compiled long runs) follows it; the device name
    recorded with every run says which CPU and which bf16 extensions it had."""
    from ltdd_utils.models import compile_wanted
    from ltdd_utils.results import device_name
    monkeypatch.delenv("LTDD_PRECISION", raising=False)
    monkeypatch.delenv("LTDD_COMPILE", raising=False)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    assert precision.resolve("auto", "cpu") == expected
    import os
    import shutil
    has_compiler = shutil.which(os.environ.get("CXX", "g++")) is not None
    assert compile_wanted("auto", "cpu", 10_000) == (expected == "bf16" and has_compiler)
    assert compile_wanted("auto", "cpu", 10_000, fp32=True) == has_compiler     # DM's embeddings: fp32 too
    assert not compile_wanted("auto", "cpu", 10, fp32=True)                       # a short run never compiles
    name = device_name("cpu")
    assert name.startswith(f"cpu:{precision.cpu_model()} x") and (", ".join(flags) or "no bf16 extension") in name


def test_a_cpu_without_bf16_runs_fp32_quietly(monkeypatch, recwarn):
    monkeypatch.delenv("LTDD_PRECISION", raising=False)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    assert precision.resolve("auto", "cpu") == "fp32"
    from ltdd_utils.models import compile_wanted
    assert not compile_wanted("auto", "cpu", 10_000)
    tr = load_dataset("digits", train=True)
    syn = distribution_matching(tr, 2, lambda: get_model("convnet", 1, 10, (8, 8), width=8), iterations=2, seed=0)
    assert syn.meta["precision"] == "fp32" and not [w for w in recwarn if "bf16" in str(w.message).lower()]


def test_the_page_includes_the_stored_benchmark_as_rendered():
    """book/results/bench.md (included by the "Running the book" page) is what bench.json renders to."""
    import json
    from pathlib import Path
    from ltdd_utils import bench
    results = Path(__file__).resolve().parent.parent / "book" / "results"
    for name in ("bench", "bench_fp32"):           # the fast path where auto runs it, and the fp32 path
        res = json.loads((results / f"{name}.json").read_text())
        page = (results / f"{name}.md").read_text()
        assert page == bench.page_markdown(res), name
        assert "| DM iteration (s), against a loop with the official code's structure |" in page
        assert "batch 25" in page and f"```{{include}} results/{name}.md" in (results.parent / "running.md").read_text()
    assert "Paired per seed" in (results / "bench.md").read_text()
    assert "the fast path in **fp32**" in (results / "bench_fp32.md").read_text()


def test_interleaved_timing_alternates_variants_and_reports_medians():
    from ltdd_utils.bench import interleaved
    order, values = [], {"a": iter([100.0, 1.0, 3.0, 2.0]), "b": iter([7.0, 5.0, 4.0, 6.0])}

    def variant(k):
        def run():
            order.append(k)
            return next(values[k])
        return run
    t = interleaved({"a": variant("a"), "b": variant("b")}, rounds=3)
    assert order == ["a", "b"] * 4                     # warm-up, then rounds taking turns
    assert t["a"] == {"median": 2.0, "min": 1.0, "max": 3.0, "first": 100.0, "rounds": 3}
    assert t["b"]["median"] == 5.0 and t["b"]["first"] == 7.0


def test_a_micro_batched_step_is_the_whole_batch_step():
    """Chunks forwarded and backwarded apart, their gradients summed, give the whole batch's step (fp32, float
    rounding: weights within 1e-4 after 12 steps with DSA, soft targets too); BatchNorm models refuse it."""
    from ltdd_utils.evaluate import soft_label_loss, train_model
    from ltdd_utils.models import micro_batch_size
    tr = load_dataset("digits", train=True)
    x, y = tr.tensors()
    x, y = x[:60], y[:60]
    teacher = get_model("convnet", 1, 10, (8, 8), width=8).eval()
    with precision.default("fp32"):
        for target in (None, soft_label_loss("soft_kl", teacher)):
            nets = []
            for mb in (0, 7):
                torch.manual_seed(0)
                net = get_model("convnet", 1, 10, (8, 8), width=16)
                nets.append(train_model(net, x, y, epochs=4, lr=0.05, batch=20, aug="dsa", soft_target=target,
                                        micro_batch=mb))
            for a, b in zip(nets[0].parameters(), nets[1].parameters()):
                assert torch.allclose(a, b, atol=1e-4)
    bn = get_model("convnet_bn", 1, 10, (8, 8), width=8)
    assert micro_batch_size(bn, (8, 8)) == 0
    assert micro_batch_size(get_model("convnet", 3, 10, (32, 32), width=128), (32, 32)) == 24
    assert micro_batch_size(teacher, (8, 8), device="cuda") == 0
    with pytest.raises(ValueError, match="BatchNorm"):
        train_model(bn, x, y, epochs=1, batch=20, micro_batch=5)
    with pytest.raises(ValueError, match="micro_batch"):
        train_model(teacher, x, y, epochs=1, batch=20, micro_batch=-1)


def test_compiled_code_that_disagrees_with_eager_is_dropped_with_a_warning(monkeypatch):
    """A compiler bug on one kind of CPU must not move a number silently: the first call of an architecture's
    compiled embedding is compared with eager; if they differ, that architecture runs eager from then on."""
    from ltdd_utils import models
    monkeypatch.setattr(models, "_AGREES", {})
    monkeypatch.setattr(models, "_compiled_embed", lambda net, device, method="embed", grad=False:
                        (lambda x: getattr(net, method)(x.contiguous()) + 1.0))          # a wrong compiled function
    torch.manual_seed(0)
    net = get_model("convnet", 1, 10, (8, 8), width=8).eval()
    x = torch.randn(40, 1, 8, 8)
    eager = embed_in_chunks(net, x, "fp32", chunk=16)
    with pytest.warns(RuntimeWarning, match="differs from eager"):
        out = embed_in_chunks(net, x, "fp32", chunk=16, compile=True)
    assert torch.equal(out, eager)
    assert torch.equal(embed_in_chunks(net, x, "fp32", chunk=16, compile=True), eager)   # eager from then on
    xg = x.clone().requires_grad_(True)
    with pytest.warns(RuntimeWarning, match="with input gradients"):
        fs = embed_with_input_grad(net, xg, "fp32", compile=True)
    assert torch.allclose(fs, net.embed(x))
    fs.sum().backward()
    assert xg.grad is not None


def test_a_compiled_student_that_disagrees_with_eager_trains_eager(monkeypatch):
    """fit's compiled forward (long runs, fp32 included for networks without BatchNorm) is checked against eager
    on its first chunk; a disagreement trains the student eager, as if compile were off."""
    import torch.nn.functional as F
    from ltdd_utils import models
    from ltdd_utils.train import fit
    monkeypatch.setattr(models, "_AGREES", {})
    monkeypatch.setattr(torch, "compile", lambda m, **kw: (lambda x: m(x) * 2.0))     # a wrong "compiled" forward
    x, y = torch.randn(32, 1, 8, 8), torch.arange(32) % 10

    def train(compile):
        torch.manual_seed(0)
        net = get_model("convnet", 1, 10, (8, 8), width=8)
        return fit(net, x, y, lambda m, xb, yb, b: F.cross_entropy(m(xb), yb), epochs=2, batch=16, seed=0,
                   precision="fp32", compile=compile, micro_batch=0)
    eager = train(False)
    with pytest.warns(RuntimeWarning, match="differs from eager"):
        checked = train(True)
    for a, b in zip(eager.parameters(), checked.parameters()):
        assert torch.equal(a, b)                                   # exactly what compile=False trains
