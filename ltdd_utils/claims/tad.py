"""Chapter 05: trust-aware diversion for noisy labels (Wu et al., 2025). Headline, from the abstract ([A], no number
available to us): TAD improves an existing distillation method (here DM) under symmetric, asymmetric and real-world
label noise, part by part."""
from ..verdicts import Arm, Claim, Contrast

# what every seed shares, so that the spread over seeds leaves it out (shown on the claims page)
def SHARED(records) -> str:
    """Runs before each seed drew its own noise (PER_SEED_DRAW) recorded no draw seed: they shared one draw."""
    draws = {r.get("draw_seed") for r in records if r.get("setting.study") == "main"}
    if len(draws - {None}) > 1:
        return ("the validation split that measures the trust network; each seed draws its own noise (and its own "
                "subset where the subset is smaller than the pool), so the spread over seeds includes draw-to-draw "
                "variation")
    return ("the training subset and its noisy labels (one draw, NOISE_SEED): the spread over seeds leaves out "
            "noise-draw-to-noise-draw variation")


# the arms whose data a trust network chose or relabelled (what the gate tad.g.trust_learns blocks)
TRUSTING = {"filter_dm", "two_stage", "tad_outer", "tad", "tad_ours", "clean_trusted", "clean_lowloss_init"}


def trust_gate(cfg, kind, rate, head, tag) -> Claim:
    """The gate of every claim resting on a setting's trust networks: each seed's reaches TRUST_GATE % on the
    validation split (records ``trust_net`` of study ``trust``)."""
    return Claim(f"tad.g.trust_learns.{tag}", "gate", f"{head}: the warmed-up trust network of every seed reaches "
                 f"{cfg.trust_gate:g} % on the validation split under its true labels (the value is its accuracy minus "
                 "that bar)", Arm("trust_net", study="trust", setting={"noise": kind, "rate": rate}), cfg.trust_gate,
                 kind="check", metric="val_acc", margin=0.0, setting=head)


