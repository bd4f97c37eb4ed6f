"""Claims as data and the one rule that judges them: exact selectors, paired per-seed differences, a 95 % interval.

A :class:`Claim` says which two arms it compares (each an :class:`Arm`, an exact selector over a chapter's result
records, or a :class:`Contrast` of two arms, e.g. a gain at IF 100 minus the same gain at IF 10), on which metric,
of which kind (``superiority`` by a margin, ``non-inferiority`` within a margin, ``equivalence`` within ±margin),
at which level (``headline``: the paper's own claims; ``supporting``; ``control``; ``gate``; ``diagnostic``), and
which gates it depends on. :func:`evaluate` judges a list of claims on a list of records, gates first.

**Selection is exact.** An arm selects the records whose flat fields (``method``, ``ipc``, ``setting.study``,
``setting.imbalance_factor``, ...) equal its own; all of them must be of one arm (one method, dataset, IPC and
setting), and every seed must have the same number of them (its students). A selector that also matches another
study's records, or that finds a different count on some seed, raises :class:`SelectionError` listing what it
matched: a silent average over whatever matches is how a wrong verdict once reached the page.

**The rule.** With d_s = a_s - b_s over the n seeds both arms ran (the arms of a seed share its data, networks and
student seeds), the 95 % interval of the mean of d is mean ± t(0.975, n - 1) · sd / √n (``scipy.stats.t``).

* superiority (a beats b by at least the margin): **held** when the interval lies above 0 and the mean reaches the
  margin; **did not hold** when the whole interval lies below the margin; otherwise **inconclusive**;
* non-inferiority (a is not worse than b by more than the margin): **held** when the interval lies above -margin;
  **did not hold** when it lies below -margin; otherwise inconclusive (a one-sided test at 2.5 %);
* equivalence (a and b within ±margin): **held** when the interval lies inside (-margin, margin) (two one-sided
  tests, TOST, each at 2.5 %); **did not hold** when it lies wholly outside; otherwise inconclusive;
* check (a fixed rule of the method on a measurement it made once, not an estimate: e.g. "the debiased expert's
  few-group gain on validation reaches the acceptance margin"; gates and diagnostics only): **held** when every
  recorded value of a - b reaches the margin, **did not hold** otherwise;
* **not testable at this scale** when fewer than 2 paired seeds exist (a check needs 1), or a gate of the claim was not shown to
  hold (did not hold, inconclusive, or not testable itself; the reason gives the gate's numbers).

Differences that are all equal give an interval of zero width (the seeds agree exactly): it is judged as it lies.

An inconclusive verdict says how many seeds would resolve it: the smallest n at which the interval around the
observed mean, with the observed spread, would clear the boundary that decides it. Margins are fixed before the run
(a chapter's parameter or the specification's bar), never read off the results.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Mapping

from .versions import producer

LEVELS = ("headline", "supporting", "control", "gate", "diagnostic")
KINDS = ("superiority", "non-inferiority", "equivalence", "check")
VERDICTS = ("held", "did not hold", "inconclusive", "not testable at this scale")
CONFIDENCE = 0.95
HEADLINE_SEEDS = 5        # a paper's headline claim is judged on at least this many paired seeds
MAX_SEEDS = 1000          # "more than this many seeds" is reported as unresolvable at the observed spread


class SelectionError(ValueError):
    """An arm's selector matched records of more than one arm, none, or a different number on some seed."""


@dataclass(frozen=True)
class Arm:
    """An exact selector over result records: ``method``, and the ``study``, ``ipc`` and other ``setting`` fields
    that tell this arm's records from every other's (``setting`` keys as recorded: ``{"imbalance_factor": 100}``)."""
    method: str | None          # None: any method (the setting tells the arm, e.g. a variant)
    study: str | None = None
    ipc: int | None = None
    setting: Mapping = field(default_factory=dict)
    dataset: str | None = None

    def __hash__(self):
        return hash((self.method, self.study, self.ipc, tuple(sorted(self.setting.items())), self.dataset))

    def fields(self) -> dict:
        out = {} if self.method is None else {"method": self.method}
        if self.study is not None:
            out["setting.study"] = self.study
        if self.ipc is not None:
            out["ipc"] = self.ipc
        if self.dataset is not None:
            out["dataset"] = self.dataset
        out.update({f"setting.{k}": v for k, v in self.setting.items()})
        return out

    def label(self) -> str:
        return " ".join(f"{k.removeprefix('setting.')}={v}" for k, v in self.fields().items())


