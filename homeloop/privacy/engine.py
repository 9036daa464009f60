"""DP-SGD for any homeloop model: :func:`make_private` wraps the user's model, optimizer and loader.

One entry point, as Opacus ``PrivacyEngine.make_private``::

    private = make_private(network, optimizer, loader, target_epsilon=8, target_delta=1e-5, epochs=10)
    fit(private.module, private.data_loader, optimizer=private.optimizer,
        loss_fn=private.loss(per_example_loss), epochs=10)
    private.detach()                       # hooks off; the network is a plain module again
    private.spent()                        # EpsilonSpent(epsilon (PRV), epsilon_rdp, ...)

``per_example_loss(model, batch) -> Tensor[batch]`` gives one loss per example
(DP-SGD bounds each example's influence, so the loss must not mix examples).

**Per-sample clipping**, from the registry :data:`CLIPPING_MODES`, fastest first:

- ``"bookkeeping"`` (homeloop): one ordinary backward pass. Parameters of the
  supported layers (:data:`LAYER_RULES`: ``Linear``, ``Embedding``, ``Conv1d``,
  ``LayerNorm``) are taken out of autograd, so the backward pass computes only the
  gradients flowing between layers; hooks keep each layer's input and output
  gradient. Per-sample gradient norms come from them without materialising
  per-sample gradients (ghost norms: ``||a_i^T g_i||^2 = <a_i a_i^T, g_i g_i^T>``
  for sequences, ``||a_i||^2 ||g_i||^2`` for vectors, per-row sums for embedding
  tables; the cheaper of ghost and explicit per layer), and the clipped sum
  ``sum_i c_i a_i^T g_i`` is one matrix product per layer, exactly the work the
  ordinary backward pass would have done for the weights (Bu et al. 2023, "book-keeping").
- ``"ghost"`` (Opacus ghost clipping): two backward passes, the first for norms.
- ``"hooks"`` (Opacus): per-sample gradients materialised (memory ``batch x params``).

``clipping="auto"`` takes bookkeeping when every trainable layer has a rule, else
Opacus ghost clipping when Opacus supports every layer, with a warning saying why.
Layers nothing supports (BatchNorm mixes the examples of a batch; ``nn.GRU``
needs Opacus's ``DPGRU``) raise :class:`~homeloop.errors.UnsupportedLayerError`
naming the layer and the fix, before anything is trained.

**Sampling and noise**: the loader becomes a Poisson sampler (each example joins
each batch independently with probability ``q = batch_size / n``), the noise
multiplier comes from ``target_epsilon`` with the PRV accountant
(:mod:`homeloop.privacy.accounting`), and ``max_grad_norm="auto"`` sets the
clipping norm to a quantile of the per-sample gradient norms estimated with a
differentially private histogram whose cost is accounted
(:mod:`homeloop.privacy.calibration`); ``max_grad_norm="adaptive"`` makes the
norm follow that quantile as training shrinks the gradients
(:class:`~homeloop.privacy.adaptive_clipping.AdaptiveClipping`). The optimizer is
Opacus's ``DPOptimizerFastGradientClipping``; with bookkeeping clipping the gradients start as the Gaussian noise,
drawn on a background thread while the model computes, and the clipped sums are accumulated into them
(:mod:`homeloop.privacy.noise`).

Where the parts live: the per-layer rules in :mod:`homeloop.privacy.layer_rules` and the layer checks in
:mod:`homeloop.privacy.layer_checks`, the clipper in :mod:`homeloop.privacy.clipper`, Poisson sampling in
:mod:`homeloop.privacy.sampling`, the DP optimizer in :mod:`homeloop.privacy.optimizer`, adaptive clipping in
:mod:`homeloop.privacy.adaptive_clipping`, the clipping modes in :mod:`homeloop.privacy.clipping_modes`. This
module holds the entry point, :func:`make_private` (its steps are the functions before it), and what it
returns, :class:`PrivateTraining`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from homeloop.errors import InvalidInputError, UnsupportedLayerError
from homeloop.privacy import calibration
from homeloop.privacy.accounting import EpsilonSpent, Mechanism, check_delta, epsilon_spent, noise_multiplier_for
from homeloop.privacy.adaptive_clipping import AdaptiveClipping
from homeloop.privacy.clipping_modes import CLIPPING_MODES, PerExampleLoss, PreparedClipping
from homeloop.privacy.layer_checks import check_layers
from homeloop.privacy.sampling import PoissonLoader

__all__ = [
    "PrivacyWarning",
    "PrivateTraining",
    "expected_steps",
    "make_private",
]


class PrivacyWarning(UserWarning):
    """An unsafe or wasteful privacy setting (spent budget, large delta, no Poisson sampling, ...)."""


@dataclass
class PrivateTraining:
    """What :func:`make_private` returns: the wrapped objects plus the privacy bookkeeping.

    Unpacks as ``module, optimizer, data_loader = make_private(...)``. Train with
    ``loss_fn=private.loss(per_example_loss)``; afterwards call :meth:`detach`
    and read :meth:`spent`.
    """

    module: nn.Module
    optimizer: torch.optim.Optimizer
    data_loader: Any
    clipping: str
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    expected_batch_size: float
    planned_steps: int
    delta: float
    target_epsilon: float | None
    accountant: str = "prv"
    calibration: list[Mechanism] = field(default_factory=list)
    steps: int = 0
    _prepared: PreparedClipping | None = None
    _original: nn.Module | None = None
    _warned_spent: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.module, self.optimizer, self.data_loader))

    def loss(self, per_example_loss: PerExampleLoss) -> Callable[[nn.Module, Any], Any]:
        """The ``loss_fn`` for :func:`homeloop.training.fit`: the mean of ``per_example_loss`` (``[batch]``)."""
        return self._prepared.loss(per_example_loss)

    @property
    def current_max_grad_norm(self) -> float:
        """The clipping norm of the next step (it moves during training with ``max_grad_norm='adaptive'``)."""
        return float(getattr(self.optimizer, "max_grad_norm", self.max_grad_norm))

    def history(self) -> list[Mechanism]:
        """The mechanisms run so far: calibration, then ``steps`` DP-SGD steps."""
        return [*self.calibration, (self.noise_multiplier, self.sample_rate, self.steps)]

    def spent(self, delta: float | None = None) -> EpsilonSpent:
        """Epsilon spent so far (PRV) with the RDP cross-check."""
        return epsilon_spent(self.history(), delta or self.delta, accountant=self.accountant)

    def _on_step(self, _optimizer: Any) -> None:
        self.steps += 1
        if self.target_epsilon is not None and self.steps > self.planned_steps and not self._warned_spent:
            self._warned_spent = True
            warnings.warn(
                f"privacy budget spent: {self.planned_steps} steps reach epsilon {self.target_epsilon}; further steps "
                "exceed the target (stop training, or ask for more epochs in make_private)",
                PrivacyWarning,
                stacklevel=2,
            )

    def detach(self) -> nn.Module:
        """Remove the per-sample hooks and return the original model (trained); warns if much budget is unspent."""
        if self._prepared is not None:
            self._prepared.detach()
        if self.target_epsilon is not None and self.steps < 0.5 * self.planned_steps:
            warnings.warn(
                f"unspent privacy budget: {self.steps} of {self.planned_steps} planned steps ran; the same epsilon "
                "allowed less noise",
                PrivacyWarning,
                stacklevel=2,
            )
        return self._original


def _choose_clipping(model: nn.Module, clipping: str) -> str:
    if clipping != "auto":
        if clipping not in CLIPPING_MODES:
            raise InvalidInputError(f"clipping {clipping!r}: expected 'auto' or one of {sorted(CLIPPING_MODES)}")
        check_layers(model, clipping)
        return clipping
    try:
        check_layers(model, "bookkeeping")
        return "bookkeeping"
    except UnsupportedLayerError as exc:
        check_layers(model, "ghost")  # raises for layers nothing supports
        warnings.warn(
            f"falling back to Opacus ghost clipping (two backward passes, slower): {exc}", PrivacyWarning, stacklevel=3
        )
        return "ghost"


def _check_targets(*, epochs: Any, target_epsilon: float | None, noise_multiplier: float | None) -> None:
    """Step 1: ``epochs``, and exactly one of ``target_epsilon`` and ``noise_multiplier``."""
    if not isinstance(epochs, int) or epochs < 1:
        raise InvalidInputError(f"epochs: expected a positive integer, got {epochs!r}")
    if (target_epsilon is None) == (noise_multiplier is None):
        raise InvalidInputError(
            f"make_private: expected exactly one of target_epsilon and noise_multiplier, got "
            f"target_epsilon={target_epsilon!r}, noise_multiplier={noise_multiplier!r}"
        )
    if target_epsilon is not None and target_epsilon <= 0:
        raise InvalidInputError(f"target_epsilon: expected a positive number, got {target_epsilon!r}")


def _dataset_of(loader: Any) -> Sequence[Any]:
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise InvalidInputError(
            f"data_loader: expected a DataLoader over a map-style dataset (len and indexing), got {type(loader).__name__}"
        )
    return dataset


def _count_examples(dataset: Sequence[Any]) -> int:
    n = len(dataset)
    if n < 2:
        raise InvalidInputError(f"data_loader: expected at least 2 training examples, got {n}")
    return n


def _choose_delta(n: int, target_delta: float | None, target_epsilon: float | None) -> float:
    """``target_delta`` or ``1 / n^1.1``; warns when delta or epsilon give a weak guarantee."""
    delta = float(target_delta) if target_delta is not None else 1.0 / n**1.1
    check_delta(delta)
    if delta >= 1.0 / n:
        warnings.warn(
            f"delta {delta:g} is not below 1/n = {1 / n:g}: a mechanism that publishes one example in {n} at random "
            "meets it; use delta well below 1/n (default 1/n^1.1)",
            PrivacyWarning,
            stacklevel=3,
        )
    if target_epsilon is not None and target_epsilon > 10:
        warnings.warn(
            f"target epsilon {target_epsilon} gives a weak guarantee (likelihood ratios up to e^{target_epsilon:g})",
            PrivacyWarning,
            stacklevel=3,
        )
    return delta


def _expected_batch_size(
    batch_size: int | str | None,
    data_loader: Any,
    *,
    n: int,
    epochs: int,
    target_epsilon: float | None,
    delta: float,
) -> int:
    """The expected Poisson batch size: ``batch_size``, the loader's, or the recommended one for ``"auto"``."""
    if batch_size == "auto":
        if target_epsilon is None:
            raise InvalidInputError("batch_size='auto' needs target_epsilon")
        return calibration.recommended_batch_size(n, epochs=epochs, target_epsilon=target_epsilon, delta=delta)
    if batch_size is None:
        expected = int(getattr(data_loader, "batch_size", None) or 0)
        if expected < 1:
            raise InvalidInputError("batch_size: the data_loader has no batch_size; pass batch_size=...")
        return expected
    if isinstance(batch_size, int) and batch_size >= 1:
        return batch_size
    raise InvalidInputError(f"batch_size: expected a positive integer, 'auto' or None, got {batch_size!r}")


