"""Non-convex reference trainer: (projected) Adam/SGD on the training problems P2 and P3.

This is the baseline the convex programs are compared against (theory.md, "Two-layer
networks" and "Three-layer parallel networks") and a source of seeded patterns
(theory.md, "Where patterns come from", *Seeded*). Everything is full batch and in
PyTorch; all the random draws come from a local ``torch.Generator`` seeded by
``random_state`` (never the global seeds), so a run is reproducible.

Objectives (``l`` summed over samples, see :mod:`convexrelu.losses`; ``X`` is the
design matrix, the data with a ones column appended when ``fit_intercept``):

- two layers (P2): ``l((X W1)_+ W2, Y) + (beta/2) (||W1||_F^2 + ||W2||_F^2)``;
  gated: ``(X W1)_+`` is replaced by ``1[X G >= 0] * (X W1)`` with fixed gates ``G``;
- three layers (P3): ``l(sum_k ((X W1_k)_+ w2_k)_+ w3_k^T, Y)
  + (beta/2) sum_k (||w2_k||^2 + ||w3_k||^2)`` subject to ``||W1_k||_F <= 1``.

The restarts of one call are trained side by side as one batched problem (a leading
"start" dimension on every weight): the objective is the sum of the per-start
objectives, so gradients, Adam moments and SGD steps are exactly those of separate
runs, and each start stops on its own criterion.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from dataclasses import dataclass

import numpy as np
import torch

from ._validation import add_intercept, check_beta, check_matrix, check_max_time, check_positive_int
from .losses import LogisticLoss, Loss, SoftmaxLoss, SquaredLoss, get_loss
from .networks import ThreeLayerNetwork, TwoLayerNetwork

__all__ = [
    "TrainResult",
    "train_two_layer",
    "train_three_layer",
    "two_layer_objective",
    "three_layer_objective",
    "project_first_layer",
]

logger = logging.getLogger(__name__)

_OPTIMIZERS = ("adam", "sgd")
_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainResult:
    """Result of a non-convex training run (all restarts).

    Attributes
    ----------
    network : TwoLayerNetwork or ThreeLayerNetwork
        The best iterate of the best start (lowest objective), ``fit_intercept`` as
        requested.
    objective : float
        Its objective (P2 or P3), ``network.objective(X, y, loss, beta)`` in float64.
    objectives : tuple of float
        Objective of the network returned by each start (its best iterate), in start
        order; ``objective == min(objectives)``.
    histories : tuple of tuple of float
        Per start, the objective at iterations ``0, history_every, 2 history_every, ...``
        until that start stopped (in the training dtype).
    iterations : tuple of int
        Per start, the number of optimizer steps taken before it stopped.
    best_start : int
        Index of the start that gave :attr:`network`.
    time : float
        Wall time of the whole call, seconds.
    networks : tuple
        The network of every start, in start order (``networks[best_start] is
        network``); e.g. to seed patterns (theory.md, "Where patterns come from").
    """

    network: object
    objective: float
    objectives: tuple
    histories: tuple
    iterations: tuple
    best_start: int
    time: float
    networks: tuple = ()

    @property
    def n_starts(self) -> int:
        return len(self.objectives)


# --------------------------------------------------------------------------- objectives
def _per_start_loss(loss: Loss, Z: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``loss.value(Z[s], Y)`` for every start ``s``, shape (S,), for ``Z`` (S, n, C).

    The three built-in losses have closed forms (the formulas of
    :mod:`convexrelu.losses`, summed per start: cheaper than ``vmap`` in the inner
    loop); any other :class:`Loss` goes through ``torch.func.vmap``, or start by start
    when its ``value`` cannot be vmapped.
    """
    kind = type(loss)
    if kind is SquaredLoss:  # fast paths: the formulas of convexrelu.losses, per start
        return 0.5 * torch.sum((Z - Y) ** 2, dim=(1, 2))
    if kind is LogisticLoss:
        return torch.sum(torch.nn.functional.softplus(-Y * Z), dim=(1, 2))
    if kind is SoftmaxLoss:
        return torch.sum(torch.logsumexp(Z, dim=2), dim=1) - torch.sum(Z * Y, dim=(1, 2))
    try:
        return torch.func.vmap(loss.value, in_dims=(0, None))(Z, Y)
    except Exception:  # noqa: BLE001 - any vmap limitation: fall back to the loop
        return torch.stack([loss.value(Z[s], Y) for s in range(Z.shape[0])])