@dataclass(frozen=True)
class Contrast:
    """The per-seed difference of two arms, ``scale · (plus - minus)`` (e.g. ADSA minus plain soft labels at one
    IF; half the gap between clean-label and noisy-label DM with ``scale=0.5``)."""
    plus: Arm
    minus: Arm
    scale: float = 1.0

    def label(self) -> str:
        d = f"({self.plus.label()}) - ({self.minus.label()})"
        return d if self.scale == 1 else f"{self.scale:g} * [{d}]"


@dataclass(frozen=True)
class Claim:
    """One claim, as data. ``statement`` is what we test, in our setting; ``paper`` the paper's own statement
    (quoted or closely paraphrased, with its table or section) and ``paper_value`` its number, where known."""
    id: str
    level: str
    statement: str
    a: Arm | Contrast | float
    b: Arm | Contrast | float | None = None   # None: a alone against 0; a number: a fixed bar (e.g. a floor of 20 %)
    kind: str = "superiority"
    margin: float = 1.0
    metric: str = "acc"
    gates: tuple = ()
    paper: str = ""
    paper_value: str = ""
    unit: str = "points"
    setting: str = ""          # our setting in words, for the claims page ("CIFAR-10-LT IF 100, IPC 10")
    control: str = ""          # the id of the claim that explains this one (the control a reviewer asks for first)
    digits: int = 2

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"claim {self.id!r}: level {self.level!r} is not allowed: expected one of {LEVELS}")
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id!r}: kind {self.kind!r} is not allowed: expected one of {KINDS}")
        if isinstance(self.margin, bool) or not (isinstance(self.margin, numbers.Real) and self.margin >= 0):
            raise ValueError(f"claim {self.id!r}: margin {self.margin!r} is not allowed: expected a number >= 0")
        if self.kind == "check" and self.level not in ("gate", "diagnostic"):
            raise ValueError(f"claim {self.id!r}: a check is a rule, not an estimate: only a gate or a diagnostic")
        if self.kind == "equivalence" and self.margin == 0:
            raise ValueError(f"claim {self.id!r}: an equivalence claim needs a margin > 0")
        if isinstance(self.gates, (str, list)):
            object.__setattr__(self, "gates", (self.gates,) if isinstance(self.gates, str) else tuple(self.gates))

    @property
    def min_seeds(self) -> int:
        """Paired seeds a verdict needs to stand: 5 for a paper's headline claim, 2 otherwise (below it, a headline
        verdict is shown as provisional)."""
        return HEADLINE_SEEDS if self.level == "headline" else 2


# ------------------------------------------------------------------------------------------- selection
def _flat(rec) -> dict:
    from .results import ResultRecord, _flat as flat
    return flat(asdict(rec) if isinstance(rec, ResultRecord) else rec)


# besides the setting, what tells one arm's records from another's: a run's chapter, preset and precision too (an fp32
# and a bf16 run of the same seeds are two arms, never pooled), and the students' budget
_IDENTITY = ("chapter", "preset", "precision", "method", "dataset", "ipc", "student_steps")


def _norm(v):
    return float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else str(v)


def _identity(row: dict) -> tuple:
    return (tuple((k, _norm(row.get(k))) for k in _IDENTITY)
            + tuple(sorted((k, _norm(v)) for k, v in row.items() if k.startswith("setting."))))


def _show(identity: tuple) -> str:
    return " ".join(f"{k.removeprefix('setting.')}={v:g}" if isinstance(v, float) else f"{k.removeprefix('setting.')}={v}"
                    for k, v in identity if v != "None")


