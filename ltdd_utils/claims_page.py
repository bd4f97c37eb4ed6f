"""The "Claims at a glance" page, headline first: every chapter's declared claims (:mod:`ltdd_utils.claims`)
re-judged by :func:`ltdd_utils.verdicts.evaluate` from the records its executed copy wrote
(``book/results/<chapter>_<preset>.json``), generated, never typed.

``python -m ltdd_utils claims`` writes ``book/claims.md`` and its forest plot ``book/figures/claims_forest.png``;
``make build-book`` runs it before the build, and a test checks that the committed page is what the records give.
"""
from __future__ import annotations

import json
from pathlib import Path

from .cache import atomic_write_text
from .cli import NOTEBOOKS, ROOT, chapter_key, executed_path, ran_with
from .verdicts import HEADLINE_SEEDS, LEVELS, VERDICTS, verdict_text

PAGE = ROOT / "book" / "claims.md"
FOREST = ROOT / "book" / "figures" / "claims_forest.png"
RESULTS = ROOT / "book" / "results"
COLOURS = {"held": "#1b7837", "did not hold": "#b2182b", "inconclusive": "#e08214",
           "not testable at this scale": "#777777"}
LEVEL_TITLES = {"supporting": "Supporting claims", "control": "Controls", "gate": "Gates (what makes a claim testable)",
                "diagnostic": "Diagnostics"}
RULE = (
    "**The rule.** A claim compares two arms of one chapter on one metric. For each seed both arms ran, d = a − b "
    "(the arms of a seed share its data, networks and student seeds); the verdict reads the 95 % interval of the "
    "mean of d, mean ± t(0.975, n − 1) · sd / √n (`scipy.stats.t`), against a margin fixed before the run. "
    "*Superiority*: **held** when the interval lies above 0 and the mean reaches the margin; **did not hold** when the "
    "whole interval lies below the margin; otherwise **inconclusive**, with the number of seeds that would resolve it "
    "at the observed spread. *Non-inferiority* and *equivalence*: one-sided tests at 2.5 % (TOST). **Not testable at "
    "this scale** when a gate of the claim (the regime the claim needs, e.g. DM beats a random subset) was not shown "
    "to hold, or fewer than 2 seeds paired; the gate's numbers are the reason. A *check* is a fixed rule of a "
    "method on something it measured once (the debiased expert is accepted when its gain reaches a margin): held "
    "when every recorded value meets it. A paper's headline claim needs "
    f"{HEADLINE_SEEDS} paired seeds: below that its verdict is marked *provisional*. The claims are declared in "
    "`ltdd_utils/claims/<chapter>.py`; the same evaluator prints each chapter's \"What we saw\".")


def _cell(text) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _effect(r: dict) -> str:
    if r["verdict"] is None:
        return "not recorded"
    k = r.get("digits", 2)
    u = "" if r.get("unit", "points") == "points" else f" {r['unit']}"
    if r["kind"] == "check" and r["n"]:
        return f"{r['mean']:+.{k}f}{u} (lowest {r['lo']:+.{k}f}), n = {r['n']}"
    if r["n"] < 2:
        return f"n = {r['n']}"
    return f"{r['mean']:+.{k}f}{u} [{r['lo']:+.{k}f}, {r['hi']:+.{k}f}], n = {r['n']}"


def _margin(r: dict) -> str:
    return {"superiority": f"mean ≥ {r['margin']:g}, interval > 0", "non-inferiority": f"interval > −{r['margin']:g}",
            "equivalence": f"interval within ±{r['margin']:g}", "check": f"every value ≥ {r['margin']:g}"}[r["kind"]]


def _title(nb: Path) -> str:
    for c in json.loads(nb.read_text())["cells"]:
        src = "".join(c["source"]) if c["cell_type"] == "markdown" else ""
        for line in src.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return nb.stem


