"""The simulated speech recogniser and its three kinds of errors.

- *random*: each utterance gets a word error rate drawn from the real
  per-recording figures of SLURP (``slurp_wer_distribution``); that share of its
  words is substituted by a sound-alike (same first letter, similar length),
  deleted, or joined by an inserted word;
- *systematic*: some words are misheard the same way for everyone (``porch`` as
  ``torch``), each time with a high probability;
- *personal*: a resident with an accent has a few words of their own misheard.

Confidence falls with random errors; systematic and personal ones are heard
with confidence, as real recognisers do.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from homeloop.world.catalog import SYSTEMATIC_CONFUSIONS

__all__ = ["Hearing", "Recognizer"]


class Hearing(tuple):
    """``(text, confidence, kind)``: what was recognised, how sure, which error kind changed it."""

    __slots__ = ()

    def __new__(cls, text: str, confidence: float, kind: str):
        return super().__new__(cls, (text, confidence, kind))

    text = property(lambda self: self[0])
    confidence = property(lambda self: self[1])
    kind = property(lambda self: self[2])


class Recognizer:
    def __init__(
        self,
        *,
        vocabulary: Iterable[str],
        wer_samples: Sequence[float] | np.ndarray,
        error_scale: float = 1.0,
        systematic_probability: float = 0.7,
        personal_probability: float = 0.6,
        systematic: Sequence[tuple[str, str]] = SYSTEMATIC_CONFUSIONS,
    ) -> None:
        self.vocabulary = sorted({w for w in vocabulary if w.isalpha()})
        self.wer_samples = [float(w) for w in np.asarray(wer_samples, dtype=float)]
        self.error_scale = error_scale
        self.systematic = dict(systematic)
        self.systematic_probability = systematic_probability
        self.personal_probability = personal_probability
        buckets: dict[tuple[str, int], list[str]] = defaultdict(list)
        for w in self.vocabulary:
            buckets[(w[0], len(w) // 3)].append(w)
        self._buckets = dict(buckets)

    def _sound_alike(self, word: str, rnd: random.Random) -> str:
        bucket = self._buckets.get((word[:1], len(word) // 3))
        if bucket and len(bucket) > 1:
            for _ in range(3):
                other = rnd.choice(bucket)
                if other != word:
                    return other
        return rnd.choice(self.vocabulary)

    def hear(self, text: str, rnd: random.Random, confusions: Sequence[tuple[str, str]] = ()) -> Hearing:
        words = text.split()
        kinds: set[str] = set()
        confidence = 0.97 - rnd.uniform(0.0, 0.06)
        personal = dict(confusions)
        out: list[str] = []
        for w in words:
            if w in personal and rnd.random() < self.personal_probability:
                out.append(personal[w])
                kinds.add("personal")
                confidence -= 0.05
            elif w in self.systematic and rnd.random() < self.systematic_probability:
                out.append(self.systematic[w])
                kinds.add("systematic")
                confidence -= 0.03
            else:
                out.append(w)
        wer = min(rnd.choice(self.wer_samples) * self.error_scale, 1.0) if self.wer_samples else 0.0
        if wer > 0 and out:
            noisy: list[str] = []
            for w in out:
                if rnd.random() >= wer:
                    noisy.append(w)
                    continue
                op = rnd.random()
                if op < 0.7:
                    noisy.append(self._sound_alike(w, rnd))
                elif op < 0.85:
                    pass  # deletion
                else:
                    noisy.extend((w, rnd.choice(self.vocabulary)))
                kinds.add("random")
                confidence -= 0.6 / max(len(words), 1)
            out = noisy
        heard = " ".join(out)
        kind = "none" if heard == text else next(k for k in ("systematic", "personal", "random") if k in kinds)
        return Hearing(heard, round(min(max(confidence, 0.05), 0.99), 3), kind)
