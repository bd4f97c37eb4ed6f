"""TAD: trust-aware diversion for dataset distillation from mislabeled data (Wu et al., arXiv 2502.05027).

The paper's body is not public; this module follows the chapter spec's reconstruction (``[R]`` there), with
every choice a parameter. A *trust network* is warmed up on the noisy labels, then ``rounds`` times:

* **outer loop** (:func:`trust_split`): a two-component 1-D Gaussian mixture on each class's per-sample losses
  splits the data into a trusted space T (posterior of the low-loss component > ``tau``) and an untrusted
  space U; distillation is later *diverted* to T;
* **inner loop** (:func:`recalibrate`): each untrusted sample's penultimate feature is scored against the
  class anchors of T (Mahalanobis posterior, cosine similarity, the network's own prediction); samples on
  which the tests agree get the agreed label and are *recalled* into T;
* the trust network then trains on T (cross-entropy on the current labels) plus a consistency term on U
  (two augmentations of an untrusted image should get the same prediction), and the next round refits the
  mixtures on its losses.

:func:`trust_aware_diversion` runs the loop and returns, per round, the trusted mask and the current labels,
with diagnostics against the hidden true labels when they are given (never used by the method).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..augment import crop_flip
from ..cache import cached
from ..models import get_model
from ..train import cached_net, fit
from ..versions import key_versions, producer

SPLITS = ("classwise", "global", "small_loss")
NOISY_TESTS = ("none", "ashman", "bic")
RELIABILITY_TESTS = ("mahalanobis", "cosine", "model", "confidence")


# ---------------------------------------------------------------------------------------- outer loop
def fit_gmm_1d(x: torch.Tensor, max_iter: int = 10, tol: float = 1e-2, reg_covar: float = 5e-4):
    """EM for a two-component Gaussian mixture on the values ``x`` (1-D).

    Returns ``(means, variances, weights, posterior_low)``, where ``posterior_low`` is each value's posterior
    of the component with the smaller mean. Defaults are DivideMix's (``max_iter`` 10, ``tol`` 1e-2,
    ``reg_covar`` 5e-4); the components start from the lower and upper halves of the sorted values.
    """
    x = x.double().flatten()
    s = x.sort().values
    half = len(s) // 2
    mu = torch.stack([s[:half].mean(), s[half:].mean()])
    var = torch.stack([s[:half].var(unbiased=False), s[half:].var(unbiased=False)]) + reg_covar
    pi = torch.tensor([0.5, 0.5], dtype=torch.float64)
    prev = None
    for _ in range(max_iter):
        logp = -0.5 * ((x[:, None] - mu) ** 2 / var + var.log() + torch.log(torch.tensor(2 * torch.pi))) + pi.log()
        ll = torch.logsumexp(logp, 1)
        resp = (logp - ll[:, None]).exp()
        nk = resp.sum(0).clamp_min(1e-10)
        pi = nk / len(x)
        mu = (resp * x[:, None]).sum(0) / nk
        var = (resp * (x[:, None] - mu) ** 2).sum(0) / nk + reg_covar
        mean_ll = float(ll.mean())
        if prev is not None and abs(mean_ll - prev) < tol:
            break
        prev = mean_ll
    logp = -0.5 * ((x[:, None] - mu) ** 2 / var + var.log()) + pi.log()
    resp = torch.softmax(logp, 1)
    low = int(mu.argmin())
    return mu, var, pi, resp[:, low].float()


def _minmax(v: torch.Tensor) -> torch.Tensor:
    span = v.max() - v.min()
    return (v - v.min()) / span if span > 0 else torch.zeros_like(v)


def has_noisy_component(values: torch.Tensor, test: str = "ashman", ashman_d: float = 2.0, **gmm) -> bool:
    """Whether one class's (normalised) losses hold a separate high-loss component at all.

    ``ashman``: the two fitted components are apart by Ashman's D = sqrt(2) |mu1 - mu2| / sqrt(var1 + var2) >
    ``ashman_d`` (2 is the usual bar for a clean separation); ``bic``: two components have a lower BIC than one;
    ``none``: always (the mixture is fitted whatever the losses look like)."""
    if test not in NOISY_TESTS:
        raise ValueError(f"noisy-component test {test!r}: expected one of {list(NOISY_TESTS)}")
    if test == "none":
        return True
    mu, var, pi, _ = fit_gmm_1d(values, **gmm)
    if test == "ashman":
        return float(2 ** 0.5 * (mu[0] - mu[1]).abs() / (var.sum()).sqrt()) > ashman_d
    x = values.double().flatten()
    n, reg = len(x), gmm.get("reg_covar", 5e-4)
    ll1 = float(-0.5 * ((x - x.mean()) ** 2 / (x.var(unbiased=False) + reg) + (x.var(unbiased=False) + reg).log()
                        + torch.log(torch.tensor(2 * torch.pi))).sum())
    comp = -0.5 * ((x[:, None] - mu) ** 2 / var + var.log() + torch.log(torch.tensor(2 * torch.pi))) + pi.log()
    ll2 = float(torch.logsumexp(comp, 1).sum())
    log_n = math.log(n)
    return -2 * ll2 + 5 * log_n < -2 * ll1 + 2 * log_n              # 5 free parameters against 2


def trust_split(losses: torch.Tensor, labels: torch.Tensor, num_classes: int, tau: float = 0.5,
                mode: str = "classwise", keep_ratio: float = 0.5, noisy_test: str = "none",
                **gmm) -> tuple[torch.Tensor, torch.Tensor]:
    """Split samples into trusted / untrusted from their per-sample losses.

    ``mode``: ``classwise`` (one mixture per class, on losses min-max normalised within the class: TAD's
    class-wise dynamic GMM as reconstructed), ``global`` (one mixture over all samples, DivideMix) or
    ``small_loss`` (keep the ``keep_ratio`` lowest-loss samples of each class; no mixture). With ``classwise``,
    ``noisy_test`` (:func:`has_noisy_component`) first asks whether a class has a noisy component at all; a
    class without one is trusted whole (the paper's loop fits two components in every class). Returns
    ``(trusted, clean_probability)``: a boolean mask and the posterior of the low-loss component (for
    ``small_loss``, 1 for kept samples and 0 otherwise).
    """
    if mode not in SPLITS:
        raise ValueError(f"trust split mode {mode!r}: expected one of {list(SPLITS)}")
    prob = torch.zeros(len(losses))
    if mode == "global":
        prob = fit_gmm_1d(_minmax(losses), **gmm)[3]
    else:
        for c in range(num_classes):
            pos = (labels == c).nonzero().flatten()
            if len(pos) == 0:
                continue
            if mode == "small_loss":
                keep = pos[losses[pos].argsort()[:max(1, round(keep_ratio * len(pos)))]]
                prob[keep] = 1.0
            elif len(pos) < 4 or not has_noisy_component(_minmax(losses[pos]), noisy_test, **gmm):
                prob[pos] = 1.0                  # too few to fit two components, or no noisy component: trust them
            else:
                prob[pos] = fit_gmm_1d(_minmax(losses[pos]), **gmm)[3]
    return prob > tau, prob


# ---------------------------------------------------------------------------------------- inner loop
COVARIANCES = ("pooled", "classwise")


def class_anchors(z: torch.Tensor, labels: torch.Tensor, trusted: torch.Tensor, num_classes: int,
                  covariance: str = "pooled"):
    """Anchors (trusted class means of the features), the within-class covariance over T (``pooled``: one
    (d, d) matrix, LDA-style; ``classwise``: one per class, (C, d, d), zero for a class without trusted samples),
    and which classes have at least one trusted sample."""
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance {covariance!r} is not allowed: expected one of {list(COVARIANCES)}")
    zt, yt = z[trusted], labels[trusted]
    counts = torch.bincount(yt, minlength=num_classes)
    mu = torch.zeros(num_classes, z.shape[1], dtype=z.dtype).index_add_(0, yt, zt) / counts.clamp_min(1)[:, None]
    centred = zt - mu[yt]
    if covariance == "pooled":
        cov = centred.T @ centred / max(1, len(zt) - int((counts > 0).sum()))
    else:
        cov = torch.stack([centred[yt == k].T @ centred[yt == k] / max(1, int(counts[k]) - 1)
                           for k in range(num_classes)])
    return mu, cov, counts > 0


def _shrunk(cov: torch.Tensor, shrinkage: float) -> torch.Tensor:
    """``cov + (shrinkage * tr(cov) / d + 1e-12) I`` for one (d, d) matrix or a stack of them."""
    d = cov.shape[-1]
    tr = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)
    eye = torch.eye(d, dtype=cov.dtype)
    return cov + (shrinkage * tr / d + 1e-12)[..., None, None] * eye


def recalibrate(z: torch.Tensor, labels: torch.Tensor, trusted: torch.Tensor, num_classes: int,
                model_logits: torch.Tensor | None = None, delta: float = 0.9,
                tests: tuple[str, ...] = ("mahalanobis", "cosine", "model"), shrinkage: float = 1e-3,
                covariance: str = "pooled"):
    """Relabel the reliable untrusted samples and recall them into the trusted space (hard labels: the spec's
    soft-label option, the posterior as a recalled sample's label, is not built).

    ``z``: features (L2-normalised here). For each untrusted sample u the candidate label is
    ``k* = argmin_k d_M(z_u, mu_k)`` (Mahalanobis distance to the trusted class anchors under the pooled
    within-class covariance, shrunk by ``shrinkage * tr(Sigma) / d``; with ``covariance="classwise"`` each class
    has its own shrunk covariance and the score is the Gaussian one, ``d_M,k + log det Sigma_k``). ``tests`` must
    all hold: ``mahalanobis`` (posterior ``softmax(-score / 2)`` of k* >= ``delta``), ``cosine`` (the nearest anchor
    by cosine similarity is k*), ``model`` (the trust network predicts k*), ``confidence`` (the network's softmax
    probability of k* >= ``delta``; alone, the plain confidence-threshold baseline).

    Returns ``(new_labels, recalled, posterior)``: labels with the recalled samples set to k*, the mask of
    recalled samples, and the Mahalanobis posteriors (N, C) of the untrusted samples (zero rows for the trusted).
    """
    unknown = set(tests) - set(RELIABILITY_TESTS)
    if unknown or not tests:
        raise ValueError(f"reliability tests {tests!r}: expected a non-empty subset of {list(RELIABILITY_TESTS)}")
    z = F.normalize(z.double(), dim=1)
    new = labels.clone()
    untrusted = ~trusted
    post = torch.zeros(len(z), num_classes, dtype=torch.float64)
    if not untrusted.any() or not trusted.any():
        return new, torch.zeros(len(z), dtype=torch.bool), post.float()
    mu, cov, present = class_anchors(z, labels, trusted, num_classes, covariance)
    cov = _shrunk(cov, shrinkage)
    zu = z[untrusted]
    if covariance == "pooled":
        prec = torch.linalg.inv(cov)
        # d_M(z, mu_k) = z'Pz - 2 z'P mu_k + mu_k'P mu_k, without a (U, C, d) tensor
        zp = zu @ prec
        dist = (zp * zu).sum(1, keepdim=True) - 2 * zp @ mu.T + ((mu @ prec) * mu).sum(1)[None]
    else:
        dist = torch.full((len(zu), num_classes), float("inf"), dtype=z.dtype)
        for k in present.nonzero().flatten().tolist():
            chol = torch.linalg.cholesky(cov[k])
            sol = torch.cholesky_solve((zu - mu[k]).T, chol)                  # Sigma_k^-1 (z - mu_k)
            logdet = 2 * torch.log(torch.diagonal(chol)).sum()
            dist[:, k] = ((zu - mu[k]) * sol.T).sum(1) + logdet
    dist[:, ~present] = float("inf")
    post_u = torch.softmax(-dist / 2, 1)
    k = dist.argmin(1)
    ok = torch.ones(len(zu), dtype=torch.bool)
    if "mahalanobis" in tests:
        ok &= post_u.gather(1, k[:, None]).flatten() >= delta
    if "cosine" in tests:
        cos = zu @ F.normalize(mu, dim=1).T
        cos[:, ~present] = -float("inf")
        ok &= cos.argmax(1) == k
    if "model" in tests or "confidence" in tests:
        if model_logits is None:
            raise ValueError("the 'model' and 'confidence' tests need model_logits")
        lu = model_logits[untrusted]
        if "model" in tests:
            ok &= lu.argmax(1) == k
        if "confidence" in tests:
            ok &= torch.softmax(lu.double(), 1).gather(1, k[:, None]).flatten() >= delta
    idx = untrusted.nonzero().flatten()
    recalled = torch.zeros(len(z), dtype=torch.bool)
    recalled[idx[ok]] = True
    new[idx[ok]] = k[ok]
    post[idx] = post_u
    return new, recalled, post.float()


# ------------------------------------------------------------------------------------- trust network
@torch.no_grad()
def losses_features_logits(net, x: torch.Tensor, labels: torch.Tensor, device="cpu", batch: int = 1000):
    """Per-sample cross-entropy (eval mode, no augmentation), penultimate features and logits."""
    net.eval()
    feats, logits = [], []
    for i in range(0, len(x), batch):
        f = net.embed(x[i:i + batch].to(device))
        feats.append(f.float().cpu())
        logits.append(net.classifier(f).float().cpu())
    logits = torch.cat(logits)
    return F.cross_entropy(logits, labels, reduction="none"), torch.cat(feats), logits


def consistency_loss(net, xu: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Squared difference of the softmax outputs on two augmentations of the untrusted images."""
    pad = max(1, xu.shape[-1] // 8)
    p1 = torch.softmax(net(crop_flip(xu, pad, gen)), 1)
    p2 = torch.softmax(net(crop_flip(xu, pad, gen)), 1)
    return ((p1 - p2) ** 2).sum(1).mean()


def train_trust_net(net, x: torch.Tensor, labels: torch.Tensor, trusted: torch.Tensor | None, epochs: int,
                    lr: float = 0.01, batch: int = 256, lambda_cons: float = 0.0, ramp_epochs: int = 0,
                    gen: torch.Generator | None = None, device="cpu", desc: str = "trust net"):
    """SGD (momentum 0.9, wd 5e-4, constant lr) with crop/flip: cross-entropy on the trusted samples (all when
    ``trusted`` is None) plus ``lambda_cons`` times the consistency loss on an equal-sized batch of untrusted
    samples, ramped up linearly over the first ``ramp_epochs`` epochs."""
    gen = gen or torch.Generator().manual_seed(0)
    t_idx = torch.arange(len(x)) if trusted is None else trusted.nonzero().flatten()
    u_idx = torch.zeros(0, dtype=torch.long) if trusted is None else (~trusted).nonzero().flatten()
    if len(t_idx) > 1 and len(t_idx) % batch == 1:      # no last batch of one image (BatchNorm cannot train on it)
        batch += 1

    def step_loss(net, xb, yb, b):
        loss = F.cross_entropy(net(xb), yb)
        lam = lambda_cons * (min(1.0, (b.epoch + 1) / ramp_epochs) if ramp_epochs else 1.0)
        if lam > 0 and len(u_idx):
            ub = u_idx[torch.randint(len(u_idx), (min(batch, len(u_idx)),), generator=b.gen)]
            loss = loss + lam * consistency_loss(net, x[ub].to(xb.device), b.gen)
        return loss
    return fit(net, x, labels, step_loss, epochs=epochs, batch=batch, lr=lr, schedule="constant", aug="cropflip",
               seed=None, gen=gen, index=t_idx, device=device, desc=desc)


# ------------------------------------------------------------------------------------------- driver
@dataclass
class TADSettings:
    """Every knob of the dual loop (defaults: the spec's reconstruction, section 1.4)."""
    rounds: int = 3
    epochs_per_round: int = 2
    tau: float = 0.5
    split: str = "classwise"
    keep_ratio: float = 0.5                 # small_loss split only
    recall: bool = True                     # False: outer loop only (filter, no relabeling)
    noisy_test: str = "none"                # per-class test for a noisy component before splitting (our variant)
    revert: bool = False                    # each round starts from the noisy labels: a recall must be re-earned
    delta_grid: tuple = ()                  # with a labelled hold-out: delta chosen per round from these (our variant)
    delta: float = 0.9
    tests: tuple = ("mahalanobis", "cosine", "model")
    shrinkage: float = 1e-3
    covariance: str = "pooled"              # or "classwise" (the spec's ablation)
    lambda_cons: float = 1.0
    lr: float = 0.01
    batch: int = 256


@dataclass
class RoundState:
    round: int
    split_trusted: torch.Tensor             # T from the mixtures, before recall
    trusted: torch.Tensor                   # T after recall: what distillation sees
    labels: torch.Tensor                    # current labels y_hat
    recalled: torch.Tensor
    diagnostics: dict = field(default_factory=dict)


def trust_diagnostics(trusted, labels, recalled, noisy, clean, num_classes: int) -> dict:
    """How good a trusted space is, against the hidden true labels (diagnostics only)."""
    correct = labels == clean
    clean_obs = noisy == clean
    n_rec = int(recalled.sum())
    per_class_prec = [float(correct[trusted & (labels == c)].float().mean()) if (trusted & (labels == c)).any()
                      else float("nan") for c in range(num_classes)]
    return {"coverage": float(trusted.float().mean()),
            "trusted": int(trusted.sum()),
            "precision": float(correct[trusted].float().mean()) if trusted.any() else float("nan"),
            "recall_clean": float((trusted & clean_obs).sum() / clean_obs.sum().clamp_min(1)),
            "recalled": n_rec,
            "recalled_acc": float(correct[recalled].float().mean()) if n_rec else float("nan"),
            "recalled_noisy_acc": float(clean_obs[recalled].float().mean()) if n_rec else float("nan"),
            "label_acc_all": float(correct.float().mean()),
            "per_class_precision": per_class_prec}


def choose_delta(z, labels, split, num_classes, logits, settings: TADSettings, holdout: torch.Tensor,
                 holdout_labels: torch.Tensor) -> float | None:
    """The recall threshold of one round, chosen on a labelled hold-out (positions ``holdout`` of the data, with
    their true labels): the smallest delta of ``settings.delta_grid`` whose recalls on the hold-out are at least
    as often right as the labels the split trusts there, so that recalling cannot lower the trusted space's
    precision; None (recall nothing) when no delta qualifies or the hold-out has no trusted or recalled sample."""
    return _choose_delta(z, labels, split, num_classes, logits, settings, holdout, holdout_labels)[0]


def _choose_delta(z, labels, split, num_classes, logits, settings, holdout, holdout_labels):
    """:func:`choose_delta`'s delta and the :func:`recalibrate` result at it (None, None when none qualifies)."""
    true = torch.full_like(labels, -1)
    true[holdout] = holdout_labels
    in_h = true >= 0
    trusted_h = split & in_h
    if not trusted_h.any():
        return None, None
    precision = float((labels[trusted_h] == true[trusted_h]).float().mean())
    for delta in sorted(settings.delta_grid):
        out = recalibrate(z, labels, split, num_classes, logits, delta, tuple(settings.tests), settings.shrinkage,
                          settings.covariance)
        new, recalled, _ = out
        rec_h = recalled & in_h
        if rec_h.any() and float((new[rec_h] == true[rec_h]).float().mean()) >= precision:
            return delta, out
    return None, None


def trust_aware_diversion(net, x: torch.Tensor, noisy_labels: torch.Tensor, num_classes: int,
                          settings: TADSettings, seed: int = 0, device="cpu",
                          clean_labels: torch.Tensor | None = None, holdout: torch.Tensor | None = None,
                          holdout_labels: torch.Tensor | None = None) -> list[RoundState]:
    """Run TAD's dual loop from a warmed-up trust network ``net`` on normalised images ``x``.

    Round r: losses of the current labels -> :func:`trust_split` -> :func:`recalibrate` (when
    ``settings.recall``) -> record the state -> unless it is the last round, train the net on T with the
    consistency term on U for ``epochs_per_round`` epochs. The state of round r is what distillation with
    ``R = r`` rounds sees, so one run yields every R up to ``settings.rounds``. ``clean_labels`` only feed the
    diagnostics. Our variant's knobs: ``settings.noisy_test`` (a class without a noisy component is trusted
    whole), ``settings.revert`` (each round starts from the noisy labels) and, with ``holdout`` positions and
    their true ``holdout_labels`` (a small labelled validation part), ``settings.delta_grid`` (the recall
    threshold of each round chosen by :func:`choose_delta`).
    """
    gen = torch.Generator().manual_seed(seed)
    labels = noisy_labels.clone()
    states = []
    for r in range(1, settings.rounds + 1):
        if settings.revert:
            labels = noisy_labels.clone()
        loss, z, logits = losses_features_logits(net, x, labels, device)
        split, _ = trust_split(loss, labels, num_classes, settings.tau, settings.split, settings.keep_ratio,
                               settings.noisy_test)
        trusted, recalled = split.clone(), torch.zeros(len(x), dtype=torch.bool)
        delta, out = settings.delta, None
        if settings.recall and settings.delta_grid and holdout is not None:   # the chosen delta's recall, reused
            delta, out = _choose_delta(z, labels, split, num_classes, logits, settings, holdout, holdout_labels)
        if settings.recall and delta is not None:
            labels, recalled, _ = out or recalibrate(z, labels, split, num_classes, logits, delta,
                                                     tuple(settings.tests), settings.shrinkage, settings.covariance)
            trusted = split | recalled
        state = RoundState(r, split, trusted.clone(), labels.clone(), recalled)
        if clean_labels is not None:
            state.diagnostics = trust_diagnostics(trusted, labels, recalled, noisy_labels, clean_labels, num_classes)
            state.diagnostics["split_precision"] = float((labels == clean_labels)[split].float().mean()) if split.any() else float("nan")
            state.diagnostics["delta"] = float("nan") if delta is None or not settings.recall else delta
            d = state.diagnostics
            print(f"[tad] round {r}: |T|/N {d['coverage']:.3f} precision {d['precision']:.3f} "
                  f"recall(clean) {d['recall_clean']:.3f} recalled {d['recalled']} (acc {d['recalled_acc']:.3f})",
                  flush=True)
        states.append(state)
        if r < settings.rounds:
            train_trust_net(net, x, labels, trusted, settings.epochs_per_round, settings.lr, settings.batch,
                            settings.lambda_cons, settings.epochs_per_round if r == 1 else 0, gen, device,
                            desc=f"trust net round {r}")
    return states


# ----------------------------------------------------------------------------- cached pipeline pieces
@producer("net.trust", 2, uses=("train.fit", "models", "augment", "teachers", "net.fast_teacher"))
def warmup_trust_net(data, width: int = 32, depth: int = 3, norm: str = "instancenorm", epochs: float = 5,
                     lr: float = 0.01, batch: int = 256, model: str = "convnet", seed: int = 0, device="cpu",
                     cache_root=None):
    """The trust network after ``epochs`` of cross-entropy on ``data``'s (noisy) labels; cached by configuration
    (the data fingerprint covers the images chosen and their observed labels). ``model="fastnet"``: the teachers'
    recipe's network of ``width`` (its own optimiser, batch and label smoothing; ``depth``, ``norm``, ``lr`` and
    ``batch`` unused; ``epochs`` may be fractional), the cached :func:`ltdd_utils.teachers.teacher` of those noisy
    labels; other models train whole epochs."""
    if model == "fastnet":
        from ..teachers import Recipe, teacher
        return teacher(data, epochs=epochs, objective="ce", seed=seed, recipe=Recipe(width=width), device=device,
                       cache_root=cache_root)
    if epochs != int(epochs):
        raise ValueError(f"warm-up epochs = {epochs!r}: a {model} trust network trains whole epochs (fractional ones "
                         "only with model='fastnet')")
    epochs = int(epochs)
    key = dict(data=data.fingerprint(), model=model, width=width, depth=depth, norm=norm, epochs=epochs, lr=lr,
               batch=batch)

    def train(net):
        x, y = data.tensors()
        train_trust_net(net, x, y, None, epochs, lr, batch, gen=torch.Generator().manual_seed(seed), device=device,
                        desc="trust net warm-up")

    build = lambda: get_model(model, data.shape[0], data.num_classes, data.shape[1:], width=width, depth=depth,
                              norm=norm)
    return cached_net("net.trust", build, train, key, seed=seed, device=device, cache_root=cache_root)


@producer("method.tad", 2, uses=("net.trust",))
def cached_tad(data, settings: TADSettings, warmup: dict, seed: int = 0, device="cpu", cache_root=None,
               clean_labels: torch.Tensor | None = None, holdout: torch.Tensor | None = None,
               holdout_labels: torch.Tensor | None = None, warmup_data=None) -> list[dict]:
    """:func:`trust_aware_diversion` on ``data`` from the net of ``warmup`` (keyword arguments of
    :func:`warmup_trust_net`) warmed up on ``warmup_data`` (default ``data``; e.g. the whole noisy pool that ``data``
    is a subset of), cached by configuration; one dict per round (a :class:`RoundState`'s fields). ``holdout`` /
    ``holdout_labels``: the labelled hold-out of our variant's recall threshold."""
    from dataclasses import asdict
    s = asdict(settings)
    s["tests"] = list(s["tests"])
    if s["covariance"] == "pooled":          # the default keeps the key it had before the option existed
        del s["covariance"]
    warm_on = data if warmup_data is None else warmup_data
    key = dict(data=data.fingerprint(), settings=s, warmup={k: v for k, v in warmup.items() if k != "device"},
               seed=seed, diagnostics=clean_labels is not None, versions=key_versions("method.tad"))
    if warmup_data is not None:
        key["warmup_data"] = warm_on.fingerprint()
    if holdout is not None:
        key["holdout"] = hashlib.sha1(holdout.numpy().tobytes() + holdout_labels.numpy().tobytes()).hexdigest()[:16]

    def run():
        net = warmup_trust_net(warm_on, seed=seed, device=device, cache_root=cache_root, **warmup)
        x, y = data.tensors()
        return [asdict(st) for st in trust_aware_diversion(net, x, y, data.num_classes, settings, seed, device,
                                                           clean_labels, holdout, holdout_labels)]
    return cached("tad/rounds", key, run, cache_root)
