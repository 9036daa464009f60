"""homeloop.privacy: per-sample clipping against brute force, accounting, calibration, and bad input."""

from __future__ import annotations

import gc
import warnings
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from homeloop.errors import InvalidInputError, PrivacyBudgetError, UnsupportedLayerError
from homeloop.privacy import make_private
from homeloop.privacy.accounting import epsilon_spent, noise_multiplier_for
from homeloop.privacy.calibration import per_example_gradient_norms, private_clipping_norm, recommended_batch_size
from homeloop.privacy.clipper import BookKeepingClipper
from homeloop.privacy.engine import PrivacyWarning
from homeloop.privacy.layer_checks import check_layers
from homeloop.training import fit, make_loader


class TinyText(nn.Module):
    """Embedding (with padding), a dilated convolution, LayerNorm, and two linear heads (one per word)."""

    def __init__(self, vocab: int = 30, dim: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, dim, kernel_size=3, padding=2, dilation=2)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        self.word_head = nn.Linear(dim, 2)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embedding(ids) * (ids != 0).unsqueeze(-1)  # Opacus's embedding rule ignores padding_idx
        h = self.norm(x + torch.tanh(self.conv(x.transpose(1, 2)).transpose(1, 2)))
        return self.head(h.mean(1)), self.word_head(h)


def per_example_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    ids, y = batch
    logits, word_logits = model(ids)
    return F.cross_entropy(logits, y, reduction="none") + word_logits.square().mean((1, 2))


def _data(n: int = 40, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 30, (n, 7), generator=g)
    ids[: n // 2, 5:] = 0  # padding
    ids[0, :] = 3  # a repeated row within one example
    y = torch.randint(0, 3, (n,), generator=g)
    return [(ids[i], y[i]) for i in range(n)]


def _brute_force(model: nn.Module, items, clip: float):
    params = [p for p in model.parameters() if p.requires_grad]
    norms, total = [], [torch.zeros_like(p) for p in params]
    for ids, y in items:
        loss = per_example_loss(model, (ids.unsqueeze(0), y.unsqueeze(0))).sum()
        grads = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum(g.square().sum() for g in grads))
        norms.append(norm)
        for t, g in zip(total, grads, strict=True):
            t += min(1.0, clip / (float(norm) + 1e-6)) * g
    return torch.stack(norms), params, total


def test_bookkeeping_matches_brute_force_per_sample_clipping() -> None:
    torch.manual_seed(0)
    model = TinyText()
    items = _data(12)
    exact_norms, params, exact_sum = _brute_force(model, items, clip=0.5)
    clipper = BookKeepingClipper(model)
    ids = torch.stack([i for i, _ in items])
    y = torch.stack([t for _, t in items])
    per_example_loss(model, (ids, y)).mean().backward()
    norms, factors = clipper.clipped_sum(0.5, scale=len(items))
    torch.testing.assert_close(norms, exact_norms, rtol=1e-4, atol=1e-6)
    assert (factors < 1).any() and (factors <= 1).all()
    for p, expected in zip(params, exact_sum, strict=True):
        torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-6)
    clipper.detach()
    assert all(p.requires_grad for p in model.parameters())
    # after detaching, ordinary training works again
    per_example_loss(model, (ids, y)).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_frozen_layers_are_left_out() -> None:
    model = TinyText()
    model.embedding.weight.requires_grad_(False)
    items = _data(6)
    exact_norms, _, _ = _brute_force(model, items, clip=1e9)
    clipper = BookKeepingClipper(model)
    ids, y = torch.stack([i for i, _ in items]), torch.stack([t for _, t in items])
    per_example_loss(model, (ids, y)).mean().backward()
    torch.testing.assert_close(clipper.per_sample_norms(scale=len(items)), exact_norms, rtol=1e-4, atol=1e-6)
    clipper.detach()
    assert not model.embedding.weight.requires_grad


