"""Batch runs on a cluster: ``python -m ltdd_utils reproduce --preset paper --launcher slurm [...]``.

Built on submitit (SLURM, or its local executor with ``--launcher local``). Each chapter's seeds run as separate
jobs: a seed job runs the chapter with ``SEEDS = [seed]`` into ``<runs>/<stem>_<preset>/seed<k>/``, and every job
shares one cache directory (``--cache-dir`` or ``$LTDD_CACHE``, on a file system all nodes see), so the distilled
sets, teachers, experts and DM checkpoints of each seed land there. A job that is preempted or runs out
of time is requeued by submitit and resumes from that cache (finished products are reused, a partial DM run goes on
from its checkpoint); running the same command again does the same for jobs that failed. When a chapter's seed
jobs are done, a merge job runs the chapter once with all its seeds into ``<runs>/<stem>_<preset>.ipynb``: the
executed copy with provenance, whose records and claims (``book/results/<chapter>_<preset>*``, unless RESULTS_DIR is
given) cover every seed, computed from the seed jobs' cached products (students included: each is cached by what
it depends on).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

LAUNCHERS = ("slurm", "local")


@dataclass
class ChapterJob:
    """One run of one chapter (all its seeds, or one) through :func:`ltdd_utils.cli.reproduce`; callable in a
    submitit job. ``checkpoint`` makes submitit requeue the same call on preemption or timeout: it resumes from the
    shared cache."""
    stem: str
    preset: str
    params: dict
    output: str                    # the executed copy to write
    cache_dir: str

    def __call__(self) -> str:
        from .cli import reproduce
        os.environ["LTDD_CACHE"] = self.cache_dir
        out = Path(self.output)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".run-") as tmp:
            if reproduce(self.preset, [self.stem], self.params, force=True, output_dir=Path(tmp)) != 0:
                raise RuntimeError(f"{self.stem} (preset {self.preset}, {self.params}) failed; see the job's log")
            os.replace(Path(tmp) / f"{self.stem}.ipynb", out)
        return str(out)

    def checkpoint(self):
        import submitit
        return submitit.helpers.DelayedSubmission(self)


def executor(launcher: str, folder: Path, timeout_min: int = 240, gpus: int = 1, partition: str | None = None,
             cpus: int = 8, mem_gb: int = 64):
    """A submitit executor: SLURM (one GPU per job by default) or local processes."""
    import submitit
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r} is not allowed: expected one of {list(LAUNCHERS)}")
    if launcher == "local":
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(timeout_min=timeout_min)
        return ex
    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    ex.update_parameters(timeout_min=timeout_min, gpus_per_node=gpus, cpus_per_task=cpus, mem_gb=mem_gb,
                         slurm_partition=partition, slurm_signal_delay_s=120, name="ltdd")
    return ex


def plan(stems: list[str], preset: str, params: dict, runs_dir: Path, cache_dir: Path) -> dict[str, dict]:
    """Per chapter: its seed jobs and its merge job (not yet submitted). Parameters are validated here, before
    anything is submitted."""
    from .cli import chapter_key
    from .config import make_config, schema
    seeds_of = {stem: make_config(chapter_key(stem), preset, **params).seeds for stem in stems}
    out = {}
    for stem, seeds in seeds_of.items():
        base = runs_dir / f"{stem}_{preset}"
        # a chapter with support arms learns the whole run's seeds, so that only the jobs of its first seeds run them
        whole = {"RUN_SEEDS": seeds} if "run_seeds" in schema(chapter_key(stem)) else {}
        jobs = []
        for s in seeds:
            d = base / f"seed{s}"
            d.mkdir(parents=True, exist_ok=True)
            jobs.append(ChapterJob(stem, preset, {**params, "SEEDS": [s], **whole, "RESULTS_DIR": str(d)},
                                   str(d / f"{stem}.ipynb"), str(cache_dir)))
        merge = ChapterJob(stem, preset, params, str(runs_dir / f"{stem}_{preset}.ipynb"), str(cache_dir))
        out[stem] = {"seeds": jobs, "merge": merge}
    return out


def launch(stems: list[str], preset: str, params: dict, launcher: str = "slurm", runs_dir: Path | None = None,
           cache_dir: Path | None = None, folder: Path | None = None, retries: int = 1, **resources) -> int:
    """Submit every chapter's seed jobs at once, then each chapter's merge job when its seeds are done; wait for
    all. A seed job that fails is submitted again up to ``retries`` times (it resumes from the cache). Returns 0
    when every merge wrote its executed copy."""
    from .cache import cache_dir as default_cache
    from .cli import ROOT
    runs_dir = Path(runs_dir or ROOT / "book" / "runs").resolve()
    cache_dir = Path(cache_dir or default_cache()).resolve()
    folder = Path(folder or runs_dir / ".submitit").resolve()
    todo = plan(stems, preset, params, runs_dir, cache_dir)
    ex = executor(launcher, folder, **resources)
    seed_jobs = {stem: [ex.submit(job) for job in p["seeds"]] for stem, p in todo.items()}
    print(f"submitted {sum(map(len, seed_jobs.values()))} seed job(s) for {len(todo)} chapter(s) ({launcher}); "
          f"logs in {folder}", flush=True)
    failed = []
    for stem, jobs in seed_jobs.items():
        for spec, job in zip(todo[stem]["seeds"], jobs):
            for attempt in range(1 + retries):
                try:
                    print(f"{stem}: seed job {job.job_id} -> {job.result()}", flush=True)
                    break
                except Exception as e:        # resubmitted: it resumes from the cache
                    print(f"{stem}: seed job {job.job_id} failed: {str(e)[-500:]}", flush=True)
                    if attempt < retries:
                        job = ex.submit(spec)
            # a seed that still failed is computed by the merge run itself
        merge = ex.submit(todo[stem]["merge"])
        try:
            print(f"{stem}: merged {len(jobs)} seed(s) -> {merge.result()}", flush=True)
        except Exception as e:
            failed.append(stem)
            print(f"{stem}: merge job {merge.job_id} failed: {str(e)[-2000:]}", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}; run the same command again to resume from the cache", flush=True)
        return 1
    shutil.rmtree(folder, ignore_errors=True)
    return 0
