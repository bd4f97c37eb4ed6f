"""Parameters and presets of the TAD chapter (notebooks/05_tad.ipynb): trust-aware diversion for dataset
distillation from mislabeled data (Wu et al., arXiv 2502.05027)."""
from ..config import (BASE_PRESET, ConfigError, Param, a_bool, a_string, int_at_least, list_of, number_at_least, one_of,
                      optional, positive_number, rate, runs_on, schema_from, _fail)
from ..data.noise import CIFAR10N_KEYS
from ..methods.tad import RELIABILITY_TESTS, SPLITS

METHODS = ("random", "clean_dm", "noisy_dm", "filter_dm", "two_stage", "tad_outer", "tad", "tad_ours", "oracle_dm",
           "clean_trusted", "clean_lowloss_init")
SYNTHETIC_NOISE = ("symmetric", "asymmetric")
# the arms the headline claims read (with their gates): every seed, never SUPPORT_METHODS
HEADLINE_METHODS = ("random", "noisy_dm", "clean_dm", "filter_dm", "tad")


runs = runs_on               # whether the main comparison runs an arm at a seed (notebooks/05_tad.ipynb)


def _setting(name, v):
    """One [noise kind, rate] pair."""
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        _fail(name, v, "a pair [noise kind, rate], e.g. ['symmetric', 0.4]")
    one_of(*SYNTHETIC_NOISE)(f"{name}[0]", v[0])
    rate(f"{name}[1]", v[1])


def _real_noise(name, v):
    if v != "auto":
        list_of(one_of(*CIFAR10N_KEYS), min_len=0)(name, v)


