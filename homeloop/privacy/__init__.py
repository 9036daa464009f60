"""Differentially private training at nearly the cost of ordinary training, and audits of what leaks.

- :func:`make_private` wraps any model, optimizer and loader for DP-SGD (see :mod:`homeloop.privacy.engine`):
  homeloop's single-backward "bookkeeping" per-sample clipping where the layers allow it, Opacus ghost
  clipping or per-sample hooks otherwise; Poisson sampling; noise from a target epsilon (PRV accountant,
  cross-checked with RDP); clipping norm, batch size and learning rate chosen automatically.
- :func:`train_private_nlu` trains the assistant's NLU privately through its ordinary ``fit``.
- :func:`audit_privacy` retrains a recipe and attacks it: loss-threshold and LiRA membership inference,
  canary exposure and extraction, and an empirical lower bound on epsilon beside the accountant's.
- :mod:`homeloop.privacy.figures` draws the benchmarks' figures (the demo report's privacy section shows them).
"""

from homeloop.privacy.accounting import ACCOUNTANTS, EpsilonSpent, epsilon_spent, noise_multiplier_for
from homeloop.privacy.audit import AuditRow, PrivacyAudit, audit_privacy
from homeloop.privacy.canaries import Canary, exposure, extract_secret, plant_canaries
from homeloop.privacy.clipper import BookKeepingClipper
from homeloop.privacy.clipping_modes import CLIPPING_MODES
from homeloop.privacy.engine import PrivacyWarning, PrivateTraining, make_private
from homeloop.privacy.layer_checks import check_layers
from homeloop.privacy.layer_rules import LAYER_RULES
from homeloop.privacy.membership import (
    attack_metrics,
    empirical_epsilon,
    lira_offline_scores,
    loss_threshold_scores,
)
from homeloop.privacy.nlu import PrivacyRecord, per_example_joint_loss, train_private_assistant_nlu, train_private_nlu
from homeloop.privacy.sampling import PoissonLoader

__all__ = [
    "ACCOUNTANTS",
    "CLIPPING_MODES",
    "LAYER_RULES",
    "AuditRow",
    "BookKeepingClipper",
    "Canary",
    "EpsilonSpent",
    "PoissonLoader",
    "PrivacyAudit",
    "PrivacyRecord",
    "PrivacyWarning",
    "PrivateTraining",
    "attack_metrics",
    "audit_privacy",
    "check_layers",
    "empirical_epsilon",
    "epsilon_spent",
    "exposure",
    "extract_secret",
    "lira_offline_scores",
    "loss_threshold_scores",
    "make_private",
    "noise_multiplier_for",
    "per_example_joint_loss",
    "plant_canaries",
    "train_private_assistant_nlu",
    "train_private_nlu",
]
