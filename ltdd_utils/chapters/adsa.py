"""Parameters and presets of the soft-label-bias chapter (notebooks/01_adsa.ipynb): the imbalance-aware bound and
ADSA adaptive soft-label alignment (Jiang et al., NeurIPS 2025) on a squeeze-recover-relabel base whose students
follow EDC's recipe (evaluate.train_student_kd)."""
from ..checks import a_bool, area_range
from ..config import (BASE_PRESET, Param, int_at_least, list_of, number_at_least, one_of, optional, schema_from,
                      _fail)

ARMS = ("hard", "soft", "tau1", "adsa", "oracle", "balanced_teacher", "random_soft", "random_adsa")


def _grid(name, v):
    """[start, stop, step] of the tau grid."""
    if not isinstance(v, (list, tuple)) or len(v) != 3 or any(isinstance(t, bool) or not isinstance(t, (int, float))
                                                             for t in v):
        _fail(name, v, "[start, stop, step], e.g. [0, 3, 0.05]")
    if not (v[0] >= 0 and v[1] > v[0] and v[2] > 0):
        _fail(name, v, "0 <= start < stop and step > 0")


SCHEMA = schema_from(
    "claim_margin", "test_limit", "results_dir", "recover_iterations", "recover_lr", "r_bn", "first_bn_multiplier",
    "dataset", "data_root", "cache_dir", "device", "precision", "seeds", "model", "depth", "norm", "group_scheme",
    "eval_students", "eval_batch", "kd_lr", "kd_ce_weight", "kd_cutmix", "val_per_class", "student_steps",
    "teacher_epochs",
    teacher_width=Param(int_at_least(1), "teacher width: FastNet, the teachers' recipe (ltdd_utils.teachers), widths "
                        "w, 4w, 4w"),
    n_max=Param(int_at_least(1), "images of the head class in the long-tailed split"),
    imbalance_factor=Param(number_at_least(1, " (1 = balanced)"), "imbalance factor of the main comparison"),
    tail_order_seed=Param(optional(int_at_least(0)), "seed of the class -> tail-rank permutation (None: class 0 the "
                          "head), so that class difficulty is not confounded with tail rank"),
    ipcs=Param(list_of(int_at_least(1)), "images per class of the main comparison (all arms at the first)"),
    methods=Param(list_of(one_of(*ARMS)), "label arms at the first IPC"),
    other_ipc_methods=Param(list_of(one_of(*ARMS), min_len=0), "label arms at the other IPCs"),
    eval_widths=Param(list_of(int_at_least(1)), "student widths; the one with the best validation accuracy of the "
                      "base pipeline's students is used everywhere"),
    sweep_factors=Param(list_of(number_at_least(1, " (1 = balanced)"), min_len=0),
                        "imbalance factors of the tau* study (teachers and images; students for SWEEP_METHODS)"),
    sweep_methods=Param(list_of(one_of("soft", "adsa", "tau1", "hard"), min_len=0),
                        "student arms of the IF sweep (at the smallest and the largest of SWEEP_FACTORS)"),
    sweep_seeds=Param(list_of(int_at_least(0), min_len=0), "seeds of the IF sweep's students"),
    sensitivity_taus=Param(list_of(number_at_least(0), min_len=0),
                           "fixed taus of the student sensitivity curve (besides 0 = soft, 1 = tau1, tau*)"),
    grid_seeds=Param(list_of(int_at_least(0), min_len=0),
                     "seeds of the two-sources grid (images x teacher, balanced vs long-tailed); empty: no grid"),
    real_crops=Param(int_at_least(1), "random resized crops per real image for tau* on real crops"),
    tau_crops=Param(int_at_least(1), "views per distilled image, drawn as the students' batches draw them, on which "
                    "ADSA's tau* and the labellers' confidence are computed"),
    per_seed_teacher=Param(a_bool, "train the main split's teacher once per run seed (teacher seed = run seed); the "
                           "other splits' teachers have seed 0"),
    recover_crop_scale=Param(optional(area_range), "area range of the random resized crop of every image at every "
                             "recovery step (SRe2L's recovery); None: one random roll of the batch instead"),
    teacher_batch=Param(int_at_least(1), "teacher batch size (the recipe's lr and weight decay are per 1,024 images)"),
    tau_grid=Param(_grid, "ADSA's tau search grid [start, stop, step] (the paper's range is not known)"),
    jitter=Param(int_at_least(0), "recovery jitter: largest roll in pixels"),
    duplicate_noise=Param(number_at_least(0), "noise std added to duplicated images of classes with < IPC images"),
)

