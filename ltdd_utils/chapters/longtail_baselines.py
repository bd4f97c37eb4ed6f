"""Parameters and presets of chapter 0, "Long-tailed baselines" (notebooks/00_longtail_baselines.ipynb)."""
from ..config import (BASE_PRESET, Param, a_bool, a_string, int_at_least, list_of, number_at_least, one_of, optional,
                      schema_from)

SCHEMA = schema_from(
    "test_limit", "results_dir", "claim_margin",
    "dataset", "data_root", "cache_dir", "device", "precision", "seeds", "ipc", "model", "width", "depth", "norm",
    "group_scheme", "dm_iterations", "dm_lr", "dm_batch_real", "dm_dsa", "dm_net_pool",
    "eval_students", "eval_epochs", "eval_lr", "eval_batch", "eval_aug", "eval_width",
    "teacher_epochs", "teacher_lr", "teacher_width",
    imbalance_factors=Param(list_of(number_at_least(1, " (1 = balanced)")), "imbalance factors compared"),
    profile_factors=Param(list_of(number_at_least(1, " (1 = balanced)")), "imbalance factors whose profiles are plotted"),
    methods=Param(list_of(one_of("random", "herding", "dm")), "distillers compared"),
    herding_features=Param(one_of("random", "teacher"), "embedding for herding: a random ConvNet or the teacher"),
    balanced_control=Param(a_bool, "also a class-balanced split with as many images as the most imbalanced "
                           "one (separates imbalance from data size)"),
    permute_classes=Param(a_bool, "each seed permutes which class takes which tail rank (False: class 0 the head, "
                          "class C-1 the tail, for every seed)"),
)

PRESETS = {
    "smoke": {**BASE_PRESET, "dataset": "digits", "permute_classes": True, "seeds": [0], "ipc": 2, "width": 8, "imbalance_factors": [1, 10],
              "profile_factors": [10, 50, 100], "methods": ["random", "herding", "dm"],
              "herding_features": "teacher", "balanced_control": True, "dm_iterations": 5, "dm_batch_real": 16,
              "dm_net_pool": 2, "eval_students": 1, "eval_epochs": 5, "eval_batch": 64, "eval_width": 8,
              "teacher_epochs": 2, "teacher_width": 8, "test_limit": 200},
    "cpu": {**BASE_PRESET, "dataset": "auto", "permute_classes": True, "seeds": [0, 1, 2, 3, 4], "ipc": 10, "width": 32, "imbalance_factors": [1, 100],
            "profile_factors": [10, 50, 100], "methods": ["random", "herding", "dm"], "herding_features": "random",
            "balanced_control": True, "dm_iterations": 500, "dm_batch_real": 64, "dm_net_pool": 0,
            "eval_students": 1, "eval_epochs": 500, "eval_batch": 256, "eval_width": 32,
            "teacher_epochs": 15, "teacher_width": 32, "test_limit": None},
    "paper": {**BASE_PRESET, "dataset": "auto", "permute_classes": True, "seeds": [0, 1, 2, 3, 4], "ipc": 10, "width": 128,
              "imbalance_factors": [1, 100], "profile_factors": [10, 50, 100],
              "methods": ["random", "herding", "dm"], "herding_features": "teacher", "balanced_control": True,
              "dm_iterations": 20000, "dm_batch_real": 256, "dm_net_pool": 0,
              "eval_students": 10, "eval_epochs": 1000, "eval_batch": 256, "eval_width": 128,
              "teacher_epochs": 50, "teacher_width": 128, "test_limit": None},
}

# One H200 within about a minute (bf16): DM's width-128 networks, DSA and a fresh network per step, 1,000 iterations
# of 256 real images per class, width-128 students for 500 epochs (sized from the cpu run, not yet timed on a GPU)
PRESETS["gpu"] = {**PRESETS["cpu"], "width": 128, "dm_iterations": 1000, "dm_batch_real": 256, "eval_width": 128,
                  "eval_epochs": 500, "teacher_width": 128}
