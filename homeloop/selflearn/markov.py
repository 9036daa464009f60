"""Absorbing Markov chains over utterances, solved with sparse linear algebra.

A chain has ``n`` transient states (utterances as the assistant heard them) and
``k`` absorbing states (here: success and failure). ``Q`` (``n x n``) holds the
transition probabilities between transient states and ``R`` (``n x k``) those
into the absorbing states; each row of ``[Q R]`` sums to 1. The absorption
probabilities are

    B = (I - Q)^-1 R

``B[s, j]`` is the probability that a walk started in ``s`` ends in absorbing
state ``j``. :func:`absorption_probabilities` never forms the inverse: states
with no transient successors are absorbed at once (``B = R`` there), and only
the block of states that do have successors is factorised with a sparse LU
(:func:`scipy.sparse.linalg.splu`) and solved for the ``k`` columns together.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from homeloop.errors import InvalidInputError

__all__ = ["absorption_probabilities", "chain_from_counts", "dense_absorption_probabilities"]


def chain_from_counts(
    n_states: int,
    src: np.ndarray,
    dst: np.ndarray,
    counts: np.ndarray,
    absorbed: np.ndarray,
    *,
    prior_strength: float = 0.0,
    prior: np.ndarray | None = None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(Q, R)`` from observed counts.

    ``src, dst, counts`` are transitions between transient states (repeated pairs are summed);
    ``absorbed`` (``n_states x k``) counts the walks that ended in each absorbing state from each
    state. ``prior_strength`` pseudo-observations per state are absorbed with the probabilities
    ``prior`` (a length-``k`` vector summing to 1): this smooths rarely seen states and keeps every
    row of ``Q`` below 1, so ``I - Q`` is always invertible.
    """
    absorbed = np.asarray(absorbed, dtype=np.float64)
    if absorbed.ndim != 2 or absorbed.shape[0] != n_states:
        raise InvalidInputError(f"absorbed: expected shape ({n_states}, k), got {absorbed.shape}")
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.float64)
    if len(src) and (src.min() < 0 or dst.min() < 0 or src.max() >= n_states or dst.max() >= n_states):
        raise InvalidInputError(f"transitions: expected state ids in [0, {n_states}), got ids outside")
    if np.any(counts < 0) or np.any(absorbed < 0):
        raise InvalidInputError("counts: expected non-negative counts, got negative ones")
    k = absorbed.shape[1]
    if prior_strength > 0:
        prior = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
        if prior.shape != (k,) or not np.isclose(prior.sum(), 1.0):
            raise InvalidInputError(f"prior: expected {k} probabilities summing to 1, got {prior!r}")
        absorbed = absorbed + prior_strength * prior
    counts_q = sp.csr_matrix((counts, (src, dst)), shape=(n_states, n_states))
    counts_q.sum_duplicates()
    total = np.asarray(counts_q.sum(axis=1)).ravel() + absorbed.sum(axis=1)
    if np.any(total <= 0):
        bad = int(np.flatnonzero(total <= 0)[0])
        raise InvalidInputError(
            f"state {bad}: expected at least one observed transition or absorption (or prior_strength > 0), got none"
        )
    inv = 1.0 / total
    q = sp.diags(inv) @ counts_q
    return q.tocsr(), absorbed * inv[:, None]


def absorption_probabilities(q: sp.spmatrix, r: np.ndarray) -> np.ndarray:
    """``B = (I - Q)^-1 R`` by sparse LU on the states that have transient successors.

    ``q`` is a sparse ``n x n`` matrix, ``r`` a dense ``n x k`` array. Returns the dense ``n x k`` ``B``.
    Raises :class:`~homeloop.errors.InvalidInputError` when a closed set of transient states never
    reaches an absorbing one (``I - Q`` singular).
    """
    q = sp.csr_matrix(q, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    n = q.shape[0]
    if q.shape != (n, n) or r.ndim != 2 or r.shape[0] != n:
        raise InvalidInputError(f"Q, R: expected shapes (n, n) and (n, k), got {q.shape} and {r.shape}")
    b = r.copy()
    has_out = np.diff(q.indptr) > 0
    moving = np.flatnonzero(has_out)
    if len(moving) == 0:
        return b
    still = np.flatnonzero(~has_out)
    # (I - Q_mm) B_m = R_m + Q_ms B_s, where B_s = R_s for states absorbed at once
    q_mm = q[moving][:, moving]
    rhs = r[moving] + (q[moving][:, still] @ r[still] if len(still) else 0.0)
    a = (sp.identity(len(moving), format="csc") - q_mm.tocsc()).tocsc()
    try:
        lu = splu(a)
    except RuntimeError as exc:  # "Factor is exactly singular"
        raise InvalidInputError(
            "transition matrix: expected every state to reach an absorbing state, got a closed set of states "
            "that never does (use prior_strength > 0)"
        ) from exc
    b[moving] = lu.solve(np.ascontiguousarray(rhs))
    return b


def dense_absorption_probabilities(q, r: np.ndarray) -> np.ndarray:
    """The textbook ``B = inv(I - Q) @ R`` with a dense inverse: the reference for small chains and the
    benchmark's straightforward baseline. Memory grows with ``n^2``."""
    q = q.toarray() if sp.issparse(q) else np.asarray(q, dtype=np.float64)
    n = q.shape[0]
    return np.linalg.inv(np.eye(n) - q) @ np.asarray(r, dtype=np.float64)