def _plan_clipping_norm(
    max_grad_norm: float | str,
    *,
    mode: str,
    clip_quantile: float,
    per_example_loss: PerExampleLoss | None,
    n: int,
    target_epsilon: float | None,
    delta: float,
) -> tuple[float | None, list[Mechanism]]:
    """The clipping norm known before training (``None`` for ``"auto"``: calibrated later) and the calibration
    mechanism spent before training (for ``"auto"``; known before looking at the data)."""
    if max_grad_norm == "adaptive":
        if mode != "bookkeeping":
            raise InvalidInputError(
                f"max_grad_norm='adaptive' needs clipping='bookkeeping' (homeloop's clipping), got {mode!r}"
            )
        if not 0 < clip_quantile < 1:
            raise InvalidInputError(f"clip_quantile: expected a number in (0, 1), got {clip_quantile!r}")
        return 1.0, []  # where the norm starts; it moves by up to a factor e^0.1 per step
    if max_grad_norm == "auto":
        if per_example_loss is None:
            raise InvalidInputError(
                "max_grad_norm='auto' needs per_example_loss(model, batch) -> Tensor[batch]; or pass max_grad_norm=1.0"
            )
        # known before looking at the data: at most 5% of the target
        return None, calibration.calibration_mechanism(n, target_epsilon=target_epsilon, delta=delta)
    if isinstance(max_grad_norm, (int, float)) and max_grad_norm > 0:
        return float(max_grad_norm), []
    raise InvalidInputError(f"max_grad_norm: expected a positive number, 'auto' or 'adaptive', got {max_grad_norm!r}")