def select(records, arm: Arm, metric: str = "acc", students: int | None = None) -> dict[int, float]:
    """``{seed: mean of metric over the seed's students}`` for the records ``arm`` selects, exactly: they must be of
    one arm, every seed must hold the same number of them (``students`` when given), and each must have ``metric``."""
    want = {k: _norm(v) for k, v in arm.fields().items()}
    rows = [r for r in map(_flat, records) if all(_norm(r.get(k)) == v for k, v in want.items())]
    if not rows:
        raise NotRecorded(f"arm [{arm.label()}] matches no record")
    ids = sorted({_identity(r) for r in rows}, key=str)
    if len(ids) > 1:
        raise SelectionError(f"arm [{arm.label()}] matches the records of {len(ids)} arms; name the one it means "
                             "(study, setting): " + "; ".join(_show(i) for i in ids))
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        if r.get(metric) is None or not math.isfinite(float(r[metric])):
            raise SelectionError(f"arm [{arm.label()}]: a record of seed {r['seed']} has no finite {metric!r} "
                                 f"({r.get(metric)!r})")
        by_seed.setdefault(int(r["seed"]), []).append(float(r[metric]))
    counts = {s: len(v) for s, v in sorted(by_seed.items())}
    if len(set(counts.values())) > 1 or (students is not None and set(counts.values()) != {students}):
        raise SelectionError(f"arm [{arm.label()}] selects a different number of records per seed than its "
                             f"students ({students if students is not None else 'the same on every seed'}): "
                             f"{counts}")
    return {s: sum(v) / len(v) for s, v in sorted(by_seed.items())}


def values(records, side: Arm | Contrast, metric: str = "acc", students: int | None = None) -> dict[int, float]:
    """Per-seed values of an arm, or of a contrast (seeds both of its arms ran)."""
    if isinstance(side, Arm):
        return select(records, side, metric, students)
    p, m = values(records, side.plus, metric, students), values(records, side.minus, metric, students)
    return {s: side.scale * (p[s] - m[s]) for s in sorted(set(p) & set(m))}


def _sides(records, claim: Claim, students: int | None = None) -> tuple:
    """Each side's per-seed values (``{seed: value}``), or its number where it is a fixed bar (None: 0)."""
    a, b = (values(records, x, claim.metric, students) if isinstance(x, (Arm, Contrast)) else float(x or 0.0)
            for x in (claim.a, claim.b))
    if isinstance(a, float) and isinstance(b, float):
        raise ValueError(f"claim {claim.id!r}: at least one side must select records")
    return a, b


def _paired(a, b) -> dict[int, float]:
    seeds = sorted(set(a if isinstance(a, dict) else b) & set(b if isinstance(b, dict) else a))
    return {s: (a[s] if isinstance(a, dict) else a) - (b[s] if isinstance(b, dict) else b) for s in seeds}


def paired_differences(records, claim: Claim, students: int | None = None) -> dict[int, float]:
    """``{seed: a_s - b_s}`` over the seeds both sides ran; a side that is a number (a fixed bar) or None (0) is the
    same on every seed."""
    return _paired(*_sides(records, claim, students))


# ---------------------------------------------------------------------------------------------- the rule
def interval(d: list[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """Mean, standard deviation (n - 1), and the two-sided t interval of the mean of ``d`` (n >= 2)."""
    from scipy import stats
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    lo, hi = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n)) if sd > 0 else (mean, mean)
    return mean, sd, float(lo), float(hi)


def _boundaries(kind: str, margin: float) -> tuple[float, ...]:
    return {"superiority": (0.0, margin), "non-inferiority": (-margin,), "equivalence": (-margin, margin)}[kind]


def _decide(kind: str, margin: float, mean: float, lo: float, hi: float) -> str:
    held, no, open_ = VERDICTS[:3]
    if kind == "superiority":
        return held if lo > 0 and mean >= margin else no if hi < margin else open_
    if kind == "non-inferiority":
        return held if lo > -margin else no if hi < -margin else open_
    return held if -margin < lo and hi < margin else no if lo > margin or hi < -margin else open_


def seeds_to_resolve(kind: str, margin: float, mean: float, sd: float, n: int,
                     confidence: float = CONFIDENCE) -> int | None:
    """The fewest seeds in all (not more seeds) at which the interval around ``mean``, with spread ``sd``, decides
    the claim (None: more than MAX_SEEDS, e.g. a mean on a boundary)."""
    import numpy as np
    from scipy import stats
    m = np.arange(max(n + 1, 2), MAX_SEEDS + 1)
    half = stats.t.ppf(0.5 + confidence / 2, m - 1) * sd / np.sqrt(m)
    for k, h in zip(m.tolist(), half.tolist()):
        if _decide(kind, margin, mean, mean - h, mean + h) != VERDICTS[2]:
            return k
    return None


