"""Convex losses of the prediction matrix ``Z`` (n, C) against encoded targets ``Y`` (n, C).

Every loss is *summed* over samples, exactly as in ``theory.md`` (section "Notation"):

- squared: ``l(Z, Y) = 0.5 ||Z - Y||_F^2``;
- logistic (binary, one output, ``Y`` in {-1, +1}): ``l(z, y) = sum_i log(1 + exp(-y_i z_i))``;
- softmax cross-entropy (``Y`` one-hot, one output per class):
  ``l(Z, Y) = sum_i ( logsumexp(Z_i) - <Z_i, Y_i> )``.

One class per loss, owning its value, gradient, convex conjugate (used by the duality
certificate of theory.md, "Duality and certificates"), its proximal operator (used by
the ADMM solver), its CVXPY expression and its target encoding. Values and gradients take torch tensors (any dtype/device).
"""

from __future__ import annotations

import abc
import math

import cvxpy as cp
import numpy as np
import torch
from scipy.special import expit

from ._validation import check_magnitude

__all__ = ["Loss", "SquaredLoss", "LogisticLoss", "SoftmaxLoss", "get_loss"]


def _xlogx(t: torch.Tensor) -> torch.Tensor:
    """``t log t`` with the convention ``0 log 0 = 0`` (for ``t >= 0``)."""
    return torch.where(t > 0, t * torch.log(torch.clamp(t, min=torch.finfo(t.dtype).tiny)), torch.zeros_like(t))


def _prox_newton_1d(grad, curvature, V, t):
    """Entrywise root of ``z - v + t grad(z) = 0`` for a loss whose gradient lies in
    [-1, 1]: Newton steps kept inside the bracket ``[v - t, v + t]``; an entry whose
    Newton step leaves its current bracket, or whose residual did not halve in its last
    step (slow Newton far out on the flat part of the sigmoid), bisects instead. 1-D, so
    exact to rounding: each entry to its own rounding level (one large entry of ``V``
    must not loosen the test of the others)."""
    lo, hi = V - t, V + t
    Z = V.clone()
    eps = torch.finfo(V.dtype).eps
    tol = 16 * eps * (1.0 + torch.abs(V) + t)
    g_last = None
    for _ in range(200):
        g = Z - V + t * grad(Z)
        size = torch.abs(g)
        if bool(torch.all(size <= tol)):
            return Z
        lo = torch.where(g > 0, lo, Z)
        hi = torch.where(g > 0, Z, hi)
        newton = Z - g / (1.0 + t * curvature(Z))
        # (a bracket shrinks on one side only while Newton converges from that side: its
        # width is no measure of progress, the residual is)
        slow = (size > tol) & (size > 0.5 * g_last) if g_last is not None else torch.zeros_like(size, dtype=torch.bool)
        g_last = size
        inside = (newton >= lo) & (newton <= hi) & ~slow
        Z_new = torch.where(inside, newton, 0.5 * (lo + hi))
        if bool(torch.all(torch.abs(Z_new - Z) <= 4 * eps * (1.0 + torch.abs(Z)))):
            return Z_new
        Z = Z_new
    return Z


def _damped(objective, Z, step):
    """``Z - s step`` with ``s`` in {1, 1/2, 1/4, ...} per row, the first that does not
    increase the row's ``objective`` (a vector over rows) beyond its rounding."""
    f0 = objective(Z)
    # rounding of the row objective: a few eps times the size of its terms
    slack = 64 * torch.finfo(Z.dtype).eps * (torch.abs(f0) + torch.sum(torch.abs(Z), dim=1) + 1.0)
    s = torch.ones_like(f0)
    for _ in range(30):
        cand = Z - s[:, None] * step
        bad = objective(cand) > f0 + slack
        if not bool(bad.any()):
            return cand
        s = torch.where(bad, 0.5 * s, s)
    return Z - s[:, None] * step


