"""LQF: linearised, quadratic fine-tuning of the NLU head (Achille et al., CVPR 2021, "LQF: Linear Quadratic
Fine-Tuning").

Instead of fine-tuning the network ``f(x; w)`` itself, LQF trains its
first-order Taylor expansion around the pre-trained weights ``w0``::

    f_lin(x; w) = f(x; w0) + J_w f(x; w0) (w - w0)

with three changes that make the result close to full fine-tuning while the
problem stays convex (so the outcome is predictable, and the update small and
regular, which is what a graceful update needs):

- **leaky ReLU** activations (a ReLU network's linearisation loses the
  gradients of dead units);
- **mean squared error** to one-hot targets instead of cross-entropy (a
  linear model with MSE is a quadratic problem, solved to the optimum);
- **Kronecker-factored preconditioning** (K-FAC: per linear layer the
  gradient ``dW`` becomes ``G^-1 dW A^-1``, with ``A`` the covariance of the
  layer's inputs and ``G`` that of the gradients at its outputs, both computed
  once at ``w0`` since the linearised model's curvature does not change).

Here the network is the NLU *head*: a two-layer perceptron on frozen sentence
vectors of an encoder (a pretrained model's, or the NLU in service's), whose
hidden layer was pre-trained on a source task and whose output layer is new.
:class:`HeadFineTuner` fits it either way (``method="lqf"`` or
``"standard"``: cross-entropy, the real network, AdamW) through
:func:`homeloop.training.fit`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn
from torch.func import functional_call, jvp

from homeloop import training
from homeloop.errors import InvalidInputError, NotFittedError

__all__ = [
    "FINE_TUNING_METHODS",
    "HeadFineTuner",
    "KFACPreconditioner",
    "LinearizedNetwork",
    "MLPHead",
    "lqf_experiment",
    "pretrain_head",
]


class MLPHead(nn.Module):
    """``Linear(in, hidden) -> leaky ReLU -> Linear(hidden, classes)``."""

    def __init__(self, in_dim: int, hidden_dim: int, n_classes: int, *, negative_slope: float = 0.1) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, n_classes)
        self.negative_slope = negative_slope

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.hidden(x), self.negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


class LinearizedNetwork(nn.Module):
    """``f(x; w0) + J f(x; w0) delta``: the first-order expansion of ``network`` at its current weights.

    The trainable parameters are the offsets ``delta`` (zero at first), one per
    parameter of ``network``, under the same names with ``.`` replaced by ``__``.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.names = [name for name, _ in network.named_parameters()]
        self.w0 = {name: p.detach().clone() for name, p in network.named_parameters()}
        for p in network.parameters():
            p.requires_grad_(False)
        self.delta = nn.ParameterDict(
            {name.replace(".", "__"): nn.Parameter(torch.zeros_like(p)) for name, p in self.w0.items()}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tangents = {name: self.delta[name.replace(".", "__")] for name in self.names}

        def f(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return functional_call(self.network, params, (x,))

        primal, tangent = jvp(f, (self.w0,), (tangents,))
        return primal + tangent

    def merged(self) -> nn.Module:
        """A copy of the network at ``w0 + delta`` (for inspection; it is *not* the linearised model)."""
        import copy

        net = copy.deepcopy(self.network)
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(self.w0[name] + self.delta[name.replace(".", "__")])
        return net


class KFACPreconditioner(torch.optim.Optimizer):
    """Wraps an optimizer: before each step, every linear layer's gradient ``[dW | db]`` becomes
    ``G^-1 [dW | db] A^-1`` (Kronecker-factored curvature, fixed; ``damping`` added to both factors)."""

    def __init__(self, optimizer: torch.optim.Optimizer, layers: list[tuple[nn.Parameter, nn.Parameter, Any, Any]]):
        self.optimizer = optimizer
        self.layers = layers  # (weight, bias, A^-1 [in+1, in+1], G^-1 [out, out])
        self.param_groups = optimizer.param_groups
        self.defaults = optimizer.defaults
        self.state = optimizer.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        for weight, bias, a_inv, g_inv in self.layers:
            if weight.grad is None:
                continue
            grad = torch.cat([weight.grad, bias.grad.unsqueeze(1)], dim=1)
            pre = g_inv @ grad @ a_inv
            weight.grad.copy_(pre[:, :-1])
            bias.grad.copy_(pre[:, -1])
        return self.optimizer.step(closure)

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)


def _kfac_factors(
    head: MLPHead, x: torch.Tensor, *, damping: float, samples: int = 4, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(A^-1, G^-1)`` of the hidden and output layers at the head's weights.

    ``A``: second moment of the layer's input (with a 1 for the bias);
    ``G``: second moment of ``J^T v`` at the layer's output for ``v ~ N(0, I)``
    on the network's output (the Gauss-Newton curvature of the squared error).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        h_pre = head.hidden(x)
        h_pre.retain_grad()
        h = F.leaky_relu(h_pre, head.negative_slope)
        h.retain_grad()
        z = head.out(h)
        z.retain_grad()
        g_hidden = torch.zeros(h_pre.shape[1], h_pre.shape[1])
        g_out = torch.zeros(z.shape[1], z.shape[1])
        for s in range(samples):
            v = torch.randn(z.shape, generator=generator)
            grads = torch.autograd.grad(z, [h_pre, z], grad_outputs=v, retain_graph=s < samples - 1)
            g_hidden += grads[0].T @ grads[0] / len(x)
            g_out += grads[1].T @ grads[1] / len(x)
        g_hidden, g_out = g_hidden / samples, g_out / samples
    ones = torch.ones(len(x), 1)
    factors = []
    for inputs, g in ((torch.cat([x, ones], 1), g_hidden), (torch.cat([h.detach(), ones], 1), g_out)):
        a = inputs.T @ inputs / len(x)
        eye_a, eye_g = torch.eye(a.shape[0]), torch.eye(g.shape[0])
        # damping split as in K-FAC (Martens & Grosse 2015): pi balances the two factors' traces
        pi = torch.sqrt((torch.trace(a) / a.shape[0]) / (torch.trace(g) / g.shape[0]).clamp(min=1e-12))
        root = float(np.sqrt(damping))
        factors.append((torch.linalg.inv(a + pi * root * eye_a), torch.linalg.inv(g + (root / pi) * eye_g)))
    return factors


def _fit_standard(tuner: HeadFineTuner, head: MLPHead, x: torch.Tensor, y: torch.Tensor) -> MLPHead:
    loader = training.make_loader(
        list(zip(x, y, strict=True)), batch_size=tuner.batch_size, seed=tuner.seed, collate_fn=_stack
    )
    tuner.history_ = training.fit(
        head,
        loader,
        loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1]),
        epochs=tuner.epochs,
        lr=tuner.lr_,
        weight_decay=tuner.weight_decay,
        lr_schedule="linear",
        seed=tuner.seed,
    )
    return head


