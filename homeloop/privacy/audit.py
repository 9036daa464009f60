"""Privacy audit of an NLU training recipe: membership inference, canaries, and an empirical epsilon.

Attacks need to know which examples were trained on, and a valid lower bound on epsilon needs membership
decided at random, so the audit retrains the recipe (encoder, its settings, epochs, target epsilon) under
its own control, once per epsilon:

1. A pool of ``2 * members`` examples is drawn from the data and split at random into members (trained on)
   and non-members; ``canaries`` secrets are planted ``repeats`` times each into the members.
2. The target model trains on the members with DP-SGD at that epsilon (or without privacy for ``inf``).
3. ``shadows`` shadow models train with the same recipe on random samples of the rest of the data (never on
   the pool), and give LiRA its out-distributions.
4. Reported per epsilon: loss-threshold and LiRA AUC and TPR at 0.1% FPR, the empirical epsilon lower bound
   (the larger of the two attacks', 95% confidence) beside the accountant's epsilon (PRV and RDP), the mean
   canary exposure, the canary-extraction success (whole secret and per digit) and held-out accuracy.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from homeloop.errors import InvalidInputError
from homeloop.privacy.canaries import exposure, extract_secret, plant_canaries
from homeloop.privacy.membership import (
    attack_metrics,
    empirical_epsilon,
    lira_offline_scores,
    logit_confidence,
    loss_threshold_scores,
)

__all__ = ["AuditRow", "PrivacyAudit", "audit_privacy", "true_label_probabilities"]


def true_label_probabilities(model: Any, utterances: Sequence[Any]) -> np.ndarray:
    """The model's probability of each utterance's own intent (1e-12 for intents it never saw)."""
    probs = model.predict_proba([" ".join(u.tokens) for u in utterances])
    index = {name: i for i, name in enumerate(model.intents_)}
    return np.array([probs[i, index[u.intent]] if u.intent in index else 1e-12 for i, u in enumerate(utterances)])


@dataclass
class AuditRow:
    """The audit at one target epsilon (``inf``: no privacy)."""

    target_epsilon: float
    accountant_epsilon: float  # PRV upper bound actually spent (inf without privacy)
    accountant_epsilon_rdp: float
    delta: float
    empirical_epsilon: float  # 95%-confidence lower bound from the attacks; must not exceed the accountant's
    loss_attack: dict[str, float]
    lira_attack: dict[str, float]
    empirical_epsilon_by_attack: dict[str, float]
    canary_exposure: float  # mean over canaries, bits (max log2(10^digits))
    canary_exposure_max: float
    extraction_exact: float  # share of canaries whose whole secret was recovered
    extraction_digits: float  # share of secret digits recovered
    test_accuracy: float | None
    noise_multiplier: float | None
    max_grad_norm: float | None


@dataclass
class PrivacyAudit:
    rows: list[AuditRow]
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "rows": [asdict(r) for r in self.rows]}


def audit_privacy(
    utterances: Sequence[Any],
    *,
    epsilons: Sequence[float] = (math.inf, 8.0, 3.0, 1.0),
    test: Sequence[Any] | None = None,
    members: int = 1000,
    shadows: int = 4,
    canaries: int = 5,
    repeats: int = 8,
    digits: int = 4,
    encoder: str = "fast",
    encoder_params: dict[str, Any] | None = None,
    epochs: int = 8,
    delta: float | None = None,
    seed: int = 0,
    trainer: Callable[[Sequence[Any], int, float], tuple[Any, Any]] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> PrivacyAudit:
    """Audit the recipe at each of ``epsilons`` (see the module docstring).

    The recipe is the NLU's (``encoder``, ``encoder_params``, ``epochs``) unless
    ``trainer(examples, seed, epsilon) -> (model, PrivacyRecord | None)`` gives
    another, such as :func:`homeloop.privacy.probe.train_private_probe`; its
    model needs ``predict_proba(texts)`` and ``intents_``.
    """
    from homeloop.privacy.nlu import train_private_nlu

    data = [u for u in utterances if u.tokens]
    if members < 10 or len(data) < 3 * members:
        raise InvalidInputError(
            f"audit: expected at least 3 * members = {3 * members} utterances (members, non-members, shadow data), "
            f"got {len(data)}; lower --members"
        )
    rng = random.Random(seed)
    rng.shuffle(data)
    member_set, non_member_set, shadow_pool = data[:members], data[members : 2 * members], data[2 * members :]
    evaluated = member_set + non_member_set
    say = on_stage or (lambda _msg: None)
    rows = []
    for eps in epsilons:
        eps = float(eps)
        train, planted = plant_canaries(member_set, count=canaries, digits=digits, repeats=repeats, seed=seed)
        say(f"epsilon {eps:g}: target model on {len(train)} examples ({canaries} canaries x {repeats})")

        def fit(examples: Sequence[Any], fit_seed: int, eps: float = eps):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if trainer is not None:
                    return trainer(examples, fit_seed, eps)
                return train_private_nlu(
                    examples,
                    target_epsilon=eps,
                    delta=delta,
                    encoder=encoder,
                    encoder_params=encoder_params,
                    epochs=epochs,
                    seed=fit_seed,
                )

        target, record = fit(train, seed)
        p_target = true_label_probabilities(target, evaluated)
        shadow_conf = []
        for k in range(shadows):
            say(f"epsilon {eps:g}: shadow model {k + 1}/{shadows}")
            sample = random.Random(seed * 1000 + k + 1).sample(shadow_pool, min(len(shadow_pool), len(train)))
            shadow, _ = fit(sample, seed + 100 + k)
            shadow_conf.append(logit_confidence(true_label_probabilities(shadow, evaluated)))
        loss_scores = loss_threshold_scores(-np.log(np.clip(p_target, 1e-12, None)))
        lira_scores = lira_offline_scores(logit_confidence(p_target), np.stack(shadow_conf))
        n = members
        accountant = record.epsilon if record else math.inf
        run_delta = record.delta if record else (delta or 1.0 / len(train) ** 1.1)
        by_attack = {
            "loss_threshold": empirical_epsilon(loss_scores[:n], loss_scores[n:], delta=run_delta, seed=seed),
            "lira": empirical_epsilon(lira_scores[:n], lira_scores[n:], delta=run_delta, seed=seed),
        }
        lower = max(by_attack.values())
        if lower > accountant:
            warnings.warn(
                f"the attacks' epsilon lower bound {lower:.3f} exceeds the accountant's {accountant:.3f}: "
                "either the 5% chance of the bound came up, or the DP implementation is broken",
                RuntimeWarning,
                stacklevel=2,
            )
        say(f"epsilon {eps:g}: canaries (exposure over 10^{digits} secrets, extraction)")
        exposures = [exposure(target, c) for c in planted]
        guesses = [
            extract_secret(target, c.prefix, c.intent, digits=digits, seed=seed + i)[0] for i, c in enumerate(planted)
        ]
        exact = float(np.mean([g == c.secret for g, c in zip(guesses, planted, strict=True)]))
        per_digit = float(
            np.mean([a == b for g, c in zip(guesses, planted, strict=True) for a, b in zip(g, c.secret, strict=True)])
        )
        accuracy = None
        if test:
            probs = target.predict_proba([" ".join(u.tokens) for u in test])
            accuracy = float(
                np.mean([target.intents_[int(i)] == u.intent for i, u in zip(probs.argmax(1), test, strict=True)])
            )
        rows.append(
            AuditRow(
                target_epsilon=eps,
                accountant_epsilon=accountant,
                accountant_epsilon_rdp=record.epsilon_rdp if record else math.inf,
                delta=run_delta,
                empirical_epsilon=lower,
                loss_attack=attack_metrics(loss_scores[:n], loss_scores[n:]).as_dict(),
                lira_attack=attack_metrics(lira_scores[:n], lira_scores[n:]).as_dict(),
                empirical_epsilon_by_attack=by_attack,
                canary_exposure=float(np.mean(exposures)),
                canary_exposure_max=float(np.max(exposures)),
                extraction_exact=exact,
                extraction_digits=per_digit,
                test_accuracy=accuracy,
                noise_multiplier=record.noise_multiplier if record else None,
                max_grad_norm=record.max_grad_norm if record else None,
            )
        )
        say(f"epsilon {eps:g}: done {json.dumps(asdict(rows[-1]), default=str)}")
    settings = {
        "members": members,
        "non_members": members,
        "shadows": shadows,
        "canaries": canaries,
        "repeats": repeats,
        "digits": digits,
        "recipe": getattr(trainer, "__name__", repr(trainer)) if trainer is not None else "nlu",
        "encoder": encoder if trainer is None else None,
        "encoder_params": encoder_params if trainer is None else None,
        "epochs": epochs if trainer is None else None,
        "seed": seed,
        "chance": {"extraction_exact": 10.0**-digits, "extraction_digits": 0.1, "exposure": 1.0, "auc": 0.5},
    }
    return PrivacyAudit(rows=rows, settings=settings)
