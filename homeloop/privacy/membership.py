"""Membership inference: does a model reveal whether an example was in its training data?

- :func:`loss_threshold_scores`: the loss-threshold attack (Yeom et al. 2018): members have lower loss.
- :func:`lira_offline_scores`: the likelihood-ratio attack with shadow models (Carlini et al. 2022, LiRA),
  offline variant: shadow models trained without the examples give, per example, the distribution of the
  logit-scaled confidence ``log(p / (1 - p))`` of its true label when it is *out*; the target's confidence is
  scored by how far above that distribution it lies (a global variance when there are few shadows).
- :func:`attack_metrics`: AUC and the true-positive rate at 0.1% and 1% false-positive rate.
- :func:`empirical_epsilon`: a lower bound on epsilon that an attack proves with 95% confidence: a threshold
  picked on one half of the examples, Clopper-Pearson bounds on its TPR and FPR measured on the other half,
  and ``epsilon >= max(log((TPR - delta) / FPR), log((1 - FPR - delta) / (1 - TPR)))`` with TPR bounded from
  below and FPR from above (Jagielski et al. 2020).
  It can never exceed a correct accountant's epsilon except with the 5% chance the bound allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import beta
from sklearn.metrics import roc_auc_score, roc_curve

from homeloop.errors import InvalidInputError

__all__ = [
    "AttackMetrics",
    "attack_metrics",
    "empirical_epsilon",
    "lira_offline_scores",
    "logit_confidence",
    "loss_threshold_scores",
]


@dataclass(frozen=True)
class AttackMetrics:
    auc: float
    tpr_at_0_1_fpr: float
    tpr_at_1_fpr: float
    members: int
    non_members: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _arrays(members: Sequence[float], non_members: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    m, n = np.asarray(members, dtype=float), np.asarray(non_members, dtype=float)
    if m.size == 0 or n.size == 0:
        raise InvalidInputError(f"attack scores: expected members and non-members, got {m.size} and {n.size}")
    return m, n


def attack_metrics(member_scores: Sequence[float], non_member_scores: Sequence[float]) -> AttackMetrics:
    """ROC AUC and TPR at 0.1% / 1% FPR of scores that are higher for members."""
    m, n = _arrays(member_scores, non_member_scores)
    y = np.r_[np.ones(m.size), np.zeros(n.size)]
    s = np.r_[m, n]
    fpr, tpr, _ = roc_curve(y, s)

    def tpr_at(target: float) -> float:
        ok = fpr <= target
        return float(tpr[ok].max()) if ok.any() else 0.0

    return AttackMetrics(
        auc=float(roc_auc_score(y, s)),
        tpr_at_0_1_fpr=tpr_at(0.001),
        tpr_at_1_fpr=tpr_at(0.01),
        members=int(m.size),
        non_members=int(n.size),
    )


def loss_threshold_scores(losses: Sequence[float]) -> np.ndarray:
    """Scores of the loss-threshold attack: the negative loss (members are fit better)."""
    return -np.asarray(losses, dtype=float)


def logit_confidence(probabilities_of_true_label: Sequence[float]) -> np.ndarray:
    """``log(p / (1 - p))`` of the true label's probability, the statistic LiRA models as Gaussian."""
    p = np.clip(np.asarray(probabilities_of_true_label, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def lira_offline_scores(target_confidence: Sequence[float], shadow_out_confidences: np.ndarray) -> np.ndarray:
    """Offline LiRA: ``(phi_target - mean_out) / std_out`` per example.

    ``target_confidence``: ``[n]`` logit confidences of the target model; ``shadow_out_confidences``:
    ``[shadows, n]`` of shadow models that did not train on the examples. With fewer than 16 shadows the
    standard deviation is pooled over examples (the fixed-variance variant of Carlini et al.).
    """
    target = np.asarray(target_confidence, dtype=float)
    shadows = np.asarray(shadow_out_confidences, dtype=float)
    if shadows.ndim != 2 or shadows.shape[1] != target.size or shadows.shape[0] < 1:
        raise InvalidInputError(
            f"shadow confidences: expected shape [shadows, {target.size}], got {list(shadows.shape)}"
        )
    mean = shadows.mean(0)
    if shadows.shape[0] >= 16:
        std = shadows.std(0) + 1e-6
    else:
        std = (
            float(np.sqrt(((shadows - mean) ** 2).mean())) + 1e-6 if shadows.shape[0] > 1 else float(shadows.std() + 1)
        )
    return (target - mean) / std


def _clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    lo = 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha, k + 1, n - k))
    return lo, hi


def empirical_epsilon(
    member_scores: Sequence[float],
    non_member_scores: Sequence[float],
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    seed: int = 0,
) -> float:
    """A ``confidence``-level lower bound on epsilon from an attack's scores (see the module docstring).

    The examples are split in two at random; the threshold and direction are chosen on the first half, the
    Clopper-Pearson bounds are computed on the second (so choosing the threshold costs no confidence).
    """
    m, n = _arrays(member_scores, non_member_scores)
    rng = np.random.default_rng(seed)
    m, n = rng.permutation(m), rng.permutation(n)
    m_sel, m_eval = m[: m.size // 2], m[m.size // 2 :]
    n_sel, n_eval = n[: n.size // 2], n[n.size // 2 :]
    if min(m_sel.size, m_eval.size, n_sel.size, n_eval.size) < 1:
        return 0.0
    alpha = (1 - confidence) / 2  # two bounds (TPR and FPR) per threshold, Bonferroni

    def bound(tp: int, n_pos: int, fp: int, n_neg: int) -> float:
        # lower bounds on both likelihood ratios: TPR from below, FPR from above
        tpr_lo, _ = _clopper_pearson(tp, n_pos, alpha)
        _, fpr_hi = _clopper_pearson(fp, n_neg, alpha)
        values = [0.0]
        if tpr_lo - delta > 0 and fpr_hi > 0:
            values.append(math.log((tpr_lo - delta) / fpr_hi))
        if 1 - fpr_hi - delta > 0 and 1 - tpr_lo > 0:
            values.append(math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
        return max(values)

    thresholds = np.unique(np.r_[m_sel, n_sel])
    best_t, best_val = thresholds[0], -1.0
    for t in thresholds:  # the point estimate on the selection half decides the threshold
        tp, fp = int((m_sel >= t).sum()), int((n_sel >= t).sum())
        val = bound(tp, m_sel.size, fp, n_sel.size)
        if val > best_val:
            best_t, best_val = t, val
    tp, fp = int((m_eval >= best_t).sum()), int((n_eval >= best_t).sum())
    return bound(tp, m_eval.size, fp, n_eval.size)
