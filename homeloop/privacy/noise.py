"""DP-SGD's Gaussian noise: the gradients start as noise, drawn ahead on a background thread.

Drawing one normal number per trained parameter is a fixed cost of every private step: 3.3 M numbers take
about 10 ms with torch's CPU generator, which does not get faster with the batch. The noise does not depend on
the data, so :class:`GaussianNoise` starts drawing the step's noise when the optimizer's gradients are zeroed;
torch releases the GIL while it draws, so on a machine with a spare core the draw overlaps the forward and
backward passes. The drawn tensors then become the parameters' gradients and the clipped sums are accumulated
into them (:meth:`~homeloop.privacy.clipper.BookKeepingClipper.clipped_sum`), so adding the noise costs no pass
over the gradients and no memory beyond the gradients themselves. Like the gradients of torch's optimizers,
these tensors are reused from step to step: the next draw overwrites them after the next ``zero_grad``.

The numbers are drawn from the same generator, in the same order and in the same chunks whether drawn ahead
or at the step, so a seeded run gives the same model either way. Noise is drawn ahead only for CPU parameters
and a private generator (torch's global generator is shared with the model, e.g. dropout, so the order of
draws would depend on the thread's timing); otherwise it is drawn at the step.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch

__all__ = ["CHUNK", "GaussianNoise"]

CHUNK = 1 << 18  # numbers per draw: 1 MB of float32

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _background() -> ThreadPoolExecutor:
    """One thread shared by every optimizer: draws from different optimizers simply queue."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="homeloop-dp-noise")
        return _executor


def _fill(tensor: torch.Tensor, std: float, generator: torch.Generator | None) -> None:
    """``tensor`` filled with N(0, std^2) numbers, drawn chunk by chunk (the chunking fixes the stream)."""
    flat = tensor.view(-1)
    for begin in range(0, flat.numel(), CHUNK):
        flat[begin : begin + CHUNK].normal_(0.0, std, generator=generator)


class GaussianNoise:
    """One tensor per trained parameter holding N(0, std^2) noise, drawn ahead (:meth:`draw_ahead`) where
    possible and handed over by :meth:`take`; ``ahead=False`` always draws at the step."""

    def __init__(self, generator: torch.Generator | None, *, ahead: bool = True) -> None:
        self.generator = generator
        self.ahead = ahead and generator is not None
        self._tensors: list[torch.Tensor] = []
        self._pending: tuple[float, list[torch.Tensor], Future[None]] | None = None
        self.drawn_ahead = 0  # steps whose noise came from the background thread

    def _tensors_for(self, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(self._tensors) != len(params) or any(
            t.shape != p.shape or t.dtype != p.dtype or t.device != p.device
            for t, p in zip(self._tensors, params, strict=True)
        ):
            self._tensors = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in params]
        return list(self._tensors)

    def draw_ahead(self, params: Sequence[torch.Tensor], std: float) -> None:
        """Start drawing the next step's noise in the background (no-op when already started or not possible).
        The tensors drawn into are those :meth:`take` handed over last: call it once they are no longer used."""
        if not self.ahead or self._pending is not None or std <= 0:
            return
        if not params or any(p.device.type != "cpu" for p in params):
            return
        tensors = self._tensors_for(params)

        def draw() -> None:
            for t in tensors:
                _fill(t, std, self.generator)

        self._pending = (std, tensors, _background().submit(draw))

    def take(self, params: Sequence[torch.Tensor], std: float) -> list[torch.Tensor]:
        """N(0, std^2) tensors shaped like ``params`` (zeros when ``std`` is 0): the noise drawn ahead,
        rescaled if ``std`` changed since, else drawn now."""
        pending, self._pending = self._pending, None
        if pending is not None:
            drawn_std, tensors, future = pending
            future.result()  # re-raises what the thread raised
            current = self._tensors_for(params)
            if std > 0 and len(current) == len(tensors) and all(a is b for a, b in zip(current, tensors, strict=True)):
                if drawn_std != std:  # e.g. the clipping norm changed after zero_grad: still N(0, std^2)
                    for t in tensors:
                        t.mul_(std / drawn_std)
                self.drawn_ahead += 1
                return tensors
        tensors = self._tensors_for(params)
        for t in tensors:
            if std > 0:
                _fill(t, std, self.generator)
            else:
                t.zero_()
        return tensors

    def wait(self) -> None:
        """Let a background draw finish (before the generator is used elsewhere or the run ends)."""
        if self._pending is not None:
            self._pending[2].result()