def _fit_lqf(tuner: HeadFineTuner, head: MLPHead, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    n_classes = head.out.out_features
    factors = _kfac_factors(head, x[:4096], damping=tuner.damping, seed=tuner.seed)
    model = LinearizedNetwork(head)
    targets = F.one_hot(y, n_classes).float() * tuner.target_scale
    loader = training.make_loader(
        list(zip(x, targets, strict=True)), batch_size=tuner.batch_size, seed=tuner.seed, collate_fn=_stack
    )
    delta = model.delta
    layers = [
        (delta["hidden__weight"], delta["hidden__bias"], *factors[0]),
        (delta["out__weight"], delta["out__bias"], *factors[1]),
    ]
    inner = torch.optim.SGD(delta.parameters(), lr=tuner.lr_, momentum=0.9)
    optimizer = KFACPreconditioner(inner, layers)
    decay = tuner.weight_decay

    def loss_fn(m: LinearizedNetwork, batch: Any) -> torch.Tensor:
        out = m(batch[0])
        loss = 0.5 * (out - batch[1]).pow(2).sum(1).mean()
        if decay:  # L2 towards the pre-trained weights keeps the quadratic problem strongly convex
            loss = loss + 0.5 * decay * sum(p.pow(2).sum() for p in m.delta.values())
        return loss

    tuner.history_ = training.fit(
        model, loader, loss_fn=loss_fn, optimizer=optimizer, epochs=tuner.epochs, lr_schedule="linear", seed=tuner.seed
    )
    return model


def _stack(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])


