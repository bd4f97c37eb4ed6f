"""Chapter 06, the leaderboard: every method under one protocol on each imperfection; no paper's claim of its own (the
papers' headline claims are judged in their chapters). Per imperfection: the gate (DM beats a random real subset; under
a bias on the unbiased source, as chapter 04 gates, since on the biased data DM losing to random is the bias itself),
what the imperfection costs DM (DM on the clean counterpart against DM, a diagnostic), and each paper's method against
DM (supporting, behind the gate) and against a random real subset (control), all under the board's protocol (hard
labels); a soft-label method also against its own labels on random real images under its KD protocol, so that the
images are what differs (ADSA against ``random_adsa``: its teacher, its tau* rule, which chooses tau* on each set's
own images; unbiased recovery against chapter 02's ``random_kd``: its debiased teacher), and TAD against the filter
it starts from."""
from ..verdicts import Arm, Claim

# the rows that are references or controls, not a paper's method
NOT_PAPERS = ("full_data", "clean_dm", "clean_random", "random", "herding", "dm", "random_soft", "random_adsa",
              "random_kd", "filter")


def claims(cfg) -> list[Claim]:
    from ..chapters.leaderboard import BIAS, gate_arms
    from ..studies.leaderboard import SOFT_CONTROLS, applies, label
    m, have, out = cfg.claim_margin, set(cfg.methods), []
    if not {"dm", "random"} <= have:
        return out
    for kind, value in cfg.imperfections:
        name = label(kind, value)
        at = lambda method, protocol="hard": Arm(method, setting={"imperfection": name, "protocol": protocol})
        tag = f"{kind}.{value:g}"
        gate = f"lb.g.dm_distils.{tag}"
        # under a bias the gate reads the unbiased source, as chapter 04 gates: on the biased data DM losing to a
        # random subset is the bias the methods address (chapter 04's Claim 1), kept as a diagnostic
        base, control = gate_arms(kind)
        gates = (gate,) if {base, control} <= have else ()
        if gates:
            out.append(Claim(gate, "gate", f"{name}: DM beats a random real subset" + (
                " on the unbiased source (the base works at this scale)" if kind in BIAS else ""), at(base),
                at(control), margin=m, setting=name))
        if kind in BIAS:
            out.append(Claim(f"lb.d.dm_beats_random_biased.{tag}", "diagnostic", f"{name}: on the biased data DM "
                             "beats a random real subset of it", at("dm"), at("random"), margin=m, setting=name))
        if "clean_dm" in have:
            out.append(Claim(f"lb.d.cost.{tag}", "diagnostic", f"{name}: the imperfection costs DM (DM on the same data "
                             "without it beats DM on the imperfect data)", at("clean_dm"), at("dm"), margin=m,
                             gates=gates, setting=name))
        for meth in cfg.methods:
            if meth in NOT_PAPERS or not applies(meth, kind):
                continue
            out += [Claim(f"lb.s.{meth}_beats_dm.{tag}", "supporting", f"{name}: {meth} beats DM (hard labels)",
                          at(meth), at("dm"), margin=m, gates=gates, setting=name),
                    Claim(f"lb.c.{meth}_beats_random.{tag}", "control", f"{name}: {meth} beats a random real subset "
                          "(hard labels)", at(meth), at("random"), margin=m, setting=name)]
            control = SOFT_CONTROLS.get(meth)
            if control in have:
                out.append(Claim(f"lb.c.{meth}_beats_{control}.{tag}", "control", f"{name}: {meth} beats its own "
                                 f"labels on a random real subset ({control}; its own KD students)",
                                 at(meth, "kd"), at(control, "kd"), margin=m, setting=name))
            if meth == "tad" and "filter" in have:
                out.append(Claim(f"lb.c.tad_beats_filter.{tag}", "control", f"{name}: TAD beats the filter it starts "
                                 "from (DM on its first trust split, no recall)", at("tad"), at("filter"), margin=m,
                                 gates=gates, setting=name))
    return out
