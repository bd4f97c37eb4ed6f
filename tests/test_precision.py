"""The precision setting and the fast path: resolution, the config, and parity of fp32 and bf16 on real data."""
import pytest
import torch

from ltdd_utils import precision
from ltdd_utils.data import load_dataset
from ltdd_utils.distill import distribution_matching
from ltdd_utils.evaluate import EvalSettings, evaluate_synset
from ltdd_utils.models import embed_in_chunks, embed_with_input_grad, get_model


def test_resolution_and_the_default_context():
    assert precision.resolve("fp32") == "fp32" and precision.resolve("bf16") == "bf16"
    assert precision.resolve("auto", "cpu") == ("bf16" if precision.cpu_bf16_flags() else "fp32")
    with precision.default("fp32"):
        assert precision.resolve("auto") == "fp32" and precision.resolve("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        precision.resolve("fp16")


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


def test_a_cpu_without_bf16_runs_fp32_quietly(monkeypatch, recwarn):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    assert precision.resolve("auto", "cpu") == "fp32"
    from ltdd_utils.models import compile_wanted
    assert not compile_wanted("auto", "cpu", 10_000)
    tr = load_dataset("digits", train=True)
    syn = distribution_matching(tr, 2, lambda: get_model("convnet", 1, 10, (8, 8), width=8), iterations=2, seed=0)
    assert syn.meta["precision"] == "fp32" and not [w for w in recwarn if "bf16" in str(w.message).lower()]


def test_the_stored_benchmark_renders_as_the_pages_tables():
    import json
    from pathlib import Path
    from ltdd_utils import bench
    res = json.loads((Path(__file__).resolve().parent.parent / "book" / "results" / "bench.json").read_text())
    assert "| DM iteration, official-structure loop (s) |" in bench.to_markdown(res)
    assert "Paired per seed" in bench.accuracy_markdown(res)