def _choose_noise_multiplier(
    *,
    target_epsilon: float | None,
    noise_multiplier: float | None,
    delta: float,
    sample_rate: float,
    planned_steps: int,
    prior: list[Mechanism],
    accountant: str,
) -> float:
    """The noise multiplier: calibrated to ``target_epsilon`` (refusing an impossible target before any gradient
    is computed), or ``noise_multiplier`` as given."""
    if target_epsilon is not None:
        return noise_multiplier_for(
            target_epsilon, delta, sample_rate=sample_rate, steps=planned_steps, prior=prior, accountant=accountant
        )
    sigma = float(noise_multiplier)
    if not sigma >= 0:
        raise InvalidInputError(f"noise_multiplier: expected a non-negative number, got {noise_multiplier!r}")
    return sigma


def _warn_small_noise(sigma: float) -> None:
    if sigma < 0.3:
        warnings.warn(
            f"noise multiplier {sigma:.3g} is small: the accountant's guarantee holds, but epsilon grows fast with "
            "every extra step",
            PrivacyWarning,
            stacklevel=3,
        )


def _sampled_loader(
    data_loader: Any, dataset: Sequence[Any], *, poisson_sampling: bool, sample_rate: float, seed: int
) -> Any:
    """A :class:`PoissonLoader` over ``dataset``, or ``data_loader`` itself (with a warning) without Poisson sampling."""
    if poisson_sampling:
        collate = getattr(data_loader, "collate_fn", None)
        return PoissonLoader(dataset, sample_rate=sample_rate, collate_fn=collate, seed=seed)
    warnings.warn(
        "poisson_sampling=False: the accountants assume Poisson sampling, so the reported epsilon is an "
        "approximation, not a guarantee",
        PrivacyWarning,
        stacklevel=3,
    )
    return data_loader