#: how a head can be fine-tuned, by name: ``fn(tuner, head, features, labels) -> trained module``
FINE_TUNING_METHODS: dict[str, Callable[..., nn.Module]] = {"standard": _fit_standard, "lqf": _fit_lqf}


class HeadFineTuner(BaseEstimator):
    """Fine-tune a pre-trained :class:`MLPHead` to new labels on frozen features: ``"lqf"`` or ``"standard"``.

    ``fit(features, labels, pretrained=head)`` copies the pre-trained hidden
    layer, gives the head a new output layer for ``labels``, and trains with
    ``method`` (a name in :data:`FINE_TUNING_METHODS`). Defaults suit each
    method: ``lr`` is AdamW's for ``standard`` and preconditioned SGD's for ``lqf`` (``lr_``: the rate used).

    Learned state: ``classes_`` (the labels, sorted), ``model_``, ``lr_``, ``history_`` and ``seconds_``.
    """

    def __init__(
        self,
        *,
        method: str = "lqf",
        epochs: int = 20,
        batch_size: int = 64,
        lr: float | None = None,
        weight_decay: float = 1e-4,
        damping: float = 0.1,
        target_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.damping = damping
        self.target_scale = target_scale
        self.seed = seed

    def fit(self, features: np.ndarray, labels: Sequence[str], *, pretrained: MLPHead) -> HeadFineTuner:
        if self.method not in FINE_TUNING_METHODS:
            raise InvalidInputError(f"method {self.method!r}: expected one of {sorted(FINE_TUNING_METHODS)}")
        if len(features) != len(labels) or not len(labels):
            raise InvalidInputError(
                f"fit: expected one label per feature row, got {len(labels)} labels for {len(features)} rows"
            )
        self.lr_ = self.lr if self.lr is not None else (2e-3 if self.method == "standard" else 0.02)
        torch.manual_seed(self.seed)
        classes = sorted(set(labels))
        self.classes_ = np.asarray(classes)
        index = {name: j for j, name in enumerate(classes)}
        head = copy.deepcopy(pretrained)
        head.out = nn.Linear(head.out.in_features, len(self.classes_))
        x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        y = torch.tensor([index[v] for v in labels], dtype=torch.long)
        started = time.perf_counter()
        self.model_ = FINE_TUNING_METHODS[self.method](self, head, x, y).eval()
        self.seconds_ = time.perf_counter() - started
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The predicted label of each row of ``features`` (``[n]``)."""
        if not hasattr(self, "model_"):
            raise NotFittedError("this HeadFineTuner is not fitted yet: call fit(features, labels, pretrained=...)")
        x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        with torch.no_grad():
            scores = torch.cat([self.model_(x[i : i + 1024]) for i in range(0, len(x), 1024)])
        return self.classes_[scores.argmax(1).numpy()]

    def score(self, features: np.ndarray, labels: Sequence[str]) -> float:
        """Accuracy of :meth:`predict` against ``labels``."""
        return float(np.mean([p == t for p, t in zip(self.predict(features), labels, strict=True)]))


def pretrain_head(
    features: np.ndarray, labels: Sequence[str], *, hidden_dim: int = 256, epochs: int = 10, seed: int = 0
) -> MLPHead:
    """A :class:`MLPHead` trained with cross-entropy on a source task (its hidden layer is what transfers)."""
    torch.manual_seed(seed)
    names = sorted(set(labels))
    index = {name: j for j, name in enumerate(names)}
    head = MLPHead(features.shape[1], hidden_dim, len(names))
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.tensor([index[v] for v in labels])
    loader = training.make_loader(list(zip(x, y, strict=True)), batch_size=64, seed=seed, collate_fn=_stack)
    training.fit(head, loader, loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1]), epochs=epochs, lr=2e-3, seed=seed)
    return head.eval()


def _per_intent(utterances: Sequence[Any], k: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    by: dict[str, list[int]] = {}
    for i, u in enumerate(utterances):
        by.setdefault(u.intent, []).append(i)
    keep = [j for intent in sorted(by) for j in rng.choice(by[intent], size=min(k, len(by[intent])), replace=False)]
    return sorted(int(j) for j in keep)


def lqf_experiment(
    *,
    backbone: Any | None = None,
    backbone_epochs: int | None = None,
    sizes: Sequence[int | None] = (None, 10, 5),
    epochs: int = 20,
    seeds: Sequence[int] = (0, 1, 2),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """LQF vs standard fine-tuning vs a linear probe, from HWU64 (source) to CLINC150 (target).

    Features are the frozen sentence vectors of ``backbone`` (an
    ``IntentSlotModel``; default a fast NLU trained here on HWU64 train). A
    head is pre-trained on HWU64 train, then fine-tuned to CLINC150's 150
    intents on its whole train split (``None``) or ``k`` examples per intent,
    and scored on CLINC150 test; small sets are drawn with each seed.
    """
    from sklearn.linear_model import LogisticRegression

    from homeloop.datasets import load_clinc150, load_hwu64
    from homeloop.nlu import IntentSlotModel

    say = progress or (lambda message: None)
    source = load_hwu64("train")
    if backbone is None:
        say("training the backbone: fast NLU on HWU64 train")
        backbone = IntentSlotModel(encoder="fast", epochs=backbone_epochs, seed=0).fit(source)
    network = backbone.network_.eval()

    @torch.no_grad()
    def featurise(utterances: Sequence[Any]) -> np.ndarray:
        out = []
        for i in range(0, len(utterances), 512):
            tokens = [tuple(t.lower() for t in u.tokens) for u in utterances[i : i + 512]]
            out.append(network.encoder(network.encoder.encode(tokens)).sentence.numpy())
        return np.concatenate(out)

    say("features")
    train, test = load_clinc150("train"), load_clinc150("test")
    x_source, x_train, x_test = featurise(source), featurise(train), featurise(test)
    mean, std = x_source.mean(0), x_source.std(0) + 1e-6
    x_source, x_train, x_test = ((x - mean) / std for x in (x_source, x_train, x_test))
    say("pre-training the head on HWU64")
    head = pretrain_head(x_source, [u.intent for u in source])
    y_train, y_test = [u.intent for u in train], [u.intent for u in test]
    results: dict[str, Any] = {}
    for k in sizes:
        label = "full" if k is None else f"{k} per intent"
        runs: dict[str, list[float]] = {"standard": [], "lqf": [], "linear_probe": []}
        seconds: dict[str, list[float]] = {"standard": [], "lqf": []}
        for seed in seeds if k is not None else seeds[:1]:
            rows = list(range(len(train))) if k is None else _per_intent(train, k, seed)
            xs, ys = x_train[rows], [y_train[i] for i in rows]
            for method in ("standard", "lqf"):
                say(f"{label}, seed {seed}: {method}")
                tuner = HeadFineTuner(method=method, epochs=epochs, seed=seed).fit(xs, ys, pretrained=head)
                runs[method].append(tuner.score(x_test, y_test))
                seconds[method].append(tuner.seconds_)
            with torch.no_grad():
                hidden = head.features(torch.as_tensor(xs, dtype=torch.float32)).numpy()
                hidden_test = head.features(torch.as_tensor(x_test, dtype=torch.float32)).numpy()
            probe = LogisticRegression(C=1.0, max_iter=1000).fit(hidden, ys)
            runs["linear_probe"].append(float(np.mean(probe.predict(hidden_test) == np.asarray(y_test))))
        results[label] = {
            name: {"accuracy": float(np.mean(v)), "std": float(np.std(v)), "runs": v} for name, v in runs.items()
        }
        for name, v in seconds.items():
            results[label][name]["seconds"] = float(np.mean(v))
    return {"source": "hwu64 train", "target": "clinc150", "test_size": len(test), "epochs": epochs, "results": results}
