"""Parameters and presets of the KDE-debiasing chapter (notebooks/04_kde_debias.ipynb): bias in the original
data and KDE sample reweighting (Cui, Wang, Xiong, Hsieh, ICML 2024)."""
from ..config import (BASE_PRESET, Param, a_bool, a_string, int_at_least, list_of, one_of, optional,
                      positive_number, rate, schema_from, _fail)

BIASED = ("cmnist", "bg_fmnist", "corrupted_cifar10")
METHODS = ("random", "dm", "dm_kde", "dm_lff", "dm_kde_lff")


def _setting(name, v):
    """One [bias-conflicting ratio, IPC] pair."""
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        _fail(name, v, "a pair [bias-conflicting ratio, IPC], e.g. [0.05, 10]")
    rate(f"{name}[0]", v[0])
    if v[0] == 0:
        _fail(f"{name}[0]", v[0], "a ratio > 0 (a class needs bias-conflicting samples to up-weight)")
    int_at_least(1)(f"{name}[1]", v[1])


def _amplification(name, v):
    if v != "auto":
        list_of(one_of(*BIASED), min_len=0)(name, v)


def resolve_data(values: dict, check_data: bool) -> dict:
    """Resolve AMPLIFICATION_DATASETS='auto' and check that every real dataset the chapter builds from is there
    (a missing one raises DatasetNotFoundError naming the files and the data root, before any compute)."""
    from ..data import is_available, resolve_dataset
    from ..data.bias import BIASED_DATASETS
    if values["amplification_datasets"] == "auto":
        values["amplification_datasets"] = [d for d in BIASED if d != "corrupted_cifar10"
                                            or is_available("cifar10", values.get("data_root"))]
    if check_data:
        for d in sorted({values["dataset"], *values["amplification_datasets"]}):
            resolve_dataset(BIASED_DATASETS[d], values.get("data_root"))
    return values


SCHEMA = schema_from(
    "claim_margin", "results_dir",
    "data_root", "cache_dir", "device", "precision", "seeds", "model", "width", "depth", "norm",
    "dm_iterations", "dm_lr", "dm_batch_real", "dm_dsa", "dm_net_pool",
    "eval_students", "eval_epochs", "eval_lr", "eval_batch", "eval_aug", "eval_width",
    dataset=Param(one_of(*BIASED), "biased dataset of the main comparison (Claims 2 and 3)"),
    settings=Param(list_of(_setting), "[bias-conflicting ratio, IPC] pairs of the main comparison; "
                                      "the KDE knobs are selected on the first"),
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
    amplification_datasets=Param(_amplification, "datasets of the bias-amplification study (Claim 1); 'auto' = "
                                                  "cmnist, bg_fmnist, and corrupted_cifar10 if CIFAR-10 is in the data root"),
    amplification_ratio=Param(rate, "bias-conflicting ratio of the amplification study"),
    amplification_seeds=Param(list_of(int_at_least(0)), "seeds of the amplification study"),
    full_epochs=Param(int_at_least(1), "epochs of the full-data reference model"),
    sensitivity=Param(a_bool, "run the embedding-network sensitivity arms (backbone, random-init, oracle weights)"),
)

_COMMON = {**BASE_PRESET, "dataset": "cmnist", "methods": ["random", "dm", "dm_kde", "dm_lff"], "severity": 4,
           "supcon_temperature": 0.1, "supcon_lr": 1e-3, "supcon_batch": 256, "kde_embedding": "projection",
           "kde_alpha": 1.0, "kde_selection": "validation", "kde_bandwidths": [0.1, 0.2, 0.3, 0.5],
           "kde_bandwidth": 0.2, "diag_alphas": [1, 2, 4], "lff_q": 0.7, "amplification_ratio": 0.05}

PRESETS = {
    "smoke": {**_COMMON, "seeds": [0], "settings": [[0.1, 2]], "methods": list(METHODS), "per_class": 30,
              "val_per_class": 5, "test_per_class": 10, "width": 8, "supcon_epochs": 1, "supcon_batch": 64,
              "kde_bandwidths": [0.2, 0.5], "dm_iterations": 5, "dm_batch_real": 16, "dm_dsa": False, "dm_net_pool": 2,
              "eval_students": 1, "eval_epochs": 3, "eval_batch": 64, "eval_width": 8,
              "amplification_datasets": ["cmnist", "bg_fmnist"], "amplification_seeds": [0], "full_epochs": 1,
              "sensitivity": True},
    "cpu": {**_COMMON, "seeds": [0, 1, 2], "settings": [[0.05, 10], [0.02, 10]], "per_class": 400,
            "val_per_class": 20, "test_per_class": 200, "width": 32, "supcon_epochs": 3,
            "dm_iterations": 600, "dm_batch_real": 256, "dm_dsa": False, "dm_net_pool": 10,
            "eval_students": 1, "eval_epochs": 200, "eval_batch": 256, "eval_width": 32,
            "amplification_datasets": "auto", "amplification_seeds": [0],
            "full_epochs": 10, "sensitivity": True},
    "paper": {**_COMMON, "seeds": [0, 1, 2, 3, 4],
              "settings": [[r, i] for i in (10, 50) for r in (0.05, 0.02, 0.01, 0.005)],
              "methods": list(METHODS), "per_class": 4900, "val_per_class": 100, "test_per_class": None,
              "width": 128, "supcon_epochs": 3, "dm_iterations": 20000, "dm_batch_real": 256, "dm_dsa": True,
              "dm_net_pool": 0, "eval_students": 5, "eval_epochs": 1000, "eval_batch": 256, "eval_width": 128,
              "amplification_datasets": "auto", "amplification_seeds": [0, 1, 2], "full_epochs": 30,
              "sensitivity": True},
}
