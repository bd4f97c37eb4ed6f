"""Parameters and presets of the KDE-debiasing chapter (notebooks/04_kde_debias.ipynb): bias in the original
data and KDE sample reweighting (Cui, Wang, Xiong, Hsieh, ICML 2024)."""
from ..config import (BASE_PRESET, Param, a_bool, a_string, int_at_least, list_of, one_of, optional,
                      positive_number, rate, schema_from, _fail)

BIASED = ("cmnist", "bg_fmnist", "corrupted_cifar10")
METHODS = ("random", "dm", "dm_kde", "dm_kde_init", "dm_lff", "dm_kde_lff", "oracle", "oracle_matched")


def _setting(name, v):
    """One [bias-conflicting ratio, IPC] pair."""
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        _fail(name, v, "a pair [bias-conflicting ratio, IPC], e.g. [0.05, 10]")
    rate(f"{name}[0]", v[0])
    if v[0] == 0:
        _fail(f"{name}[0]", v[0], "a ratio > 0 (a class needs bias-conflicting samples to up-weight)")
    int_at_least(1)(f"{name}[1]", v[1])


def _datasets(name, v):
    if v != "auto":
        list_of(one_of(*BIASED))(name, v)


def resolve_data(values: dict, check_data: bool) -> dict:
    """Resolve DATASETS='auto' and check that every real dataset the chapter builds from is there (a missing
    one raises DatasetNotFoundError naming the files and the data root, before any compute)."""
    from ..data import is_available, resolve_dataset
    from ..data.bias import BIASED_DATASETS
    if values["datasets"] == "auto":
        values["datasets"] = [d for d in BIASED if d != "corrupted_cifar10"
                              or is_available("cifar10", values.get("data_root"))]
    if check_data:
        for d in sorted(set(values["datasets"])):
            resolve_dataset(BIASED_DATASETS[d], values.get("data_root"))
    return values


SCHEMA = schema_from(
    "claim_margin", "results_dir",
    "data_root", "cache_dir", "device", "precision", "seeds", "model", "width", "depth", "norm",
    "dm_iterations", "dm_lr", "dm_batch_real", "dm_dsa", "dm_net_pool",
    "eval_students", "eval_epochs", "eval_lr", "eval_batch", "eval_aug", "eval_width",
    datasets=Param(_datasets, "biased datasets, each run through every arm; 'auto' = cmnist, bg_fmnist, and "
                              "corrupted_cifar10 if CIFAR-10 is in the data root"),
    settings=Param(list_of(_setting), "[bias-conflicting ratio, IPC] pairs run on every dataset; the bandwidth is "
                                      "selected, and the amplification study run, on the first"),
    methods=Param(list_of(one_of(*METHODS)), "arms of the main comparison"),
    per_class=Param(int_at_least(1), "training images per class drawn from the real training split"),
    val_per_class=Param(int_at_least(1), "validation images per class (other training images, uniform attributes)"),
    test_per_class=Param(optional(int_at_least(1)), "test images per class (None = the whole test split)"),
    severity=Param(one_of(1, 2, 3, 4, 5), "colour-noise / corruption severity, 1..5"),
    supcon_epochs=Param(int_at_least(1), "SupCon epochs of the bias-revealing embedding (short on purpose)"),
    supcon_temperature=Param(positive_number, "SupCon temperature"),
    supcon_lr=Param(positive_number, "SupCon Adam learning rate"),
    supcon_batch=Param(int_at_least(2), "SupCon batch (x2 views)"),
    kde_embedding=Param(one_of("projection", "backbone"), "embedding the density is estimated in"),
    kde_alpha=Param(positive_number, "weight exponent: w = density^(-alpha)"),
    kde_selection=Param(one_of("validation", "label_free", "fixed"),
                        "how the bandwidth is chosen: validation accuracy, median NN distance, or KDE_BANDWIDTH"),
    kde_bandwidths=Param(list_of(positive_number), "candidate bandwidths (selection grid, fixed in advance)"),
    kde_bandwidth=Param(positive_number, "bandwidth used when KDE_SELECTION is 'fixed'"),
    diag_alphas=Param(list_of(positive_number), "alphas of the weight-diagnostic table (no training)"),
    lff_q=Param(positive_number, "LfF generalized-CE exponent q"),
    amplification=Param(a_bool, "run the bias-amplification study (Claim 1) on every dataset"),
    full_epochs=Param(int_at_least(1), "most epochs of the full-data reference model"),
    full_eval_every=Param(int_at_least(1), "the full-data reference is checked on the validation split every this "
                                           "many epochs; its best state is tested"),
    min_group_images=Param(int_at_least(1), "test images a (class, attribute) group needs to count for the "
                                            "worst-group accuracy"),
    sensitivity=Param(a_bool, "run the sensitivity arms (every candidate bandwidth, the other embeddings)"),
)

