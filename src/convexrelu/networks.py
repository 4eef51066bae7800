"""The non-convex networks that convex solutions recover (theory.md, "Two-layer
networks" and "Three-layer parallel networks").

They predict with plain numpy, evaluate their own regularised non-convex objective
(P2 / P3) and export a ``torch.nn.Module`` computing the same function.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._validation import add_intercept, check_beta, check_bool, check_matrix, check_number
from .losses import get_loss

__all__ = ["TwoLayerNetwork", "ThreeLayerNetwork"]


def _design(X, fit_intercept: bool, n_features: int) -> np.ndarray:
    X = check_matrix(X)
    expected = n_features - 1 if fit_intercept else n_features
    if X.shape[1] != expected:
        raise ValueError(f"X: expected {expected} features, got {X.shape[1]}")
    return add_intercept(X) if fit_intercept else X


def _reshaped(value, shape: tuple, name: str, expected: str) -> np.ndarray:
    """``value`` as a float array of ``shape`` (one ``-1`` allowed), or a ValueError
    naming the argument."""
    a = np.asarray(value, dtype=np.float64)
    try:
        return a.reshape(shape)
    except ValueError:
        raise ValueError(f"{name}: expected shape {expected}, got {a.shape}") from None


def _check_finite(**arrays) -> None:
    """A ValueError naming the first array (None: skipped) with NaN or infinite entries: a
    network (or a model file) with them had predicted NaN without a word."""
    for name, a in arrays.items():
        if a is not None and not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: expected finite weights, got {int(np.sum(~np.isfinite(a)))} NaN or infinite "
                             "entries")


class TwoLayerNetwork:
    """``f(X) = (X W1)_+ W2`` (ReLU) or ``f(X) = (1[X G >= 0] * (X W1)) W2`` (gated).

    Parameters
    ----------
    W1 : array (d, m)
        First-layer weights acting on the design matrix (intercept column last when
        ``fit_intercept``).
    W2 : array (m, C)
        Output weights.
    gates : array (d, m) or None
        Gate vectors of a gated ReLU network; None for a ReLU network.
    fit_intercept : bool
        Whether a ones column is appended to the input before the first layer.

    The non-convex objective (theory.md, "Two-layer networks") is
    ``l(f(X), y) + (beta / 2) (||W1||_F^2 + ||W2||_F^2)``.
    """

    kind = "two_layer"

    def __init__(self, W1, W2, gates=None, fit_intercept: bool = True):
        self.W1 = np.asarray(W1, dtype=np.float64)
        if self.W1.ndim != 2:
            raise ValueError(f"W1: expected shape (d, m), got {self.W1.shape}")
        m = self.W1.shape[1]
        W2 = np.asarray(W2, dtype=np.float64)
        # a network with no neuron (the zero solution of a large beta) keeps its outputs
        self.W2 = W2 if W2.ndim == 2 and W2.shape[0] == m else _reshaped(W2, (m, -1), "W2", f"({m}, C) to match W1")
        self.gates = None if gates is None else np.asarray(gates, dtype=np.float64)
        if self.gates is not None and self.gates.shape != self.W1.shape:
            raise ValueError(f"gates: expected shape {self.W1.shape}, got {self.gates.shape}")
        _check_finite(W1=self.W1, W2=self.W2, gates=self.gates)
        self.fit_intercept = check_bool(fit_intercept, "fit_intercept")

    @property
    def n_neurons(self) -> int:
        return self.W1.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.W2.shape[1]

    def hidden(self, X) -> np.ndarray:
        """Hidden-layer activations, shape (n, m)."""
        A = _design(X, self.fit_intercept, self.W1.shape[0])
        pre = A @ self.W1
        if self.gates is None:
            return np.maximum(pre, 0.0)
        return (A @ self.gates >= 0) * pre

    def predict(self, X) -> np.ndarray:
        """Network output, shape (n, C)."""
        return self.hidden(X) @ self.W2

    def penalty(self) -> float:
        return 0.5 * float(np.sum(self.W1**2) + np.sum(self.W2**2))

    def scaled(self, scale: float) -> "TwoLayerNetwork":
        """The network whose outputs and penalty are ``scale > 0`` times this one's: both
        layers times ``sqrt(scale)`` (the gates as they are). For the squared loss it maps
        an optimum of targets ``Y`` and ``beta`` to one of ``scale Y`` and ``scale beta``,
        whose objective is ``scale^2`` times."""
        r = math.sqrt(check_number(scale, "scale"))
        return TwoLayerNetwork(self.W1 * r, self.W2 * r, gates=self.gates, fit_intercept=self.fit_intercept)

    def objective(self, X, y, loss="squared", beta: float = 0.0) -> float:
        """``l(f(X), y) + (beta/2)(||W1||_F^2 + ||W2||_F^2)`` with ``y`` as the loss expects."""
        loss = get_loss(loss)
        Y = loss.prepare_targets(y)
        return loss.value_numpy(self.predict(X), Y) + check_beta(beta) * self.penalty()

    def to_torch(self, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
        """A ``torch.nn.Module`` computing :meth:`predict` on raw inputs (n, d_in)."""
        return _TwoLayerModule(self, dtype)


class ThreeLayerNetwork:
    """``f(X) = sum_k ((X W1_k)_+ w2_k)_+ w3_k`` (theory.md, "Three-layer parallel networks").

    Parameters
    ----------
    W1 : array (K, d, m1)
    w2 : array (K, m1)
    w3 : array (K, C)
    fit_intercept : bool

    The non-convex objective (P3 of theory.md) is
    ``l(f(X), y) + (beta/2) sum_k (||w2_k||^2 + ||w3_k||^2)`` subject to
    ``||W1_k||_F <= 1``; :meth:`objective` returns ``inf`` when a first layer violates
    it by more than a relative 1e-6.
    """

    kind = "three_layer"

    def __init__(self, W1, w2, w3, fit_intercept: bool = True):
        self.W1 = np.asarray(W1, dtype=np.float64)
        if self.W1.ndim != 3:
            raise ValueError(f"W1: expected shape (K, d, m1), got {self.W1.shape}")
        K, _, m1 = self.W1.shape
        self.w2 = _reshaped(w2, (K, m1), "w2", f"({K}, {m1}) to match W1")
        w3 = np.asarray(w3, dtype=np.float64)
        self.w3 = w3 if w3.ndim == 2 and w3.shape[0] == K else _reshaped(w3, (K, -1), "w3", f"({K}, C) to match W1")
        _check_finite(W1=self.W1, w2=self.w2, w3=self.w3)
        self.fit_intercept = check_bool(fit_intercept, "fit_intercept")

    @property
    def n_subnetworks(self) -> int:
        return self.W1.shape[0]

    @property
    def n_outputs(self) -> int:
        return self.w3.shape[1]

    def subnetwork_outputs(self, X) -> np.ndarray:
        """``((X W1_k)_+ w2_k)_+`` for every k, shape (n, K)."""
        A = _design(X, self.fit_intercept, self.W1.shape[1])
        H = np.maximum(np.einsum("nd,kdm->knm", A, self.W1), 0.0)
        return np.maximum(np.einsum("knm,km->nk", H, self.w2), 0.0)

    def predict(self, X) -> np.ndarray:
        """Network output, shape (n, C)."""
        if self.n_subnetworks == 0:  # (X still checked: its features must match the first layer's)
            A = _design(X, self.fit_intercept, self.W1.shape[1])
            return np.zeros((A.shape[0], self.n_outputs))
        return self.subnetwork_outputs(X) @ self.w3

    def first_layer_norms(self) -> np.ndarray:
        """``||W1_k||_F`` for every k, shape (K,)."""
        return np.sqrt(np.sum(self.W1**2, axis=(1, 2)))

    def penalty(self) -> float:
        return 0.5 * float(np.sum(self.w2**2) + np.sum(self.w3**2))

    def scaled(self, scale: float) -> "ThreeLayerNetwork":
        """The network whose outputs and penalty are ``scale > 0`` times this one's: ``w2``
        and ``w3`` times ``sqrt(scale)`` (the unit-norm first layers as they are). For the
        squared loss it maps an optimum of targets ``Y`` and ``beta`` to one of ``scale Y``
        and ``scale beta``, whose objective is ``scale^2`` times."""
        r = math.sqrt(check_number(scale, "scale"))
        return ThreeLayerNetwork(self.W1, self.w2 * r, self.w3 * r, fit_intercept=self.fit_intercept)

    def objective(self, X, y, loss="squared", beta: float = 0.0) -> float:
        """P3 objective ``l(f(X), y) + (beta/2) sum_k (||w2_k||^2 + ||w3_k||^2)``."""
        if self.n_subnetworks and np.any(self.first_layer_norms() > 1 + 1e-6):
            return float("inf")
        loss = get_loss(loss)
        Y = loss.prepare_targets(y)
        return loss.value_numpy(self.predict(X), Y) + check_beta(beta) * self.penalty()

    def to_torch(self, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
        """A ``torch.nn.Module`` computing :meth:`predict` on raw inputs (n, d_in)."""
        return _ThreeLayerModule(self, dtype)


class _TwoLayerModule(torch.nn.Module):
    def __init__(self, net: TwoLayerNetwork, dtype):
        super().__init__()
        self.fit_intercept = net.fit_intercept
        self.W1 = torch.nn.Parameter(torch.as_tensor(net.W1, dtype=dtype))
        self.W2 = torch.nn.Parameter(torch.as_tensor(net.W2, dtype=dtype))
        self.register_buffer("gates", None if net.gates is None else torch.as_tensor(net.gates, dtype=dtype))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.fit_intercept:
            X = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1)
        pre = X @ self.W1
        H = torch.relu(pre) if self.gates is None else (X @ self.gates >= 0).to(pre.dtype) * pre
        return H @ self.W2


class _ThreeLayerModule(torch.nn.Module):
    def __init__(self, net: ThreeLayerNetwork, dtype):
        super().__init__()
        self.fit_intercept = net.fit_intercept
        self.W1 = torch.nn.Parameter(torch.as_tensor(net.W1, dtype=dtype))
        self.w2 = torch.nn.Parameter(torch.as_tensor(net.w2, dtype=dtype))
        self.w3 = torch.nn.Parameter(torch.as_tensor(net.w3, dtype=dtype))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.fit_intercept:
            X = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1)
        H = torch.relu(torch.einsum("nd,kdm->knm", X, self.W1))
        S = torch.relu(torch.einsum("knm,km->nk", H, self.w2))
        return S @ self.w3