def _two_layer_forward(A, W1, W2, gates=None):
    pre = torch.matmul(A, W1)  # (S, n, m) or (n, m)
    if gates is None:
        H = torch.relu(pre)
    else:
        H = (torch.matmul(A, gates) >= 0).to(pre.dtype) * pre
    return torch.matmul(H, W2)


def _relu_backward(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``grad`` where ``out = relu(x) > 0``, else 0: torch's backward of relu."""
    return torch.ops.aten.threshold_backward(grad, out, 0)


class _ThreeLayerModel(torch.autograd.Function):
    """``Z = sum_k ((A W1_k)_+ w2_k)_+ w3_k^T`` with a hand-written backward.

    Every first layer is one product ``A @ [W1]`` (n, m1 K), its columns ordered so that
    the sub-networks ``k`` are the innermost axis of the activations ``H = (A W1)_+``
    (n, m1, K): the sums over ``m1`` and the masks then run over contiguous rows. The
    backward reads the saved ``H`` and ``S`` (n, K). With autograd's graph of the plain
    expression (a product per sub-network, its masks and sums over the innermost axis of
    length ``m1``) a training step took 10.5 ms at n=5,000, K=50, m1=2 (float64, 2
    threads).

    Shapes: ``A`` (n, d), ``W1`` (K, d, m1), ``w2`` (K, m1), ``w3`` (K, C); returns (n, C).
    """

    @staticmethod
    def forward(ctx, A, W1, w2, w3):
        K, d, m1 = W1.shape
        n = A.shape[0]
        Wf = W1.permute(1, 2, 0).reshape(d, m1 * K)
        H = torch.relu_(torch.matmul(A, Wf)).view(n, m1, K)
        w2t = w2.T.contiguous()  # (m1, K)
        S = H[:, 0] * w2t[0]
        for j in range(1, m1):
            S.addcmul_(H[:, j], w2t[j])
        S = torch.relu_(S)  # (n, K)
        ctx.save_for_backward(A, Wf, H, S, w2t, w3)
        return torch.matmul(S, w3)

    @staticmethod
    def backward(ctx, G):
        A, Wf, H, S, w2t, w3 = ctx.saved_tensors
        n, m1, K = H.shape
        d = A.shape[1]
        dw3 = torch.matmul(S.T, G)  # (K, C)
        # relu's own backward (``g`` where the output is > 0, else 0) as the masks: one
        # pass, where a boolean mask (masked_fill_, where, a product by it) took 0.7-1.2 ms
        dS = _relu_backward(torch.matmul(G, w3.T), S)  # (n, K)
        dw2 = torch.sum(H * dS.unsqueeze(1), dim=0).T  # (K, m1)
        dP = _relu_backward(dS.unsqueeze(1) * w2t, H).view(n, m1 * K)
        dA = torch.matmul(dP, Wf.T) if ctx.needs_input_grad[0] else None
        dW1 = torch.matmul(A.T, dP).view(d, m1, K).permute(2, 0, 1) if ctx.needs_input_grad[1] else None
        return dA, dW1, dw2, dw3


def _three_layer_forward(A, W1, w2, w3):
    """``sum_k ((A W1_k)_+ w2_k)_+ w3_k^T`` for ``A`` (n, d), ``W1`` (..., K, d, m1),
    ``w2`` (..., K, m1), ``w3`` (..., K, C): shape (..., n, C) (:class:`_ThreeLayerModel`).

    With a batch of networks (the trainer's starts) each is evaluated on its own: its
    arrays stay contiguous, where one product for the whole batch left every later
    array strided (at n=20,000, K=50, two starts: 32.5 ms per forward and backward
    pass against 54.9, m1=2; 58.1 against 91.8, m1=3)."""
    lead = W1.shape[:-3]
    if not lead:
        return _ThreeLayerModel.apply(A, W1, w2, w3)
    K, d, m1 = W1.shape[-3:]
    C = w3.shape[-1]
    W1s, w2s, w3s = W1.reshape(-1, K, d, m1), w2.reshape(-1, K, m1), w3.reshape(-1, K, C)
    Z = torch.stack([_ThreeLayerModel.apply(A, W1s[s], w2s[s], w3s[s]) for s in range(W1s.shape[0])])
    return Z.reshape(*lead, A.shape[0], C)


def two_layer_objective(A, Y, W1, W2, *, loss="squared", beta: float = 0.0, gates=None) -> torch.Tensor:
    """P2 objective of theory.md, "Two-layer networks", as a differentiable tensor.

    ``l((A W1)_+ W2, Y) + (beta/2) (||W1||_F^2 + ||W2||_F^2)``; gated networks use
    ``1[A G >= 0] * (A W1)`` in place of ``(A W1)_+``.

    Parameters
    ----------
    A : tensor (n, d)
        Design matrix (intercept column included if any).
    Y : tensor (n, C)
        Encoded targets (``loss.prepare_targets``).
    W1 : tensor (d, m) or (S, d, m)
    W2 : tensor (m, C) or (S, m, C)
    loss : str or Loss
    beta : float >= 0
    gates : tensor (d, m) or (S, d, m), or None

    Returns
    -------
    tensor
        0-d for unbatched weights, shape (S,) for a batch of S networks.
    """
    loss = get_loss(loss)
    Z = _two_layer_forward(A, W1, W2, gates)
    if W1.dim() == 2:
        return loss.value(Z, Y) + 0.5 * beta * (torch.sum(W1**2) + torch.sum(W2**2))
    penalty = torch.sum(W1**2, dim=(1, 2)) + torch.sum(W2**2, dim=(1, 2))
    return _per_start_loss(loss, Z, Y) + 0.5 * beta * penalty


def three_layer_objective(A, Y, W1, w2, w3, *, loss="squared", beta: float = 0.0) -> torch.Tensor:
    """P3 objective of theory.md, "Three-layer parallel networks" (without the constraint).

    ``l(sum_k ((A W1_k)_+ w2_k)_+ w3_k^T, Y) + (beta/2) sum_k (||w2_k||^2 + ||w3_k||^2)``;
    the constraint ``||W1_k||_F <= 1`` is kept by :func:`project_first_layer`.

    Parameters
    ----------
    A : tensor (n, d)
    Y : tensor (n, C)
    W1 : tensor (K, d, m1) or (S, K, d, m1)
    w2 : tensor (K, m1) or (S, K, m1)
    w3 : tensor (K, C) or (S, K, C)
    loss : str or Loss
    beta : float >= 0

    Returns
    -------
    tensor
        0-d for unbatched weights, shape (S,) for a batch of S networks.
    """
    loss = get_loss(loss)
    Z = _three_layer_forward(A, W1, w2, w3)
    if W1.dim() == 3:
        return loss.value(Z, Y) + 0.5 * beta * (torch.sum(w2**2) + torch.sum(w3**2))
    penalty = torch.sum(w2**2, dim=(1, 2)) + torch.sum(w3**2, dim=(1, 2))
    return _per_start_loss(loss, Z, Y) + 0.5 * beta * penalty


@torch.no_grad()
def project_first_layer(W1: torch.Tensor) -> torch.Tensor:
    """Project every first layer ``W1_k`` (the last two dimensions) onto the Frobenius
    unit ball, in place: ``W1_k <- W1_k / max(1, ||W1_k||_F)``. Returns ``W1``."""
    norms = torch.sqrt(torch.sum(W1**2, dim=(-2, -1), keepdim=True))
    W1.div_(torch.clamp(norms, min=1.0))
    return W1


# --------------------------------------------------------------------------- checks
def _check_positive_real(value, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a finite real number {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def _check_dtype_device(dtype, device) -> tuple[torch.dtype, torch.device]:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise ValueError(
            f"dtype: expected a real floating torch dtype (torch.float64, torch.float32), got {dtype!r}"
        )
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
    return dtype, device


def _make_generator(random_state) -> torch.Generator:
    """A local CPU generator: int seed, None (fresh entropy), numpy Generator/RandomState
    (one integer drawn from it) or a torch.Generator (used as is)."""
    if isinstance(random_state, torch.Generator):
        return random_state
    gen = torch.Generator(device="cpu")
    if random_state is None:
        gen.seed()
    elif isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state: expected a non-negative integer, got {random_state}")
        gen.manual_seed(int(random_state))
    elif isinstance(random_state, np.random.Generator):
        gen.manual_seed(int(random_state.integers(0, 2**63 - 1)))
    elif isinstance(random_state, np.random.RandomState):
        gen.manual_seed(int(random_state.randint(0, 2**31 - 1)))
    else:
        raise ValueError(
            "random_state: expected None, an int, a numpy Generator/RandomState or a torch.Generator, "
            f"got {random_state!r}"
        )
    return gen


def _prepare(X, y, loss, beta, fit_intercept, dtype, device):
    """Checked data: raw X, Loss, encoded Y (numpy), design A and Y as tensors, beta."""
    X = check_matrix(X, "X")
    loss = get_loss(loss)
    Y = loss.prepare_targets(y)
    if Y.shape[0] != X.shape[0]:
        raise ValueError(f"y: expected {X.shape[0]} targets to match X, got {Y.shape[0]}")
    beta = check_beta(beta)
    dtype, device = _check_dtype_device(dtype, device)
    design = add_intercept(X) if fit_intercept else X
    A = torch.as_tensor(design, dtype=dtype, device=device)
    Yt = torch.as_tensor(Y, dtype=dtype, device=device)
    return X, loss, Y, A, Yt, beta


def _run_options(n_starts, max_iter, lr, optimizer, schedule, tol, window, history_every, max_time=None) -> dict:
    """Checked optimisation options (the keyword arguments of :func:`_run` and n_starts)."""
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {_OPTIMIZERS}, got {optimizer!r}")
    if schedule not in _SCHEDULES:
        raise ValueError(f"schedule: expected one of {_SCHEDULES}, got {schedule!r}")
    return dict(
        n_starts=check_positive_int(n_starts, "n_starts"),
        max_iter=check_positive_int(max_iter, "max_iter", minimum=0),
        lr=_check_positive_real(lr, "lr"),
        optimizer=optimizer,
        schedule=schedule,
        tol=_check_positive_real(tol, "tol", allow_zero=True),
        window=check_positive_int(window, "window"),
        history_every=check_positive_int(history_every, "history_every"),
        max_time=check_max_time(max_time),
    )


def _randn(gen, shape, dtype, device, std=1.0):
    """Gaussian draws from the CPU generator, in float64, then moved (device-independent)."""
    return (std * torch.randn(shape, generator=gen, dtype=torch.float64)).to(device=device, dtype=dtype)


# --------------------------------------------------------------------------- training loop
class _Adam:
    """Adam (Kingma & Ba) with the defaults and update of ``torch.optim.Adam``
    (betas 0.9, 0.999, eps 1e-8, no weight decay: the penalty is in the objective).
    Elementwise, so a batch of starts is updated exactly as separate runs would be."""

    def __init__(self, params, betas=(0.9, 0.999), eps=1e-8):
        self.b1, self.b2 = betas
        self.eps = eps
        self.t = 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def __call__(self, params, grads, lr):
        self.t += 1
        bc1 = 1.0 - self.b1**self.t
        bc2 = math.sqrt(1.0 - self.b2**self.t)
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m.lerp_(g, 1.0 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1.0 - self.b2)
            p.addcdiv_(m, v.sqrt().div_(bc2).add_(self.eps), value=-lr / bc1)


class _SGD:
    """Plain gradient descent ``p <- p - lr g`` (full batch, no momentum)."""

    def __call__(self, params, grads, lr):
        for p, g in zip(params, grads):
            p.add_(g, alpha=-lr)


def _run(params, objective_fn, *, project, max_iter, lr, optimizer, schedule, tol, window, history_every, tag,
         max_time=None):
    """Batched (projected) first-order training with per-start best-iterate tracking.

    ``params``: leaf tensors with a leading start dimension S; ``objective_fn()`` returns
    the (S,) objectives at the current parameters. The best iterate of each start is
    kept on the device without synchronising; the host looks at the objectives only
    every ``history_every`` steps (history) and every ``window`` steps (stopping).
    Start ``s`` stops when its best objective improved by at most ``tol * |best|`` over
    the last ``window`` steps, or when its objective is not finite; it is then ignored
    (its best iterate kept), so its result does not depend on the other starts. With
    ``max_time`` (seconds from the call), every start stops at the first step past it.
    """
    deadline = None if max_time is None else time.perf_counter() + max_time
    S = params[0].shape[0]
    device = params[0].device
    for p in params:
        p.requires_grad_(True)
    if project is not None:
        project(params)
    step = _Adam(params) if optimizer == "adam" else _SGD()
    best_params = [p.detach().clone() for p in params]
    best = torch.full((S,), math.inf, dtype=torch.float64, device=device)
    active = torch.ones(S, dtype=torch.bool, device=device)
    active_host = [True] * S
    iterations = [max_iter] * S
    histories: list[list[float]] = [[] for _ in range(S)]
    checkpoint = best.clone()
    for it in range(max_iter + 1):
        obj = objective_fn()
        values = obj.detach().to(torch.float64)
        improved = (values < best) & active  # False for NaN
        best = torch.where(improved, values, best)
        with torch.no_grad():
            for p, b in zip(params, best_params):
                mask = improved.view((S,) + (1,) * (p.dim() - 1))
                b.copy_(torch.where(mask, p, b))
        if it % history_every == 0:
            host = values.cpu().tolist()
            for s in range(S):
                if active_host[s]:
                    histories[s].append(host[s])
        if it > 0 and it % window == 0:
            stalled = (checkpoint - best <= tol * torch.clamp(best.abs(), min=1e-300)) | ~torch.isfinite(values)
            done = (active & stalled).cpu().tolist()
            for s in range(S):
                if done[s]:
                    active_host[s] = False
                    iterations[s] = it
                    if not math.isfinite(float(values[s])):
                        logger.warning("%s: start %d has a non-finite objective at step %d; stopped", tag, s, it)
            active = torch.as_tensor(active_host, device=device)
            checkpoint = best.clone()
            if not any(active_host):
                break
        if it == max_iter:
            break
        if deadline is not None and time.perf_counter() > deadline:
            logger.info("%s: stopped at max_time=%gs after %d steps", tag, max_time, it)
            iterations = [it if a else i for a, i in zip(active_host, iterations)]
            break
        grads = torch.autograd.grad(obj.sum(), params)
        rate = lr if schedule == "constant" else 0.5 * lr * (1.0 + math.cos(math.pi * it / max_iter))
        with torch.no_grad():
            step(params, grads, rate)
        if project is not None:
            project(params)
    return best_params, histories, iterations


def _finish(networks, X, y, loss, beta, histories, iterations, start_time, tag) -> TrainResult:
    objectives = tuple(float(net.objective(X, y, loss, beta)) for net in networks)
    best = int(np.argmin(objectives))
    elapsed = time.perf_counter() - start_time
    logger.info(
        "%s: %d start(s), best objective %.10g (start %d), %.2fs", tag, len(networks), objectives[best], best, elapsed
    )
    return TrainResult(
        network=networks[best],
        objective=objectives[best],
        objectives=objectives,
        histories=tuple(tuple(h) for h in histories),
        iterations=tuple(iterations),
        best_start=best,
        time=elapsed,
        networks=tuple(networks),
    )


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


# --------------------------------------------------------------------------- public trainers
def train_two_layer(
    X,
    y,
    *,
    width: int,
    loss="squared",
    beta: float = 1e-3,
    gated: bool = False,
    gates=None,
    fit_intercept: bool = True,
    n_starts: int = 1,
    max_iter: int = 5000,
    lr: float = 1e-2,
    optimizer: str = "adam",
    schedule: str = "constant",
    tol: float = 1e-8,
    window: int = 100,
    history_every: int = 10,
    init_scale: float = 1.0,
    random_state=None,
    max_time: float | None = None,
    dtype: torch.dtype = torch.float64,
    device="cpu",
) -> TrainResult:
    """Train a two-layer (gated) ReLU network on P2 by full-batch Adam or SGD.

    Minimises (theory.md, "Two-layer networks", with C outputs)

        l((X W1)_+ W2, Y) + (beta/2) (||W1||_F^2 + ||W2||_F^2),

    ``X`` (n, d) the design matrix (``X_raw`` with a ones column appended when
    ``fit_intercept``), ``W1`` (d, width), ``W2`` (width, C), ``Y = loss.prepare_targets(y)``
    (n, C) and ``l`` summed over samples. Gated ReLU (theory.md, "Two-layer networks",
    the gated ReLU item) replaces ``(X W1)_+`` by ``1[X G >= 0] * (X W1)`` with gates
    ``G`` (d, width) held fixed.

    Each start returns its best iterate (lowest objective seen); the restarts run as
    one batched problem (see the module docstring), so the memory is
    ``n_starts`` times that of one run.

    Parameters
    ----------
    X : array (n, d_in)
        Raw inputs (no intercept column).
    y : array
        Targets as ``loss`` expects: (n,) or (n, k) reals for "squared", labels in
        {-1, +1} for "logistic", integer labels or one-hot (n, C) for "softmax".
    width : int >= 1
        Number of hidden neurons m.
    loss : "squared", "logistic", "softmax" or a Loss
    beta : float >= 0
    gated : bool, default False
        Train a gated ReLU network. Without ``gates`` each start draws its gates as
        i.i.d. standard normal vectors.
    gates : array (d, width) or None
        Fixed gate vectors on the design matrix (e.g. ``patterns.generators``), shared
        by all starts; implies ``gated``.
    fit_intercept : bool, default True
    n_starts : int >= 1
        Independent random initialisations; the best is returned.
    max_iter : int >= 0
        Optimizer steps per start.
    lr : float > 0
        Step size (the peak one with ``schedule="cosine"``).
    optimizer : {"adam", "sgd"}
        Adam with the ``torch.optim.Adam`` defaults (betas 0.9, 0.999, eps 1e-8) or
        plain full-batch gradient descent.
    schedule : {"constant", "cosine"}
        Step-size schedule; "cosine" is ``lr (1 + cos(pi t / max_iter)) / 2`` at step t,
        which reaches a tighter optimum at the end of the run.
    tol : float >= 0
        A start stops when its best objective improves by at most ``tol * |best|``
        over ``window`` steps (with 0 only when it stops improving at all), or when
        its objective is not finite.
    window : int >= 1
    history_every : int >= 1
        Record the objective every this many steps.
    init_scale : float > 0
        Multiplies the standard deviations of the initialisation below.
    random_state : None, int, numpy Generator/RandomState or torch.Generator
        Seeds a local ``torch.Generator`` (a given torch.Generator is used and
        advanced): the same value gives the same result. Initial weights are drawn on
        the CPU in float64 and then cast, so they do not depend on dtype or device.
    max_time : float or None
        Wall-time limit of the steps in seconds: no step starts after it, and each start
        returns its best iterate so far (None: no limit).
    dtype : torch floating dtype, default torch.float64
    device : torch device, default "cpu"

    Returns
    -------
    TrainResult
        ``network`` is a :class:`~convexrelu.networks.TwoLayerNetwork` (with ``gates``
        when gated), the best iterate of the best start.

    Notes
    -----
    Initialisation (He-style): ``W1 ~ N(0, 2/d)``, ``W2 ~ N(0, 1/width)``.
    """
    start_time = time.perf_counter()
    X, loss, Y, A, Yt, beta = _prepare(X, y, loss, beta, fit_intercept, dtype, device)
    opts = _run_options(n_starts, max_iter, lr, optimizer, schedule, tol, window, history_every, max_time)
    n_starts = opts.pop("n_starts")
    width = check_positive_int(width, "width")
    init_scale = _check_positive_real(init_scale, "init_scale")
    n, d = A.shape
    C = Y.shape[1]
    gen = _make_generator(random_state)
    gated = bool(gated) or gates is not None
    fixed_gates = None
    if gates is not None:
        fixed_gates = check_matrix(gates, "gates")
        if fixed_gates.shape != (d, width):
            raise ValueError(f"gates: expected shape ({d}, {width}) (design features, width), got {fixed_gates.shape}")
    W1_list, W2_list, G_list = [], [], []
    for _ in range(n_starts):
        W1_list.append(_randn(gen, (d, width), dtype, device, init_scale * math.sqrt(2.0 / d)))
        W2_list.append(_randn(gen, (width, C), dtype, device, init_scale * math.sqrt(1.0 / width)))
        if gated:
            if fixed_gates is None:
                G_list.append(_randn(gen, (d, width), dtype, device))
            else:
                G_list.append(torch.as_tensor(fixed_gates, dtype=dtype, device=device))
    W1 = torch.stack(W1_list)
    W2 = torch.stack(W2_list)
    G = torch.stack(G_list) if gated else None
    tag = f"train_two_layer({'gated' if gated else 'relu'}, width={width})"
    best, histories, iterations = _run(
        [W1, W2],
        lambda: two_layer_objective(A, Yt, W1, W2, loss=loss, beta=beta, gates=G),
        project=None, tag=tag, **opts,
    )
    networks = [
        TwoLayerNetwork(
            _to_numpy(best[0][s]), _to_numpy(best[1][s]),
            gates=None if G is None else _to_numpy(G[s]), fit_intercept=fit_intercept,
        )
        for s in range(n_starts)
    ]
    return _finish(networks, X, y, loss, beta, histories, iterations, start_time, tag)


def train_three_layer(
    X,
    y,
    *,
    n_subnetworks: int,
    hidden: int = 2,
    loss="squared",
    beta: float = 1e-3,
    fit_intercept: bool = True,
    n_starts: int = 1,
    max_iter: int = 5000,
    lr: float = 1e-2,
    optimizer: str = "adam",
    schedule: str = "constant",
    tol: float = 1e-8,
    window: int = 100,
    history_every: int = 10,
    init_scale: float = 1.0,
    random_state=None,
    max_time: float | None = None,
    dtype: torch.dtype = torch.float64,
    device="cpu",
) -> TrainResult:
    """Train K parallel three-layer ReLU sub-networks on P3 by projected Adam or SGD.

    Minimises (theory.md, "Three-layer parallel networks", with C outputs)

        l( sum_k ((X W1_k)_+ w2_k)_+ w3_k^T , Y ) + (beta/2) sum_k (||w2_k||^2 + ||w3_k||^2)
        s.t. ||W1_k||_F <= 1 for every k,

    ``X`` (n, d) the design matrix, ``W1_k`` (d, m1), ``w2_k`` (m1,), ``w3_k`` (C,),
    ``Y = loss.prepare_targets(y)`` (n, C). After every step each ``W1_k`` is projected
    onto the Frobenius unit ball (:func:`project_first_layer`), so every iterate is
    feasible.

    Parameters
    ----------
    X, y, loss, beta, fit_intercept, n_starts, max_iter, lr, optimizer, schedule, tol,
    window, history_every, init_scale, random_state, max_time, dtype, device
        As in :func:`train_two_layer`.
    n_subnetworks : int >= 1
        K, the number of parallel sub-networks.
    hidden : int >= 1
        m1, first-layer neurons per sub-network.

    Returns
    -------
    TrainResult
        ``network`` is a :class:`~convexrelu.networks.ThreeLayerNetwork` with ``W1``
        (K, d, m1), ``w2`` (K, m1), ``w3`` (K, C).

    Notes
    -----
    Initialisation: ``W1_k ~ N(0, 2/d)`` entrywise then projected onto the unit ball,
    ``w2_k ~ N(0, 2/m1)``, ``w3_k ~ N(0, 1/K)`` (``init_scale`` multiplies the standard
    deviations of ``w2`` and ``w3``; ``W1`` is projected anyway).

    Even with ``K`` above the number of sub-networks of the optimum, projected Adam
    often stalls a few percent above the global optimum, which the convex program
    (C3) over all patterns attains (theory.md, "Three-layer parallel networks"); use
    several starts.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.linspace(-1, 1, 6)[:, None]
    >>> y = np.abs(X[:, 0])
    >>> res = train_three_layer(X, y, n_subnetworks=4, beta=1e-2, n_starts=3, max_iter=500, random_state=0)
    >>> res.network.W1.shape, len(res.objectives)
    ((4, 2, 2), 3)
    """
    start_time = time.perf_counter()
    X, loss, Y, A, Yt, beta = _prepare(X, y, loss, beta, fit_intercept, dtype, device)
    opts = _run_options(n_starts, max_iter, lr, optimizer, schedule, tol, window, history_every, max_time)
    n_starts = opts.pop("n_starts")
    K = check_positive_int(n_subnetworks, "n_subnetworks")
    m1 = check_positive_int(hidden, "hidden")
    init_scale = _check_positive_real(init_scale, "init_scale")
    n, d = A.shape
    C = Y.shape[1]
    gen = _make_generator(random_state)
    W1_list, w2_list, w3_list = [], [], []
    for _ in range(n_starts):
        W1_list.append(_randn(gen, (K, d, m1), dtype, device, math.sqrt(2.0 / d)))
        w2_list.append(_randn(gen, (K, m1), dtype, device, init_scale * math.sqrt(2.0 / m1)))
        w3_list.append(_randn(gen, (K, C), dtype, device, init_scale * math.sqrt(1.0 / K)))
    W1 = torch.stack(W1_list)
    w2 = torch.stack(w2_list)
    w3 = torch.stack(w3_list)
    tag = f"train_three_layer(K={K}, m1={m1})"
    best, histories, iterations = _run(
        [W1, w2, w3],
        lambda: three_layer_objective(A, Yt, W1, w2, w3, loss=loss, beta=beta),
        project=lambda ps: project_first_layer(ps[0].data), tag=tag, **opts,
    )
    networks = [
        ThreeLayerNetwork(
            _to_numpy(best[0][s]), _to_numpy(best[1][s]), _to_numpy(best[2][s]), fit_intercept=fit_intercept
        )
        for s in range(n_starts)
    ]
    return _finish(networks, X, y, loss, beta, histories, iterations, start_time, tag)