def claims(cfg) -> list[Claim]:
    from ..studies.tad import label
    m, have = cfg.claim_margin, set(cfg.methods)
    paper = ("TAD \"significantly improve[s] the performance of existing dataset distillation methods\" under "
             "symmetric, asymmetric and real-world label noise [A]")
    out = []
    for kind, rate in cfg.noise_settings:
        at = lambda method: Arm(method, study="main", setting={"noise": kind, "rate": rate})
        head, tag = label((kind, rate)), f"{kind}.{rate:g}"
        gate, trust = (), ()
        if cfg.trust_gate > 0 and have & TRUSTING:
            out.append(trust_gate(cfg, kind, rate, head, tag))
            trust = (f"tad.g.trust_learns.{tag}",)
        if {"noisy_dm", "random"} <= have:
            out.append(Claim(f"tad.g.dm_distils.{tag}", "gate", f"{head}: noisy-label DM beats a random subset of the "
                             "same noisy data", at("noisy_dm"), at("random"), margin=m, setting=head))
            gate = (f"tad.g.dm_distils.{tag}",)
        gate += trust
        if {"noisy_dm", "tad"} <= have:
            out.append(Claim(f"tad.h.beats_dm.{tag}", "headline", f"{head}: C1, part 1: DM + TAD beats noisy-label DM",
                             at("tad"), at("noisy_dm"), margin=m, gates=gate, setting=head, paper=paper,
                             paper_value="no number available", control=f"tad.h.beats_filter.{tag}"
                             if "filter_dm" in have else ""))
        if {"noisy_dm", "tad", "clean_dm"} <= have:
            out.append(Claim(f"tad.h.half_gap.{tag}", "headline", f"{head}: C1, part 2: TAD closes at least half of the "
                             "gap from noisy-label to clean-label DM ((TAD − noisy) − ½ (clean − noisy))",
                             Contrast(at("tad"), at("noisy_dm")), Contrast(at("clean_dm"), at("noisy_dm"), 0.5),
                             margin=0.0, gates=gate, setting=head, paper=paper, paper_value="no number available"))
        if {"filter_dm", "tad"} <= have:           # the control a reviewer asks for first, judged as a headline
            out.append(Claim(f"tad.h.beats_filter.{tag}", "headline", f"{head}: TAD beats clean-first-then-distill "
                             "(DM on one class-wise split of the warmed-up trust network, no recall)", at("tad"),
                             at("filter_dm"), margin=m, gates=gate, setting=head))
        for other, cid, level, text in (
                ("two_stage", "rounds", "supporting", f"C3, {cfg.rounds} rounds beat one (two-stage)"),
                ("tad_outer", "inner_loop", "supporting", "the inner loop's recall helps (TAD over the outer loop only)"),
                ("clean_lowloss_init", "selection", "control", "TAD beats clean-label DM on every image started from "
                 "TAD's low-loss images (if this fails, selection rather than correction carries TAD)")):
            if {other, "tad"} <= have:
                out.append(Claim(f"tad.{level[0]}.{cid}.{tag}", level, f"{head}: {text}", at("tad"), at(other), margin=m,
                                 gates=gate, setting=head))
        if {"clean_trusted", "tad"} <= have:
            out.append(Claim(f"tad.c.labels_as_good.{tag}", "control", f"{head}: TAD's labels are as good as the true "
                             "labels of the images it trusts (TAD and clean-label DM on TAD's trusted images within "
                             f"±{m:g})", at("tad"), at("clean_trusted"), kind="equivalence", margin=m, gates=gate,
                             setting=head))
        if "tad" in have:                         # C2, on the trust records of the notebook's dual loop
            tr = lambda what="trust": Arm(what, study="trust", setting={"noise": kind, "rate": rate})
            out += [Claim(f"tad.s.c2_precision.{tag}", "supporting", f"{head}: C2, the trusted space of round 1 is at "
                          "least 90 % correctly labelled", tr(), 90.0, metric="round1_precision", margin=0.0,
                          gates=trust, setting=head),
                    Claim(f"tad.s.c2_keeps_precision.{tag}", "supporting", f"{head}: C2, the trusted space's precision "
                          f"falls by at most 2 points from round 1 to round {cfg.rounds} (the effect is 2 − the fall)",
                          2.0, tr(), metric="precision_fall", margin=0.0, gates=trust, setting=head),
                    Claim(f"tad.s.c2_recall_right.{tag}", "supporting", f"{head}: C2, at least 80 % of the labels the "
                          "inner loop recalls are right (over every round's recalls)", tr("trust_recall"), 80.0,
                          metric="recalled_right", margin=0.0, gates=trust, setting=head)]
        for a, b, cid, text in (("tad_ours", "tad", "ours_vs_paper", "our loop (revert, recall threshold on a labelled "
                                 "hold-out) beats the paper's loop"),
                                ("tad_ours", "filter_dm", "ours_vs_filter", "our loop beats the filter")):
            if {a, b} <= have:
                out.append(Claim(f"tad.d.{cid}.{tag}", "diagnostic", f"{head}: {text}", at(a), at(b), margin=m,
                                 gates=gate, setting=head))
    sweep = [("symmetric", r) for r in cfg.sweep_rates if ["symmetric", r] not in [list(s) for s in cfg.noise_settings]]
    sweep += [(f"cifar10n_{k}", 0.0) for k in cfg.real_noise]
    for kind, rate in sweep:
        at = lambda method: Arm(method, study="sweep", setting={"noise": kind, "rate": rate})
        head, tag, real = label((kind, rate)), f"{kind}.{rate:g}", kind.startswith("cifar10n")
        trust = ()
        if cfg.trust_gate > 0 and set(cfg.sweep_methods) & TRUSTING:
            out.append(trust_gate(cfg, kind, rate, head, tag))
            trust = (f"tad.g.trust_learns.{tag}",)
        for a, b in (("tad", "noisy_dm"), ("tad", "filter_dm"), ("tad_ours", "filter_dm")):
            if {a, b} <= set(cfg.sweep_methods):
                h = real and (a, b) == ("tad", "noisy_dm")
                out.append(Claim(f"tad.{'h' if h else 's'}.sweep.{a}_vs_{b}.{tag}", "headline" if h else "supporting",
                                 f"sweep, {head}: {a} beats {b}", at(a), at(b), margin=m, setting=head, gates=trust,
                                 paper=paper if h else "", paper_value="no number available" if h else ""))
    if cfg.ablation_consistency and cfg.noise_settings:
        kind, rate = cfg.noise_settings[0]
        out.append(Claim("tad.s.consistency", "supporting", f"the consistency term helps ({label((kind, rate))}, seeds "
                         f"{cfg.ablation_seeds})", Arm("tad", study="main", setting={"noise": kind, "rate": rate}),
                         Arm("tad_no_consistency", study="ablation", setting={"noise": kind, "rate": rate}), margin=m,
                         setting=label((kind, rate)), gates=(f"tad.g.trust_learns.{kind}.{rate:g}",)
                         if cfg.trust_gate > 0 and "tad" in have else ()))
    return out
