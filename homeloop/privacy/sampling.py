"""Poisson sampling for DP-SGD: :class:`PoissonLoader`, the batches the privacy accountants assume."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from homeloop.errors import InvalidInputError

__all__ = ["PoissonLoader"]


class PoissonLoader:
    """Batches in which every example takes part independently with probability ``sample_rate`` (the sampling
    the accountants assume). ``len()`` is the number of batches per epoch, ``round(1 / sample_rate)``.

    A batch that comes out empty (probability ``(1-q)^n``, negligible at the expected batch sizes used) is
    skipped, and the accountant still counts it.
    """

    def __init__(
        self,
        dataset: Sequence[Any],
        *,
        sample_rate: float,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        seed: int = 0,
    ) -> None:
        if not 0 < sample_rate <= 1:
            raise InvalidInputError(f"sample_rate: expected a number in (0, 1], got {sample_rate!r}")
        self.dataset = dataset
        self.sample_rate = float(sample_rate)
        self.collate_fn = collate_fn or torch.utils.data.default_collate
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.steps_per_epoch = max(1, round(1 / self.sample_rate))

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[Any]:
        n = len(self.dataset)
        for _ in range(self.steps_per_epoch):
            chosen = torch.nonzero(torch.rand(n, generator=self.generator) < self.sample_rate).flatten().tolist()
            if chosen:
                yield self.collate_fn([self.dataset[i] for i in chosen])
