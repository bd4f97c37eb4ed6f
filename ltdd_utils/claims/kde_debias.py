"""Chapter 04: kernel-density reweighting against bias (Cui, Wang, Xiong, Hsieh, ICML 2024). Headline, from the
abstract ([A]): on Colored MNIST with 5 % bias-conflicting images DM + KDE beats vanilla DM (23.8 → 91.5 at IPC 50) and
beats debiasing at evaluation (53.7); distillation amplifies colour and background bias and suppresses corruption
bias. The amplification index A = (acc from the unbiased source − acc from the biased source) / acc from the unbiased
source is computed from the records (:func:`derive`). The claims on KDE are gated on vanilla DM working at the
scale of the run, measured on the unbiased source (the amplification study at the first setting, the dm check at the
others); without the amplification study (AMPLIFICATION False, as the leaderboard runs the chapter) they have no
gate."""
from ..chapters.kde_debias import HEADLINE, methods_at, settings_for
from ..verdicts import Arm, Claim

# Claim 2's bar per dataset, fixed before the run: the specification's +30 points on Colored MNIST; the paper
# reports gains "very large" on BG-FMNIST and "modest" on Corrupted CIFAR-10 without numbers we could read, so
# there the claim is "DM + KDE beats DM" by CLAIM_MARGIN.
CLAIM2_BAR = {"cmnist": 30.0}
CLAIM3_BAR = 10.0           # the specification's bar: DM + KDE over DM + LfF by >= 10 points
AMPLIFICATION_MARGIN = 0.05  # amplification indices closer than this are not told apart
FULL_DATA_FLOOR = 20.0      # a full-data reference below this on conflicting test images learned only the shortcut
ALIGNED_BAR, SHARE_BAR = 90.0, 0.4   # the specification's bars on aligned-test accuracy and conflict weight share
NAMES = {"cmnist": "Colored MNIST", "bg_fmnist": "background FashionMNIST", "corrupted_cifar10": "Corrupted CIFAR-10"}
# what every seed shares, so that the spread over seeds leaves it out (shown on the claims page)
SHARED = "the biased datasets and their splits (data seed 0): the spread over seeds leaves out the draw of the data"


