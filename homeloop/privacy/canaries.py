"""Canaries: secrets planted in the training data, their exposure, and an attack that extracts them.

A canary is an utterance such as ``"my pin code is 4 7 1 9"`` labelled with an ordinary intent, inserted
``repeats`` times into the training data (Carlini et al. 2019, "The secret sharer"; Parikh et al. 2022,
"Canary extraction in natural language understanding models").

- :func:`exposure`: rank the true secret among all ``10^digits`` candidates by the model's loss on the
  canary's intent; ``exposure = log2(#candidates) - log2(rank)`` (0 to log2(#candidates); about 1 by chance).
- :func:`extract_secret`: the attacker knows the template and the intent, not the digits, and queries the
  intent classifier only: coordinate ascent over the discrete digit tokens (each position set to the digit
  that maximises the probability of the canary's intent, from several random starts), the discrete
  optimisation of Parikh et al. adapted to a black-box classifier. Chance: one in ``10^digits`` for the whole
  secret, 10% per digit.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from homeloop.errors import InvalidInputError

__all__ = ["TEMPLATES", "Canary", "exposure", "extract_secret", "plant_canaries"]

#: canary sentence prefixes; the secret digits follow, one word each
TEMPLATES = (
    "my pin code is",
    "the alarm code for the front door is",
    "my bank card number ends with",
    "the wifi password is",
    "my locker combination is",
    "remember my passcode",
)
DIGITS = tuple("0123456789")


@dataclass(frozen=True)
class Canary:
    prefix: str
    secret: tuple[str, ...]
    intent: str

    @property
    def text(self) -> str:
        return f"{self.prefix} {' '.join(self.secret)}"


def plant_canaries(
    utterances: Sequence[Any], *, count: int = 5, digits: int = 4, repeats: int = 8, seed: int = 0
) -> tuple[list[Any], list[Canary]]:
    """``utterances`` plus ``count`` canaries, each ``repeats`` times, with random secrets and random intents
    taken from the data's own intents; returns the new training list and the canaries."""
    from homeloop.datasets._base import LabeledUtterance

    if count < 1 or digits < 1 or repeats < 1:
        raise InvalidInputError(f"canaries: expected positive count, digits, repeats; got {count}, {digits}, {repeats}")
    rng = random.Random(seed)
    intents = sorted({u.intent for u in utterances})
    canaries = [
        Canary(
            prefix=TEMPLATES[i % len(TEMPLATES)],
            secret=tuple(rng.choice(DIGITS) for _ in range(digits)),
            intent=rng.choice(intents),
        )
        for i in range(count)
    ]
    planted = [
        LabeledUtterance(text=c.text, intent=c.intent, tokens=tuple(c.text.split()), source="canary")
        for c in canaries
        for _ in range(repeats)
    ]
    out = list(utterances) + planted
    rng.shuffle(out)
    return out, canaries


def _intent_log_probs(model: Any, texts: list[str], intent: str) -> np.ndarray:
    column = model.intents_.index(intent)
    return np.log(np.clip(model.predict_proba(texts)[:, column], 1e-30, None))


def exposure(model: Any, canary: Canary) -> float:
    """Secret-sharer exposure of ``canary`` in ``model`` over all ``10^digits`` candidate secrets."""
    candidates = [tuple(c) for c in itertools.product(DIGITS, repeat=len(canary.secret))]
    scores = _intent_log_probs(model, [f"{canary.prefix} {' '.join(c)}" for c in candidates], canary.intent)
    true = scores[candidates.index(canary.secret)]
    rank = 1 + int((scores > true).sum()) + 0.5 * int((scores == true).sum() - 1)  # ties share the rank
    return math.log2(len(candidates)) - math.log2(rank)


def extract_secret(
    model: Any, prefix: str, intent: str, *, digits: int = 4, restarts: int = 4, sweeps: int = 3, seed: int = 0
) -> tuple[tuple[str, ...], int]:
    """The attacker's guess of the secret after ``prefix`` for ``intent``, and the number of model queries."""
    rng = random.Random(seed)
    best, best_score, queries = None, -math.inf, 0
    for _ in range(restarts):
        guess = [rng.choice(DIGITS) for _ in range(digits)]
        for _ in range(sweeps):
            changed = False
            for position in range(digits):
                texts = []
                for d in DIGITS:
                    trial = list(guess)
                    trial[position] = d
                    texts.append(f"{prefix} {' '.join(trial)}")
                scores = _intent_log_probs(model, texts, intent)
                queries += len(texts)
                choice = DIGITS[int(scores.argmax())]
                if choice != guess[position]:
                    guess[position], changed = choice, True
            if not changed:
                break
        score = float(_intent_log_probs(model, [f"{prefix} {' '.join(guess)}"], intent)[0])
        queries += 1
        if score > best_score:
            best, best_score = tuple(guess), score
    return best, queries