# The cpu and paper presets name every dataset: a preset whose meaning depends on what the data root holds would
# make an executed copy look stale on a machine without CIFAR-10 (DATASETS='auto' stays available as an override).
_COMMON = {**BASE_PRESET, "datasets": "auto", "methods": ["random", "dm", "dm_kde", "dm_kde_init", "dm_lff", "oracle",
                                                          "oracle_matched"],
           "severity": 4, "supcon_temperature": 0.1, "supcon_lr": 1e-3, "supcon_batch": 256,
           "kde_embedding": "projection", "kde_alpha": 1.0, "kde_selection": "validation",
           "kde_bandwidths": [0.1, 0.2, 0.3, 0.5], "kde_bandwidth": 0.2, "diag_alphas": [1, 2, 4], "lff_q": 0.7,
           "amplification": True, "full_eval_every": 5, "min_group_images": 20, "sensitivity": True}

PRESETS = {
    "smoke": {**_COMMON, "datasets": ["cmnist", "bg_fmnist"], "seeds": [0, 1], "settings": [[0.1, 2]],
              "methods": list(METHODS), "per_class": 30, "val_per_class": 5, "test_per_class": 10, "width": 8,
              "supcon_epochs": 1, "supcon_batch": 64, "kde_bandwidths": [0.2, 0.5], "dm_iterations": 5,
              "dm_batch_real": 16, "dm_dsa": False, "dm_net_pool": 2, "eval_students": 1, "eval_epochs": 3,
              "eval_batch": 64, "eval_width": 8, "full_epochs": 2, "full_eval_every": 1, "min_group_images": 1},
    "cpu": {**_COMMON, "datasets": list(BIASED), "seeds": [0, 1, 2], "settings": [[0.05, 10]], "per_class": 400,
            "val_per_class": 20, "test_per_class": 500, "width": 32, "supcon_epochs": 3,
            "dm_iterations": 600, "dm_batch_real": 256, "dm_dsa": False, "dm_net_pool": 10,
            "eval_students": 1, "eval_epochs": 200, "eval_batch": 256, "eval_width": 32, "full_epochs": 40},
    "paper": {**_COMMON, "datasets": list(BIASED), "seeds": [0, 1, 2, 3, 4],
              "settings": [[r, i] for i in (10, 50) for r in (0.05, 0.02, 0.01, 0.005)],
              "methods": list(METHODS), "per_class": 4900, "val_per_class": 100, "test_per_class": None,
              "width": 128, "supcon_epochs": 3, "dm_iterations": 20000, "dm_batch_real": 256, "dm_dsa": True,
              "dm_net_pool": 0, "eval_students": 5, "eval_epochs": 1000, "eval_batch": 256, "eval_width": 128,
              "full_epochs": 100, "full_eval_every": 5},
}

# One H200 within about a minute (bf16): Colored MNIST and Corrupted CIFAR-10 at 5 % conflicting (the datasets of a
# data root packed for a GPU lease: pack-data --per-class 1500), DM at width 128 with DSA and a fresh network per
# step for 1,000 iterations, width-128 students for 300 epochs (sized from the cpu run, not yet timed on a GPU)
PRESETS["gpu"] = {**PRESETS["cpu"], "datasets": ["cmnist", "corrupted_cifar10"], "per_class": 1000, "width": 128, "dm_iterations": 1000, "dm_batch_real": 256,
                  "dm_dsa": True, "dm_net_pool": 0, "eval_epochs": 300, "eval_width": 128, "full_epochs": 30,
                  "sensitivity": False}
