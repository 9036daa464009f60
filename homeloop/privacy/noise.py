"""DP-SGD's Gaussian noise, drawn ahead on a background thread while the model computes.

Drawing one normal number per trained parameter is a fixed cost of every private step: 3.3 M numbers take
about 10 ms with torch's CPU generator, which does not get faster with the batch. The noise does not depend on
the data, so :class:`GaussianNoise` starts drawing the step's noise when the optimizer's gradients are zeroed
and adds it after the clipped sum; torch releases the GIL while it draws, so on a machine with a spare core
the draw overlaps the forward and backward passes.

The numbers are drawn from the same generator, in the same order and in the same chunks as when drawn at the
step, so a seeded run gives the same model either way. Noise is drawn ahead only for CPU parameters and a
private generator (torch's global generator is shared with the model, e.g. dropout, so the order of draws
would depend on the thread's timing); otherwise it is drawn at the step.
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
    """Adds N(0, std^2) noise to each gradient, drawn ahead (:meth:`draw_ahead`) where possible.

    ``ahead=False`` draws at the step into one reused 1 MB buffer; ``ahead=True`` (the default) keeps one
    buffer the size of the trained parameters, which is the memory it costs.
    """

    def __init__(self, generator: torch.Generator | None, *, ahead: bool = True) -> None:
        self.generator = generator
        self.ahead = ahead and generator is not None
        self._buffers: list[torch.Tensor] = []
        self._pending: tuple[float, Future[None]] | None = None
        self._chunk: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
        self.drawn_ahead = 0  # steps whose noise came from the background thread

    def draw_ahead(self, params: Sequence[torch.Tensor], std: float) -> None:
        """Start drawing the next step's noise in the background (no-op when already started or not possible)."""
        if not self.ahead or self._pending is not None or std <= 0:
            return
        if not params or any(p.device.type != "cpu" for p in params):
            return
        if [b.shape for b in self._buffers] != [p.shape for p in params] or any(
            b.dtype != p.dtype for b, p in zip(self._buffers, params, strict=True)
        ):
            self._buffers = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in params]
        buffers = list(self._buffers)

        def draw() -> None:
            for b in buffers:
                _fill(b, std, self.generator)

        self._pending = (std, _background().submit(draw))

    def add(self, grads: Sequence[torch.Tensor], std: float) -> None:
        """Add the noise to ``grads`` in place: the noise drawn ahead if it matches, else drawn now."""
        pending, self._pending = self._pending, None
        if pending is not None:
            drawn_std, future = pending
            future.result()  # re-raises what the thread raised
            if std <= 0:
                return
            if len(grads) == len(self._buffers) and all(
                g.shape == b.shape and g.dtype == b.dtype for g, b in zip(grads, self._buffers, strict=True)
            ):
                for g, b in zip(grads, self._buffers, strict=True):
                    if drawn_std != std:  # the norm changed since: still N(0, std^2) after rescaling
                        b.mul_(std / drawn_std)
                    g.add_(b)
                self.drawn_ahead += 1
                return
        if std <= 0:
            return
        for g in grads:
            self._add_now(g, std)

    def _add_now(self, grad: torch.Tensor, std: float) -> None:
        key = (grad.dtype, grad.device)
        buffer = self._chunk.get(key)
        if buffer is None:
            buffer = self._chunk[key] = torch.empty(CHUNK, dtype=grad.dtype, device=grad.device)
        flat = grad.view(-1)
        for begin in range(0, flat.numel(), CHUNK):
            part = flat[begin : begin + CHUNK]
            noise = buffer[: part.numel()]
            noise.normal_(0.0, std, generator=self.generator)
            part.add_(noise)

    def wait(self) -> None:
        """Let a background draw finish (before the generator is used elsewhere or the run ends)."""
        if self._pending is not None:
            self._pending[1].result()
