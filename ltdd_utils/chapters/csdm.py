"""Parameters and presets of the CSDM chapter (notebooks/03_csdm.ipynb): class-aware spectral distribution
matching on long-tailed data."""
from ..config import (BASE_PRESET, ConfigError, Param, a_bool, a_string, int_at_least, list_of, number_at_least,
                      one_of, optional, positive_number, schema_from)
from ..checks import _fail
from ..distill.feature_nets import FEATURE_NETS
from ..methods.csdm import ALPHA_RULES, CF_FORMS, KERNELS

METHODS = ("random", "dm", "dm_random", "linear", "mmd", "sdd", "csdm")
ABLATIONS = ("amplitude_only", "phase_only", "reversed", "constant_low", "constant_high", "reliability",
             "two_level", "sqrt_form")


def _unit(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise ConfigError(f"{name} = {v!r} is not allowed: expected a number in [0, 1]")


def _bandwidth(name, v):
    if v != "median" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
        _fail(name, v, "a number > 0 or 'median' (the median heuristic)")


def _alpha_pair(name, v):
    if (not isinstance(v, (list, tuple)) or len(v) != 2 or any(isinstance(t, bool) or not isinstance(t, (int, float))
                                                                for t in v) or not 0 <= v[1] <= v[0] <= 1):
        raise ConfigError(f"{name} = {v!r} is not allowed: expected [alpha_head, alpha_tail] with "
                          "0 <= alpha_tail <= alpha_head <= 1, e.g. [0.9, 0.1]")


def resolve_data(values: dict, check_data: bool) -> dict:
    if values["feature_nets"] == "trained" and values["dm_net_pool"] > 0:
        raise ConfigError(f"feature_nets = 'trained' draws every step's network from its own pool of feature_pool = "
                          f"{values['feature_pool']} trained networks: set dm_net_pool = 0 (it is "
                          f"{values['dm_net_pool']}, a pool of random networks)")
    exact = not values["dm_dsa"] and values["dm_net_pool"] > 0
    if exact and "mmd" in values["methods"] and values["sigma"] == "median":
        raise ConfigError("sigma = 'median' (the median heuristic of each step's real batch) does not go with the "
                          "exact MMD arm of the exact regime (dm_dsa False with dm_net_pool > 0): give a number, or "
                          "leave 'mmd' out of methods")
    if values["feature_nets"] != "trained" and "dm_random" in values["methods"] + values["sweep_methods"]:
        raise ConfigError("method 'dm_random' (DM through random networks) is the control of feature_nets = 'trained'; "
                          "with random feature networks it is 'dm' itself: leave it out")
    if values["alpha_head"] < values["alpha_tail"]:
        raise ConfigError(f"parameters alpha_head = {values['alpha_head']} < alpha_tail = {values['alpha_tail']}: the "
                          "class-aware direction gives head classes more amplitude; the ablation 'reversed' tests "
                          "the opposite")
    return values


SCHEMA = schema_from(
    "claim_margin", "results_dir",
    "dataset", "data_root", "cache_dir", "device", "precision", "seeds", "support_seed_count", "run_seeds",
    "ipc", "model", "width", "depth", "norm",
    "group_scheme", "dm_iterations", "dm_lr", "dm_batch_real", "dm_dsa", "dm_net_pool",
    "eval_students", "eval_epochs", "eval_lr", "eval_batch", "eval_aug", "eval_width",
    imbalance_factors=Param(list_of(number_at_least(1, " (1 = balanced)")), "imbalance factors of the main comparison"),
    sweep_factors=Param(list_of(number_at_least(1, " (1 = balanced)")),
                        "imbalance factors of the shrinking-tail sweep (tail = n_max / IF images)"),
    methods=Param(list_of(one_of(*METHODS)), "arms of the main comparison ('linear': DM's linear kernel on the "
                  "spectral arms' L2-normalised features with their optimiser, the control that isolates the kernel; "
                  "'dm_random': DM through random networks, the control of FEATURE_NETS = 'trained')"),
    permute_classes=Param(a_bool, "each seed permutes which class takes which tail rank (False: class 0 the head)"),
    alpha_sweep=Param(list_of(_alpha_pair, min_len=0), "further [alpha_head, alpha_tail] pairs of CSDM at ABLATION_IF: "
                      "the strength of the class-aware weighting"),
    sweep_methods=Param(list_of(one_of(*METHODS)), "arms of the shrinking-tail sweep"),
    support_methods=Param(list_of(one_of(*METHODS), min_len=0), "arms of METHODS that only supporting claims read: "
                          "run on the first SUPPORT_SEED_COUNT seeds"),
    kernel=Param(one_of(*KERNELS), "shift-invariant kernel of SDD, CSDM and the MMD baseline"),
    sigma=Param(_bandwidth, "kernel bandwidth on L2-normalised features, or 'median' (the median heuristic per step)"),
    sigma_ablation=Param(list_of(_bandwidth, min_len=0), "other bandwidths of SDD at ABLATION_IF (against SIGMA)"),
    feature_nets=Param(one_of(*FEATURE_NETS), "the networks every arm embeds through: 'random' (DM: a fresh random "
                       "network per step) or 'trained' (NCFM: a pool trained on the split, blended with its "
                       "initialisation per step)"),
    feature_pool=Param(int_at_least(1), "trained feature networks per split and seed (feature_nets 'trained')"),
    feature_epochs=Param(int_at_least(1), "epochs of plain cross-entropy on the split for each pool network"),
    num_freqs=Param(int_at_least(1), "frequencies M per net (fixed per pool net in the exact regime, fresh per step otherwise)"),
    cf_form=Param(one_of(*CF_FORMS), "per-frequency term: 'mmd' (alpha A + (1-alpha) P) or NCFM's 'sqrt'"),
    spectral_lr=Param(positive_number, "Adam learning rate on the pixels for MMD, SDD and CSDM"),
    alpha_rule=Param(one_of(*ALPHA_RULES), "how alpha_c follows the class counts (the paper's formula is not public)"),
    alpha_head=Param(_unit, "alpha of the largest class (loglinear, two_level) or the constant"),
    alpha_tail=Param(_unit, "alpha of the smallest class (loglinear, two_level)"),
    alpha0=Param(_unit, "reliability rule: alpha0 * n_c / (n_c + n0)"),
    n0=Param(positive_number, "reliability rule: n0"),
    ablation_if=Param(number_at_least(1), "imbalance factor of the ablations"),
    ablations=Param(list_of(one_of(*ABLATIONS), min_len=0), "CSDM variants of the ablation study"),
    ablation_freqs=Param(list_of(int_at_least(1), min_len=0), "other numbers of frequencies tried for CSDM"),
    ablation_seeds=Param(list_of(int_at_least(0)), "seeds of the ablations"),
    check_freqs=Param(list_of(int_at_least(1)), "frequency counts of the SDD-vs-MMD numerical check"),
    timing_reals=Param(list_of(int_at_least(1)), "real samples per class of the loss-cost figure"),
    timing_freqs=Param(list_of(int_at_least(1)), "frequency counts M of SDD in the loss-cost figure"),
)

_COMMON = {**BASE_PRESET, "dataset": "auto", "methods": [m for m in METHODS if m != "dm_random"],
           "sweep_methods": ["random", "dm", "csdm"], "permute_classes": True, "alpha_sweep": [[0.8, 0.2], [0.9, 0.1]],
           "kernel": "gaussian", "sigma": 1.0, "sigma_ablation": [], "num_freqs": 1024, "cf_form": "mmd",
           "spectral_lr": 0.01, "feature_nets": "random", "feature_pool": 2, "feature_epochs": 10,
           "support_methods": [], "support_seed_count": 3, "run_seeds": None,
           "alpha_rule": "loglinear", "alpha_head": 0.7, "alpha_tail": 0.3, "alpha0": 0.8, "n0": 100.0,
           "check_freqs": [16, 64, 256, 1024, 4096, 16384], "timing_reals": [64, 256, 1024, 4096],
           "timing_freqs": [256, 1024, 4096]}

PRESETS = {
    "smoke": {**_COMMON, "dataset": "digits", "seeds": [0], "ipc": 2, "width": 8, "imbalance_factors": [10],
              "sweep_factors": [10, 20], "dm_iterations": 5, "dm_batch_real": 16, "dm_dsa": False, "dm_net_pool": 2,
              "num_freqs": 32, "eval_students": 1, "eval_epochs": 3, "eval_batch": 64, "eval_width": 8,
              "ablation_if": 10, "ablations": ["reversed", "amplitude_only"], "alpha_sweep": [[0.9, 0.1]],
              "ablation_freqs": [8], "ablation_seeds": [0], "check_freqs": [16, 256], "sigma_ablation": ["median"],
              "timing_reals": [8, 32], "timing_freqs": [16]},
    # About 50 minutes on 2 cores, cold, in bf16 (sized from a two-seed probe): feature networks trained on each
    # split (NCFM's pool, smaller: 2 networks x 5 epochs per split and seed), DM's recipe otherwise (DSA, real batch
    # 64, 500 steps) at width 32, IF 10 and 200; students 1,000 optimiser steps; the headline arms on 5 seeds, the
    # arms only supporting claims read (the random-network control, linear, SDD) and the ablations on 3
    "cpu": {**_COMMON, "seeds": [0, 1, 2, 3, 4], "ipc": 10, "width": 32, "imbalance_factors": [10, 200],
            "sweep_factors": [10, 200], "methods": ["random", "dm", "dm_random", "linear", "sdd", "csdm"],
            "support_methods": ["dm_random", "linear", "sdd"], "support_seed_count": 3,
            "feature_nets": "trained", "feature_pool": 2, "feature_epochs": 5,
            "dm_iterations": 500, "dm_batch_real": 64, "dm_dsa": True, "dm_net_pool": 0, "num_freqs": 1024,
            "eval_students": 1, "eval_epochs": 1000, "eval_batch": 256, "eval_width": 32, "ablation_if": 200,
            "ablations": ["amplitude_only", "phase_only", "reversed"], "alpha_sweep": [[0.9, 0.1]],
            "sigma_ablation": [0.25, 0.5, "median"], "ablation_freqs": [], "ablation_seeds": [0, 1, 2]},
    "paper": {**_COMMON, "seeds": [0, 1, 2, 3, 4], "ipc": 10, "width": 128, "imbalance_factors": [10, 50, 100, 200],
              "sweep_factors": [10, 50, 100, 200], "methods": list(METHODS), "feature_nets": "trained",
              "feature_pool": 20, "feature_epochs": 60, "dm_iterations": 20000, "dm_batch_real": 256, "dm_dsa": True,
              "dm_net_pool": 0, "num_freqs": 1024, "eval_students": 5, "eval_epochs": 1000, "eval_batch": 256,
              "eval_width": 128, "ablation_if": 200, "ablations": list(ABLATIONS),
              "alpha_sweep": [[0.6, 0.4], [0.8, 0.2], [0.9, 0.1]], "ablation_freqs": [16, 64, 256, 4096],
              "sigma_ablation": [0.25, 0.5, "median"], "ablation_seeds": [0, 1, 2]},
}

# One GPU (not yet timed on one): the cpu preset at width 128 with the spec's real batch of 256, 1,000 distillation
# steps, a pool of 5 feature networks x 20 epochs per split and seed, IF 10 / 100 / 200, every arm on 5 seeds
PRESETS["gpu"] = {**PRESETS["cpu"], "width": 128, "dm_iterations": 1000, "dm_batch_real": 256, "eval_width": 128,
                  "feature_pool": 5, "feature_epochs": 20, "imbalance_factors": [10, 100, 200],
                  "sweep_factors": [10, 100, 200], "support_seed_count": 5}