def make_private(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: Any,
    *,
    epochs: int,
    target_epsilon: float | None = None,
    target_delta: float | None = None,
    noise_multiplier: float | None = None,
    max_grad_norm: float | str = "auto",
    batch_size: int | str | None = None,
    per_example_loss: PerExampleLoss | None = None,
    clipping: str = "auto",
    accountant: str = "prv",
    poisson_sampling: bool = True,
    clip_quantile: float = 0.5,
    seed: int = 0,
    noise_ahead: bool = True,
) -> PrivateTraining:
    """Wrap ``module``, ``optimizer`` and ``data_loader`` for DP-SGD (see the module docstring).

    Give either ``target_epsilon`` (the noise multiplier is calibrated with ``accountant`` for ``epochs``
    passes at ``target_delta``, default ``1 / n^1.1``) or ``noise_multiplier`` directly.
    ``max_grad_norm="auto"`` estimates the ``clip_quantile`` quantile of per-example gradient norms
    privately before training (needs ``per_example_loss``; its small cost is part of the target);
    ``"adaptive"`` tracks that quantile during training instead (:class:`AdaptiveClipping`, bookkeeping
    clipping only; its cost is part of every step's noise). ``batch_size`` is the
    expected Poisson batch size: the loader's by default, or ``"auto"`` for
    :func:`homeloop.privacy.calibration.recommended_batch_size`. ``noise_ahead`` (bookkeeping clipping, CPU)
    draws each step's Gaussian noise on a background thread while the model computes
    (:mod:`homeloop.privacy.noise`). Raises
    :class:`~homeloop.errors.UnsupportedLayerError` and :class:`~homeloop.errors.PrivacyBudgetError`
    before training when the model or the target cannot work.
    """
    _check_targets(epochs=epochs, target_epsilon=target_epsilon, noise_multiplier=noise_multiplier)
    mode = _choose_clipping(module, clipping)
    dataset = _dataset_of(data_loader)
    n = _count_examples(dataset)
    delta = _choose_delta(n, target_delta, target_epsilon)
    expected = _expected_batch_size(
        batch_size, data_loader, n=n, epochs=epochs, target_epsilon=target_epsilon, delta=delta
    )
    sample_rate = min(1.0, expected / n)
    steps_per_epoch = max(1, round(1 / sample_rate))
    planned_steps = epochs * steps_per_epoch
    clip, prior = _plan_clipping_norm(
        max_grad_norm,
        mode=mode,
        clip_quantile=clip_quantile,
        per_example_loss=per_example_loss,
        n=n,
        target_epsilon=target_epsilon,
        delta=delta,
    )
    sigma = _choose_noise_multiplier(
        target_epsilon=target_epsilon,
        noise_multiplier=noise_multiplier,
        delta=delta,
        sample_rate=sample_rate,
        planned_steps=planned_steps,
        prior=prior,
        accountant=accountant,
    )
    adaptive: AdaptiveClipping | None = None
    if max_grad_norm == "adaptive":  # Andrew et al.'s count noise, B / 20, and no less than sigma
        adaptive = AdaptiveClipping(target_quantile=clip_quantile, count_noise=max(expected / 20.0, sigma, 1e-6))
    if max_grad_norm == "auto":  # spends the calibration mechanism planned above
        clip, prior = calibration.private_clipping_norm(
            module,
            dataset,
            per_example_loss,
            collate_fn=getattr(data_loader, "collate_fn", None),
            quantile=clip_quantile,
            mechanism=prior,
            seed=seed,
        )
    _warn_small_noise(sigma)
    loader = _sampled_loader(
        data_loader, dataset, poisson_sampling=poisson_sampling, sample_rate=sample_rate, seed=seed
    )
    generator = torch.Generator()
    generator.manual_seed(seed + 1)
    prepared = CLIPPING_MODES[mode](
        module,
        optimizer,
        noise_multiplier=sigma,
        max_grad_norm=clip,
        expected_batch_size=max(1, round(expected)),
        generator=generator,
        **({"adaptive": adaptive} if adaptive else {}),
        **({"noise_ahead": noise_ahead} if mode == "bookkeeping" else {}),
    )
    private = PrivateTraining(
        module=prepared.module,
        optimizer=prepared.optimizer,
        data_loader=loader,
        clipping=mode,
        noise_multiplier=sigma,
        max_grad_norm=clip,
        sample_rate=sample_rate,
        expected_batch_size=expected,
        planned_steps=planned_steps,
        delta=delta,
        target_epsilon=float(target_epsilon) if target_epsilon is not None else None,
        accountant=accountant,
        calibration=prior,
        _prepared=prepared,
        _original=module,
    )
    prepared.optimizer.attach_step_hook(private._on_step)
    return private


def expected_steps(n: int, batch_size: int, epochs: int) -> int:
    """DP-SGD steps of ``epochs`` passes with Poisson batches of expected size ``batch_size`` over ``n`` examples."""
    return epochs * max(1, round(n / max(1, batch_size)))