@producer("verdicts", 1)
def judge(diffs: Mapping[int, float], kind: str = "superiority", margin: float = 1.0,
          confidence: float = CONFIDENCE) -> dict:
    """The verdict on paired per-seed differences ``{seed: d}``: n, mean, sd, the interval, the verdict, and for
    an inconclusive one the seeds that would resolve it."""
    seeds = sorted(diffs)
    d = [float(diffs[s]) for s in seeds]
    out = {"kind": kind, "margin": margin, "confidence": confidence, "seeds": seeds, "diffs": d, "n": len(d),
           "mean": sum(d) / len(d) if d else float("nan"), "sd": float("nan"), "lo": float("nan"),
           "hi": float("nan"), "seeds_to_resolve": None, "why_not_testable": ""}
    if kind == "check" and d:
        return {**out, "lo": min(d), "hi": max(d), "sd": 0.0,
                "verdict": VERDICTS[0] if min(d) >= margin else VERDICTS[1]}
    if len(d) < 2:
        return {**out, "verdict": VERDICTS[3],
                "why_not_testable": f"{len(d)} paired seed(s): an interval needs at least 2"}
    mean, sd, lo, hi = interval(d, confidence)
    verdict = _decide(kind, margin, mean, lo, hi)
    out.update(mean=mean, sd=sd, lo=lo, hi=hi, verdict=verdict)
    if verdict == VERDICTS[2]:
        out["seeds_to_resolve"] = seeds_to_resolve(kind, margin, mean, sd, len(d), confidence)
    return out


def said(c: Claim) -> str:
    """The claim's statement with its margin, where the statement does not give it ("... by at least 1 points")."""
    if c.kind == "superiority" and c.margin > 0 and "at least" not in c.statement:
        return f"{c.statement}, by at least {c.margin:g} {c.unit.removesuffix('s') if c.margin == 1 else c.unit}"
    return c.statement


class NotRecorded(SelectionError):
    """An arm finds no record at all: the run did not measure it (e.g. a copy made before the quantity was recorded)."""


def _side_label(side) -> str | None:
    return None if side is None else f"{float(side):g}" if isinstance(side, numbers.Real) else side.label()


def evaluate(claims: list[Claim], records, students: int | None = None, missing: str = "raise") -> list[dict]:
    """Judge every claim on ``records``: gates first (a claim's gates are other claims' ids in the list); a claim
    whose gate was not shown to hold is not testable at this scale, with the gate's numbers as the reason. One row
    per claim, in the order given; seeds that only one side ran are listed under ``unpaired_seeds``; a headline
    claim judged on fewer than :data:`HEADLINE_SEEDS` paired seeds carries ``provisional``.

    ``missing="report"`` (for records written before a quantity was recorded) turns an arm that matches no record
    into a row with ``verdict`` None and ``not_recorded`` saying which; a claim whose gate was not recorded is
    judged without it and says so under ``gates_not_recorded``. Every other selection error raises."""
    if missing not in ("raise", "report"):
        raise ValueError(f"missing={missing!r} is not allowed: expected 'raise' or 'report'")
    by_id = {c.id: c for c in claims}
    if len(by_id) != len(claims):
        raise ValueError("claim ids must be unique: " + ", ".join(sorted({c.id for c in claims
                                                                           if [x.id for x in claims].count(c.id) > 1})))
    done: dict[str, dict] = {}

    def run(c: Claim, stack=()) -> dict:
        if c.id in done:
            return done[c.id]
        if c.id in stack:
            raise ValueError(f"claim {c.id!r}: its gates form a cycle: {' -> '.join(stack + (c.id,))}")
        missing_gates = [g for g in c.gates if g not in by_id]
        if missing_gates:
            raise ValueError(f"claim {c.id!r}: gate(s) {missing_gates} are not claims of this list")
        gates = [run(by_id[g], stack + (c.id,)) for g in c.gates]
        row = {"id": c.id, "level": c.level, "statement": said(c), "paper": c.paper,
               "paper_value": c.paper_value, "setting": c.setting, "control": c.control, "metric": c.metric,
               "unit": c.unit, "digits": c.digits, "gates": list(c.gates), "a": _side_label(c.a), "b": _side_label(c.b)}
        try:
            sides = _sides(records, c, students)
            diffs = _paired(*sides)
        except NotRecorded as e:
            if missing == "raise":
                raise
            row.update(kind=c.kind, margin=c.margin, n=0, verdict=None, not_recorded=str(e))
            done[c.id] = row
            return row
        row.update(unpaired_seeds=sorted(set().union(*(x for x in sides if isinstance(x, dict))) - set(diffs)),
                   **judge(diffs, c.kind, c.margin))
        if 2 <= row["n"] < c.min_seeds:
            row["provisional"] = f"{row['n']} paired seeds; a headline verdict needs {c.min_seeds}"
        unknown = [g["id"] for g in gates if g["verdict"] is None]
        if unknown:
            row["gates_not_recorded"] = unknown
        failed = [g for g in gates if g["verdict"] not in (VERDICTS[0], None)]
        if failed and row["verdict"] != VERDICTS[3]:
            row["verdict_if_testable"] = row["verdict"]
            row["verdict"], row["seeds_to_resolve"] = VERDICTS[3], None
            row.pop("provisional", None)
        if failed:
            row["why_not_testable"] = "; ".join(
                [row["why_not_testable"]] * bool(row["why_not_testable"])
                + [f"gate {g['id']} {g['verdict']}: {describe_numbers(g)}" for g in failed])
        done[c.id] = row
        return row

    return [run(c) for c in claims]


