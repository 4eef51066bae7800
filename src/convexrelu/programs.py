"""The convex programs of theory.md: data, patterns, loss and penalty in one object.

Every program has the form

    min_Q  l(A(Q), Y) + beta * sum_b ||Q[:, b]||     s.t.  K(Q) >= 0

with ``A`` and ``K`` given by a :class:`~convexrelu.operators.BlockOperator` (the only
architecture-specific piece the solvers see). The subclasses build that operator from
their patterns and recover the non-convex network from a solution.
"""

from __future__ import annotations

import numpy as np
import torch

from ._validation import add_intercept, check_beta, check_bool, check_matrix, check_number, check_positive_int
from .losses import Loss, get_loss
from .networks import ThreeLayerNetwork, TwoLayerNetwork
from .operators import BlockOperator
from .patterns import ThreeLayerPatterns, TwoLayerPatterns, sample_three_layer, sample_two_layer
from .regularizers import GroupL1

__all__ = ["ConvexProgram", "TwoLayerReLUProgram", "GatedReLUProgram", "ThreeLayerReLUProgram"]


#: Targets whose root mean square lies within this factor of one are solved as they are
#: (:meth:`ConvexProgram.target_unit`).
UNIT_RANGE = 4.0


def _as_numpy(Q) -> np.ndarray:
    if isinstance(Q, torch.Tensor):
        return Q.detach().cpu().numpy().astype(np.float64)
    return np.asarray(Q, dtype=np.float64)