def claims(cfg) -> list[Claim]:
    m = cfg.claim_margin
    out = []
    for kind in cfg.datasets:
        name = NAMES.get(kind, kind)
        first = settings_for(cfg, kind)[0]
        amp = lambda method, source: Arm(method, study="amplification", ipc=first[1],
                                         setting={"bias": kind, "conflict_ratio": first[0], "source": source})
        for r, ipc in settings_for(cfg, kind):
            have = set(methods_at(cfg, r, ipc))
            at = lambda method: Arm(method, study="main", ipc=ipc, setting={"bias": kind, "conflict_ratio": r})
            head, tag = f"{name}, {r:.0%} conflicting, IPC {ipc}", f"{kind}.r{r:g}.ipc{ipc}"
            # the gate of the claims on KDE: vanilla DM works at this scale, measured on the UNBIASED source (on the
            # biased source DM losing to the random subset is part of what Claim 1 is about): at the first setting
            # in the amplification study, at the others in the dm check (on every seed)
            g = ()
            if cfg.amplification:
                chk = (amp if (r, ipc) == first else
                       lambda method, source: Arm(method, study="dm check", ipc=ipc, setting={
                           "bias": kind, "conflict_ratio": r, "source": source}))
                gid = f"kde.g.dm_distils.{kind}" if (r, ipc) == first else f"kde.g.dm_distils.{tag}"
                out.append(Claim(gid, "gate", f"{head}: vanilla DM beats a random real subset on the unbiased source "
                                 "(the base works at this scale)", chk("dm", "unbiased"), chk("random", "unbiased"),
                                 margin=m, setting=head))
                g = (gid,)
            lead = (kind, r, ipc) == HEADLINE
            if {"dm", "dm_kde"} <= have:
                bar = CLAIM2_BAR.get(kind, m)
                out += [
                    Claim(f"kde.h.beats_dm.{tag}" if lead else f"kde.s.beats_dm.{tag}", "headline" if lead else
                          "supporting", f"{head}: DM + KDE beats vanilla DM by at least {bar:g}", at("dm_kde"), at("dm"),
                          margin=bar, gates=g, setting=head, control=f"kde.d.oracle_matched.{tag}"
                          if "oracle_matched" in have else "",
                          paper="Colored MNIST, 5 % conflicting, IPC 50: DM 23.8 → DM + KDE 91.5 [A]" if lead else "",
                          paper_value="+67.7 [A]" if lead else ""),
                    Claim(f"kde.s.conflicting.{tag}", "supporting", f"{head}: DM + KDE beats vanilla DM on the "
                          "bias-conflicting test images", at("dm_kde"), at("dm"), metric="acc_conflicting", margin=m,
                          gates=g, setting=head),
                    Claim(f"kde.s.worst_class.{tag}", "supporting", f"{head}: DM + KDE beats vanilla DM on the worst "
                          "class's conflicting test images", at("dm_kde"), at("dm"),
                          metric="acc_worst_class_conflicting", margin=m, gates=g, setting=head),
                    Claim(f"kde.s.aligned_bar.{tag}", "supporting", f"{head}: DM + KDE keeps at least {ALIGNED_BAR:g} % "
                          "on the bias-aligned test images (the specification's bar; the effect is accuracy − "
                          f"{ALIGNED_BAR:g})", at("dm_kde"), ALIGNED_BAR,
                          metric="acc_aligned", margin=0.0, gates=g, setting=head),
                    Claim(f"kde.d.share_bar.{tag}", "diagnostic", f"{head}: the chosen bandwidth gives the conflicting "
                          f"images at least {SHARE_BAR:g} of the weight (the specification's bar; the effect is the share "
                          f"− {SHARE_BAR:g})", at("dm_kde"),
                          SHARE_BAR, metric="conflict_share", margin=0.0, unit="share", setting=head),
                ]
            if {"dm", "random"} <= have:       # Claim 1 on the biased source itself: does DM do worse than real images?
                out.append(Claim(f"kde.s.random_beats_dm.{tag}", "supporting", f"Claim 1, {head}: on the biased source "
                                 "a random real subset of the same size beats vanilla DM (distilling loses more to the "
                                 "bias than keeping real images)", at("random"), at("dm"), margin=m, setting=head))
            if {"dm_lff", "dm_kde"} <= have:
                # Claim 3 can fail only where the evaluation-time baseline does something: a gate, not a footnote
                helps = f"kde.g.lff_helps.{tag}"
                out += [
                    Claim(helps, "gate", f"{head}: LfF at evaluation helps vanilla DM (DM + LfF over DM), so that "
                          "reweighting the distillation has a working baseline to beat", at("dm_lff"), at("dm"),
                          margin=m, setting=head),
                    Claim(f"kde.h.beats_lff.{tag}" if lead else f"kde.s.beats_lff.{tag}", "headline" if lead else
                          "supporting", f"{head}: reweighting the distillation beats debiasing the evaluation (DM + KDE "
                          f"over DM + LfF) by at least {CLAIM3_BAR:g}", at("dm_kde"), at("dm_lff"), margin=CLAIM3_BAR,
                          gates=g + (helps,), setting=head,
                          paper="Colored MNIST, 5 % conflicting, IPC 50: DM + KDE 91.5 against \"state-of-the-art "
                          "debiasing\" 53.7 [A]" if lead else "", paper_value="+37.8 [A]" if lead else "")]
            if {"dm_kde_lff", "dm_kde"} <= have:
                out.append(Claim(f"kde.s.lff_stacks.{tag}", "supporting", f"{head}: LfF stacks on DM + KDE",
                                 at("dm_kde_lff"), at("dm_kde"), margin=m, setting=head))
            if {"dm_kde_init", "dm_kde"} <= have:
                out.append(Claim(f"kde.s.kde_init.{tag}", "supporting", f"{head}, our variant: the KDE-weighted "
                                 "initialisation improves DM + KDE", at("dm_kde_init"), at("dm_kde"), margin=m,
                                 setting=head, control=f"kde.s.dm_adds_to_kde_subset.{tag}"
                                 if "kde_subset" in have else ""))
            if {"dm_kde_init", "kde_subset"} <= have:       # the control of the variant: the start without DM
                out.append(Claim(f"kde.s.dm_adds_to_kde_subset.{tag}", "supporting", f"{head}: DM + KDE adds to its "
                                 "KDE-weighted start (DM + KDE from the KDE-weighted subset over that subset trained on "
                                 "as it is)", at("dm_kde_init"), at("kde_subset"), margin=m, gates=g, setting=head))
            if {"dm_kde", "kde_subset"} <= have:
                out.append(Claim(f"kde.d.kde_subset_vs_dm_kde.{tag}", "diagnostic", f"{head}: the KDE-weighted real "
                                 "subset alone (no distillation) beats DM + KDE", at("kde_subset"), at("dm_kde"),
                                 margin=m, setting=head))
            for o, text in (("oracle", "oracle group weights (half the mass on conflicting images)"),
                            ("oracle_matched", "oracle weights with KDE's own conflict share (if this fails, the "
                                               "share, not the choice of images, carries the gain)")):
                if {o, "dm_kde"} <= have:
                    out.append(Claim(f"kde.d.{o}.{tag}", "diagnostic", f"{head}: DM + KDE beats {text}", at("dm_kde"),
                                     at(o), margin=m, setting=head))
        if cfg.amplification:
            A = lambda method: Arm(method, study="amplification index", setting={"bias": kind})
            floor = f"kde.g.full_data_learns.{kind}"
            out.append(Claim(floor, "gate", f"{name}: the full-data reference reaches at least {FULL_DATA_FLOOR:g} % on "
                             "the conflicting test images, so it learned more than the shortcut (the effect is accuracy − "
                             f"{FULL_DATA_FLOOR:g})", amp("full data", "biased"),
                             FULL_DATA_FLOOR, metric="acc_conflicting", margin=0.0, setting=name))
            ix = dict(metric="A", margin=AMPLIFICATION_MARGIN, unit="index", gates=(floor, f"kde.g.dm_distils.{kind}"),
                      setting=name)
            paper = ("colour and background biases \"will be amplified\", corruption bias \"is suppressed\" (Section 3; "
                     "no numbers available to us) [A]")
            # A(DM) − A(full) = [A(DM) − A(random)] + [A(random) − A(full)]: what DM adds beyond keeping fewer images,
            # and what keeping fewer images alone does; for corruption bias, which the paper says is suppressed, the
            # same three differences with the sign turned
            up = kind != "corrupted_cifar10"
            verb = "amplifies" if up else "suppresses"
            side = (lambda x, y: (A(x), A(y))) if up else (lambda x, y: (A(y), A(x)))
            out += [Claim(f"kde.h.amplification.{kind}", "headline", f"{name}: distillation (DM, compression "
                          f"included) {verb} the bias: " + ("A(DM) − A(full data)" if up else "A(full data) − A(DM)"),
                          *side("dm", "full data"), paper=paper, control=f"kde.s.beyond_compression.{kind}", **ix),
                    Claim(f"kde.s.beyond_compression.{kind}", "supporting", f"{name}: DM {verb} the bias beyond "
                          "compression: " + ("A(DM) − A(random subset of the same size)" if up else
                                             "A(random subset of the same size) − A(DM)"), *side("dm", "random"), **ix),
                    Claim(f"kde.s.compression.{kind}", "supporting", f"{name}: compression alone {verb} the bias: "
                          + ("A(random subset) − A(full data)" if up else "A(full data) − A(random subset)"),
                          *side("random", "full data"), **ix)]
    return out


def derive(records, cfg) -> list[dict]:
    """The amplification index per (dataset, method, seed) as records of study ``amplification index``, metric A."""
    from ..results import to_frame
    from ..studies.kde_debias import amplification_frame
    if not cfg.amplification:
        return []
    frame = amplification_frame(to_frame(records))
    base = {k: v for k, v in records[0].items() if k not in ("setting", "metrics", "extra")} if records else {}
    return [{**base, "method": method, "seed": int(seed), "ipc": 0, "student_steps": None,
             "setting": {"study": "amplification index", "bias": bias}, "metrics": {"A": float(row["A"])}, "extra": {}}
            for (bias, method, seed), row in frame.iterrows()]