# the teachers are the library's recipe (FastNet, its own optimiser), shared with chapter 02's plain experts on one split
_COMMON = {**{k: v for k, v in BASE_PRESET.items() if k != "teacher_lr"}, "dataset": "auto", "imbalance_factor": 100, "tail_order_seed": 0, "methods": list(ARMS),
           "other_ipc_methods": ["hard", "soft", "adsa", "balanced_teacher"], "sweep_methods": ["soft", "adsa"],
           "tau_grid": [0, 3, 0.05], "recover_lr": 0.05, "r_bn": 0.01, "first_bn_multiplier": 10.0, "jitter": 2,
           "duplicate_noise": 0.1, "kd_lr": 1e-3, "kd_ce_weight": 0.025, "kd_cutmix": True,
           "real_crops": 4, "tau_crops": 8, "per_seed_teacher": True, "recover_crop_scale": [0.08, 1.0]}

PRESETS = {
    "smoke": {**_COMMON, "dataset": "digits", "seeds": [0], "n_max": 60, "imbalance_factor": 10, "ipcs": [2, 3],
              "sweep_factors": [1, 5, 10], "sweep_seeds": [0], "sensitivity_taus": [2.0], "grid_seeds": [0],
              "teacher_epochs": 2, "teacher_width": 8, "teacher_batch": 64, "recover_iterations": 3,
              "eval_students": 1, "student_steps": 4, "eval_batch": 16, "eval_widths": [8, 16], "val_per_class": 5,
              "test_limit": 200},
    # cpu: 75 recovery steps, EDC's CIFAR-10 default (a FastNet-64 teacher forwards and backwards 3 ms per image and
    # step on 2 cores: 200 steps of the IPC-50 set took 6 minutes a seed); students of one teacher, set and seed
    # share its labels of their batches (evaluate.train_student_kd). Five seeds in an hour: students of width 32,
    # fixed before the run (a width-64 student takes twice as long; a teacher's labelling pass, 0.6 ms per view,
    # costs three width-32 students), no random_adsa arm (it feeds no claim), one fixed tau besides 0 and 1 for the
    # students-against-tau points (0.5, between plain labels and tau = 1); tau = 1 at
    # IPC 50 as well (Claim 2 there, at a width-32 student's cost: it shares the plain arm's labels)
    "cpu": {**_COMMON, "seeds": [0, 1, 2, 3, 4], "n_max": 2000, "ipcs": [10, 50], "sweep_factors": [10, 50, 100],
            "methods": [a for a in ARMS if a != "random_adsa"],
            "other_ipc_methods": ["hard", "soft", "tau1", "adsa", "balanced_teacher"],
            "sweep_seeds": [0, 1, 2, 3, 4], "sensitivity_taus": [0.5], "grid_seeds": [0, 1, 2, 3, 4],
            "teacher_epochs": 30, "teacher_width": 64, "teacher_batch": 500, "recover_iterations": 75,
            "eval_students": 1, "student_steps": 1000, "eval_batch": 50, "eval_widths": [32], "val_per_class": 100,
            "test_limit": None},
    # 4,900 head images: the validation set takes 100 per class of CIFAR-10's 5,000 from outside every split
    "paper": {**_COMMON, "seeds": [0, 1, 2, 3, 4], "n_max": 4900, "ipcs": [10, 50], "sweep_factors": [10, 50, 100],
              "other_ipc_methods": ["hard", "soft", "tau1", "adsa", "oracle", "balanced_teacher"],
              "sweep_seeds": [0, 1, 2, 3, 4], "sensitivity_taus": [0.5, 1.5, 2.0], "grid_seeds": [0, 1, 2, 3, 4],
              "teacher_epochs": 60, "teacher_width": 128, "teacher_batch": 500, "recover_iterations": 1000,
              "eval_students": 3, "student_steps": 10000, "eval_batch": 10, "eval_widths": [128],
              "val_per_class": 100, "test_limit": None},
}

# One GPU (bf16): the cpu preset's teachers (one per seed on the main split) on CIFAR-10-LT with 1,400 head images (it
# fits a data root packed for a GPU lease, pack-data --per-class 1500, with 100 per class left for validation), 500
# recovery steps, width-128 students for 2,000 steps; the main comparison and the IF sweep's ends over the cpu
# preset's five seeds (sized from the cpu run, not yet timed on a GPU)
PRESETS["gpu"] = {**PRESETS["cpu"], "n_max": 1400, "ipcs": [10], "sweep_factors": [10, 100], "grid_seeds": [0],
                  "sensitivity_taus": [0.5, 2.0],
                  "recover_iterations": 500, "student_steps": 2000, "eval_widths": [128]}
