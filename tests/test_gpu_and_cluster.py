"""The gpu and paper presets of every chapter validate; the gpu preset runs end to end on the CPU with reduced sizes;
batch runs through submitit's local executor (one job per seed, then a merge that reuses their products)."""
import json

import pytest

from conftest import ROOT
from ltdd_utils import cli
from ltdd_utils.config import chapter_names, describe, make_config, presets

PRESETS = ("smoke", "cpu", "gpu", "paper")
STEMS = {cli.chapter_key(s): s for s in cli.chapters()}
# what the dry run takes from the smoke preset: sizes only (data, widths, steps, seeds); the gpu preset's arms,
# studies and recipe (DSA, fresh networks) stay
SIZES = {"dataset", "datasets", "seeds", "ipc", "ipcs", "width", "eval_width", "eval_widths", "teacher_width",
         "expert_width", "trust_width", "dm_iterations", "dm_batch_real", "eval_epochs", "eval_batch", "eval_students",
         "student_steps", "kd_steps", "teacher_epochs", "teacher_batch", "expert_epochs", "expert_batch",
         "recover_iterations",
         "n_max", "per_class", "val_per_class", "test_per_class", "test_limit", "warmup_epochs", "epochs_per_round",
         "rounds", "trust_batch", "supcon_epochs", "supcon_batch", "full_epochs", "full_eval_every", "num_freqs",
         "min_group_images", "papers", "kde_bandwidths", "num_crops", "max_images", "imbalance_factor",
         "imbalance_factors", "sweep_factors", "ablation_if", "other_factors", "sweep_seeds", "grid_seeds",
         "ablation_seeds", "ablation_freqs", "check_freqs", "timing_reals", "timing_freqs", "diagnostic_factors",
         "imperfections", "sweep_rates", "expert_candidates", "headline_settings", "headline_methods", "lff_grid"}


@pytest.mark.parametrize("chapter", chapter_names())
def test_every_chapter_has_four_presets_that_validate(chapter):
    assert set(presets(chapter)) == set(PRESETS)
    for p in PRESETS:
        assert make_config(chapter, p, check_data=False).preset == p
    first = describe(chapter).splitlines()[0]
    assert all(f"{p}=" in first for p in PRESETS)


@pytest.mark.parametrize("chapter", chapter_names())
def test_gpu_preset_is_the_full_width_recipe(chapter):
    """Width-128 networks, DM with DSA and a fresh network per step for at least 1,000 iterations, and students
    trained longer than at the cpu preset: the scale the cpu preset cannot reach."""
    gpu, cpu = make_config(chapter, "gpu", check_data=False), make_config(chapter, "cpu", check_data=False)
    widths = [gpu[k] for k in ("width", "eval_width", "teacher_width") if k in gpu] + list(gpu.get("eval_widths", []))
    assert max(widths) >= 128
    if "dm_iterations" in gpu:
        assert gpu.dm_dsa and gpu.dm_net_pool == 0 and gpu.dm_iterations >= 1000
    for k in ("eval_epochs", "student_steps"):
        if k in gpu:
            assert gpu[k] >= cpu[k]


def reduced_sizes(chapter: str) -> dict:
    """The gpu preset's overrides for a dry run: the smoke preset's sizes; the leaderboard passes each paper
    chapter's own reduced sizes through PAPERS."""
    smoke, gpu = presets(chapter)["smoke"], presets(chapter)["gpu"]
    out = {k: v for k, v in smoke.items() if k in SIZES and v != gpu[k]}
    if gpu.get("expert_objective") == "logit_adjust":       # no GLMC variants to choose among
        out.pop("expert_candidates", None)
    if chapter == "leaderboard":
        from ltdd_utils.chapters.leaderboard import PAPER_CHAPTERS, SHARED, STRUCTURE
        out["papers"] = {ch: {k: v for k, v in reduced_sizes(ch).items() if k not in SHARED and k not in STRUCTURE[ch]}
                         for ch in PAPER_CHAPTERS}
    return out


CIFAR10_PER_CLASS, PACKED_PER_CLASS = 5000, 1500      # CIFAR-10's training images per class; a packed lease root's


@pytest.mark.parametrize("chapter", chapter_names())
def test_gpu_and_paper_presets_fit_their_data(chapter):
    """What a split draws per CIFAR-10 class fits the data it runs on: all of CIFAR-10 for the paper preset, a data
    root packed for a GPU lease (pack-data --per-class 1500) for the gpu preset. Drawing the head class whole would
    leave nothing for a validation set outside the splits (the check runs only when a chapter builds its splits)."""
    for preset, room in (("paper", CIFAR10_PER_CLASS), ("gpu", PACKED_PER_CLASS)):
        cfg = make_config(chapter, preset, check_data=False)
        if cfg.get("n_max"):
            assert cfg.n_max + cfg.get("val_per_class", 0) <= room, (preset, cfg.n_max)
        if chapter == "tad":                  # the validation split comes out of the pool the subset is drawn from
            assert (cfg.per_class or 0) + cfg.val_per_class <= room
        if chapter == "kde_debias" and "corrupted_cifar10" in cfg.datasets:
            assert cfg.per_class + cfg.val_per_class <= room
        if chapter == "leaderboard":
            for ch in ("adsa", "unbiased_recovery", "tad"):
                from ltdd_utils.chapters.leaderboard import paper_config
                sub = paper_config(dict(cfg), ch)
                assert (sub.get("n_max") or 0) + sub.get("val_per_class", 0) <= room and (sub.get("per_class") or 0) <= room


