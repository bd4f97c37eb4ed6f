"""Chapter 00, the long-tail baselines: no paper's method, so no headline claim; the gates the other chapters lean on
(DM distils: it beats a random real subset) and what the long tail costs beyond its size."""
from ..verdicts import Arm, Claim


def claims(cfg) -> list[Claim]:
    lo, hi = f"IF {min(cfg.imbalance_factors):g}", f"IF {max(cfg.imbalance_factors):g}"
    splits = [f"IF {f:g}" for f in cfg.imbalance_factors]
    control = f"IF 1, size of {hi}"
    if cfg.balanced_control:
        splits.append(control)
    at = lambda m, split: Arm(m, setting={"split": split})
    slug = lambda split: split.replace("IF ", "if").replace(", size of ", "_size_").replace(" ", "")
    out = []
    if {"dm", "random"} <= set(cfg.methods):
        out += [Claim(f"lt.g.dm_distils.{slug(k)}", "gate", f"DM beats a random real subset at {k}", at("dm", k),
                      at("random", k), margin=cfg.claim_margin, setting=k) for k in splits]
    if cfg.balanced_control:
        out += [Claim(f"lt.s.tail_cost.{m}", "supporting", f"{m}: the long tail costs accuracy beyond its size "
                      f"({control} over {hi})", at(m, control), at(m, hi), margin=cfg.claim_margin,
                      setting=f"{control} vs {hi}", gates=(f"lt.g.dm_distils.{slug(hi)}",) if m == "dm" and "random" in
                      cfg.methods else ()) for m in cfg.methods]
        if lo != control:
            out += [Claim(f"lt.s.size_cost.{m}", "supporting", f"{m}: size alone costs accuracy ({lo} over {control})",
                          at(m, lo), at(m, control), margin=cfg.claim_margin, setting=f"{lo} vs {control}")
                    for m in cfg.methods]
    return out
