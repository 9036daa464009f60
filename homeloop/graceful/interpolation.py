"""Backward-compatible weight interpolation (BCWI): average the old and the new model, weight by weight.

Schumann et al. (Amazon, "Backward compatibility during data updates by weight
interpolation", EACL 2024) update a model trained on more data by moving its
weights part of the way back towards the old model's::

    theta = (1 - old_weight) * theta_new + old_weight * theta_old

When both versions start from the same pretrained weights (or, as for
:mod:`homeloop.nlu.probe`, only retrain a head on the same frozen features),
the path between them stays in one basin of the loss: the interpolated model
keeps most of the new model's gains while agreeing with the old model where the
old one was right, so negative flips fall at a small cost in error. It costs no
training and nothing at inference (one model, the same architecture).

Models trained from different random initialisations (the fast encoder trained
from scratch) do not share a basin; interpolating them gives a broken model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from homeloop.errors import InvalidInputError

__all__ = ["interpolate_weights"]


def interpolate_weights(old: nn.Module, new: nn.Module, old_weight: float) -> nn.Module:
    """A copy of ``new`` whose floating-point parameters and buffers are ``(1 - old_weight) * new + old_weight * old``.

    ``old`` and ``new`` must have the same state-dict keys and shapes (the same
    architecture and label space); ``old_weight`` is in ``[0, 1]`` (0: ``new``
    unchanged, 1: ``old``'s weights). Integer buffers (counters) are ``new``'s.
    """
    if not (isinstance(old_weight, (int, float)) and 0.0 <= old_weight <= 1.0):
        raise InvalidInputError(f"old_weight: expected a number in [0, 1], got {old_weight!r}")
    old_state, new_state = old.state_dict(), new.state_dict()
    if old_state.keys() != new_state.keys():
        missing = sorted(set(new_state) ^ set(old_state))
        raise InvalidInputError(
            f"interpolate_weights: the models differ in architecture (parameters in only one of them: {missing[:5]})"
        )
    mixed = {}
    for name, value in new_state.items():
        before = old_state[name]
        if before.shape != value.shape:
            raise InvalidInputError(
                f"interpolate_weights: parameter {name!r} has shape {tuple(before.shape)} in the old model and "
                f"{tuple(value.shape)} in the new one (a different label space or size); retrain on the same labels"
            )
        if torch.is_floating_point(value):
            mixed[name] = torch.lerp(value, before.to(value.dtype), float(old_weight))
        else:
            mixed[name] = value.clone()
    result = copy.deepcopy(new)
    result.load_state_dict(mixed)
    return result
