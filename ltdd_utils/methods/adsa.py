"""ADSA: adaptive soft-label alignment for long-tailed dataset distillation (Jiang et al., NeurIPS 2025).

A teacher trained on long-tailed data with class prior pi is over-confident on head classes and
under-confident on tail classes. ADSA replaces every soft label by

    p(y | x; tau) = softmax_y( f_y(x) - tau * log pi_y )

(a post-hoc logit adjustment) with one scalar tau chosen on the distilled images themselves: the tau whose
class-mean true-class confidences ``c_i(tau) = mean_{x in D_i} p(i | x; tau)`` are most equal across
classes (smallest population std). For a Bayes teacher under label shift the bias of the soft labels is the
KL "label term" of the paper's bound, and tau = 1 removes it exactly (Menon et al.'s logit adjustment).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..versions import producer


def log_prior(class_counts) -> torch.Tensor:
    """log pi of the (long-tailed) training set the teacher saw."""
    n = torch.as_tensor(class_counts, dtype=torch.float64).clamp_min(1)
    return (n / n.sum()).log().float()


def adjusted_logits(logits: torch.Tensor, log_pi: torch.Tensor, tau: float) -> torch.Tensor:
    return logits - tau * log_pi.to(logits)


def class_confidence(logits: torch.Tensor, labels: torch.Tensor, num_classes: int, log_pi: torch.Tensor | None = None,
                     tau: float = 0.0) -> torch.Tensor:
    """Per class, the mean true-class probability of the (adjusted) soft labels: c_i(tau)."""
    p = F.softmax(adjusted_logits(logits, log_pi, tau) if log_pi is not None else logits, 1)
    true = p.gather(1, labels[:, None]).flatten()
    sums = torch.zeros(num_classes, dtype=p.dtype).index_add_(0, labels, true)
    return sums / torch.bincount(labels, minlength=num_classes).clamp_min(1).to(p)


def alignment_criterion(logits, labels, log_pi, tau: float, num_classes: int) -> float:
    """The population std over classes of c_i(tau) (ADSA's criterion, lower is better)."""
    return float(class_confidence(logits, labels, num_classes, log_pi, tau).std(unbiased=False))


@producer("method.adsa", 1)
def adaptive_soft_label_alignment(teacher_logits: torch.Tensor, labels: torch.Tensor, class_counts,
                                  taus=None) -> tuple[float, torch.Tensor, torch.Tensor]:
    """tau* from the teacher's logits on the distilled images (the chapter passes the views the students see: random
    resized crops and flips) over the grid ``taus``.

    Returns ``(tau_star, taus, criterion_values)``. The default grid is [0, 3] in steps of 0.05 (the paper's
    range is not known). Ties go to the smallest tau.
    """
    taus = torch.arange(0, 3.0001, 0.05) if taus is None else torch.as_tensor(taus, dtype=torch.float)
    lp = log_prior(class_counts)
    values = torch.tensor([alignment_criterion(teacher_logits, labels, lp, float(t), len(lp)) for t in taus])
    return float(taus[int(values.argmin())]), taus, values


def balanced_accuracy(logits, labels, num_classes: int) -> float:
    pred = logits.argmax(1)
    return float(torch.stack([(pred[labels == c] == c).float().mean() for c in range(num_classes)
                              if (labels == c).any()]).mean())


def oracle_tau(test_logits: torch.Tensor, test_labels: torch.Tensor, class_counts, taus=None) -> tuple[float, torch.Tensor]:
    """A diagnostic, not a method: the tau on the grid that maximises the balanced test accuracy of the adjusted
    teacher itself (it reads the test labels)."""
    taus = torch.arange(0, 3.0001, 0.05) if taus is None else torch.as_tensor(taus, dtype=torch.float)
    lp = log_prior(class_counts)
    acc = torch.tensor([balanced_accuracy(adjusted_logits(test_logits, lp, float(t)), test_labels, len(lp))
                        for t in taus])
    return float(taus[int(acc.argmax())]), acc


def label_term_kl(reference_logits: torch.Tensor, soft_logits: torch.Tensor) -> float:
    """E_x KL(p_ref(.|x) || p_soft(.|x)): the label term of the bound, with a reference labeller (e.g. a teacher
    trained on balanced data) standing in for the test posterior."""
    return float(F.kl_div(F.log_softmax(soft_logits, 1), F.log_softmax(reference_logits, 1), log_target=True,
                          reduction="batchmean"))


def rank_slope(values) -> float:
    """Least-squares slope of ``values`` (one per class, in tail-rank order, head first) against the rank:
    negative when the head classes have the larger values."""
    v = torch.as_tensor(values, dtype=torch.float64)
    r = torch.arange(len(v), dtype=torch.float64)
    r = r - r.mean()
    return float((r * (v - v.mean())).sum() / (r * r).sum())


def gaussian_kl(p_feats: torch.Tensor, q_feats: torch.Tensor, dims: int = 16, shrinkage: float = 0.1) -> float:
    """KL(N_p || N_q) between Gaussians fitted to two feature sets, in the top ``dims`` principal directions of
    ``p_feats`` (the reference, e.g. test-set features): an estimate of the bound's image term
    KL(p_te(x) || p_dd(x)). Both covariances are shrunk by ``shrinkage`` towards their diagonal (a distilled set
    has about as many images as dimensions). Zero for identical sets, positive otherwise."""
    p, q = p_feats.double().flatten(1), q_feats.double().flatten(1)
    mu = p.mean(0)
    k = min(dims, p.shape[1], len(p) - 1)
    basis = torch.linalg.svd(p - mu, full_matrices=False).Vh[:k].T
    a, b = (p - mu) @ basis, (q - mu) @ basis

    def fit(z):
        c = torch.cov(z.T).reshape(k, k) if len(z) > 1 else torch.zeros(k, k, dtype=z.dtype)
        c = (1 - shrinkage) * c + shrinkage * torch.diag(torch.diag(c))
        return z.mean(0), c + 1e-6 * torch.eye(k, dtype=z.dtype)
    (m_p, c_p), (m_q, c_q) = fit(a), fit(b)
    inv_q, d = torch.linalg.inv(c_q), m_q - m_p
    kl = 0.5 * (torch.trace(inv_q @ c_p) + d @ inv_q @ d - k + torch.logdet(c_q) - torch.logdet(c_p))
    return float(kl)
