"""Convex losses of the prediction matrix ``Z`` (n, C) against encoded targets ``Y`` (n, C).

Every loss is *summed* over samples, exactly as in ``theory.md`` (section "Notation"):

- squared: ``l(Z, Y) = 0.5 ||Z - Y||_F^2``;
- logistic (binary, one output, ``Y`` in {-1, +1}): ``l(z, y) = sum_i log(1 + exp(-y_i z_i))``;
- softmax cross-entropy (``Y`` one-hot, one output per class):
  ``l(Z, Y) = sum_i ( logsumexp(Z_i) - <Z_i, Y_i> )``.

One class per loss, owning its value, gradient, convex conjugate (used by the duality
certificate of theory.md, "Duality and certificates"), its CVXPY expression and its
target encoding. Values and gradients take torch tensors (any dtype/device).
"""

from __future__ import annotations

import abc
import math

import cvxpy as cp
import numpy as np
import torch

__all__ = ["Loss", "SquaredLoss", "LogisticLoss", "SoftmaxLoss", "get_loss"]


def _xlogx(t: torch.Tensor) -> torch.Tensor:
    """``t log t`` with the convention ``0 log 0 = 0`` (for ``t >= 0``)."""
    return torch.where(t > 0, t * torch.log(torch.clamp(t, min=torch.finfo(t.dtype).tiny)), torch.zeros_like(t))