class ConvexProgram:
    """``min_Q l(A(Q), Y) + beta R(Q)  s.t.  K(Q) >= 0``, architecture-free part.

    Parameters
    ----------
    operator : BlockOperator
    loss : Loss
    Y : array (n, C)
        Encoded targets (``loss.prepare_targets``).
    beta : float >= 0

    Attributes
    ----------
    regularizer : GroupL1
    """

    def __init__(self, operator: BlockOperator, loss: Loss, Y: np.ndarray, beta: float):
        self.operator = operator
        self.loss = get_loss(loss)
        self.Y_np = np.asarray(Y, dtype=np.float64)
        self.beta = check_beta(beta)
        self.regularizer = GroupL1()
        if self.Y_np.shape != (operator.n_samples, operator.n_outputs):
            raise ValueError(
                f"Y: expected encoded targets of shape ({operator.n_samples}, {operator.n_outputs}), got {self.Y_np.shape}"
            )
        self.Y = torch.as_tensor(self.Y_np, dtype=operator.dtype, device=operator.device)

    # ---------------------------------------------------------------- basics
    @property
    def dtype(self) -> torch.dtype:
        return self.operator.dtype

    @property
    def device(self) -> torch.device:
        return self.operator.device

    @property
    def shape(self) -> tuple[int, int]:
        """Shape (d, B) of the variable."""
        return self.operator.shape

    @property
    def has_constraints(self) -> bool:
        return self.operator.has_constraints

    def to(self, device=None, dtype=None) -> "ConvexProgram":
        """A copy whose computations run on ``device`` in ``dtype``."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.operator = self.operator.to(device, dtype)
        new.Y = torch.as_tensor(self.Y_np, dtype=new.operator.dtype, device=new.operator.device)
        return new

    def with_beta(self, beta: float) -> "ConvexProgram":
        """The same program with another regularisation strength (shares the operator)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.beta = check_beta(beta)
        return new

    def target_unit(self) -> float:
        """The unit in which solvers solve this program (:meth:`in_units`): the power of two
        nearest the root mean square of the targets where the loss scales with them
        (:attr:`Loss.scales_with_targets`) and that mean lies outside ``[1 / UNIT_RANGE,
        UNIT_RANGE]``; 1 otherwise (other losses, all-zero targets). The solvers'
        tolerances, floors and first points are set for targets of order one; a power of
        two makes the change of units exact in floating point."""
        if not self.loss.scales_with_targets or self.Y_np.size == 0:
            return 1.0
        rms = float(np.sqrt(np.mean(np.square(self.Y_np))))
        if not (rms > 0 and np.isfinite(rms)) or 1.0 / UNIT_RANGE <= rms <= UNIT_RANGE:
            return 1.0
        return float(2.0 ** round(np.log2(rms)))

    def in_units(self, scale: float) -> "ConvexProgram":
        """The same program with targets and ``beta`` divided by ``scale > 0`` (shares the
        operator). Where the loss scales with its targets (:attr:`Loss.scales_with_targets`),
        ``Q`` solves the new program iff ``scale Q`` solves this one, and this program's
        objective at ``scale Q`` is ``scale^2`` times the new one's at ``Q``."""
        scale = check_number(scale, "scale")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.Y_np = self.Y_np / scale
        new.Y = torch.as_tensor(new.Y_np, dtype=self.dtype, device=self.device)
        new.beta = self.beta / scale
        return new

    def restrict(self, groups, output: int | None = None) -> tuple["ConvexProgram", np.ndarray]:
        """The program over a subset of the groups, the others fixed at zero
        (:meth:`BlockOperator.restrict`): a plain :class:`ConvexProgram` (same loss,
        targets and beta; no recovery) and the blocks it keeps. With ``output`` (every
        group feeding that column) the program of that one output column, targets
        ``Y[:, [output]]``: for a loss that is a sum over the columns
        (:attr:`Loss.separable_outputs`), the part of the objective that the groups
        change."""
        operator, blocks = self.operator.restrict(groups, output)
        Y = self.Y_np if output is None else self.Y_np[:, [int(output)]]
        return ConvexProgram(operator, self.loss, Y, self.beta), blocks

    def as_tensor(self, Q) -> torch.Tensor:
        """``Q`` as a tensor of the program's dtype and device, checked for shape (d, B)."""
        if isinstance(Q, np.ndarray) and not Q.flags.writeable:
            Q = np.array(Q)
        Q = torch.as_tensor(Q, dtype=self.dtype, device=self.device)
        if tuple(Q.shape) != self.shape:
            raise ValueError(f"Q: expected shape {self.shape}, got {tuple(Q.shape)}")
        return Q

    # ---------------------------------------------------------------- values
    def predict(self, Q) -> np.ndarray:
        """Model output ``A(Q)`` on the training data, shape (n, C)."""
        return self.operator.matvec(self.as_tensor(Q)).cpu().numpy().astype(np.float64)

    def objective(self, Q, Z: torch.Tensor | None = None) -> float:
        """``l(A(Q), Y) + beta * sum_b ||Q[:, b]||`` (constraints not checked); ``Z``: the
        model output ``A(Q)``, shape (n, C), where the caller has it."""
        Q = self.as_tensor(Q)
        Z = self.operator.matvec(Q) if Z is None else Z
        return float(self.loss.value(Z, self.Y) + self.beta * self.regularizer.value(Q))

    def violation(self, Q) -> float:
        """Largest violation of the cone constraints ``K(Q) >= 0``."""
        return self.operator.violation(self.as_tensor(Q))

    def zero_threshold(self) -> float:
        """``||A^T grad l(0)||`` blockwise max: the zero point solves the *unconstrained*
        program iff ``beta`` is at least this (theory.md, "Duality and certificates").

        For cone-constrained programs this is an upper bound on the threshold.
        """
        G = self.operator.adjoint(self.loss.grad(self.operator.matvec(self.operator.zeros()), self.Y))
        return float(self.regularizer.dual_norm(G))

    # ---------------------------------------------------------------- recovery
    def recover(self, Q, tol: float = 1e-10):
        """The non-convex network of a solution ``Q`` (subclasses)."""
        raise TypeError(f"{type(self).__name__} does not define a network recovery")

    def weights_np(self, Q) -> np.ndarray:
        """``Q`` (array or tensor) as a float64 numpy array, checked for shape (d, B)."""
        Q = _as_numpy(Q)
        if Q.shape != self.shape:
            raise ValueError(f"Q: expected shape {self.shape}, got {Q.shape}")
        return Q

    def block_norms(self, Q) -> np.ndarray:
        return np.linalg.norm(self.weights_np(Q), axis=0)

    def n_active(self, Q, tol: float = 1e-10) -> int:
        """Number of non-zero groups (sub-networks or neurons) of ``Q``."""
        norms = self.block_norms(Q)
        if norms.size == 0 or norms.max() == 0:
            return 0
        group_norm = np.bincount(self.operator.group_np, weights=norms, minlength=self.operator.n_groups)
        return int(np.sum(group_norm > tol * norms.max()))


