"""Chapter 06, the leaderboard: every method under one protocol on each imperfection; no paper's claim of its own (the
papers' headline claims are judged in their chapters), so its claims are supporting comparisons behind one gate each."""
from ..verdicts import Arm, Claim


def claims(cfg) -> list[Claim]:
    from ..studies.leaderboard import SOFT_LABELS, applies, label
    m, have, out = cfg.claim_margin, set(cfg.methods), []
    if not {"dm", "random"} <= have:
        return out
    for kind, value in cfg.imperfections:
        name = label(kind, value)
        at = lambda method: Arm(method, setting={"imperfection": name})
        tag = f"{kind}.{value:g}"
        out.append(Claim(f"lb.g.dm_distils.{tag}", "gate", f"{name}: DM beats a random real subset", at("dm"),
                         at("random"), margin=m, setting=name))
        for meth in cfg.methods:
            if meth in ("random", "herding", "dm", "random_soft") or not applies(meth, kind):
                continue
            out += [Claim(f"lb.s.{meth}_beats_dm.{tag}", "supporting", f"{name}: {meth} beats DM", at(meth), at("dm"),
                          margin=m, gates=(f"lb.g.dm_distils.{tag}",), setting=name),
                    Claim(f"lb.c.{meth}_beats_random.{tag}", "control", f"{name}: {meth} beats a random real subset",
                          at(meth), at("random"), margin=m, setting=name)]
            if meth in SOFT_LABELS and "random_soft" in have:
                out.append(Claim(f"lb.c.{meth}_beats_random_soft.{tag}", "control", f"{name}: {meth} beats its soft "
                                 "labels on a random real subset", at(meth), at("random_soft"), margin=m, setting=name))
    return out