class Loss(abc.ABC):
    """Base class of the convex losses. Subclasses define every method below."""

    name: str = ""
    #: Lipschitz constant of the gradient in ``Z`` (Frobenius norm).
    smoothness: float = 1.0
    #: Whether the loss gives class probabilities.
    has_proba: bool = False
    #: Whether the loss is a quadratic function of ``Z`` (its Newton model is exact).
    quadratic: bool = False
    #: Whether ``l(Z, Y) = sum_k l(Z[:, [k]], Y[:, [k]])``: a program with several outputs
    #: is then one independent program per output (each group feeds one output).
    separable_outputs: bool = False
    #: Whether ``l(s Z, s Y) = s^2 l(Z, Y)`` for every ``s > 0``: the program with targets
    #: and ``beta`` divided by ``s`` then has the solutions divided by ``s`` and the objective
    #: divided by ``s^2`` (the solvers solve it in the targets' units:
    #: :meth:`convexrelu.programs.ConvexProgram.target_unit`).
    scales_with_targets: bool = False

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
    def prox(self, V: torch.Tensor, Y: torch.Tensor, t: float) -> torch.Tensor:
        """Proximal operator ``argmin_Z l(Z, Y) + ||Z - V||_F^2 / (2 t)``, shape (n, C).

        The loss is separable over samples, so the prox is computed row by row; ``t > 0``.
        """

    @abc.abstractmethod
    def hessian_factor(self, Z: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Factor of the Hessian, row by row: ``F`` of shape (n, C, r) with
        ``F[i] F[i]^T = d^2 l / dZ_i^2`` (the loss is separable over rows) and
        ``r = hessian_rank(C)`` columns. Used by the Newton systems of the interior-point
        solver, whose costs grow with ``n r`` (the rank of the loss part)."""

    def hessian_rank(self, n_outputs: int) -> int:
        """Columns ``r`` of :meth:`hessian_factor` for ``n_outputs`` columns of ``Z``: the
        largest rank of the Hessian of one row (``C`` unless a subclass knows better)."""
        return int(n_outputs)

    @abc.abstractmethod
    def cvxpy(self, Z: cp.Expression, Y: np.ndarray) -> cp.Expression:
        """The same loss as a CVXPY expression of the (n, C) expression ``Z``."""

    def value_numpy(self, Z: np.ndarray, Y: np.ndarray) -> float:
        """Loss value for numpy arrays (float64): ``Z`` the outputs, (n,) or (n, C), ``Y``
        the prepared targets (:meth:`prepare_targets`), of the same shape as ``Z`` once
        (n,) is read as (n, 1) (a ValueError otherwise: a target vector of another length
        had been broadcast into a wrong value)."""
        Z = np.asarray(Z, dtype=np.float64)
        Z = Z.reshape(len(Z), -1) if Z.ndim else Z.reshape(1, 1)
        if np.shape(Y) != Z.shape:
            raise ValueError(f"y: expected {Z.shape[0]} targets in {Z.shape[1]} column(s), as the model's outputs "
                             f"(encoded for the {self.name} loss), got shape {np.shape(Y)}")
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
    quadratic = True
    separable_outputs = True
    scales_with_targets = True

    def prepare_targets(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2:
            raise ValueError(f"y: expected shape (n,) or (n, k) for the squared loss, got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y: expected finite values, got NaN or infinite entries")
        check_magnitude(y, "y")
        return y

    def value(self, Z, Y):
        return 0.5 * torch.sum((Z - Y) ** 2)

    def grad(self, Z, Y):
        return Z - Y

    def conjugate(self, V, Y):
        return 0.5 * torch.sum(V**2) + torch.sum(V * Y)

    def prox(self, V, Y, t):
        """Closed form ``(V + t Y) / (1 + t)``."""
        return (V + t * Y) / (1.0 + t)

    def hessian_factor(self, Z, Y):
        """The identity per row."""
        n, C = Z.shape
        return torch.eye(C, dtype=Z.dtype, device=Z.device).expand(n, C, C)

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
        tol = max(1e-12, 4 * torch.finfo(V.dtype).eps)  # (rounding of the dtype)
        if torch.any(t < -tol) or torch.any(t > 1 + tol):
            return torch.tensor(math.inf, dtype=V.dtype, device=V.device)
        t = torch.clamp(t, 0.0, 1.0)
        return torch.sum(_xlogx(t) + _xlogx(1 - t))

    def prox(self, V, Y, t):
        """Root of ``z - v - t y sigmoid(-y z) = 0`` per entry: safeguarded Newton in the
        bracket ``[v - t, v + t]`` (the gradient term lies in [-1, 1])."""
        return _prox_newton_1d(lambda Z: self.grad(Z, Y), lambda Z: torch.sigmoid(Z) * torch.sigmoid(-Z), V, t)

    def hessian_factor(self, Z, Y):
        """``sqrt(sigmoid(z) sigmoid(-z))`` (``y^2 = 1``), shape (n, 1, 1)."""
        return torch.sqrt(torch.sigmoid(Z) * torch.sigmoid(-Z))[:, :, None]

    def cvxpy(self, Z, Y):
        return cp.sum(cp.logistic(-cp.multiply(Y, Z)))

    @staticmethod
    def proba(Z: np.ndarray) -> np.ndarray:
        """Probabilities of the classes (-1, +1), shape (n, 2): ``sigmoid(-z), sigmoid(z)``,
        each computed as such (``1 - p`` rounds a probability below 1e-16 to 0)."""
        z = np.asarray(Z, dtype=np.float64).reshape(-1)
        return np.column_stack([expit(-z), expit(z)])

    @staticmethod
    def log_proba(Z: np.ndarray) -> np.ndarray:
        """Logarithms of :meth:`proba`, shape (n, 2): ``-log(1 + exp(-+z))``, finite for
        every finite ``z`` (the logarithm of the probability is -inf below 1e-308)."""
        z = np.asarray(Z, dtype=np.float64).reshape(-1)
        return np.column_stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)])


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
        # row by row, then summed: the difference of the two sums loses the digits of the
        # small terms in float32 (6.1e-4 relative at logits of 160)
        return torch.sum(torch.logsumexp(Z, dim=1) - torch.sum(Z * Y, dim=1))

    def grad(self, Z, Y):
        return torch.softmax(Z, dim=1) - Y

    def conjugate(self, V, Y):
        P = V + Y
        eps = torch.finfo(V.dtype).eps  # (float32 rounding alone moves a row's sum by 6e-8)
        if torch.any(P < -max(1e-10, 16 * eps)) or torch.any(
                torch.abs(P.sum(dim=1) - 1) > max(1e-8, 64 * eps * P.shape[1])):
            return torch.tensor(math.inf, dtype=V.dtype, device=V.device)
        return torch.sum(_xlogx(torch.clamp(P, min=0.0)))

    def prox(self, V, Y, t):
        """Newton's method per row on ``logsumexp(z) - <y, z> + ||z - v||^2 / (2 t)``
        (Hessian ``diag(p) - p p^T + I / t``, a C x C solve per row), from ``z = v``.
        The Hessian of the loss is at most 1/2, so Newton steps are damped by the
        line search only in the first iterations; stops when the gradient of every row
        is at that row's rounding level (one large row of ``V`` must not loosen the test
        of the others)."""
        Z = V.clone()
        eye = torch.eye(V.shape[1], dtype=V.dtype, device=V.device) / t
        eps = torch.finfo(V.dtype).eps
        scale = 1.0 + torch.amax(torch.abs(V), dim=1) / t
        for _ in range(100):
            P = torch.softmax(Z, dim=1)
            g = P - Y + (Z - V) / t
            if bool(torch.all(torch.amax(torch.abs(g), dim=1) <= 64 * eps * scale)):
                break
            H = torch.diag_embed(P) - P[:, :, None] * P[:, None, :] + eye
            step = torch.linalg.solve(H, g[:, :, None])[:, :, 0]
            if bool(torch.all(torch.amax(torch.abs(step), dim=1) <= 16 * eps * (1.0 + torch.amax(torch.abs(Z), dim=1)))):
                break  # every row's Newton step is at rounding level
            Z = _damped(lambda W: self._prox_objective(W, V, Y, t), Z, step)
        return Z

    def _prox_objective(self, Z, V, Y, t):
        """Row-wise objective of :meth:`prox`, shape (n,)."""
        return torch.logsumexp(Z, dim=1) - torch.sum(Z * Y, dim=1) + torch.sum((Z - V) ** 2, dim=1) / (2 * t)

    def hessian_factor(self, Z, Y):
        """``F = diag(r) R`` per row, ``p = softmax(z)``, ``r = sqrt(p)``, with ``C - 1``
        columns: the Hessian ``diag(p) - p p^T = diag(r) (I - r r^T) diag(r)`` has rank
        ``C - 1`` (``1`` spans its null space), and ``R`` is the first ``C - 1`` columns of
        the Householder reflection ``I - 2 w w^T / ||w||^2``, ``w = r + e_C``, which maps
        ``e_C`` to ``-r`` (``||r|| = 1``): orthonormal columns with ``R R^T = I - r r^T``.
        ``||w||^2 = 2 + 2 r_C >= 2``, so the reflection is well conditioned for every
        ``p``. (Shape (n, 1, 1) of zeros for one column: the loss is then constant.)"""
        n, C = Z.shape
        if C == 1:
            return Z.new_zeros((n, 1, 1))
        r = torch.sqrt(torch.softmax(Z, dim=1))
        w = r.clone()
        w[:, -1] += 1.0
        R = torch.eye(C, C - 1, dtype=Z.dtype, device=Z.device) - (2.0 / torch.sum(w * w, dim=1))[:, None, None] * (
            w[:, :, None] * w[:, None, : C - 1])
        return r[:, :, None] * R

    def hessian_rank(self, n_outputs):
        return max(int(n_outputs) - 1, 1)

    def cvxpy(self, Z, Y):
        return cp.sum(cp.log_sum_exp(Z, axis=1)) - cp.sum(cp.multiply(Y, Z))

    @staticmethod
    def proba(Z: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, C)."""
        Z = np.asarray(Z, dtype=np.float64)
        Z = Z - Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        return E / E.sum(axis=1, keepdims=True)

    @staticmethod
    def log_proba(Z: np.ndarray) -> np.ndarray:
        """Logarithms of :meth:`proba` (``log_softmax``), shape (n, C), finite for every
        finite ``Z``."""
        Z = np.asarray(Z, dtype=np.float64)
        Z = Z - Z.max(axis=1, keepdims=True)
        return Z - np.log(np.sum(np.exp(Z), axis=1, keepdims=True))


_LOSSES = {cls.name: cls for cls in (SquaredLoss, LogisticLoss, SoftmaxLoss)}


def get_loss(loss) -> Loss:
    """A :class:`Loss` from an instance or one of the names "squared", "logistic", "softmax"."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in _LOSSES:
        return _LOSSES[loss]()
    raise ValueError(f"loss: expected one of {sorted(_LOSSES)} or a Loss instance, got {loss!r}")