def chapter_rows(preset: str = "cpu", results_dir: Path = RESULTS) -> list[dict]:
    """Per chapter in book order: its title, its run's provenance and its claims re-judged from its records
    (``missing="report"``: a quantity the run did not record yet gives a row without a verdict)."""
    from . import claims
    out = []
    for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        key, executed = chapter_key(nb.stem), executed_path(nb.stem, preset)
        records = results_dir / f"{key}_{preset}.json"
        entry = {"stem": nb.stem, "key": key, "title": _title(nb), "records": records, "rows": None}
        if executed.exists() and records.exists():
            meta = json.loads(executed.read_text())["metadata"]["ltdd"]
            recs = json.loads(records.read_text())
            cfg = claims.config_of(meta, recs)
            entry.update(meta=meta, precision=ran_with(meta).get("precision", "?"),
                         under_engine="verdicts" in meta.get("producers", {}),
                         rows=claims.judge(key, cfg, recs, missing="report"), shared=claims.shared(key, recs))
        out.append(entry)
    return out


def forest(chapters: list[dict], path: Path = FOREST) -> Path | None:
    """The headline claims' effects with their 95 % intervals against their margins, coloured by verdict; one panel
    per unit (points, an index, ...). None when no headline claim has two paired seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [(c, r) for c in chapters for r in (c["rows"] or []) if r["level"] == "headline" and r.get("n", 0) >= 2]
    if not rows:
        return None
    units = list(dict.fromkeys(r["unit"] for _, r in rows))
    heights = [sum(r["unit"] == u for _, r in rows) for u in units]
    fig, axes = plt.subplots(len(units), 1, figsize=(9, 0.42 * sum(heights) + 1.3 * len(units)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, unit in zip(axes[:, 0], units):
        mine = [(c, r) for c, r in rows if r["unit"] == unit][::-1]
        for y, (c, r) in enumerate(mine):
            colour = COLOURS[r["verdict"]]
            ax.errorbar(r["mean"], y, xerr=[[r["mean"] - r["lo"]], [r["hi"] - r["mean"]]], fmt="o", color=colour,
                        capsize=3, markersize=5)
            for edge in ({"superiority": (r["margin"],), "non-inferiority": (-r["margin"],), "check": (r["margin"],)}.get(r["kind"])
                         or (-r["margin"], r["margin"])):
                ax.plot([edge, edge], [y - 0.35, y + 0.35], color="black", lw=1.5)
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.set_yticks(range(len(mine)), [f"{c['stem'][:2]} {r['id']}" for c, r in mine], fontsize=8)
        ax.set_xlabel(f"paired effect, {unit} (95 % interval); black tick: the margin")
    handles = [plt.Line2D([], [], color=v, marker="o", ls="", label=k) for k, v in COLOURS.items()
               if any(r["verdict"] == k for _, r in rows)]
    axes[0, 0].legend(handles=handles, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles),
                      frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _seeds_caption(chapters) -> str:
    """How many of the plotted headline claims rest on fewer paired seeds than a headline verdict needs."""
    rows = [r for c in chapters for r in c["rows"] or [] if r["level"] == "headline" and r.get("n", 0) >= 2]
    few = [r for r in rows if r.get("provisional")]
    if not few:
        return " Every headline claim here rests on at least the 5 paired seeds it needs."
    if len(few) == len(rows):
        return " Every headline claim here rests on fewer seeds than the 5 it needs."
    return f" {len(few)} of the {len(rows)} rest on fewer seeds than the 5 they need (marked provisional)."


def _counts(chapters: list[dict]) -> list[str]:
    rows = [r for c in chapters for r in (c["rows"] or [])]
    cols = list(VERDICTS) + ["not in the records"]
    out = ["| level | " + " | ".join(cols) + " | all |", "|---" * (len(cols) + 2) + "|"]
    for level in LEVELS:
        mine = [r for r in rows if r["level"] == level]
        n = [sum(r["verdict"] == v for r in mine) for v in VERDICTS] + [sum(r["verdict"] is None for r in mine)]
        out.append(f"| {level} | " + " | ".join(map(str, n)) + f" | {len(mine)} |")
    return out


def claims_markdown(results_dir: Path = RESULTS, preset: str = "cpu", chapters: list[dict] | None = None) -> str:
    """The page: the rule; counts per level and verdict; the papers' headline claims (table and forest plot); then,
    per chapter, its run and every other claim, folded by level."""
    from . import claims
    from .claims import PAPERS
    chapters = chapter_rows(preset, results_dir) if chapters is None else chapters
    lines = ["---", "html_theme.sidebar_secondary.remove: true", "---", "", "# Claims at a glance", "",   # wide tables
             f"Every claim the chapters declare, re-judged from the records of their `{preset}` runs "
             f"(`book/results/<chapter>_{preset}.json`) by `python -m ltdd_utils claims`; nothing on this page is "
             "typed. A chapter executed before the claims were declared shows, on its own page, the verdicts of the "
             "rule it ran under until it is re-executed; this page holds the current rule. The papers' numbers are "
             "theirs, tagged as `../shared/specs/paper_claims.md` tags them: [P] read in the paper's full text, [A] "
             "its abstract, [N] a third-party note, [Rv] public reviews.", "", RULE, ""] + _counts(chapters) + [""]
    lines += ["## The papers' headline claims", ""]
    if any(r["level"] == "headline" and r.get("n", 0) >= 2 for c in chapters for r in c["rows"] or []):
        lines += ["```{figure} figures/claims_forest.png", ":name: claims-forest", ":alt: Forest plot of the papers' "
                  "headline claims: each claim's paired effect with its 95 % interval, its margin as a black tick, "
                  "coloured by verdict", "",
                  "Each headline claim's paired effect with its 95 % interval (dot and bar) against its margin (black "
                  "tick), coloured by verdict." + _seeds_caption(chapters),
                  "```", ""]
    for c in chapters:
        heads = [r for r in c["rows"] or [] if r["level"] == "headline"]
        if not heads:
            continue
        by_id = {r["id"]: r for r in c["rows"]}
        lines += [f"### [{c['title']}](chapters/{c['stem']}.ipynb)", "", f"{PAPERS.get(c['key'], '')}.", "",
                  "| claim (our setting) | the paper reports | our effect [95 % interval], margin | verdict | "
                  "the control that explains it |", "|---|---|---|---|---|"]
        last = None
        for r in heads:
            ctrl = by_id.get(r.get("control"))
            ctrl_text = f"{ctrl['statement']}: {_effect(ctrl)}, **{ctrl['verdict']}**" if ctrl else ""
            paper = (f"**{r['paper_value']}**: " if r["paper_value"] and r["paper_value"] not in r["paper"] else "") + r["paper"]
            paper, last = ("as above" if paper and paper == last else paper), paper
            said = r["setting"] and all(part.split("-LT ")[-1] in r["statement"] for part in r["setting"].split(", "))
            where = f" ({r['setting']})" if r["setting"] and not said else ""        # unless the statement says it
            lines.append(f"| {_cell(r['statement'] + where)} | {_cell(paper)} | {_effect(r)}, "
                         f"{_margin(r)} | {_cell(verdict_text(r))} | {_cell(ctrl_text)} |")
        lines.append("")
    lines += ["## Every claim, chapter by chapter", ""]
    for c in chapters:
        lines += [f"### [{c['title']}](chapters/{c['stem']}.ipynb)", ""]
        if c["rows"] is None:
            lines += [f"No executed copy and records at the `{preset}` preset yet.", ""]
            continue
        m = c["meta"]
        lines += [f"Run: commit `{m.get('commit', '?')}`, {m.get('date', '?')}, preset `{m.get('preset')}`, "
                  f"{_cell(m.get('resolved', {}).get('device_name') or m.get('device', '?'))}, precision "
                  f"{c['precision']}; records: {{download}}`{c['records'].name} <results/{c['records'].name}>`."
                  + ("" if c["under_engine"] else " Its page shows the verdicts of the rule it ran under."), ""]
        if c["shared"]:
            lines += [f"Every seed shares {c['shared']}.", ""]
        for level in LEVELS:
            mine = [r for r in c["rows"] if r["level"] == level]
            if not mine:
                continue
            title = "Headline claims (above)" if level == "headline" else LEVEL_TITLES[level]
            lines += [f":::{{dropdown}} {title}: {len(mine)}", "",
                      "| id | claim | effect [95 % interval] | margin | verdict |", "|---|---|---|---|---|"]
            lines += [f"| `{r['id']}` | {_cell(r['statement'])} | {_effect(r)} | {_margin(r)} | {_cell(verdict_text(r))} |"
                      for r in mine]
            lines += ["", ":::", ""]
    return "\n".join(lines).rstrip() + "\n"


def write(page: Path = PAGE, results_dir: Path = RESULTS, preset: str = "cpu") -> Path:
    chapters = chapter_rows(preset, results_dir)
    forest(chapters)
    atomic_write_text(page, claims_markdown(results_dir, preset, chapters))
    return page
