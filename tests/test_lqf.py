"""LQF: the linearised network, the K-FAC preconditioner, and fine-tuning a pre-trained head both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from homeloop.errors import InvalidInputError, NotFittedError
from homeloop.graceful.lqf import HeadFineTuner, KFACPreconditioner, LinearizedNetwork, MLPHead, pretrain_head


def test_linearised_network_is_the_network_at_w0_and_exact_in_the_output_layer():
    torch.manual_seed(0)
    head = MLPHead(5, 7, 3)
    x = torch.randn(11, 5)
    expected = head(x).detach()
    lin = LinearizedNetwork(head)
    assert torch.allclose(lin(x), expected, atol=1e-6)
    with torch.no_grad():  # the network is linear in its output layer, so there the expansion is exact
        lin.delta["out__weight"].normal_()
        lin.delta["out__bias"].normal_()
    assert torch.allclose(lin(x), lin.merged()(x), atol=1e-5)
    with torch.no_grad():  # in the hidden layer it is only first-order: small steps agree, large ones do not
        lin.delta["out__weight"].zero_()
        lin.delta["out__bias"].zero_()
        lin.delta["hidden__weight"].normal_(std=1e-4)
    assert torch.allclose(lin(x), lin.merged()(x), atol=1e-5)
    assert [p for p in lin.parameters() if p.requires_grad] == list(lin.delta.parameters())


def test_kfac_with_identity_factors_is_the_plain_optimizer():
    w = torch.nn.Parameter(torch.randn(3, 4))
    b = torch.nn.Parameter(torch.randn(3))
    w.grad, b.grad = torch.ones(3, 4), torch.ones(3)
    inner = torch.optim.SGD([w, b], lr=0.1)
    before = w.detach().clone()
    KFACPreconditioner(inner, [(w, b, torch.eye(5), torch.eye(3))]).step()
    assert torch.allclose(w, before - 0.1)
    w.grad, b.grad = torch.ones(3, 4), torch.ones(3)
    before = w.detach().clone()
    KFACPreconditioner(inner, [(w, b, 2 * torch.eye(5), torch.eye(3))]).step()  # A^-1 = 2 I doubles the step
    assert torch.allclose(w, before - 0.2)


def _blobs(rng, centres, classes, n):
    y = rng.integers(0, len(classes), n)
    x = centres[np.asarray(classes)[y]] + rng.normal(scale=1.5, size=(n, centres.shape[1]))
    return x.astype(np.float32), [f"c{classes[i]}" for i in y]


@pytest.mark.parametrize("method", ["lqf", "standard"])
def test_fine_tuning_a_pretrained_head_to_new_classes(method):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 32))
    x_source, y_source = _blobs(rng, centres, list(range(6)), 1200)
    head = pretrain_head(x_source, y_source, hidden_dim=32, epochs=3)
    x_train, y_train = _blobs(rng, centres, list(range(6, 12)), 300)
    x_test, y_test = _blobs(rng, centres, list(range(6, 12)), 600)
    tuner = HeadFineTuner(method=method, epochs=20).fit(x_train, y_train, pretrained=head)
    accuracy = tuner.score(x_test, y_test)
    majority = max(y_test.count(c) for c in set(y_test)) / len(y_test)
    assert accuracy > 0.8 > 2 * majority
    assert tuner.history_.epoch_losses[-1] < tuner.history_.epoch_losses[0]
    assert head.out.out_features == 6  # the pre-trained head itself is left alone
    assert tuner.lr is None and tuner.lr_ == (0.02 if method == "lqf" else 2e-3)  # fit leaves its parameters alone


def test_fine_tuner_checks():
    head = MLPHead(4, 4, 2)
    with pytest.raises(InvalidInputError, match="method"):
        HeadFineTuner(method="sgd").fit(np.zeros((2, 4)), ["a", "b"], pretrained=head)
    with pytest.raises(InvalidInputError, match="one label per feature row"):
        HeadFineTuner().fit(np.zeros((3, 4)), ["a", "b"], pretrained=head)
    with pytest.raises(NotFittedError):
        HeadFineTuner().predict(np.zeros((1, 4)))