def describe_numbers(row: dict) -> str:
    """``+3.26 [+2.41, +4.12] (95 %), n = 3, superiority margin 1`` for a judged row (points unless its unit
    says otherwise)."""
    u, k = "" if row.get("unit", "points") == "points" else f" {row['unit']}", row.get("digits", 2)
    if row["kind"] == "check" and row["n"]:
        return (f"{row['mean']:+.{k}f}{u} (lowest {row['lo']:+.{k}f}), n = {row['n']}, check: every value "
                f">= {row['margin']:g}")
    if row["n"] < 2:
        return f"{row['n']} paired seed(s)"
    return (f"{row['mean']:+.{k}f}{u} [{row['lo']:+.{k}f}, {row['hi']:+.{k}f}] (95 %), n = {row['n']}, "
            f"{row['kind']} margin {row['margin']:g}")


def verdict_text(row: dict) -> str:
    """The verdict in bold with what qualifies it: the seeds that would resolve an inconclusive claim, why a claim
    is not testable, a provisional headline verdict, a gate the run did not record."""
    if row["verdict"] is None:
        return f"not in this run's records ({row['not_recorded']})"
    tail = ""
    if row["verdict"] == VERDICTS[2]:
        k = row["seeds_to_resolve"]
        tail = (f" (about {k} seeds would resolve it at this spread)" if k else
                f" (more than {MAX_SEEDS} seeds would be needed at this spread)")
    if row["verdict"] == VERDICTS[3]:
        tail = f" ({row['why_not_testable']})"
    if row.get("provisional"):
        tail += f" (provisional: {row['provisional']})"
    if row.get("gates_not_recorded"):
        tail += f" (judged without its gate {', '.join(row['gates_not_recorded'])}, which this run did not record)"
    return f"**{row['verdict']}**{tail}"


def without_gates(rows: list[dict]) -> list[str]:
    """Lines for a chapter's "What we saw": every claim a failed gate left not testable, with what its own interval
    gives read without the gate (``verdict_if_testable``). Not a verdict: the gate decided, before the run, that
    the claim is not judged at this scale; the line tells a reader how far the numbers are from the claim."""
    return [f"* `{r['id']}`, read without its gate (not a verdict): {describe_numbers(r)}, which would give "
            f"*{r['verdict_if_testable']}*." for r in rows if r.get("verdict_if_testable")]


def describe(row: dict) -> str:
    """One line for a chapter's "What we saw": the claim, its effect with the interval, and the verdict."""
    if row["verdict"] is None:
        return f"{row['statement']}: {verdict_text(row)}"
    return f"{row['statement']}: {describe_numbers(row)}: {verdict_text(row)}"