@pytest.mark.slow
@pytest.mark.parametrize("chapter", chapter_names())
def test_gpu_preset_dry_runs_on_cpu_with_reduced_sizes(chapter, tmp_path):
    reduced = {k.upper(): v for k, v in reduced_sizes(chapter).items()}
    reduced["RESULTS_DIR"] = str(tmp_path / "results")
    out = tmp_path / "executed"
    assert cli.reproduce("gpu", [STEMS[chapter]], reduced, output_dir=out) == 0
    meta = json.loads((out / f"{STEMS[chapter]}.ipynb").read_text())["metadata"]["ltdd"]
    assert meta["preset"] == "gpu" and meta["device"]


def test_other_presets_go_to_book_runs_and_the_book_preset_to_the_chapters():
    assert cli.executed_path("05_tad", "cpu") == ROOT / "book" / "chapters" / "05_tad.ipynb"
    assert cli.executed_path("05_tad", "gpu") == ROOT / "book" / "runs" / "05_tad_gpu.ipynb"
    assert cli.executed_path("05_tad", "gpu", ROOT / "x") == ROOT / "x" / "05_tad.ipynb"


def test_every_run_in_book_runs_is_a_section_of_its_chapter():
    toc = (ROOT / "book" / "_toc.yml").read_text()
    for nb in (ROOT / "book" / "runs").glob("*.ipynb"):
        assert f"book/runs/{nb.stem}" in toc, nb.name


def test_a_requeued_job_is_the_same_call():
    from ltdd_utils.launch import ChapterJob
    job = ChapterJob("00_longtail_baselines", "smoke", {"SEEDS": [1]}, "/tmp/x.ipynb", "/tmp/cache")
    again = job.checkpoint()
    assert again.function == job and not again.args


def test_launcher_rejects_bad_parameters_before_submitting(tmp_path):
    from ltdd_utils.config import ConfigError
    from ltdd_utils.launch import launch
    with pytest.raises(ConfigError, match="IPCC"):
        launch(["00_longtail_baselines"], "smoke", {"IPCC": 3}, "local", tmp_path / "runs", tmp_path / "cache")
    assert not (tmp_path / "runs" / ".submitit").exists()


@pytest.mark.slow
def test_cluster_batch_run_with_submitits_local_executor(tmp_path):
    """One job per seed, then a merge into the executed copy that covers both seeds and computes no DM set again."""
    from ltdd_utils.launch import launch
    runs, results = tmp_path / "runs", tmp_path / "results"
    params = {"SEEDS": [0, 1], "RESULTS_DIR": str(results), "IMBALANCE_FACTORS": [10], "METHODS": ["random", "dm"],
              "BALANCED_CONTROL": False}
    assert launch(["00_longtail_baselines"], "smoke", params, "local", runs, tmp_path / "cache", timeout_min=15) == 0
    merged = json.loads((runs / "00_longtail_baselines_smoke.ipynb").read_text())
    assert merged["metadata"]["ltdd"]["preset"] == "smoke" and merged["metadata"]["ltdd"]["parameters"]["SEEDS"] == [0, 1]
    records = json.loads((results / "longtail_baselines_smoke.json").read_text())
    records = records["records"] if isinstance(records, dict) else records
    assert {r["seed"] for r in records} == {0, 1}
    for s in (0, 1):
        one = runs / "00_longtail_baselines_smoke" / f"seed{s}" / "00_longtail_baselines.ipynb"
        assert json.loads(one.read_text())["metadata"]["ltdd"]["parameters"]["SEEDS"] == [s]
    text = json.dumps(merged)
    assert "[cache] reuse synsets/dm" in text and "[cache] stored synsets/dm" not in text


def test_a_seed_job_runs_support_arms_only_on_the_seeds_the_merged_run_reads(tmp_path):
    """Each seed job runs with SEEDS = [its seed]; a chapter with SUPPORT_METHODS also gets RUN_SEEDS, the whole
    run's seeds, so that a support arm runs in the jobs of the first SUPPORT_SEED_COUNT seeds only, as the merged
    run reads it (before, every seed job was its own first seed and ran every support arm)."""
    from ltdd_utils.config import make_config, runs_on
    from ltdd_utils.launch import plan
    jobs = plan(["05_tad", "00_longtail_baselines"], "smoke", {"SEEDS": [0, 1, 2]}, tmp_path / "runs", tmp_path / "cache")
    tad = [job.params for job in jobs["05_tad"]["seeds"]]
    assert [p["RUN_SEEDS"] for p in tad] == [[0, 1, 2]] * 3
    assert all("RUN_SEEDS" not in job.params for job in jobs["00_longtail_baselines"]["seeds"])
    cfg = lambda p: make_config("tad", "smoke", check_data=False, seeds=p["SEEDS"], run_seeds=p["RUN_SEEDS"])
    assert make_config("tad", "smoke", check_data=False).support_seed_count == 2 and "tad_ours" in cfg(tad[0]).support_methods
    assert [runs_on(cfg(p), "tad_ours", p["SEEDS"][0]) for p in tad] == [True, True, False]
    assert all(runs_on(cfg(p), "tad", p["SEEDS"][0]) for p in tad)