class Bag(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(30, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(ids).sum(1))


def test_first_layer_output_is_freed_after_the_forward_pass() -> None:
    """The graph must not hold the first layer's output until the loss is gone: for the NLU's n-gram embedding
    that output is the largest tensor of the step. Its gradient must still reach the clipper."""
    torch.manual_seed(0)
    model = Bag()
    outputs = []
    model.embedding.register_forward_hook(lambda m, i, out: outputs.append(weakref.ref(out)))
    ids, y = torch.randint(0, 30, (5, 4)), torch.tensor([0, 1, 2, 0, 1])
    expected = torch.autograd.grad(F.cross_entropy(model(ids), y, reduction="sum"), model.embedding.weight)[0]
    outputs.clear()
    clipper = BookKeepingClipper(model)
    loss = F.cross_entropy(model(ids), y, reduction="sum")
    gc.collect()
    assert outputs[0]() is None
    loss.backward()
    clipper.clipped_sum(1e9)
    torch.testing.assert_close(model.embedding.weight.grad, expected)


def _train_private(clipping: str, *, noise_multiplier: float, max_grad_norm, epochs: int = 2, seed: int = 0, **options):
    torch.manual_seed(seed)
    model = TinyText()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = make_loader(_data(40), batch_size=10, seed=seed)
    private = make_private(
        model,
        optimizer,
        loader,
        epochs=epochs,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        clipping=clipping,
        target_delta=1e-3,
        seed=seed,
        **options,
    )
    fit(
        private.module,
        private.data_loader,
        loss_fn=private.loss(per_example_loss),
        optimizer=private.optimizer,
        epochs=epochs,
    )
    private.detach()
    return model, private


@pytest.mark.parametrize("clipping", ["bookkeeping", "ghost", "hooks"])
def test_clipping_modes_agree_on_the_same_batches(clipping: str) -> None:
    """Without noise, every mode takes the same clipped steps on the same Poisson batches."""
    reference, _ = _train_private("hooks", noise_multiplier=0.0, max_grad_norm=0.3)
    model, private = _train_private(clipping, noise_multiplier=0.0, max_grad_norm=0.3)
    assert private.clipping == clipping
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_noise_is_added_and_accounted() -> None:
    quiet, _ = _train_private("bookkeeping", noise_multiplier=0.0, max_grad_norm=0.3)
    noisy, private = _train_private("bookkeeping", noise_multiplier=1.0, max_grad_norm=0.3)
    assert any(not torch.allclose(p, q) for p, q in zip(quiet.parameters(), noisy.parameters(), strict=True))
    assert private.steps == private.planned_steps == 8
    spent = private.spent()
    assert 0 < spent.epsilon <= spent.epsilon_rdp and spent.consistent


@pytest.mark.parametrize("max_grad_norm", [0.3, "adaptive"])
def test_noise_drawn_ahead_gives_the_same_model(max_grad_norm) -> None:
    """The background thread draws the same numbers in the same order as drawing at the step, also when
    adaptive clipping changes the noise's scale at every step."""
    ahead, private = _train_private("bookkeeping", noise_multiplier=1.0, max_grad_norm=max_grad_norm)
    assert private.optimizer.noise.drawn_ahead == private.steps == 8
    at_step, private = _train_private(
        "bookkeeping", noise_multiplier=1.0, max_grad_norm=max_grad_norm, noise_ahead=False
    )
    assert private.optimizer.noise.drawn_ahead == 0
    for p, q in zip(ahead.parameters(), at_step.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("noise_ahead", [True, False])
def test_gradient_noise_has_the_accounted_scale(noise_ahead: bool) -> None:
    """With no signal, the step's gradient is the noise alone: N(0, (sigma C / B)^2) for a mean loss over an
    expected batch of B, the scale the accountant assumes."""
    torch.manual_seed(0)
    model = nn.Linear(100, 300)
    data = [(torch.randn(100), torch.tensor(0)) for _ in range(40)]
    private = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        make_loader(data, batch_size=8),
        epochs=1,
        noise_multiplier=2.0,
        max_grad_norm=0.5,
        clipping="bookkeeping",
        target_delta=1e-3,
        noise_ahead=noise_ahead,
    )
    optimizer = private.optimizer
    optimizer.zero_grad()
    (model(next(iter(private.data_loader))[0]) * 0.0).sum().backward()
    optimizer.step()
    grad = torch.cat([model.weight.grad.flatten(), model.bias.grad])
    assert optimizer.noise.drawn_ahead == int(noise_ahead)
    assert abs(float(grad.mean())) < 0.03 * 0.125
    assert float(grad.std()) == pytest.approx(2.0 * 0.5 / 8, rel=0.03)
    private.detach()


def test_noise_drawn_ahead_is_rescaled_when_the_norm_changes_before_the_step() -> None:
    from homeloop.privacy.noise import GaussianNoise

    shapes = [(3, 5), (600_000,)]  # the second spans three chunks
    params = [torch.zeros(s) for s in shapes]
    reference = GaussianNoise(torch.Generator().manual_seed(7), ahead=False).take(params, 1.0)
    noise = GaussianNoise(torch.Generator().manual_seed(7))
    noise.draw_ahead(params, 1.0)
    drawn = noise.take(params, 2.5)  # e.g. the user set a new max_grad_norm after zero_grad
    assert noise.drawn_ahead == 1
    for d, r in zip(drawn, reference, strict=True):
        torch.testing.assert_close(d, 2.5 * r)
    assert all(d.abs().sum() == 0 for d in noise.take(params, 0.0))  # no noise: zeros


def test_target_epsilon_is_met_and_prv_is_tighter_than_rdp() -> None:
    sigma = noise_multiplier_for(3.0, 1e-5, sample_rate=0.01, steps=500)
    spent = epsilon_spent([(sigma, 0.01, 500)], 1e-5)
    assert 2.9 <= spent.epsilon <= 3.0
    assert spent.epsilon_rdp > spent.epsilon  # RDP is the looser bound
    rdp_sigma = noise_multiplier_for(3.0, 1e-5, sample_rate=0.01, steps=500, accountant="rdp")
    assert rdp_sigma > sigma


def test_impossible_epsilon_is_refused_before_training() -> None:
    model = TinyText()
    before = [p.detach().clone() for p in model.parameters()]
    loader = make_loader(_data(40), batch_size=20)

    def attempt(**settings):
        return make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, max_grad_norm=1.0, **settings)

    with pytest.raises(PrivacyBudgetError, match=r"target epsilon 0\.001.*expected a larger epsilon"):
        attempt(epochs=50, target_epsilon=0.001, target_delta=1e-5)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    assert all(p.requires_grad for p in model.parameters())  # nothing left attached
    with pytest.raises(InvalidInputError, match="target_epsilon"):
        attempt(epochs=1, target_epsilon=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a delta out of range is an error, not first a warning about its size
        with pytest.raises(InvalidInputError, match=r"delta: expected a number in \(0, 1\), got 2\.0"):
            attempt(epochs=1, target_epsilon=8.0, target_delta=2.0)


def test_batchnorm_is_refused_naming_the_layer_and_the_fix() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    loader = make_loader([(torch.randn(4), torch.tensor(0))] * 20, batch_size=5)
    with pytest.raises(UnsupportedLayerError, match=r"layer '1' \(BatchNorm1d\).*GroupNorm.*ModuleValidator\.fix"):
        make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loader,
            epochs=1,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
        )