class _DataProgram(ConvexProgram):
    """Shared constructor logic: validate data, add the intercept, encode targets."""

    @property
    def X_design(self) -> np.ndarray:
        """The design matrix (n, d): the data with the intercept column if any."""
        return self.operator.X_np

    def with_patterns(self, patterns) -> "_DataProgram":
        """The same data, loss and beta over another pattern set (e.g. a grown one).

        ``beta`` and dtype/device follow this program's current values.
        """
        args = dict(self._init_args)
        args.update(beta=self.beta, dtype=self.dtype, device=self.device)
        return type(self)(patterns=patterns, **args)

    def _setup_data(self, X, y, loss, fit_intercept):
        X = check_matrix(X, "X")
        self.fit_intercept = check_bool(fit_intercept, "fit_intercept")
        self.X_raw_shape = X.shape
        design = add_intercept(X) if self.fit_intercept else X
        loss = get_loss(loss)
        Y = loss.prepare_targets(y)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"y: expected {X.shape[0]} targets to match X, got {Y.shape[0]}")
        return design, loss, Y


class TwoLayerReLUProgram(_DataProgram):
    """Convex program of a two-layer ReLU network (theory.md, "Two-layer networks").

        min  l( sum_i D_i X (v_i - w_i), y ) + beta sum_i (||v_i|| + ||w_i||)
        s.t. (2 D_i - I) X v_i >= 0,  (2 D_i - I) X w_i >= 0

    With C outputs every output has its own blocks, so each recovered neuron feeds one
    output (its row of ``W2`` is a multiple of a unit vector). theory.md's equivalence
    is for one output; for C > 1 the program is exact for that architecture and a
    restriction (an upper bound) for networks whose neurons feed several outputs.
    Block layout: output k, sign
    (v then w), pattern i -> column ``(2 k + sign) P + i``.

    Parameters
    ----------
    X : array (n, d_in)
    y : targets as the loss expects (see :mod:`convexrelu.losses`)
    patterns : TwoLayerPatterns on the design matrix, or an int (sample that many)
    loss : "squared", "logistic", "softmax" or a Loss
    beta : float >= 0
    fit_intercept : bool, default True
    random_state : seed for sampling when ``patterns`` is an int
    dtype, device : of the torch computations
    """

    gated = False

    def __init__(
        self,
        X,
        y,
        patterns: TwoLayerPatterns | int = 100,
        *,
        loss="squared",
        beta: float = 1e-3,
        fit_intercept: bool = True,
        random_state=None,
        dtype: torch.dtype = torch.float64,
        device="cpu",
    ):
        self._init_args = dict(X=X, y=y, loss=loss, beta=beta, fit_intercept=fit_intercept, dtype=dtype, device=device)
        design, loss, Y = self._setup_data(X, y, loss, fit_intercept)
        if not isinstance(patterns, TwoLayerPatterns):
            patterns = sample_two_layer(design, check_positive_int(patterns, "patterns"), random_state)
        if patterns.n_samples != design.shape[0]:
            raise ValueError(f"patterns: expected patterns on {design.shape[0]} samples, got {patterns.n_samples}")
        if self.gated and patterns.generators is None:
            raise ValueError("patterns: a gated ReLU program needs gate vectors (patterns.generators)")
        if patterns.generators is not None and patterns.generators.shape[0] != design.shape[1]:
            raise ValueError(
                f"patterns: expected generators with one row per column of the design ({design.shape[1]}"
                f"{', the intercept included' if fit_intercept else ''}), got {patterns.generators.shape[0]}")
        self.patterns = patterns
        C = Y.shape[1]
        P = len(patterns)
        signs_per_output = 1 if self.gated else 2
        copies = C * signs_per_output
        first = np.tile(patterns.masks, (1, copies))
        B = first.shape[1]
        sigma = np.repeat(np.tile([1.0, -1.0][:signs_per_output], C), P)
        output = np.repeat(np.arange(C), signs_per_output * P)
        operator = BlockOperator(
            design, first, np.ones(B), np.arange(B), None, sigma, output, C,
            cone_first=not self.gated, cone_second=False, dtype=dtype, device=device,
        )
        super().__init__(operator, loss, Y, beta)

    def recover(self, Q, tol: float = 1e-10) -> TwoLayerNetwork:
        """Neurons ``u = q / sqrt(||q||)``, ``a = sigma sqrt(||q||)`` of the non-zero blocks.

        Blocks with ``||q|| <= tol * max_b ||q_b||`` are pruned.
        """
        Q = self.weights_np(Q)
        norms = np.linalg.norm(Q, axis=0)
        keep = np.flatnonzero(norms > tol * norms.max()) if norms.size and norms.max() > 0 else np.array([], int)
        root = np.sqrt(norms[keep])
        W1 = Q[:, keep] / root
        W2 = np.zeros((len(keep), self.operator.n_outputs))
        W2[np.arange(len(keep)), self.operator.output_np[keep]] = self.operator.sigma_np[keep] * root
        gates = None
        if self.gated:
            P = len(self.patterns)
            gates = self.patterns.generators[:, keep % P]
        return TwoLayerNetwork(W1, W2, gates=gates, fit_intercept=self.fit_intercept)


