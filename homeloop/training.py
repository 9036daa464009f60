"""The one small training loop every homeloop model uses.

Every model in homeloop (the assistant's NLU, device embeddings, rewrite
rankers, ...) trains through :func:`fit`. Everything that changes how a model
learns composes around it instead of copying it:

- **the loss** is a function ``loss_fn(model, batch) -> scalar tensor``; extra
  terms (positive-congruent focal distillation, backward-compatible embedding
  losses) are just another ``loss_fn`` that adds to the task loss;
- **differential privacy** wraps the model, optimizer and loader first, as
  Opacus ``PrivacyEngine.make_private`` does, and hands the wrapped objects to
  :func:`fit` (pass the wrapped ``optimizer``; ``max_grad_norm`` stays ``None``
  because DP-SGD clips per sample itself);
- **federated learning** runs the same :func:`fit` on each client.

To stay compatible with per-sample-gradient wrappers, losses should use
reduction ``"mean"`` over the batch, and models should be built from
``nn.Embedding``, ``nn.Linear``, ``nn.LayerNorm``, ``nn.GRU``-like layers
(no BatchNorm, which mixes samples).

Determinism: ``fit(seed=...)`` seeds torch before training (dropout, random
initialisation of lazily built layers); shuffle order comes from the
``torch.Generator`` of the loader, which :func:`make_loader` seeds.
``torch.set_num_threads`` is left to the caller.

Example::

    loader = make_loader(dataset, batch_size=32, seed=0, collate_fn=collate)
    history = fit(model, loader, loss_fn=lambda m, b: F.cross_entropy(m(b["x"]), b["y"]), epochs=5, lr=1e-3)
    outputs = predict(model, make_loader(test, batch_size=256, shuffle=False, collate_fn=collate))
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from homeloop.errors import InvalidInputError

__all__ = [
    "LR_SCHEDULES",
    "TrainingCallback",
    "TrainingHistory",
    "TrainingState",
    "default_optimizer",
    "evaluate",
    "fit",
    "make_loader",
    "move_to",
    "predict",
    "seed_everything",
]

LossFn = Callable[[nn.Module, Any], torch.Tensor]


# --------------------------------------------------------------------------- schedules


def _constant(step: int, total_steps: int) -> float:
    return 1.0


def _linear(step: int, total_steps: int) -> float:
    """Linear warm-up over the first 10% of the steps, then linear decay to zero (BERT fine-tuning)."""
    warmup = max(1, int(0.1 * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup))


#: learning-rate multipliers ``f(step, total_steps) -> float``, by name (pass a name or your own function)
LR_SCHEDULES: dict[str, Callable[[int, int], float]] = {"constant": _constant, "linear": _linear}


# --------------------------------------------------------------------------- state and callbacks


@dataclass
class TrainingState:
    """What the loop tells its callbacks. ``epoch`` counts from 0; ``step`` counts optimizer steps."""

    epochs: int
    batches_per_epoch: int | None
    epoch: int = 0
    batch_index: int = 0
    step: int = 0
    loss: float | None = None  # loss of the last batch
    lr: float | None = None  # learning rate of the first parameter group for the last batch
    epoch_loss: float | None = None  # mean batch loss of the last finished epoch


class TrainingCallback:
    """Hooks called by :func:`fit`. Subclass and override what you need; every hook gets the live state.

    Any object with some of these methods works as a callback (the missing ones are skipped).
    """

    def on_train_begin(self, state: TrainingState) -> None: ...

    def on_epoch_begin(self, state: TrainingState) -> None: ...

    def on_batch_end(self, state: TrainingState) -> None: ...

    def on_epoch_end(self, state: TrainingState) -> None: ...

    def on_train_end(self, state: TrainingState) -> None: ...


@dataclass
class TrainingHistory:
    """What :func:`fit` returns: the mean batch loss of each epoch, optimizer steps and wall time."""

    epoch_losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def _call(callbacks: Sequence[Any], hook: str, state: TrainingState) -> None:
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(state)


# --------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a ``torch.Generator`` seeded the same way for a DataLoader."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def make_loader(
    dataset: Any,
    *,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A single-process ``DataLoader`` whose shuffle order is fixed by ``seed``."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size: expected a positive integer, got {batch_size!r}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate_fn,
        drop_last=drop_last,
        generator=generator,
        num_workers=0,
    )


def default_optimizer(params: Any, *, lr: float = 1e-3, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW over ``params`` (tensors or parameter groups), the fused implementation where torch has one.

    The fused kernel updates weights in place without temporaries, which is
    several times faster on CPU for models with large embedding tables.
    """
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):  # pragma: no cover - device or dtype without a fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def move_to(batch: Any, device: str | torch.device) -> Any:
    """Move every tensor inside ``batch`` (nested dicts, lists, tuples) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def _loader_length(loader: Iterable[Any]) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


# --------------------------------------------------------------------------- the loop


def fit(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer | None = None,
    epochs: int = 1,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    lr_schedule: str | Callable[[int, int], float] = "constant",
    max_grad_norm: float | None = None,
    device: str | torch.device = "cpu",
    callbacks: Sequence[Any] = (),
    seed: int | None = None,
) -> TrainingHistory:
    """Train ``model`` in place for ``epochs`` passes over ``loader``.

    Each batch: ``loss = loss_fn(model, batch)`` (batch moved to ``device``),
    ``loss.backward()``, optional gradient clipping to ``max_grad_norm``,
    ``optimizer.step()``, learning-rate schedule step.

    ``optimizer`` defaults to :func:`default_optimizer` (AdamW) over ``model.parameters()`` with ``lr`` and
    ``weight_decay``; pass your own for parameter groups or a wrapped (e.g. DP)
    optimizer, in which case ``lr`` and ``weight_decay`` are not used.
    ``lr_schedule`` is a name from :data:`LR_SCHEDULES` or a function
    ``(step, total_steps) -> multiplier``. The model's train/eval mode is
    restored afterwards. Raises :class:`~homeloop.errors.InvalidInputError` for
    bad arguments or when the loss stops being finite.
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise InvalidInputError(f"epochs: expected a non-negative integer, got {epochs!r}")
    if isinstance(lr_schedule, str):
        if lr_schedule not in LR_SCHEDULES:
            raise InvalidInputError(
                f"lr_schedule: expected one of {sorted(LR_SCHEDULES)} or a function, got {lr_schedule!r}"
            )
        schedule = LR_SCHEDULES[lr_schedule]
    else:
        schedule = lr_schedule
    if seed is not None:
        torch.manual_seed(seed)
    model.to(device)
    if optimizer is None:
        if not lr > 0:
            raise InvalidInputError(f"lr: expected a positive learning rate, got {lr!r}")
        optimizer = default_optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    batches_per_epoch = _loader_length(loader)
    total_steps = max(1, epochs * (batches_per_epoch or 1))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step, total_steps))

    state = TrainingState(epochs=epochs, batches_per_epoch=batches_per_epoch)
    history = TrainingHistory()
    was_training = model.training
    start = time.perf_counter()
    model.train()
    _call(callbacks, "on_train_begin", state)
    try:
        for epoch in range(epochs):
            state.epoch, state.batch_index = epoch, 0
            _call(callbacks, "on_epoch_begin", state)
            total, count = 0.0, 0
            for batch in loader:
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model, move_to(batch, device))
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise InvalidInputError(
                        f"training loss became {value} at epoch {epoch}, batch {state.batch_index}: "
                        f"expected a finite loss; lower the learning rate (lr={lr}) or check the data"
                    )
                loss.backward()
                if max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                state.lr = float(optimizer.param_groups[0]["lr"])
                optimizer.step()
                scheduler.step()
                total += value
                count += 1
                state.step += 1
                state.loss = value
                _call(callbacks, "on_batch_end", state)
                state.batch_index += 1
            state.epoch_loss = total / count if count else float("nan")
            history.epoch_losses.append(state.epoch_loss)
            _call(callbacks, "on_epoch_end", state)
        history.steps = state.step
        history.seconds = time.perf_counter() - start
        _call(callbacks, "on_train_end", state)
    finally:
        model.train(was_training)
    return history


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[Any], *, loss_fn: LossFn, device: str | torch.device = "cpu") -> float:
    """Mean of ``loss_fn(model, batch)`` over the batches of ``loader``, in eval mode without gradients."""
    was_training = model.training
    model.eval()
    try:
        values = [float(loss_fn(model, move_to(batch, device))) for batch in loader]
    finally:
        model.train(was_training)
    return sum(values) / len(values) if values else float("nan")


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    device: str | torch.device = "cpu",
) -> list[Any]:
    """Outputs of ``forward(model, batch)`` (default ``model(batch)``) for each batch, moved to the CPU."""
    forward = forward or (lambda m, b: m(b))
    was_training = model.training
    model.eval()
    try:
        return [move_to(forward(model, move_to(batch, device)), "cpu") for batch in loader]
    finally:
        model.train(was_training)