def test_gru_is_refused_in_bookkeeping_and_auto_with_the_fix() -> None:
    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(4, 4, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    with pytest.raises(UnsupportedLayerError, match=r"'rnn' \(GRU\).*DPGRU.*context': 'cnn'"):
        check_layers(Recurrent(), "bookkeeping")
    with pytest.raises(UnsupportedLayerError, match="GRU"):
        check_layers(Recurrent(), "ghost")


def test_auto_falls_back_to_opacus_ghost_with_a_warning() -> None:
    class WithGroupNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.gn = nn.GroupNorm(2, 4)

        def forward(self, x):
            return self.gn(self.lin(x))

    model = WithGroupNorm()
    loader = make_loader([(torch.randn(4), torch.tensor(0))] * 20, batch_size=5)
    with pytest.warns(PrivacyWarning, match="falling back to Opacus ghost clipping.*GroupNorm"):
        private = make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loader,
            epochs=1,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
        )
    assert private.clipping == "ghost"
    private.detach()


def test_optimizer_parameters_outside_the_model_are_refused() -> None:
    """A parameter the optimizer trains but no clipped layer owns would get no per-example clipping."""
    model, extra = TinyText(), nn.Parameter(torch.zeros(4, 2))
    optimizer = torch.optim.SGD([*model.parameters(), extra], lr=0.1)
    with pytest.raises(InvalidInputError, match=r"optimizer: 1 trained parameter\(s\) \(shapes \[\(4, 2\)\]\)"):
        make_private(
            model,
            optimizer,
            make_loader(_data(40), batch_size=10),
            epochs=1,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            clipping="bookkeeping",
            target_delta=1e-3,
        )
    assert all(p.requires_grad for p in model.parameters())  # the model is left as it was


