"""Privacy accounting for DP-SGD: target epsilon -> noise multiplier, and epsilon spent, cross-checked.

DP-SGD with Poisson sampling is a composition of subsampled Gaussian
mechanisms, each described by ``(noise_multiplier, sample_rate, steps)``. A
training run's *history* is a list of such entries (the private clipping-norm
calibration adds one, training adds one). Epsilon is computed by Opacus's
accountants, from the registry :data:`ACCOUNTANTS`:

- ``"prv"``: privacy loss random variables (Gopi et al. 2021), numerically tight;
  homeloop calibrates the noise with it and reports its upper bound;
- ``"rdp"``: Rényi DP (Mironov 2017), a looser upper bound, kept as a cross-check:
  PRV must never exceed RDP by more than its own error bound; if it does the
  numbers are not trusted and :func:`epsilon_spent` says so.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from homeloop.errors import InvalidInputError, PrivacyBudgetError

__all__ = [
    "ACCOUNTANTS",
    "EpsilonSpent",
    "Mechanism",
    "check_delta",
    "epsilon_spent",
    "noise_multiplier_for",
]

#: a subsampled Gaussian mechanism run ``steps`` times: (noise multiplier, sample rate, steps)
Mechanism = tuple[float, float, int]

#: the largest noise multiplier homeloop will train with: beyond it the gradient drowns in noise
MAX_NOISE_MULTIPLIER = 50.0


def _opacus_epsilon(mechanism: str) -> Callable[[Sequence[Mechanism], float], float]:
    def epsilon(history: Sequence[Mechanism], delta: float) -> float:
        from opacus.accountants import create_accountant

        accountant = create_accountant(mechanism=mechanism)
        accountant.history = [(float(s), float(q), int(n)) for s, q, n in history if n > 0]
        if not accountant.history:
            return 0.0
        if mechanism == "prv" and min(s for s, _, _ in accountant.history) < MIN_PRV_NOISE:
            accountant = create_accountant(mechanism="rdp")  # PRV's grid explodes at tiny noise: RDP bound
            accountant.history = [(float(s), float(q), int(n)) for s, q, n in history if n > 0]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # Opacus's notes on the range of RDP orders
            return float(accountant.get_epsilon(delta=delta))

    return epsilon


#: epsilon of a history at a delta, by accountant name (Opacus ``accountants/registry.py`` names)
ACCOUNTANTS: dict[str, Callable[[Sequence[Mechanism], float], float]] = {
    "prv": _opacus_epsilon("prv"),
    "rdp": _opacus_epsilon("rdp"),
}


def _accountant(name: str) -> Callable[[Sequence[Mechanism], float], float]:
    try:
        return ACCOUNTANTS[name]
    except KeyError:
        raise InvalidInputError(f"accountant {name!r}: expected one of {sorted(ACCOUNTANTS)}") from None


@dataclass(frozen=True)
class EpsilonSpent:
    """Epsilon of a history at ``delta`` from the main accountant, with the RDP cross-check beside it."""

    epsilon: float
    delta: float
    accountant: str
    epsilon_rdp: float
    steps: int
    consistent: bool  # the main accountant's epsilon does not exceed RDP's (beyond numerical error)


def epsilon_spent(history: Sequence[Mechanism], delta: float, *, accountant: str = "prv") -> EpsilonSpent:
    """Epsilon of ``history`` at ``delta``, from ``accountant`` and from RDP (the cross-check)."""
    check_delta(delta)
    main = _accountant(accountant)(history, delta)
    rdp = ACCOUNTANTS["rdp"](history, delta)
    consistent = main <= rdp * 1.01 + 0.02
    if not consistent:
        warnings.warn(
            f"privacy accounting disagrees: {accountant} gives epsilon {main:.3f} above RDP's upper bound "
            f"{rdp:.3f}; report the RDP figure",
            RuntimeWarning,
            stacklevel=2,
        )
    return EpsilonSpent(
        epsilon=main,
        delta=delta,
        accountant=accountant,
        epsilon_rdp=rdp,
        steps=sum(int(n) for _, _, n in history),
        consistent=consistent,
    )


def check_delta(delta: float) -> None:
    """Raise :class:`~homeloop.errors.InvalidInputError` unless ``delta`` is a number in (0, 1)."""
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise InvalidInputError(f"delta: expected a number in (0, 1), got {delta!r}")


def noise_multiplier_for(
    target_epsilon: float,
    delta: float,
    *,
    sample_rate: float,
    steps: int,
    prior: Sequence[Mechanism] = (),
    accountant: str = "prv",
    tolerance: float = 0.01,
    max_noise_multiplier: float = MAX_NOISE_MULTIPLIER,
) -> float:
    """The smallest noise multiplier for which ``prior`` plus ``steps`` steps at ``sample_rate`` spend at most
    ``target_epsilon`` at ``delta`` (bisection on ``accountant``).

    Raises :class:`~homeloop.errors.PrivacyBudgetError` before any training when the
    target cannot be met: the ``prior`` mechanisms alone spend it, or the noise needed
    exceeds ``max_noise_multiplier`` (the updates would be mostly noise).
    """
    return _noise_multiplier_for(
        float(target_epsilon) if isinstance(target_epsilon, (int, float)) else target_epsilon,
        float(delta) if isinstance(delta, (int, float)) else delta,
        float(sample_rate),
        int(steps),
        tuple(tuple(m) for m in prior),
        accountant,
        float(tolerance),
        float(max_noise_multiplier),
    )


@functools.lru_cache(maxsize=256)
def _noise_multiplier_for(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    prior: tuple[Mechanism, ...],
    accountant: str,
    tolerance: float,
    max_noise_multiplier: float,
) -> float:
    """:func:`noise_multiplier_for`, cached (audits and sweeps ask for the same settings many times)."""
    if not (isinstance(target_epsilon, (int, float)) and math.isfinite(target_epsilon) and target_epsilon > 0):
        raise InvalidInputError(f"target_epsilon: expected a positive finite number, got {target_epsilon!r}")
    check_delta(delta)
    if not 0 < sample_rate <= 1:
        raise InvalidInputError(f"sample_rate: expected a number in (0, 1], got {sample_rate!r}")
    if steps < 1:
        raise InvalidInputError(f"steps: expected at least 1 training step, got {steps!r}")
    epsilon = _accountant(accountant)
    prior = list(prior)

    def spent(sigma: float) -> float:
        return epsilon([*prior, (sigma, sample_rate, steps)], delta)

    if prior and epsilon(prior, delta) >= target_epsilon:
        raise PrivacyBudgetError(
            f"target epsilon {target_epsilon}: the clipping-norm calibration alone spends "
            f"{epsilon(prior, delta):.3g}; expected a larger target or a fixed max_grad_norm"
        )
    high_eps = spent(max_noise_multiplier)
    if high_eps > target_epsilon:
        raise PrivacyBudgetError(
            f"target epsilon {target_epsilon} at delta {delta:g} with {steps} steps at sample rate {sample_rate:.4g}: "
            f"even noise multiplier {max_noise_multiplier:g} spends epsilon {high_eps:.3g}, so the updates would be "
            "mostly noise; expected a larger epsilon, fewer epochs, a smaller batch or more training data"
        )
    # bisection on RDP first (cheap and safe at any noise), then narrow with the tighter accountant: its
    # sigma is at most RDP's. PRV is not evaluated below MIN_PRV_NOISE, where its grid gets huge.
    rdp = ACCOUNTANTS["rdp"]
    sigma = _bisect(
        lambda s: rdp([*prior, (s, sample_rate, steps)], delta),
        target_epsilon,
        0.05,
        high=max_noise_multiplier,
        tolerance=tolerance,
    )
    if accountant == "rdp" or sigma <= MIN_PRV_NOISE:
        return sigma
    low = max(MIN_PRV_NOISE, 0.5 * sigma)
    if spent(low) > target_epsilon:
        return _bisect(spent, target_epsilon, low, high=sigma, tolerance=tolerance)
    return low


#: noise multipliers below this are accounted with RDP only (the PRV grid would not fit in memory)
MIN_PRV_NOISE = 0.5


def _bisect(spent: Callable[[float], float], target: float, low: float, *, high: float, tolerance: float) -> float:
    """Smallest sigma in [low, high] (to 0.1%) whose ``spent(sigma) <= target``; ``spent`` decreases in sigma."""
    if spent(low) <= target:
        return low
    while high - low > 1e-3 * high:
        mid = (low + high) / 2
        eps = spent(mid)
        if eps <= target:
            high = mid
            if target - eps <= tolerance:
                break
        else:
            low = mid
    return high