class GatedReLUProgram(TwoLayerReLUProgram):
    """Gated ReLU relaxation: the group lasso ``min l(sum_i D_i X v_i, y) + beta sum_i ||v_i||``
    (theory.md, "Two-layer networks", "Gated ReLU"); no constraints.

    Block layout: output k, pattern i -> column ``k P + i``. Same parameters as
    :class:`TwoLayerReLUProgram`; the patterns need gate vectors.
    """

    gated = True


class ThreeLayerReLUProgram(_DataProgram):
    """Convex program (C3) of K parallel three-layer sub-networks
    (theory.md, "Three-layer parallel networks").

        min  l( sum_c D2^c sum_j s_j D1_j X (q+_{c,j} - q-_{c,j}), y )
               + beta sum_{c,j} (||q+_{c,j}|| + ||q-_{c,j}||)
        s.t. (2 D1_j - I) X q_j >= 0,  (2 D2^c - I) sum_j s_j D1_j X q_j >= 0
             for q in {q+_c, q-_c}

    With C outputs every output has its own blocks: each recovered sub-network feeds
    one output (``w3_k`` is a multiple of a unit vector). The equivalence with (P3) is
    for one output; for C > 1 the program is exact for that architecture and a
    restriction for sub-networks feeding several outputs.

    Block layout: group (one per sub-network candidate) ``g = (2 k + sign) P + c`` for
    output k, sign (q+ then q-) and pattern c. When every pattern has the same number
    ``m`` of pairs, pair j of group g is column ``j G + g`` (``G = 2 C P``; the operator's
    *slab* layout, the faster one); otherwise pair b of the pattern set is column
    ``(2 k + sign) B + b`` (the pairs of a group consecutive). :meth:`recover` and the
    block keys of :mod:`convexrelu.strategies` read the layout from the operator.

    Parameters
    ----------
    X, y, loss, beta, fit_intercept, random_state, dtype, device : as in
        :class:`TwoLayerReLUProgram`.
    patterns : ThreeLayerPatterns on the design matrix, or an int (sample that many)
    hidden : int, default 2
        m1, neurons per sub-network, used when sampling.
    """

    def __init__(
        self,
        X,
        y,
        patterns: ThreeLayerPatterns | int = 100,
        *,
        hidden: int = 2,
        loss="squared",
        beta: float = 1e-3,
        fit_intercept: bool = True,
        random_state=None,
        dtype: torch.dtype = torch.float64,
        device="cpu",
    ):
        self._init_args = dict(
            X=X, y=y, loss=loss, beta=beta, fit_intercept=fit_intercept, dtype=dtype, device=device, hidden=hidden
        )
        design, loss, Y = self._setup_data(X, y, loss, fit_intercept)
        if not isinstance(patterns, ThreeLayerPatterns):
            patterns = sample_three_layer(
                design, check_positive_int(patterns, "patterns"), check_positive_int(hidden, "hidden"), random_state
            )
        if patterns.n_samples != design.shape[0]:
            raise ValueError(f"patterns: expected patterns on {design.shape[0]} samples, got {patterns.n_samples}")
        self.patterns = patterns
        self.hidden = max(patterns.max_pairs, 1)
        C = Y.shape[1]
        P, B = len(patterns), patterns.n_pairs
        copies = 2 * C
        first = np.tile(patterns.first, (1, copies))
        signs = np.tile(patterns.signs, copies)
        group = (np.repeat(np.arange(copies), B) * P + np.tile(patterns.owner, copies)).astype(np.int64)
        second = np.tile(patterns.second, (1, copies))
        sigma = np.repeat(np.tile([1.0, -1.0], C), P)
        output = np.repeat(np.arange(C), 2 * P)
        sizes = np.bincount(patterns.owner, minlength=P)
        m = int(sizes[0]) if P else 0
        if m >= 2 and np.all(sizes == m):  # the slab layout: column j G + g is pair j of group g
            slab = np.arange(B * copies).reshape(copies * P, m).T.reshape(-1)
            first, signs, group = np.take(first, slab, axis=1), signs[slab], group[slab]  # (row-major: np.take)
        operator = BlockOperator(
            design, first, signs, group, second, sigma, output, C,
            cone_first=True, cone_second=True, dtype=dtype, device=device,
        )
        super().__init__(operator, loss, Y, beta)

    def recover(self, Q, tol: float = 1e-10) -> ThreeLayerNetwork:
        """Sub-networks of the non-zero groups (theory.md, "Three-layer parallel networks",
        its Recovery item; weight-decay form).

        For a group with ``t = sum_j ||q_j|| > tol * max``: ``qh_j = q_j / t``,
        ``w1_j = qh_j / sqrt(||qh_j||)``, ``w2_j = s_j sqrt(||qh_j||) sqrt(t)``,
        ``w3 = sigma sqrt(t) e_k``. Sub-networks with fewer pairs than the widest get
        zero columns.
        """
        Q = self.weights_np(Q)
        op = self.operator
        norms = np.linalg.norm(Q, axis=0)
        t_all = np.bincount(op.group_np, weights=norms, minlength=op.n_groups)
        scale = t_all.max() if t_all.size else 0.0
        groups = np.flatnonzero(t_all > tol * scale) if scale > 0 else np.array([], int)
        d, m1, C = op.n_features, self.hidden, op.n_outputs
        W1 = np.zeros((len(groups), d, m1))
        w2 = np.zeros((len(groups), m1))
        w3 = np.zeros((len(groups), C))
        order = np.argsort(op.group_np, kind="stable")
        starts = np.searchsorted(op.group_np[order], np.arange(op.n_groups + 1))
        for k, g in enumerate(groups):
            blocks = order[starts[g] : starts[g + 1]]
            t = t_all[g]
            qh = Q[:, blocks] / t
            r = norms[blocks] / t
            nz = r > 0
            W1[k, :, : len(blocks)][:, nz] = qh[:, nz] / np.sqrt(r[nz])
            w2[k, : len(blocks)] = op.signs_np[blocks] * np.sqrt(r) * np.sqrt(t)
            w3[k, op.output_np[g]] = op.sigma_np[g] * np.sqrt(t)
        return ThreeLayerNetwork(W1, w2, w3, fit_intercept=self.fit_intercept)