def test_unsafe_settings_warn() -> None:
    model = TinyText()
    loader = make_loader(_data(40), batch_size=10)
    with pytest.warns(PrivacyWarning) as record:
        private = make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loader,
            epochs=1,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            target_delta=0.1,
            poisson_sampling=False,
        )
    messages = " ".join(str(w.message) for w in record)
    assert "not below 1/n" in messages and "Poisson" in messages
    private.detach()
    model = TinyText()
    private = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        loader,
        epochs=1,
        target_epsilon=5.0,
        max_grad_norm=1.0,
        target_delta=1e-3,
        accountant="rdp",
    )
    with pytest.warns(PrivacyWarning, match="privacy budget spent"):
        fit(
            private.module,
            private.data_loader,
            loss_fn=private.loss(per_example_loss),
            optimizer=private.optimizer,
            epochs=2,
        )
    private.detach()


def test_private_clipping_norm_tracks_the_median_and_is_charged() -> None:
    torch.manual_seed(0)
    model = TinyText()
    data = _data(200)
    collate = torch.utils.data.default_collate
    norms = per_example_gradient_norms(model, data, per_example_loss, collate_fn=collate)
    clip, prior = private_clipping_norm(model, data, per_example_loss, collate_fn=collate, sample_size=200)
    assert len(prior) == 1 and prior[0][2] == 1
    median = float(norms.median())
    assert median / 2.2 <= clip <= median * 2.2  # bins are a factor 10^(1/3) wide
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private = make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            make_loader(data, batch_size=20),
            epochs=1,
            target_epsilon=4.0,
            per_example_loss=per_example_loss,
            target_delta=1e-3,
            accountant="rdp",
        )
    assert private.calibration and private.spent().epsilon <= 4.0 + 1e-6
    private.detach()


def test_recommended_batch_size_prefers_less_noise_per_example() -> None:
    b = recommended_batch_size(50_000, epochs=10, target_epsilon=8.0, delta=1e-5, candidates=(64, 1024))
    assert b == 1024  # 490 steps at a 16x larger batch: much less noise per example
    # too few steps left at the larger batch: the smaller one
    assert recommended_batch_size(50_000, epochs=1, target_epsilon=8.0, delta=1e-5, candidates=(64, 1024)) == 64
    assert recommended_batch_size(400, epochs=2, target_epsilon=8.0, delta=1e-3, candidates=(64, 128)) == 50  # n/8


def test_adaptive_clipping_follows_the_target_quantile_of_the_norms() -> None:
    """With ``max_grad_norm='adaptive'`` the norm moves from 1.0 to where about the target share goes unclipped
    (a geometric walk: from 1.0 to the 0.2 quantile, about 100, takes some 120 steps)."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1, bias=False)
    x = torch.randn(400, 4) * torch.linspace(0.5, 40.0, 400).unsqueeze(1)  # per-example norms spread 100-fold
    items = [(x[i], torch.zeros(1)) for i in range(400)]

    def squared_error(m: nn.Module, batch) -> torch.Tensor:
        return (m(batch[0]) - 3.0).square().squeeze(1)

    shares = {}
    for quantile in (0.2, 0.8):
        with torch.no_grad():
            model.weight.zero_()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # gradients stay put: the norms are fixed
        private = make_private(
            model,
            optimizer,
            make_loader(items, batch_size=200, seed=0),
            epochs=120,
            noise_multiplier=1.0,
            max_grad_norm="adaptive",
            clip_quantile=quantile,
            target_delta=1e-4,
        )
        fit(
            private.module,
            private.data_loader,
            loss_fn=private.loss(squared_error),
            optimizer=private.optimizer,
            epochs=120,
        )
        private.detach()
        norms = (6.0 * x.norm(dim=1)).numpy()  # |d/dw (w.x - 3)^2| = 6 |x| at w = 0
        shares[quantile] = float((norms <= private.current_max_grad_norm).mean())
        assert private.max_grad_norm == 1.0  # where it started
    assert abs(shares[0.2] - 0.2) < 0.1 and abs(shares[0.8] - 0.8) < 0.1, shares
    # the count's noise is paid for by slightly more gradient noise; the accountant's sigma is unchanged
    assert private.noise_multiplier == 1.0
    assert private.optimizer.gradient_noise_multiplier > 1.0


def test_adaptive_clipping_needs_bookkeeping() -> None:
    with pytest.raises(InvalidInputError, match="adaptive.*bookkeeping"):
        make_private(
            TinyText(),
            torch.optim.SGD(TinyText().parameters(), lr=0.1),
            make_loader(_data(40), batch_size=10),
            epochs=1,
            noise_multiplier=1.0,
            max_grad_norm="adaptive",
            clipping="ghost",
        )