class Loss(abc.ABC):
    """Base class of the convex losses. Subclasses define every method below."""

    name: str = ""
    #: Lipschitz constant of the gradient in ``Z`` (Frobenius norm).
    smoothness: float = 1.0
    #: Whether the loss gives class probabilities.
    has_proba: bool = False

    @abc.abstractmethod
    def prepare_targets(self, y) -> np.ndarray:
        """Validate and encode targets into a float64 array of shape (n, C)."""

    @abc.abstractmethod
    def value(self, Z: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Loss value (a 0-d tensor)."""

    @abc.abstractmethod
    def grad(self, Z: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Gradient in ``Z``, shape (n, C)."""

    @abc.abstractmethod
    def conjugate(self, V: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Convex conjugate ``l*(V) = sup_Z <V, Z> - l(Z, Y)`` (``inf`` outside its domain)."""

    @abc.abstractmethod
    def cvxpy(self, Z: cp.Expression, Y: np.ndarray) -> cp.Expression:
        """The same loss as a CVXPY expression of the (n, C) expression ``Z``."""

    def value_numpy(self, Z: np.ndarray, Y: np.ndarray) -> float:
        """Loss value for numpy arrays (float64)."""
        Z = np.asarray(Z, dtype=np.float64).reshape(len(Y), -1)
        return float(self.value(torch.from_numpy(Z), torch.as_tensor(Y, dtype=torch.float64)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class SquaredLoss(Loss):
    """``l(Z, Y) = 0.5 ||Z - Y||_F^2``; conjugate ``l*(V) = 0.5 ||V||^2 + <V, Y>``."""

    name = "squared"
    smoothness = 1.0

    def prepare_targets(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2:
            raise ValueError(f"y: expected shape (n,) or (n, k) for the squared loss, got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y: expected finite values, got NaN or infinite entries")
        return y

    def value(self, Z, Y):
        return 0.5 * torch.sum((Z - Y) ** 2)

    def grad(self, Z, Y):
        return Z - Y

    def conjugate(self, V, Y):
        return 0.5 * torch.sum(V**2) + torch.sum(V * Y)

    def cvxpy(self, Z, Y):
        return 0.5 * cp.sum_squares(Z - Y)


class LogisticLoss(Loss):
    """``l(z, y) = sum_i log(1 + exp(-y_i z_i))`` for labels ``y_i`` in {-1, +1}.

    Conjugate: with ``t_i = -y_i v_i``, ``l*(v) = sum_i t_i log t_i + (1 - t_i) log(1 - t_i)``
    when every ``t_i`` is in [0, 1], ``+inf`` otherwise.
    """

    name = "logistic"
    smoothness = 0.25
    has_proba = True

    def prepare_targets(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y: expected shape (n,) with labels in {{-1, +1}} for the logistic loss, got {y.shape}")
        if not np.all(np.isin(y, (-1.0, 1.0))):
            bad = np.unique(y[~np.isin(y, (-1.0, 1.0))])[:5]
            raise ValueError(f"y: expected labels in {{-1, +1}} for the logistic loss, got values such as {bad.tolist()}")
        return y[:, None]

    def value(self, Z, Y):
        return torch.sum(torch.nn.functional.softplus(-Y * Z))

    def grad(self, Z, Y):
        return -Y * torch.sigmoid(-Y * Z)

    def conjugate(self, V, Y):
        t = -Y * V
        tol = 1e-12
        if torch.any(t < -tol) or torch.any(t > 1 + tol):
            return torch.tensor(math.inf, dtype=V.dtype, device=V.device)
        t = torch.clamp(t, 0.0, 1.0)
        return torch.sum(_xlogx(t) + _xlogx(1 - t))

    def cvxpy(self, Z, Y):
        return cp.sum(cp.logistic(-cp.multiply(Y, Z)))

    @staticmethod
    def proba(Z: np.ndarray) -> np.ndarray:
        """Probabilities of the classes (-1, +1), shape (n, 2)."""
        p = 1.0 / (1.0 + np.exp(-np.asarray(Z, dtype=np.float64).reshape(-1)))
        return np.column_stack([1.0 - p, p])


class SoftmaxLoss(Loss):
    """``l(Z, Y) = sum_i logsumexp(Z_i) - <Z_i, Y_i>`` for one-hot ``Y`` (n, C).

    Conjugate: ``l*(V) = sum_{i,k} (V_ik + Y_ik) log(V_ik + Y_ik)`` when every row of
    ``V + Y`` lies in the probability simplex, ``+inf`` otherwise.
    """

    name = "softmax"
    smoothness = 0.5
    has_proba = True

    def prepare_targets(self, y) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2:
            Y = y.astype(np.float64)
            if not (np.all(np.isin(Y, (0.0, 1.0))) and np.all(Y.sum(axis=1) == 1)):
                raise ValueError("y: expected one-hot rows (a single 1 per row) for the softmax loss")
            return Y
        if y.ndim != 1:
            raise ValueError(f"y: expected integer labels of shape (n,) or one-hot (n, C), got {y.shape}")
        yf = y.astype(np.float64)
        if not np.all(np.isfinite(yf)) or np.any(yf != np.round(yf)) or np.any(yf < 0):
            raise ValueError("y: expected integer class labels 0..C-1 for the softmax loss")
        labels = yf.astype(np.int64)
        n_classes = int(labels.max()) + 1
        Y = np.zeros((len(labels), max(n_classes, 2)), dtype=np.float64)
        Y[np.arange(len(labels)), labels] = 1.0
        return Y

    def value(self, Z, Y):
        return torch.sum(torch.logsumexp(Z, dim=1)) - torch.sum(Z * Y)

    def grad(self, Z, Y):
        return torch.softmax(Z, dim=1) - Y

    def conjugate(self, V, Y):
        P = V + Y
        tol = 1e-10
        if torch.any(P < -tol) or torch.any(torch.abs(P.sum(dim=1) - 1) > 1e-8):
            return torch.tensor(math.inf, dtype=V.dtype, device=V.device)
        return torch.sum(_xlogx(torch.clamp(P, min=0.0)))

    def cvxpy(self, Z, Y):
        return cp.sum(cp.log_sum_exp(Z, axis=1)) - cp.sum(cp.multiply(Y, Z))

    @staticmethod
    def proba(Z: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, C)."""
        Z = np.asarray(Z, dtype=np.float64)
        Z = Z - Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        return E / E.sum(axis=1, keepdims=True)


_LOSSES = {cls.name: cls for cls in (SquaredLoss, LogisticLoss, SoftmaxLoss)}


def get_loss(loss) -> Loss:
    """A :class:`Loss` from an instance or one of the names "squared", "logistic", "softmax"."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in _LOSSES:
        return _LOSSES[loss]()
    raise ValueError(f"loss: expected one of {sorted(_LOSSES)} or a Loss instance, got {loss!r}")