def _unit_open(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        _fail(name, v, "a number in (0, 1)")


def resolve_data(values: dict, check_data: bool) -> dict:
    """Resolve DATASET and REAL_NOISE ('auto': CIFAR-10N's worse labels when the dataset is CIFAR-10) and check
    that every noise setting exists for the dataset, before any compute."""
    from ..data import resolve_dataset, DATASETS
    from ..data.noise import ASYMMETRIC_MAPS
    if check_data:
        values["dataset"] = resolve_dataset(values["dataset"], values.get("data_root"))
    name = values["dataset"]
    if values["real_noise"] == "auto":
        values["real_noise"] = ["worse"] if name == "cifar10" else []
    if values["real_noise"] and name not in ("cifar10", "auto"):
        raise ConfigError(f"parameter 'real_noise' = {values['real_noise']!r}: CIFAR-10N labels exist only for "
                          f"dataset 'cifar10', not {name!r}")
    display = {"cifar10": "CIFAR-10", "fashionmnist": "FashionMNIST", "mnist": "MNIST", "digits": "digits"}
    kinds = {k for k, _ in values["noise_settings"]} | ({"symmetric"} if values["sweep_rates"] else set())
    if "asymmetric" in kinds and name in DATASETS and display.get(name) not in ASYMMETRIC_MAPS:
        raise ConfigError(f"asymmetric noise has no class map for dataset {name!r}; maps exist for "
                          f"{sorted(ASYMMETRIC_MAPS)}")
    if values["trust_model"] != "fastnet" and values["warmup_epochs"] != int(values["warmup_epochs"]):
        _fail("warmup_epochs", values["warmup_epochs"], "a whole number unless TRUST_MODEL = 'fastnet' (the teachers' "
              "recipe counts fractional epochs in optimiser steps)")
    read = set(HEADLINE_METHODS) & set(values["support_methods"])
    if read:
        _fail("support_methods", values["support_methods"], f"arms other than {sorted(read)}: the headline claims and "
              "their gates read them on every seed")
    return values


SCHEMA = schema_from(
    "claim_margin", "test_limit", "results_dir",
    "dataset", "data_root", "cache_dir", "device", "precision", "seeds", "support_seed_count", "run_seeds",
    "ipc", "model", "width", "depth", "norm",
    "dm_iterations", "dm_lr", "dm_batch_real", "dm_dsa", "dm_net_pool",
    "eval_students", "eval_epochs", "eval_lr", "eval_batch", "eval_aug", "eval_width", "val_per_class",
    per_class=Param(optional(int_at_least(1)), "training images per class of the subset every arm sees, drawn by "
                                               "the true labels from the pool (the training split outside the "
                                               "validation images; None = the whole pool)"),
    noise_seed=Param(int_at_least(0), "seed of the noise and subset draws (with PER_SEED_DRAW, run seed s draws "
                                      "with NOISE_SEED + s)"),
    per_seed_draw=Param(a_bool, "each run seed draws its own noise and subset (the spread over seeds then includes "
                                "draw-to-draw variation); off: one draw shared by every seed (the leaderboard)"),
    trust_data=Param(one_of("pool", "subset"), "what the trust network warms up on: the whole noisy pool (the "
                     "subset's images among them; the papers' networks see the whole training set) or the subset "
                     "alone; the dual loop and distillation run on the subset either way"),
    support_methods=Param(list_of(one_of(*METHODS), min_len=0), "arms run on the first SUPPORT_SEED_COUNT seeds "
                          f"only (never one of {list(HEADLINE_METHODS)}, which the headline claims read)"),
    noise_settings=Param(list_of(_setting), "[kind, rate] pairs of the main comparison (kind: symmetric, "
                                            "asymmetric); the ablations run on the first"),
    methods=Param(list_of(one_of(*METHODS)), "arms of the main comparison"),
    sweep_rates=Param(list_of(rate, min_len=0), "symmetric noise rates of the robustness sweep"),
    real_noise=Param(_real_noise, "CIFAR-10N label sets of the robustness sweep ('auto' = ['worse'] on CIFAR-10)"),
    sweep_methods=Param(list_of(one_of(*METHODS)), "arms of the robustness sweep"),
    sweep_seeds=Param(list_of(int_at_least(0)), "seeds of the robustness sweep"),
    trust_model=Param(one_of("convnet", "fastnet"), "trust network: the chapter's network (MODEL, DEPTH, NORM; warm-up "
                      "at TRUST_LR and TRUST_BATCH) or FastNet warmed up by the teachers' recipe (ltdd_utils.teachers); "
                      "either way TAD's rounds train it at TRUST_LR and TRUST_BATCH"),
    trust_width=Param(int_at_least(1), "trust-network width"),
    trust_gate=Param(number_at_least(0), "validation accuracy (%, true labels) the warmed-up trust network must reach "
                     "before any claim that rests on it is judged (the gate tad.g.trust_learns; 0: no gate)"),
    warmup_epochs=Param(positive_number, "cross-entropy warm-up epochs of the trust network on the noisy labels "
                        "(fractional with TRUST_MODEL = 'fastnet')"),
    rounds=Param(int_at_least(1), "TAD rounds R (outer split + inner recall); every R' <= R comes from one run"),
    epochs_per_round=Param(int_at_least(1), "trust-network epochs between rounds (CE on T + consistency on U)"),
    tau=Param(_unit_open, "trust threshold on the low-loss posterior of the mixture"),
    trust_split=Param(one_of(*SPLITS), "outer-loop split: classwise GMM (TAD), one global GMM, or small_loss"),
    keep_ratio=Param(_unit_open, "share of each class kept by the small_loss split"),
    delta=Param(_unit_open, "Mahalanobis-posterior (and confidence) threshold of the recall tests"),
    reliability=Param(list_of(one_of(*RELIABILITY_TESTS)), "recall tests that must all hold"),
    shrinkage=Param(positive_number, "covariance shrinkage: Sigma + shrinkage * tr(Sigma) / d * I"),
    covariance=Param(one_of("pooled", "classwise"), "the recall's Mahalanobis covariance: pooled over the trusted "
                     "classes (LDA-style) or one per class (the spec's ablation)"),
    lambda_cons=Param(number_at_least(0), "weight of the consistency term on untrusted samples (0 = off)"),
    trust_lr=Param(positive_number, "trust-network SGD learning rate"),
    trust_batch=Param(int_at_least(1), "trust-network batch size"),
    ablation_taus=Param(list_of(_unit_open, min_len=0), "thresholds tau of the split diagnostic (no training)"),
    ablation_tests=Param(list_of(a_string, min_len=0), "recall-test combinations of the recall diagnostic, "
                                                       "'+'-joined, e.g. 'mahalanobis+cosine'"),
    ablation_consistency=Param(a_bool, "also run TAD with lambda_cons = 0 (consistency off) on the first setting"),
    ablation_seeds=Param(list_of(int_at_least(0), min_len=0), "seeds of the consistency-off ablation"),
    holdout_share=Param(_unit_open, "share of the training images whose true labels our variant (tad_ours) may "
                                    "read, to choose its recall threshold each round"),
    delta_grid=Param(list_of(_unit_open), "recall thresholds our variant chooses from on the hold-out"),
)

_COMMON = {**BASE_PRESET, "dataset": "auto", "noise_seed": 0, "per_seed_draw": True, "methods": list(METHODS),
           "support_methods": [], "support_seed_count": 3, "run_seeds": None, "real_noise": "auto",
           "trust_data": "subset",
           "sweep_methods": ["noisy_dm", "filter_dm", "tad", "tad_ours"], "trust_split": "classwise",
           "keep_ratio": 0.5,
           "tau": 0.5, "delta": 0.9, "reliability": ["mahalanobis", "cosine", "model"], "shrinkage": 1e-3,
           "covariance": "pooled",
           "lambda_cons": 1.0, "trust_model": "convnet", "trust_gate": 70.0, "trust_lr": 0.01, "trust_batch": 256, "ablation_taus": [0.3, 0.5, 0.7],
           "ablation_tests": ["mahalanobis", "cosine", "model", "mahalanobis+cosine+model", "confidence"],
           "ablation_consistency": True, "ablation_seeds": [0], "holdout_share": 0.1,
           "delta_grid": [0.5, 0.9, 0.99, 0.999, 0.9999]}

PRESETS = {
    "smoke": {**_COMMON, "dataset": "digits", "seeds": [0, 1], "ipc": 2, "width": 8, "per_class": 60,
              "val_per_class": 20, "support_methods": ["tad_ours", "oracle_dm"], "support_seed_count": 2,
              "test_limit": 200, "noise_settings": [["symmetric", 0.4], ["asymmetric", 0.4]], "sweep_rates": [0.2],
              "real_noise": [], "sweep_methods": ["noisy_dm", "tad"], "sweep_seeds": [0], "trust_model": "fastnet",
              "trust_width": 8, "warmup_epochs": 1, "rounds": 2, "epochs_per_round": 1, "dm_iterations": 5, "dm_batch_real": 16,
              "dm_dsa": False, "dm_net_pool": 2, "eval_students": 1, "eval_epochs": 3, "eval_batch": 64,
              "eval_width": 8, "trust_batch": 64},
    # 5 seeds, each its own noise draw and 5,000-image subset (500 per class; 500 per class of validation held out of
    # the pool); the trust network by the teachers' recipe (FastNet, 7.5 epochs) on the whole noisy pool of its seed,
    # gated at 70 % validation accuracy; DM at the book's recipe (width 32, DSA, 500 iterations, a fresh network per
    # step); width-32 students for 1,000 epochs (1,000 optimiser steps at IPC 10). Headline arms on every seed, the
    # support arms on the first three; one noise setting (40 % symmetric), no rate sweep, no CIFAR-10N run (both at
    # `paper`). Timed on 2 cores in bf16: DM 27 s, student 14 s, TAD loop 97 s per seed, about 50 minutes in all with
    # the trust networks already cached (each about 15 minutes to train once)
    "cpu": {**_COMMON, "seeds": [0, 1, 2, 3, 4], "ipc": 10, "width": 32, "per_class": 500, "val_per_class": 500,
            "per_seed_draw": True, "trust_gate": 70.0, "test_limit": None,
            "support_methods": ["two_stage", "tad_outer", "tad_ours", "oracle_dm", "clean_trusted",
                                "clean_lowloss_init"], "support_seed_count": 3,
            "noise_settings": [["symmetric", 0.4]], "sweep_rates": [], "sweep_seeds": [0, 1, 2], "real_noise": [],
            "ablation_consistency": False, "trust_model": "fastnet", "trust_data": "pool", "trust_width": 64,
            "trust_batch": 128, "warmup_epochs": 7.5, "rounds": 3, "epochs_per_round": 2,
            "dm_iterations": 500, "dm_batch_real": 64, "dm_dsa": True, "dm_net_pool": 0, "eval_students": 1,
            "eval_epochs": 1000, "eval_batch": 256, "eval_width": 32},
    "paper": {**_COMMON, "seeds": [0, 1, 2, 3, 4], "ipc": 10, "width": 128, "per_class": None, "val_per_class": 500,
              "test_limit": None, "noise_settings": [["symmetric", 0.4], ["asymmetric", 0.4]], "sweep_rates": [0.2, 0.6],
              "sweep_methods": ["noisy_dm", "filter_dm", "two_stage", "tad", "tad_ours"], "sweep_seeds": [0, 1, 2],
              "trust_model": "fastnet", "trust_data": "pool", "trust_width": 64, "warmup_epochs": 7.5, "rounds": 5,
              "epochs_per_round": 3,
              "dm_iterations": 20000, "dm_batch_real": 256, "dm_dsa": True, "dm_net_pool": 0, "eval_students": 5,
              "eval_epochs": 1000, "eval_batch": 256, "eval_width": 128},
}

# One H200 within about a minute (bf16): 1,500 CIFAR-10 images per class (a data root packed for a GPU lease,
# pack-data --per-class 1500, holds them: 100 per class for validation, 1,400 the pool and the subset), the cpu
# preset's trust network, DM at width 128 with DSA and a fresh network per step for 1,000 iterations, width-128
# students for 1,000 epochs (sized from the cpu run, not yet timed on a GPU)
PRESETS["gpu"] = {**PRESETS["cpu"], "per_class": 1400, "val_per_class": 100, "width": 128, "trust_batch": 256,
                  "dm_iterations": 1000, "dm_batch_real": 256, "eval_width": 128}
