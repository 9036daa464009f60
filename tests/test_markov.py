"""Absorbing Markov chains: the sparse solve against the textbook dense inverse and against hand-solved chains."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from homeloop.errors import InvalidInputError
from homeloop.selflearn.markov import absorption_probabilities, chain_from_counts, dense_absorption_probabilities


def test_hand_solved_chain():
    # s0 -> s1 (0.5) or success (0.5); s1 -> s0 (0.2), success (0.3), failure (0.5); s2 is absorbed at once
    q = sp.csr_matrix(np.array([[0.0, 0.5, 0.0], [0.2, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    r = np.array([[0.5, 0.0], [0.3, 0.5], [0.9, 0.1]])
    b = absorption_probabilities(q, r)
    # b0 = 0.5 + 0.5 b1, b1 = 0.3 + 0.2 b0  =>  b0 = 0.65 / 0.9
    assert b[0, 0] == pytest.approx(0.65 / 0.9)
    assert b[1, 0] == pytest.approx(0.3 + 0.2 * 0.65 / 0.9)
    assert b[2].tolist() == [0.9, 0.1]
    np.testing.assert_allclose(b.sum(axis=1), 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_solve_matches_the_dense_inverse(seed):
    rng = np.random.default_rng(seed)
    n = 300
    q = sp.random(n, n, density=0.01, random_state=seed, format="csr")
    q.data = rng.uniform(0.1, 1.0, q.nnz)
    keep = np.ones(n)
    keep[::3] = 0  # a third of the states have no successors
    q = (sp.diags(keep) @ q).tocsr()
    q.eliminate_zeros()
    r = rng.uniform(0.05, 1.0, (n, 2))
    scale = np.asarray(q.sum(axis=1)).ravel() + r.sum(axis=1)
    q = sp.diags(1 / scale) @ q
    r = r / scale[:, None]
    sparse = absorption_probabilities(q, r)
    dense = dense_absorption_probabilities(q, r)
    np.testing.assert_allclose(sparse, dense, atol=1e-10)
    np.testing.assert_allclose(sparse.sum(axis=1), 1.0, atol=1e-10)


def test_chain_from_counts_normalises_rows_and_smooths():
    q, r = chain_from_counts(
        3,
        src=np.array([0, 0, 1]),
        dst=np.array([1, 1, 2]),
        counts=np.array([1.0, 2.0, 1.0]),
        absorbed=np.array([[1, 0], [0, 1], [4, 0]]),
        prior_strength=2.0,
        prior=np.array([0.5, 0.5]),
    )
    rows = np.asarray(q.sum(axis=1)).ravel() + r.sum(axis=1)
    np.testing.assert_allclose(rows, 1.0)
    assert q[0, 1] == pytest.approx(3 / 6)  # repeated pairs add up; 1 absorbed + 2 pseudo-turns
    assert r[2, 0] == pytest.approx(5 / 6)


def test_a_closed_set_that_never_absorbs_is_refused():
    q = sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(InvalidInputError, match="closed set"):
        absorption_probabilities(q, np.zeros((2, 2)))
    # with pseudo-turns the same counts give a solvable chain
    q, r = chain_from_counts(2, np.array([0, 1]), np.array([1, 0]), np.ones(2), np.zeros((2, 2)), prior_strength=1.0)
    np.testing.assert_allclose(absorption_probabilities(q, r), 0.5)


@pytest.mark.parametrize(
    ("src", "absorbed", "match"),
    [
        (np.array([5]), np.zeros((2, 2)), "ids outside"),
        (np.array([0]), np.zeros((3, 2)), "expected shape"),
    ],
)
def test_bad_counts_are_refused(src, absorbed, match):
    with pytest.raises(InvalidInputError, match=match):
        chain_from_counts(2, src, np.array([1]), np.ones(1), absorbed)


def test_a_state_never_seen_needs_a_prior():
    with pytest.raises(InvalidInputError, match="state 1"):
        chain_from_counts(2, np.array([], dtype=int), np.array([], dtype=int), np.array([]), np.array([[1, 0], [0, 0]]))
