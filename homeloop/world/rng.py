"""Keyed random streams.

Every random decision in the simulator draws from a stream keyed by *what it is
about* (the world seed, a home, a day, a goal, an attempt), never from one
sequential generator. So changing one outcome (a rewrite that fixes a request)
does not shift the randomness of anything else, and a replay with something new
in the loop meets exactly the same residents, days and noise.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["stream", "stream_key"]


def stream_key(*parts: object) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def stream(*parts: object) -> random.Random:
    """A :class:`random.Random` determined by ``parts`` alone."""
    return random.Random(stream_key(*parts))
