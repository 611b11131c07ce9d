"""Contextual bandits over the shared :class:`~chatpersona.decide.base.Policy` base.

All three keep one ridge regression per action ("disjoint" models) on the context
vector. The inverse of each action's design matrix is kept up to date with a
Sherman-Morrison rank-1 update (O(d^2) per reward), never re-inverted per decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.linalg.blas import dger as _dger

from chatpersona.decide.base import Policy, Scores
from chatpersona.exceptions import ParameterError, PlanError

__all__ = ["EpsilonGreedy", "FixedPolicy", "LinUCB", "LinearThompson", "UniformRandom"]


class _LinearArms(Policy):
    """Per-action ridge models: ``A_inv[a]``, ``b[a]``, ``theta[a] = A_inv[a] @ b[a]``."""

    def __init__(self, actions: Sequence[str], *, ridge: float = 1.0, **kwargs: Any) -> None:
        self.ridge = ridge
        super().__init__(actions, **kwargs)

    def _init_state(self, n_actions: int, dim: int) -> None:
        if not isinstance(self.ridge, int | float) or not self.ridge > 0:
            raise ParameterError(type(self).__name__, "ridge", "a float > 0", self.ridge)
        self.A_inv_ = np.tile(np.eye(dim) / float(self.ridge), (n_actions, 1, 1))
        self.b_ = np.zeros((n_actions, dim))
        self.theta_ = np.zeros((n_actions, dim))
        self.counts_ = np.zeros(n_actions, dtype=np.int64)
        # Scoring reads a float32 copy of the inverses (half the memory traffic; the
        # confidence width does not need more precision), laid out 2-D so one BLAS call
        # computes A_inv[a] @ x for every action. Learning stays in float64.
        self._A32 = self.A_inv_.astype(np.float32)
        self._A2 = self._A32.reshape(n_actions * dim, dim)
        self._dim = dim
        self._fast_bufs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._dger_in_place: bool | None = None

    def _update(self, x: np.ndarray, action: int, reward: float) -> None:
        A_inv = self.A_inv_[action]
        Ax = A_inv @ x
        # Sherman-Morrison: (A + x x')^-1 = A^-1 - (A^-1 x)(A^-1 x)' / (1 + x' A^-1 x), as an
        # in-place BLAS rank-1 update (A_inv is symmetric, so its transpose is the
        # Fortran-ordered view BLAS writes into).
        out = _dger(-1.0 / (1.0 + x @ Ax), Ax, Ax, a=A_inv.T, overwrite_a=1)
        if self._dger_in_place is None:  # checked once: the layout never changes
            self._dger_in_place = bool(np.shares_memory(out, A_inv))
        if not self._dger_in_place:  # BLAS had to copy: write back
            A_inv[...] = out.T
        self._A32[action] = A_inv
        b = self.b_[action]
        b += reward * x
        np.dot(A_inv, b, out=self.theta_[action])
        self.counts_[action] += 1

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"A_inv": self.A_inv_.copy(), "b": self.b_.copy(), "counts": self.counts_.copy()}

    def _load_arrays(self, arrays: Any) -> None:
        A_inv = np.asarray(arrays["A_inv"], dtype=float)
        if A_inv.shape != self.A_inv_.shape:
            raise PlanError(
                f"Saved policy state has matrices of shape {A_inv.shape}; this policy needs "
                f"{self.A_inv_.shape}.",
                code="state_mismatch",
            )
        self.A_inv_[...] = A_inv
        self._A32[...] = A_inv
        self.b_[...] = np.asarray(arrays["b"], dtype=float)
        self.counts_[...] = np.asarray(arrays["counts"])
        self.theta_[...] = np.einsum("kij,kj->ki", self.A_inv_, self.b_)

    def _mean_var(self, x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = self.theta_ @ x
        x32 = x.astype(np.float32)
        var = ((self._A2 @ x32).reshape(-1, self._dim) @ x32).astype(np.float64)
        if idx.shape[0] != mean.shape[0]:
            mean, var = mean[idx], var[idx]
        return mean, np.maximum(var, 0.0)

    def _contributions(self, x: np.ndarray, action: int) -> np.ndarray | None:
        return self.theta_[action] * x

    def _batch_mean_var(self, X: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = X @ self.theta_[idx].T
        var = np.empty_like(mean)
        k, d = idx.shape[0], self._dim
        # One GEMM for all actions: (rows, d) @ (d, k*d), in row chunks to bound memory.
        stacked = self._A32[idx].transpose(1, 0, 2).reshape(d, k * d)
        chunk = max(1, 1 << 22 >> max(1, (k * d).bit_length()))
        for start in range(0, X.shape[0], chunk):
            Xc = X[start : start + chunk].astype(np.float32)
            AX = (Xc @ stacked).reshape(Xc.shape[0], k, d)
            var[start : start + chunk] = np.einsum("nkd,nd->nk", AX, Xc)
        return mean, np.maximum(var, 0.0)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "ridge": self.ridge}


class EpsilonGreedy(_LinearArms):
    """Epsilon-greedy on per-action ridge estimates: with probability ``epsilon`` a uniform
    candidate, otherwise the best estimate (ties split evenly).

    Examples
    --------
    >>> p = EpsilonGreedy(["a", "b", "c"], epsilon=0.3, seed=1)
    >>> sorted(p.probabilities({}).values())
    [0.3333333333333333, 0.3333333333333333, 0.3333333333333333]
    """

    kind = "epsilon_greedy"

    def __init__(self, actions: Sequence[str], *, epsilon: float = 0.1, **kwargs: Any) -> None:
        self.epsilon = epsilon
        super().__init__(actions, **kwargs)

    def _init_state(self, n_actions: int, dim: int) -> None:
        e = self.epsilon
        if not isinstance(e, int | float) or not 0.0 <= e <= 1.0:
            raise ParameterError("EpsilonGreedy", "epsilon", "a float in [0, 1]", e)
        super()._init_state(n_actions, dim)

    def _scores(self, x: np.ndarray, idx: np.ndarray, context: Mapping[str, Any]) -> Scores:
        mean = self.theta_ @ x
        if idx.shape[0] != mean.shape[0]:
            mean = mean[idx]
        ties = mean >= mean.max() - 1e-12
        k = idx.shape[0]
        probs = self.epsilon / k + (1.0 - self.epsilon) * ties / ties.sum()
        return Scores(mean, None, probs)

    def _batch_scores(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
        return None  # epsilon mixing needs the per-row distribution

    def params(self) -> dict[str, Any]:
        return {**super().params(), "epsilon": self.epsilon}


class LinUCB(_LinearArms):
    """Disjoint LinUCB (Li et al., 2010): choose the best ``theta_a . x + alpha *
    sqrt(x' A_a^-1 x)``.

    Examples
    --------
    >>> p = LinUCB(["a", "b"], alpha=0.1, seed=0)
    >>> p.update({}, "a", 1.0)
    >>> p.probabilities({})["a"]
    1.0
    """

    kind = "linucb"

    def __init__(self, actions: Sequence[str], *, alpha: float = 0.5, **kwargs: Any) -> None:
        self.alpha = alpha
        super().__init__(actions, **kwargs)

    def _init_state(self, n_actions: int, dim: int) -> None:
        a = self.alpha
        if not isinstance(a, int | float) or not a >= 0:
            raise ParameterError("LinUCB", "alpha", "a float >= 0", a)
        super()._init_state(n_actions, dim)

    def _scores(self, x: np.ndarray, idx: np.ndarray, context: Mapping[str, Any]) -> Scores:
        mean, var = self._mean_var(x, idx)
        return Scores(mean, self.alpha * np.sqrt(var))

    def _batch_scores(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
        mean, var = self._batch_mean_var(X, idx)
        return mean + self.alpha * np.sqrt(var)

    def _fast_distribution(
        self, x: np.ndarray, explore: bool
    ) -> tuple[list[float], list[float]] | None:
        # The same BLAS products as ``_mean_var`` into preallocated buffers, then the
        # 20-odd per-action steps of ``_distribution`` on Python floats: identical IEEE
        # operations (sqrt, *, +, >=, /), without a dozen small numpy calls.
        bufs = self._fast_bufs
        if bufs is None:
            k, d = self._A32.shape[0], self._dim
            bufs = self._fast_bufs = (
                np.empty(d, dtype=np.float32),
                np.empty(k * d, dtype=np.float32),
                np.empty(k, dtype=np.float32),
            )
        x32, ax, var32 = bufs
        x32[...] = x
        np.dot(self._A2, x32, out=ax)
        np.dot(ax.reshape(-1, self._dim), x32, out=var32)
        values = (self.theta_ @ x).tolist()
        var = var32.tolist()
        if not explore:
            top = max(values) - 1e-12
            first = next(i for i, v in enumerate(values) if v >= top)
            probs = [0.0] * len(values)
            probs[first] = 1.0
            return probs, values
        alpha, sqrt = self.alpha, math.sqrt
        score = [m + alpha * sqrt(v if v > 0.0 else 0.0) for m, v in zip(values, var, strict=True)]
        top = max(score) - 1e-12
        ties = [v >= top for v in score]
        share = 1.0 / ties.count(True)
        k = len(score)
        f = self.exploration_floor
        if f > 0 and k > 1:
            c = 1.0 - k * f
            on, off = share * c + f, 0.0 * c + f
            return [on if t else off for t in ties], values
        return [share if t else 0.0 for t in ties], values

    def params(self) -> dict[str, Any]:
        return {**super().params(), "alpha": self.alpha}


class LinearThompson(_LinearArms):
    """Linear Thompson sampling (Agrawal & Goyal, 2013) with a known propensity.

    Each action's score ``x . theta_a`` with ``theta_a ~ N(mean_a, v^2 A_a^-1)`` is a 1-D
    normal ``N(x . mean_a, v^2 x' A_a^-1 x)``. ``draws`` such samples per action give a
    Monte Carlo distribution over the best action; the action is drawn from exactly that
    distribution, so the logged propensity is the true probability it was chosen with.
    """

    kind = "thompson"

    def __init__(
        self, actions: Sequence[str], *, v: float = 0.3, draws: int = 32, **kwargs: Any
    ) -> None:
        self.v = v
        self.draws = draws
        super().__init__(actions, **kwargs)

    def _init_state(self, n_actions: int, dim: int) -> None:
        if not isinstance(self.v, int | float) or not self.v > 0:
            raise ParameterError("LinearThompson", "v", "a float > 0", self.v)
        if not isinstance(self.draws, int) or self.draws < 1:
            raise ParameterError("LinearThompson", "draws", "an int >= 1", self.draws)
        super()._init_state(n_actions, dim)

    def _scores(self, x: np.ndarray, idx: np.ndarray, context: Mapping[str, Any]) -> Scores:
        mean, var = self._mean_var(x, idx)
        k = idx.shape[0]
        z = self.rng_.standard_normal((self.draws, k))
        sampled = mean + self.v * np.sqrt(var) * z
        counts = np.bincount(sampled.argmax(axis=1), minlength=k)
        return Scores(mean, None, counts / self.draws)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "v": self.v, "draws": self.draws}


class FixedPolicy(Policy):
    """Always the same action (a baseline; falls back to the first candidate when the
    fixed action is not allowed)."""

    kind = "fixed"
    learns = False

    def __init__(self, actions: Sequence[str], *, action: str | None = None, **kwargs: Any) -> None:
        self.action = action if action is not None else next(iter(actions), None)
        super().__init__(actions, **kwargs)

    def _init_state(self, n_actions: int, dim: int) -> None:
        if self.action not in self.actions:
            raise ParameterError("FixedPolicy", "action", f"one of {self.actions}", self.action)
        self._fixed = self.actions.index(self.action)

    def _scores(self, x: np.ndarray, idx: np.ndarray, context: Mapping[str, Any]) -> Scores:
        value = (idx == self._fixed).astype(float)
        if not value.any():
            value[0] = 1.0
        return Scores(value)

    def _update(self, x: np.ndarray, action: int, reward: float) -> None:
        return None

    def params(self) -> dict[str, Any]:
        return {**super().params(), "action": self.action}


class UniformRandom(Policy):
    """Every candidate with equal probability (a logging baseline)."""

    kind = "random"
    learns = False

    def _scores(self, x: np.ndarray, idx: np.ndarray, context: Mapping[str, Any]) -> Scores:
        k = idx.shape[0]
        return Scores(np.zeros(k), None, np.full(k, 1.0 / k))

    def _update(self, x: np.ndarray, action: int, reward: float) -> None:
        return None
