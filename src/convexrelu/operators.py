"""The linear operator of a convex program: the only place that knows the architecture.

Every program of theory.md is one instance of the same block structure. The variables
are the columns ``q_b`` of ``Q`` in R^{d x B}. Block ``b`` has a first-layer pattern
``D1_b``, a sign ``s_b`` and belongs to a group ``g(b)``; group ``g`` has a second-layer
pattern ``D2_g``, an output sign ``sigma_g`` and an output column ``k(g)``:

    H_g  = sum_{b in g} s_b D1_b X q_b                       (n,)
    Z[:, k] = sum_{g : k(g) = k} sigma_g D2_g H_g               (n, C)

with the constraints (``cone_first``, ``cone_second``)

    (2 D1_b - I) X q_b >= 0   for every b       (first-layer patterns hold)
    (2 D2_g - I) H_g   >= 0   for every g       (second-layer pattern holds)

- Two-layer ReLU (theory.md, "Two-layer networks"): one block per group, ``s = +1``,
  ``D2 = I``, ``sigma = +1`` for ``v_i`` and ``-1`` for ``w_i``; first cone only.
- Gated ReLU: one block per group, ``sigma = +1``, no constraint.
- Three-layer (C3): the pairs of pattern ``c`` are the blocks of group (c, sign),
  both cones.

Groups of one size ``m`` have two fast layouts (any other grouping takes index paths):
*contiguous* (blocks ``g m .. g m + m - 1`` form group ``g``) and *slab* (block
``j G + g`` is the ``j``-th of group ``g``). In the slab layout each of the ``m`` slabs
of an (n, B) array is a run of ``G`` adjacent columns, so the sums over a group and the
broadcasts of a group's value to its blocks are vectorised along the rows; at n=20,000,
B=2,622 they take about half the time of the contiguous layout's stride-``m`` passes,
and the model's group sums ``sum_j s D1 X q`` need no (n, B) temporary.

One evaluation costs one product ``X @ Q`` (n x d x B) plus masks and sums; the
adjoint one product ``X.T @ T`` (theory.md, "Costs that matter for speed"). ``D X`` is
never formed.

An operator without cone constraints whose outputs each have no blocks or at least as
many blocks as features (the gated program) needs no (n, B) value of ``X Q`` at all. With
one output and ``coef`` of :meth:`BlockOperator.model_coefficients`,

    A(Q) = colsum(X^T * (Q @ coef^T)),      A^T(r) = (X * r)^T @ coef,

one product each with the same count of multiply-adds as ``X @ Q`` and ``X.T @ T``, but
(d, n) and (d, B) results and no elementwise pass over an (n, B) array (with fewer blocks
than features the (d, n) passes would cost more than the (n, B) ones they replace). The
model's product is taken as the wide ``Q @ coef^T`` against a kept contiguous ``X^T``
rather than as the narrow ``coef @ Q^T`` against ``X``: the same numbers, 1.3 to 2.4
times faster on one core of an AMD EPYC at n = 500 to 20,000 (float64 and float32), as
fast on two at n = 20,000. With
several outputs the same holds output by output, with the columns of ``coef`` of each
output's blocks kept as one array per output.
"""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
import torch

from . import _kernels
from ._validation import check_device, check_dtype

__all__ = ["BlockOperator", "NormalSolver", "Workspace", "largest_violation"]


class Workspace:
    """Scratch arrays of one caller of a :class:`BlockOperator`, by name.

    Allocating a large array costs about as much as a pass over it (the memory is new to
    the process and is faulted in page by page), so a loop that evaluates the operator
    many times keeps its temporaries here. The arrays never leave the operator's methods;
    one (n, B), two (n, G), one (n, d) and one (d, n) array serve every method (none keeps
    one across a call).
    """

    def __init__(self):
        self._arrays: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape, like: torch.Tensor) -> torch.Tensor:
        """The array ``name`` of ``shape`` with ``like``'s dtype and device (allocated
        when missing or of another shape; its content is arbitrary)."""
        shape = tuple(shape)
        a = self._arrays.get(name)
        if a is None or tuple(a.shape) != shape or a.dtype != like.dtype or a.device != like.device:
            a = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._arrays[name] = a
        return a


def _scratch(work: "Workspace | None", name: str, shape, like: torch.Tensor) -> torch.Tensor | None:
    """``work``'s array ``name`` (None without a workspace: the operation allocates)."""
    return None if work is None else work.get(name, shape, like)


def largest_violation(cons) -> float:
    """``max(0, -min K Q)`` over the constraint arrays ``cons`` (``inf`` where a value is
    NaN: such a point is never feasible)."""
    worst = 0.0
    for c in cons:
        if c.numel():
            low = float(torch.min(c))
            worst = max(worst, math.inf if math.isnan(low) else -low)
    return worst


def _sum_of(arrays) -> torch.Tensor:
    """The sum of the (new) arrays of an iterable, added into the first."""
    total = None
    for a in arrays:
        total = a if total is None else total.add_(a)
    return total


def coefficient_model(coef: torch.Tensor, Xt: torch.Tensor, Q: torch.Tensor, out: torch.Tensor | None = None):
    """``colsum(Xt * (Q @ coef^T)) = rowsum(X * (coef @ Q^T))``: the model of blocks with
    coefficients ``coef`` (n, b) (columns of :meth:`BlockOperator.model_coefficients`) and
    weights ``Q`` (d, b), shape (n,); ``Xt`` (d, n) the features transposed (contiguous:
    :meth:`BlockOperator.features_t`); ``out``: a (d, n) array for the product
    (overwritten)."""
    return torch.matmul(Q, coef.T, out=out).mul_(Xt).sum(dim=0)


def coefficient_adjoint(coef: torch.Tensor, X: torch.Tensor, r: torch.Tensor, out: torch.Tensor | None = None):
    """``(X * r)^T @ coef``: the adjoint of :func:`coefficient_model` applied to ``r``
    (n, 1), shape (d, b); ``out``: an (n, d) array for ``X * r`` (overwritten)."""
    return torch.mul(X, r, out=out).T @ coef


def _unordered_pairs(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs ``(i, j)``, ``i <= j < k``, the ``k`` diagonal ones first, then the others
    in row-major order: two index tensors of length ``k (k + 1) / 2``."""
    rows, cols = torch.triu_indices(k, k, offset=1)
    diag = torch.arange(k)
    return torch.cat([diag, rows]), torch.cat([diag, cols])


def _pair_positions(k: int) -> torch.Tensor:
    """Position of the unordered pair ``{i, j}`` in :func:`_unordered_pairs` order, for
    every ``(i, j)``: shape (k, k), symmetric."""
    rows, cols = _unordered_pairs(k)
    pos = torch.empty((k, k), dtype=torch.long)
    pos[rows, cols] = torch.arange(len(rows))
    pos[cols, rows] = torch.arange(len(rows))
    return pos


class BlockOperator:
    """Model ``Q -> Z`` and cone constraints ``Q -> K(Q) >= 0`` of a convex program.

    Parameters
    ----------
    X : array of shape (n, d)
        Design matrix (intercept column included if any).
    first : bool array of shape (n, B)
        First-layer pattern of each block.
    signs : array of shape (B,)
        ``s_b`` in {-1, +1}.
    group : int array of shape (B,)
        Group of each block, in [0, G).
    second : bool array of shape (n, G) or None
        Second-layer pattern of each group (None: all ones, no second layer).
    sigma : array of shape (G,)
        Output sign of each group.
    output : int array of shape (G,)
        Output column of each group, in [0, C).
    n_outputs : int
        C.
    cone_first, cone_second : bool
        Which cone constraints the program has.
    dtype, device : torch dtype and device of the computations.
    """

    def __init__(
        self,
        X: np.ndarray,
        first: np.ndarray,
        signs: np.ndarray,
        group: np.ndarray,
        second: np.ndarray | None,
        sigma: np.ndarray,
        output: np.ndarray,
        n_outputs: int,
        *,
        cone_first: bool,
        cone_second: bool,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ):
        # row-major copies: a column-major mask (e.g. a column subset made by fancy
        # indexing) would make every elementwise result column-major, and slow
        self.X_np = np.array(X, dtype=np.float64, order="C")  # (a copy: X^T is kept beside it, features_t)
        self.first_np = np.ascontiguousarray(first, dtype=bool)
        self.signs_np = np.asarray(signs, dtype=np.float64)
        self.group_np = np.asarray(group, dtype=np.int64)
        self.sigma_np = np.asarray(sigma, dtype=np.float64)
        self.output_np = np.asarray(output, dtype=np.int64)
        n, B = self.first_np.shape
        G = len(self.sigma_np)
        self.second_np = None if second is None else np.ascontiguousarray(second, dtype=bool)
        if cone_second and self.second_np is None:
            raise ValueError("cone_second: a second-layer constraint needs second-layer patterns")
        if self.X_np.shape[0] != n:
            raise ValueError(f"first: expected {self.X_np.shape[0]} rows to match X, got {n}")
        if self.second_np is not None and self.second_np.shape != (n, G):
            raise ValueError(f"second: expected shape ({n}, {G}), got {self.second_np.shape}")
        self.n_outputs = int(n_outputs)
        self.cone_first = bool(cone_first)
        self.cone_second = bool(cone_second)
        self.trivial_groups = B == G and np.array_equal(self.group_np, np.arange(B))
        # groups of one size m in one of two regular layouts (module docstring): sums and
        # expansions by reshaping (:meth:`_grid`), otherwise by index (the general path)
        m = B // G if G else 0
        self.group_size, self.group_layout = 0, None
        if m and m * G == B:
            if np.array_equal(self.group_np, np.repeat(np.arange(G), m)):
                self.group_size, self.group_layout = m, "contiguous"  # (m = 1: trivial_groups)
            elif m >= 2 and np.array_equal(self.group_np, np.tile(np.arange(G), m)):
                self.group_size, self.group_layout = m, "slab"
        # every output fed by no block or by at least d blocks (:attr:`_coefficient_products`)
        counts = self.blocks_per_output()
        self._wide_outputs = bool(np.all((counts == 0) | (counts >= self.X_np.shape[1])))
        self.dtype = check_dtype(dtype)
        self.device = check_device(device, kinds=None)
        self._build_tensors()

    # ------------------------------------------------------------------ set-up
    def _build_tensors(self):
        kw = dict(dtype=self.dtype, device=self.device)
        self.X = torch.as_tensor(self.X_np, **kw)
        self._sigma = torch.as_tensor(self.sigma_np, **kw)
        self._half_signs = torch.as_tensor(0.5 * self.signs_np, **kw)  # s_b / 2, shape (B,)
        self._half_sigma = torch.as_tensor(0.5 * self.sigma_np, **kw)  # sigma_g / 2, shape (G,)
        self._group = torch.as_tensor(self.group_np, device=self.device)
        self._output = torch.as_tensor(self.output_np, device=self.device)
        self._masks = None  # the (n, B) and (n, G) mask arrays, built on first use (:meth:`_mask_arrays`)
        self._first_signs = None  # 2 D1 - 1 as int8 for the compiled kernels (:meth:`penalty_kernels`)
        self._coef_parts = None  # (blocks, coef[:, blocks]) per output, kept for the coefficient products
        self._Xt = None  # X^T contiguous, for the coefficient products (:meth:`features_t`)
        self._pair_signs = None  # built by the first constraint_gram with a second cone

    def _mask_arrays(self):
        """``(s_b D1_b, 2 D1 - 1, sigma_g D2_g, 2 D2 - 1)`` in the operator's dtype, shapes
        (n, B), (n, B), (n, G), (n, G) (None where the program has no such term). Built on
        first use: a program whose solver runs on its restriction to the live groups
        (:meth:`restrict`) never holds them beside the restriction's.

        With the first cone ``s_b D1_b`` is not kept (None): it is
        ``(s_b / 2) (1 + (2 D1_b - 1))``, which the model and its adjoint use instead
        (:meth:`_model_sum`, :meth:`adjoint`), one (n, B) array fewer to hold and to read.
        Likewise ``sigma_g D2_g = (sigma_g / 2) (1 + (2 D2_g - 1))`` with the second cone
        (:meth:`_outputs`, :meth:`_outputs_adjoint`)."""
        if self._masks is None:
            kw = dict(dtype=self.dtype, device=self.device)
            # each mask formed in place in its float copy of the patterns: no (n, B) temporary
            first = torch.as_tensor(self.first_np, device=self.device).to(self.dtype)
            sd1 = None if self.cone_first else first.mul_(torch.as_tensor(self.signs_np, **kw))
            s1 = first.mul_(2).sub_(1) if self.cone_first else None
            del first
            d2s = s2 = None
            if self.second_np is not None:
                second = torch.as_tensor(self.second_np, device=self.device).to(self.dtype)
                d2s = None if self.cone_second else second.mul_(self._sigma)
                s2 = second.mul_(2).sub_(1) if self.cone_second else None
            self._masks = (sd1, s1, d2s, s2)
        return self._masks

    @property
    def _sd1(self) -> torch.Tensor:
        """``s_b D1_b``, shape (n, B) (with the first cone a new array each time: the
        evaluations do without it, :meth:`_mask_arrays`)."""
        sd1 = self._mask_arrays()[0]
        return sd1 if sd1 is not None else (self._s1 + 1) * self._half_signs

    @property
    def _s1(self) -> torch.Tensor | None:
        """``2 D1 - 1`` (None without the first cone), shape (n, B)."""
        return self._mask_arrays()[1]

    @property
    def _d2s(self) -> torch.Tensor | None:
        """``sigma_g D2_g`` (None without a second layer: ``sigma_g``, broadcast), shape (n, G)
        (with the second cone a new array each time, :meth:`_mask_arrays`)."""
        d2s = self._mask_arrays()[2]
        return d2s if d2s is not None or not self.cone_second else (self._s2 + 1) * self._half_sigma

    @property
    def _s2(self) -> torch.Tensor | None:
        """``2 D2 - 1`` (None without the second cone), shape (n, G)."""
        return self._mask_arrays()[3]

    def to(self, device=None, dtype=None) -> "BlockOperator":
        """A copy computing on ``device`` in ``dtype``."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.device = check_device(device, kinds=None) if device is not None else self.device
        new.dtype = check_dtype(dtype) if dtype is not None else self.dtype
        new._build_tensors()
        return new

    def row_blocks(self, rows: int, for_kernels: bool = False) -> list[tuple[slice, "BlockOperator"]]:
        """This operator cut into consecutive blocks of ``rows`` samples (the last one
        shorter): a list of ``(slice, operator)``, each operator that of the program on
        the samples of its slice. Their tensors are views of this operator's (nothing is
        copied), so their :meth:`apply` gives the rows of this one's model output and
        constraint values, and their :meth:`adjoint` values add up to this one's.

        A caller that evaluates row block by row block keeps each block's (rows, B)
        arrays in the processor's cache between the product and the elementwise work
        that follows it (:class:`.solvers.fista.ALPart`); a block is also the unit a
        computation spread over several machines would hand out.

        Parameters
        ----------
        rows : int >= 1
            Samples per block.
        for_kernels : bool
            The blocks will be evaluated by :meth:`penalty_kernels`: where those apply,
            the int8 first-layer mask they read is built (once, kept by this operator:
            ``n B`` bytes beside the float masks) and each block holds a view of it.

        Returns
        -------
        list of ``(slice, BlockOperator)``, ``ceil(n / rows)`` of them, in sample order;
        block ``i`` has ``X[slice]`` and the masks' rows ``slice``, and the same blocks,
        groups and outputs as this operator.
        """
        rows = int(rows)
        if rows < 1:
            raise ValueError(f"rows: expected a positive integer, got {rows}")
        masks = self._mask_arrays()
        signs = self._int8_first_signs() if for_kernels and self.covers_penalty_kernels() else None
        out = []
        for a in range(0, self.n_samples, rows):
            sl = slice(a, min(a + rows, self.n_samples))
            new = object.__new__(type(self))
            new.__dict__.update(self.__dict__)
            new.X_np, new.first_np, new.X = self.X_np[sl], self.first_np[sl], self.X[sl]
            new.second_np = None if self.second_np is None else self.second_np[sl]
            new._masks = tuple(None if M is None else M[sl] for M in masks)
            new._first_signs = None if signs is None else signs[sl]
            new._coef_parts = new._pair_signs = new._Xt = None  # (built from the rows when needed)
            out.append((sl, new))
        return out

    # ------------------------------------------------------------------ shapes
    @property
    def n_samples(self) -> int:
        return self.X_np.shape[0]

    @property
    def n_features(self) -> int:
        return self.X_np.shape[1]

    @property
    def n_blocks(self) -> int:
        return self.first_np.shape[1]

    @property
    def n_groups(self) -> int:
        return len(self.sigma_np)

    @property
    def block_outputs(self) -> np.ndarray:
        """The output column of every block (its group's), int array (B,)."""
        return self.output_np[self.group_np]

    def blocks_per_output(self) -> np.ndarray:
        """The number of blocks feeding each output, int array (C,)."""
        return np.bincount(self.block_outputs, minlength=self.n_outputs)

    @property
    def shape(self) -> tuple[int, int]:
        """Shape (d, B) of the variable ``Q``."""
        return (self.n_features, self.n_blocks)

    @property
    def constraint_shapes(self) -> tuple[tuple[int, int], ...]:
        """Shapes of the constraint values (and of their multipliers)."""
        shapes = []
        if self.cone_first:
            shapes.append((self.n_samples, self.n_blocks))
        if self.cone_second:
            shapes.append((self.n_samples, self.n_groups))
        return tuple(shapes)

    def constraint_groups(self) -> tuple[np.ndarray, ...]:
        """The group of each column of each constraint array (:attr:`constraint_shapes`):
        the blocks' groups for the first cone, ``0 .. G-1`` for the second."""
        return tuple(([self.group_np] if self.cone_first else [])
                     + ([np.arange(self.n_groups)] if self.cone_second else []))

    @property
    def has_constraints(self) -> bool:
        return self.cone_first or self.cone_second

    def zeros(self) -> torch.Tensor:
        """The zero variable, shape (d, B)."""
        return torch.zeros(self.shape, dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ pieces
    def _grid_shape(self, n: int) -> tuple[int, int, int]:
        """Shape of :meth:`_grid` for ``n`` rows."""
        G, m = self.n_groups, self.group_size
        return (n, m, G) if self.group_layout == "slab" else (n, G, m)

    def _grid(self, T: torch.Tensor) -> torch.Tensor:
        """(n, B) -> a view with the blocks of each group along axis :attr:`_block_axis`:
        (n, G, m) in the contiguous layout, (n, m, G) in the slab layout."""
        return T.view(self._grid_shape(T.shape[0]))

    @property
    def _block_axis(self) -> int:
        return 1 if self.group_layout == "slab" else 2

    def _per_block(self, Tg: torch.Tensor) -> torch.Tensor:
        """(n, G) -> a view broadcasting against :meth:`_grid`."""
        return Tg[:, None, :] if self.group_layout == "slab" else Tg[:, :, None]

    def _group_sum(self, H: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(n, B) -> (n, G): sum of the blocks of each group (into ``out`` if given; with
        one block per group ``H`` itself is returned)."""
        if self.trivial_groups:
            return H
        if self.group_size:
            H3, ax = self._grid(H), self._block_axis
            out = torch.add(H3.select(ax, 0), H3.select(ax, 1), out=out)
            for j in range(2, self.group_size):
                out += H3.select(ax, j)
            return out
        if out is None:
            out = torch.zeros((H.shape[0], self.n_groups), dtype=H.dtype, device=H.device)
        else:
            out.zero_()
        return out.index_add_(1, self._group, H)

    def _group_expand(self, T: torch.Tensor) -> torch.Tensor:
        """(n, G) -> (n, B): adjoint of :meth:`_group_sum`."""
        if self.trivial_groups:
            return T
        if self.group_size:
            n = T.shape[0]
            return self._per_block(T).expand(self._grid_shape(n)).reshape(n, self.n_blocks)
        return T[:, self._group]

    def _model_sum(self, XQ: torch.Tensor, work: "Workspace | None", overwrite: bool) -> torch.Tensor:
        """(n, B) -> (n, G): ``H_g = sum_{b in g} s_b D1_b (X q_b)`` from ``XQ = X @ Q``.

        ``overwrite``: ``XQ`` may be overwritten (it is the caller's own scratch array).
        With the first cone the sums read ``2 D1_b X q_b`` (formed in ``XQ``, or in the
        workspace without ``overwrite``: :meth:`_mask_arrays`); otherwise, in the slab layout,
        they run over the slabs with no (n, B) temporary."""
        n, G = XQ.shape[0], self.n_groups
        if self.cone_first:  # s_b D1_b = (s_b / 2)(1 + s1_b): 2 D1 X q_b, then the signed sums
            H2 = XQ.addcmul_(XQ, self._s1) if overwrite else torch.addcmul(
                XQ, XQ, self._s1, out=_scratch(work, "nB", XQ.shape, XQ))
            return self._half_signed_sum(H2, work)
        if self.group_layout == "slab":
            S3, X3 = self._grid(self._sd1), self._grid(XQ)
            Hg = torch.mul(S3[:, 0], X3[:, 0], out=_scratch(work, "nG", (n, G), XQ))
            for j in range(1, self.group_size):
                Hg.addcmul_(S3[:, j], X3[:, j])
            return Hg
        H = XQ.mul_(self._sd1) if overwrite else torch.mul(self._sd1, XQ, out=_scratch(work, "nB", XQ.shape, XQ))
        return self._group_sum(H, out=_scratch(work, "nG", (n, G), XQ))

    def _half_signed_sum(self, H2: torch.Tensor, work: "Workspace | None") -> torch.Tensor:
        """(n, B) -> (n, G): ``sum_{b in g} (s_b / 2) H2_b``; ``H2`` (the caller's scratch)
        may be overwritten."""
        if self.group_layout == "slab":
            H3, h3 = self._grid(H2), self._half_signs.view(self.group_size, self.n_groups)
            Hg = torch.mul(H3[:, 0], h3[0], out=_scratch(work, "nG", (H2.shape[0], self.n_groups), H2))
            for j in range(1, self.group_size):
                Hg.addcmul_(H3[:, j], h3[j])
            return Hg
        return self._group_sum(H2.mul_(self._half_signs), out=_scratch(work, "nG", (H2.shape[0], self.n_groups), H2))

    def _half_signed_expand(self, Tg: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        """(n, G) -> (n, B): ``(s_b / 2) Tg[:, g(b)]`` (into ``out`` if given)."""
        n = Tg.shape[0]
        if out is None:
            out = torch.empty((n, self.n_blocks), dtype=Tg.dtype, device=Tg.device)
        if self.group_size and not self.trivial_groups:
            torch.mul(self._per_block(Tg), self._half_signs.view(self._grid_shape(1)[1:]), out=self._grid(out))
            return out
        return torch.mul(self._group_expand(Tg), self._half_signs, out=out)

    def _outputs(self, Hg: torch.Tensor, work: "Workspace | None" = None,
                 second: torch.Tensor | None = None) -> torch.Tensor:
        """(n, G) -> (n, C). ``second``: the second cone's values ``(2 D2 - 1) Hg``, where
        the caller has them."""
        if self.cone_second:  # sigma_g D2_g Hg = (sigma_g / 2)(Hg + (2 D2_g - 1) Hg)
            out = _scratch(work, "nG2", Hg.shape, Hg)
            S = torch.add(Hg, second, out=out) if second is not None else torch.addcmul(Hg, Hg, self._s2, out=out)
            if self.n_outputs == 1:
                return S @ self._half_sigma[:, None]
            S.mul_(self._half_sigma)
        elif self._d2s is None and self.n_outputs == 1:
            return Hg @ self._sigma[:, None]  # one pass, no (n, G) temporary
        else:
            S = torch.mul(Hg, self._sigma if self._d2s is None else self._d2s, out=_scratch(work, "nG2", Hg.shape, Hg))
            if self.n_outputs == 1:
                return S.sum(dim=1, keepdim=True)
        out = torch.zeros((S.shape[0], self.n_outputs), dtype=S.dtype, device=S.device)
        return out.index_add_(1, self._output, S)

    def _outputs_adjoint(self, R: torch.Tensor, work: "Workspace | None" = None) -> torch.Tensor:
        """(n, C) -> (n, G): adjoint of :meth:`_outputs` (a new array, or ``work``'s)."""
        Rg = R.expand(-1, self.n_groups) if self.n_outputs == 1 else R[:, self._output]
        out = _scratch(work, "nG2", (R.shape[0], self.n_groups), R)
        if self.cone_second:  # (sigma_g / 2)(1 + (2 D2_g - 1)) R[:, k(g)]
            F = torch.mul(Rg, self._half_sigma, out=out)
            return F.addcmul_(F, self._s2)
        return torch.mul(Rg, self._sigma if self._d2s is None else self._d2s, out=out)

    # ------------------------------------------------------------------ API
    def apply(self, Q: torch.Tensor, out=None, work: "Workspace | None" = None
              ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Model output and constraint values from one product ``X @ Q`` (``coef @ Q^T``,
        one per output, where :attr:`_coefficient_products`: module docstring).

        Parameters
        ----------
        Q : tensor (d, B)
        out : tuple ``(Z, constraints)`` or None
            An earlier result of this method whose constraint arrays are overwritten
            (instead of allocating new ones: at scale, allocating is a large part of the
            cost). ``Z`` (small) is always new.
        work : Workspace or None
            Scratch arrays for the temporaries (:meth:`workspace`).

        Returns
        -------
        Z : tensor (n, C)
        constraints : tuple of tensors, shapes :attr:`constraint_shapes`; the program
            requires every entry to be >= 0.
        """
        if self._coefficient_products:
            return self.matvec(Q, work), ()
        n, B, X = self.n_samples, self.n_blocks, self.X
        bufs = tuple(out[1]) if out is not None else (None,) * len(self.constraint_shapes)
        XQ = torch.matmul(X, Q, out=_scratch(work, "nB", (n, B), X))  # this call's own array
        cons = []
        if self.cone_first:  # its values, then 2 D1 X q_b = X q_b + its values for the model
            cons.append(torch.mul(XQ, self._s1, out=bufs[0]))
            Hg = self._half_signed_sum(XQ.add_(cons[0]), work)
        else:
            Hg = self._model_sum(XQ, work, overwrite=True)
        if self.cone_second:
            cons.append(torch.mul(self._s2, Hg, out=bufs[-1]))
        return self._outputs(Hg, work, cons[-1] if self.cone_second else None), tuple(cons)

    def matvec(self, Q: torch.Tensor, work: "Workspace | None" = None) -> torch.Tensor:
        """Model output ``Z = A(Q)``, shape (n, C)."""
        n, B, X = self.n_samples, self.n_blocks, self.X
        if self._coefficient_products and B:  # colsum(X^T * (Q @ coef^T)) per output: no (n, B) array
            parts, Xt = self._output_coefficients(), self.features_t()
            if len(parts) == 1:
                return coefficient_model(parts[0][1], Xt, Q, out=_scratch(work, "dn", Xt.shape, X))[:, None]
            Z = X.new_zeros((n, len(parts)))
            for c, (blocks, coef) in enumerate(parts):
                if blocks is not None and not len(blocks):
                    continue
                Qc = Q if blocks is None else Q[:, blocks]  # (blocks None: every block feeds output c)
                Z[:, c] = coefficient_model(coef, Xt, Qc, out=_scratch(work, "dn", Xt.shape, X))
            return Z
        XQ = torch.matmul(X, Q, out=_scratch(work, "nB", (n, B), X))  # this call's own array
        return self._outputs(self._model_sum(XQ, work, overwrite=True), work)

    def constraints(self, Q: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Constraint values ``K(Q)`` (must be >= 0), without the model output."""
        if not self.has_constraints:
            return ()
        XQ = self.X @ Q
        if not self.cone_first:
            return (self._s2 * self._model_sum(XQ, None, overwrite=True),)
        c1 = XQ.mul_(self._s1)  # the product's own array
        if not self.cone_second:
            return (c1,)
        # 2 D1 X q_b = (1 + s1_b) X q_b = c1_b + s1_b c1_b (s1 = +-1), then the signed sums
        return c1, self._s2 * self._half_signed_sum(torch.addcmul(c1, c1, self._s1), None)

    def adjoint(self, R: torch.Tensor | None, multipliers=(), work: "Workspace | None" = None) -> torch.Tensor:
        """``A^T R + K^T Lambda`` with one product ``X.T @ T`` (``(X * r)^T @ coef``, one per
        output, where :attr:`_coefficient_products`: module docstring).

        Parameters
        ----------
        R : tensor (n, C) or None
            Cotangent of the model output (on the coefficient products a ValueError when
            of another shape).
        multipliers : tuple of tensors with shapes :attr:`constraint_shapes` (or empty)
        work : Workspace or None
            Scratch arrays for the temporaries (:meth:`workspace`).

        Returns
        -------
        tensor (d, B)
        """
        n = self.n_samples
        multipliers = tuple(multipliers)
        if multipliers and len(multipliers) != len(self.constraint_shapes):
            raise ValueError(f"multipliers: expected {len(self.constraint_shapes)} arrays, got {len(multipliers)}")
        if self._coefficient_products and R is not None and self.n_blocks:  # (X * r)^T @ coef per output
            if R.shape != (n, self.n_outputs):
                raise ValueError(f"R: expected shape ({n}, {self.n_outputs}), got {tuple(R.shape)}")
            parts = self._output_coefficients()
            out = torch.zeros(self.shape, dtype=self.dtype, device=self.device) if len(parts) > 1 else None
            for c, (blocks, coef) in enumerate(parts):
                if blocks is not None and not len(blocks):
                    continue
                AtR = coefficient_adjoint(coef, self.X, R[:, c:c + 1], out=_scratch(work, "nd", self.X.shape, self.X))
                if out is None:
                    return AtR
                out[:, slice(None) if blocks is None else blocks] = AtR
            return out
        Tg = None
        if R is not None:
            Tg = self._outputs_adjoint(R, work)
        if self.cone_second and multipliers:
            L2 = multipliers[-1]
            Tg = self._s2 * L2 if Tg is None else Tg.addcmul_(self._s2, L2)
        grouped = bool(self.group_size) and not self.trivial_groups  # a regular layout (:meth:`_grid`)
        T_out = _scratch(work, "nB", (n, self.n_blocks), self.X)
        if self.cone_first and Tg is not None:
            # s_b D1_b Tg = (1 + s1_b) F_b with F_b = (s_b / 2) Tg[:, g(b)] (:meth:`_mask_arrays`)
            T = self._half_signed_expand(Tg, T_out)
            T.addcmul_(T, self._s1)
            if multipliers:
                T.addcmul_(self._s1, multipliers[0])
        elif self.cone_first and multipliers:
            T = torch.mul(self._s1, multipliers[0], out=T_out)
        elif Tg is None:
            T = torch.zeros((n, self.n_blocks), dtype=self.dtype, device=self.device)
        elif grouped:
            T = torch.mul(self._grid(self._sd1), self._per_block(Tg), out=None if T_out is None else self._grid(T_out))
            T = T.view(n, self.n_blocks)
        else:
            T = torch.mul(self._sd1, self._group_expand(Tg), out=T_out)
        return self.X.T @ T

    def penalty_kernels(self) -> "_kernels.PenaltyKernels | None":
        """Compiled single-pass evaluations of the augmented Lagrangian's state and gradient
        on this operator (:mod:`convexrelu._kernels`: the values of :meth:`apply` and
        :meth:`adjoint` with the multipliers ``(lam - rho K Q)_+`` formed on the way), or
        None where they do not apply: numba not installed, not on the CPU, several
        outputs, no first cone, groups other than single blocks or slabs, or a second
        layer without its cone."""
        if not self.covers_penalty_kernels():
            return None
        return _kernels.PenaltyKernels(self.X, self._int8_first_signs(), self._half_signs,
                                       self._s2 if self.cone_second else None,
                                       self._half_sigma if self.cone_second else self._sigma)

    def covers_penalty_kernels(self) -> bool:
        """Whether :meth:`penalty_kernels` applies (its docstring)."""
        return (self.device.type == "cpu" and self.cone_first and self.n_blocks > 0 and self.n_outputs == 1
                and (self.trivial_groups or self.group_layout == "slab")
                and (self.second_np is None or self.cone_second)
                and self.dtype in (torch.float32, torch.float64) and _kernels.available())

    def _int8_first_signs(self) -> torch.Tensor:
        """``2 D1 - 1`` as int8, shape (n, B): what the kernels read (a quarter of the float
        mask's bytes, in a memory-bound loop). Built on first use and kept; the operators
        of :meth:`row_blocks` hold views of it."""
        if self._first_signs is None:
            self._first_signs = torch.as_tensor(self.first_np).to(torch.int8).mul_(2).sub_(1)
        return self._first_signs

    def workspace(self) -> "Workspace":
        """Scratch arrays for :meth:`apply`, :meth:`matvec` and :meth:`adjoint`, reused
        from call to call by one caller (a solver's loop); never share one between threads."""
        return Workspace()

    def constraint_support(self) -> tuple[torch.Tensor, ...]:
        """Where the rows of ``K`` are not identically zero: bool tensors with shapes
        :attr:`constraint_shapes`. A first-cone row ``(r, b)`` is ``(2 D1_b[r] - 1) x_r``
        (zero only if ``x_r = 0``); a second-cone row ``(r, g)`` is zero when no block of
        the group is active on sample ``r`` (``D1_b[r] = 0`` for every ``b`` in ``g``)."""
        row = torch.linalg.vector_norm(self.X, dim=1) > 0
        out = []
        if self.cone_first:
            out.append(row[:, None].expand(self.n_samples, self.n_blocks).clone())
        if self.cone_second:
            out.append(row[:, None] & (self._group_sum(self._sd1 * self._sd1) > 0))
        return tuple(out)

    def group_constraint_matrix(self, blocks) -> np.ndarray:
        """The cone constraints on some blocks of one group as a dense matrix (float64).

        With ``u = (q_{blocks[0]}; ...; q_{blocks[k-1]})`` (block-major, length ``k d``)
        and every other block of the group at zero, the group's constraint values are
        ``K u``: the first-cone rows ``(2 D1_b - I) X q_b`` of each listed block (``n``
        rows each, in the order of ``blocks``), then the group's second-cone rows
        ``(2 D2_g - I) sum_b s_b D1_b X q_b`` (``n`` rows), each part only where the
        program has that cone.

        Parameters
        ----------
        blocks : int array (k,), blocks of one group

        Returns
        -------
        K : float64 array (rows, k d), ``rows = n (k [cone_first] + [cone_second])``
        """
        blocks = np.asarray(blocks, dtype=np.int64).reshape(-1)
        if blocks.size == 0 or blocks.min() < 0 or blocks.max() >= self.n_blocks:
            raise ValueError(f"blocks: expected block indices in [0, {self.n_blocks}), got {blocks.tolist()}")
        groups = np.unique(self.group_np[blocks])
        if groups.size != 1:
            raise ValueError(f"blocks: expected blocks of one group, got blocks of groups {groups.tolist()}")
        n, d, k = self.n_samples, self.n_features, blocks.size
        parts = []
        if self.cone_first:
            first = np.zeros((k * n, k * d))
            for i, b in enumerate(blocks):
                first[i * n:(i + 1) * n, i * d:(i + 1) * d] = np.where(self.first_np[:, b, None], 1.0, -1.0) * self.X_np
            parts.append(first)
        if self.cone_second:
            s2 = np.where(self.second_np[:, groups[0], None], 1.0, -1.0)
            parts.append(np.hstack([s2 * self.signs_np[b] * self.first_np[:, b, None] * self.X_np for b in blocks]))
        return np.vstack(parts) if parts else np.zeros((0, k * d))

    def violation(self, Q: torch.Tensor) -> float:
        """Largest constraint violation ``max(0, -K(Q))`` (0.0 without constraints, ``inf``
        where a value is NaN: :func:`largest_violation`)."""
        return largest_violation(self.constraints(Q))

    def _power_norm(self, gram, n_iter: int, seed: int) -> float:
        """``sqrt(||G||)`` for a Gram map ``G = M^T M`` of ``Q`` by power iteration
        (deterministic: a seeded start on the CPU)."""
        gen = torch.Generator(device="cpu").manual_seed(seed)
        Q = torch.randn(self.shape, generator=gen, dtype=torch.float64).to(self.device, self.dtype)
        s = 0.0
        for _ in range(n_iter):
            Q = Q / torch.clamp(torch.linalg.vector_norm(Q), min=torch.finfo(self.dtype).tiny)
            Q = gram(Q)
            s = float(torch.linalg.vector_norm(Q))
        return s**0.5

    def row_parts(self, rows: int | None, for_kernels: bool = False
                  ) -> list[tuple[slice, "BlockOperator", "Workspace"]]:
        """``(slice, operator, workspace)`` for each of :meth:`row_blocks` ``(rows,
        for_kernels)``, the blocks of one length sharing one workspace (they are evaluated
        one after the other); with ``rows`` None (or at least the number of samples) this
        operator whole."""
        if rows is None or rows >= self.n_samples:
            return [(slice(0, self.n_samples), self, self.workspace())]
        works = {}
        return [(sl, op, works.setdefault(sl.stop - sl.start, op.workspace()))
                for sl, op in self.row_blocks(rows, for_kernels)]

    def norm_estimate(self, n_iter: int = 30, seed: int = 0, rows: int | None = None) -> float:
        """Estimate of the spectral norm of ``A`` by power iteration (deterministic);
        ``rows``: evaluate by row blocks of that many samples (:meth:`row_parts`)."""
        parts = self.row_parts(rows)
        return self._power_norm(
            lambda Q: _sum_of(op.adjoint(op.matvec(Q, work=work), work=work) for _, op, work in parts), n_iter, seed)

    def constraint_norm_estimate(self, n_iter: int = 8, seed: int = 0, rows: int | None = None) -> float:
        """Estimate of the spectral norm of ``K`` (all cones stacked) by power iteration;
        0 without constraints. ``rows``: as :meth:`norm_estimate`."""
        if not self.has_constraints:
            return 0.0
        parts, last = self.row_parts(rows), {}

        def gram(Q):
            out = []
            for sl, op, work in parts:  # the constraint arrays of the last call of this length reused
                k = sl.stop - sl.start
                last[k] = op.apply(Q, out=last.get(k), work=work)
                out.append(op.adjoint(None, last[k][1], work=work))
            return _sum_of(out)

        return self._power_norm(gram, n_iter, seed)

    # ------------------------------------------------------------------ dense pieces
    def padded_groups(self) -> torch.Tensor:
        """Blocks of each group, shape (G, m) with ``m`` the largest group size; shorter
        groups are padded with the index ``B`` (no block)."""
        if self.group_size:
            blocks = torch.arange(self.n_blocks, device=self.device)
            if self.group_layout == "slab":
                return blocks.reshape(self.group_size, self.n_groups).T.contiguous()
            return blocks.reshape(self.n_groups, self.group_size)
        sizes = np.bincount(self.group_np, minlength=self.n_groups)
        m = int(sizes.max()) if len(sizes) else 0
        gidx = np.full((self.n_groups, m), self.n_blocks, dtype=np.int64)
        pos = np.zeros(self.n_groups, dtype=np.int64)
        for b, g in enumerate(self.group_np):
            gidx[g, pos[g]] = b
            pos[g] += 1
        return torch.as_tensor(gidx, device=self.device)

    def to_groups(self, Q: torch.Tensor) -> torch.Tensor:
        """(d, B) -> (G, m d): each group's blocks side by side (block ``j`` of group ``g`` at
        ``j d .. (j + 1) d``, padding slots zero), the layout of :meth:`constraint_gram`."""
        gidx = self.padded_groups()
        d = Q.shape[0]
        Qp = torch.cat([Q, Q.new_zeros((d, 1))], 1)[:, gidx]  # (d, G, m)
        return Qp.permute(1, 2, 0).reshape(gidx.shape[0], -1)

    def from_groups(self, U: torch.Tensor) -> torch.Tensor:
        """(G, m d) -> (d, B): the inverse of :meth:`to_groups` on the blocks (padding slots
        dropped)."""
        gidx = self.padded_groups()
        G, m = gidx.shape
        d = self.n_features
        Qp = U.new_zeros((d, self.n_blocks + 1))
        Qp[:, gidx.reshape(-1)] = U.reshape(G, m, d).permute(2, 0, 1).reshape(d, G * m)
        return Qp[:, :self.n_blocks]

    def model_coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The model as a weighted sum of rows: ``(coef, out)`` with

            A(Q)[r, k] = sum_{b : out[b] = k} coef[r, b] <x_r, q_b>,

        ``coef[r, b] = sigma_g D2_g[r] s_b D1_b[r]`` (shape (n, B)) and ``out[b]`` the output
        column of block ``b``'s group (shape (B,)). Where the products use it
        (:attr:`_coefficient_products`) with one output the array is kept and shared: do not
        modify it."""
        if self._coefficient_products and self.n_outputs == 1:
            return self._output_coefficients()[0][1], self._output[self._group]
        return self._coefficients(), self._output[self._group]

    def _coefficients(self, blocks: np.ndarray | None = None) -> torch.Tensor:
        """``coef`` of :meth:`model_coefficients` (its columns ``blocks``, or all), a new
        array built from the boolean masks."""
        cols = slice(None) if blocks is None else blocks
        first = torch.as_tensor(self.first_np[:, cols], device=self.device).to(self.dtype)
        weight = (self.signs_np * self.sigma_np[self.group_np])[cols]  # s_b sigma_g(b)
        coef = first.mul_(torch.as_tensor(weight, dtype=self.dtype, device=self.device))
        if self.second_np is not None:
            coef.mul_(torch.as_tensor(self.second_np[:, self.group_np[cols]], device=self.device))
        return coef

    def features_t(self) -> torch.Tensor:
        """``X^T``, contiguous, shape (d, n): the operand of :func:`coefficient_model`
        (built on first use and kept: ``n d`` numbers)."""
        if self._Xt is None:
            self._Xt = self.X.T.contiguous()
        return self._Xt

    def _output_coefficients(self) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
        """``(blocks, coef[:, blocks])`` per output (``blocks`` None: every block), kept:
        the operands of the coefficient products (module docstring)."""
        if self._coef_parts is None:
            parts, out = [], self.block_outputs
            for blocks in (np.flatnonzero(out == c) for c in range(self.n_outputs)):
                if len(blocks) == self.n_blocks:
                    parts.append((None, self._coefficients()))
                else:
                    parts.append((torch.as_tensor(blocks, device=self.device), self._coefficients(blocks)))
            self._coef_parts = parts
        return self._coef_parts

    @property
    def _coefficient_products(self) -> bool:
        """Whether :meth:`matvec` and :meth:`adjoint` go through the model coefficients,
        output by output (:meth:`_output_coefficients`, module docstring): no cone
        constraint (no (n, B) constraint values are needed), and every output fed by no
        block or by at least as many blocks as features."""
        return self._wide_outputs and not self.has_constraints

    def live_groups(self) -> np.ndarray:
        """Groups whose part of the model is not identically zero: bool array (G,).

        Group ``g`` is dead when ``sigma_g D2_g s_b D1_b = 0`` for all its blocks ``b``
        (:meth:`model_coefficients`): a three-layer pattern whose second layer is off
        wherever its first-layer blocks are on, or an all-zero first-layer pattern. Its
        variables then enter the program only through ``beta ||q_g||`` and its own cone
        constraints ``K_g q_g >= 0`` (the constraints are block diagonal over the
        groups), so ``q_g = 0`` at every optimum: the program restricted to the live
        groups (:meth:`restrict`) has the same optimal value.
        """
        # (from the boolean masks: the float ones are not built for this)
        on = self.first_np if self.second_np is None else self.first_np & np.take(self.second_np, self.group_np, axis=1)
        live_blocks = on.any(axis=0) & (self.signs_np != 0) & (self.sigma_np[self.group_np] != 0)
        return np.bincount(self.group_np, weights=live_blocks, minlength=self.n_groups) > 0

    def _blocks_of(self, groups) -> np.ndarray:
        """The blocks of ``groups``, in increasing order."""
        return np.flatnonzero(np.isin(self.group_np, np.asarray(groups, dtype=np.int64)))

    def row_sample(self, max_rows: int) -> tuple["BlockOperator", float]:
        """This operator on at most ``max_rows`` samples, evenly spaced (every
        ``ceil(n / max_rows)``-th, from the first: deterministic), and ``n`` over their
        number. For sums over samples, such as the Gram maps ``A^T A`` and ``K^T K``, the
        sample's times that factor estimates the whole's (the solvers' first step and
        penalty, :meth:`norm_estimate`, where the whole would cost many evaluations).
        ``self`` and 1.0 when ``n <= max_rows``."""
        n = self.n_samples
        if n <= max_rows:
            return self, 1.0
        idx = np.arange(0, n, -(-n // int(max_rows)))
        sub = type(self)(
            self.X_np[idx], self.first_np[idx], self.signs_np, self.group_np,
            None if self.second_np is None else self.second_np[idx], self.sigma_np, self.output_np, self.n_outputs,
            cone_first=self.cone_first, cone_second=self.cone_second, dtype=self.dtype, device=self.device)
        return sub, n / idx.size

    def restrict(self, groups, output: int | None = None) -> tuple["BlockOperator", np.ndarray]:
        """The operator of the program over a subset of the groups (the others fixed at
        zero).

        Parameters
        ----------
        groups : int array (G',), increasing group indices
        output : int or None
            When given, every group of ``groups`` must feed this output column, and the
            restriction has that one output (its model is column ``output`` of this
            operator's model, for the ``Q`` it keeps).

        Returns
        -------
        operator : BlockOperator over the G' groups (blocks in their original order)
        blocks : int array (B',), the blocks kept: column ``j`` of the restricted ``Q``
            is column ``blocks[j]`` of this operator's ``Q``; the second-cone rows of
            group ``j`` are those of group ``groups[j]``.
        """
        keep = np.asarray(groups, dtype=np.int64).reshape(-1)
        if keep.size and (np.any(np.diff(keep) <= 0) or keep[0] < 0 or keep[-1] >= self.n_groups):
            raise ValueError(f"groups: expected increasing indices in [0, {self.n_groups}), got {keep.tolist()}")
        outputs, n_outputs = self.output_np[keep], self.n_outputs
        if output is not None:
            if not 0 <= int(output) < self.n_outputs or np.any(outputs != int(output)):
                raise ValueError(f"output: expected the output column of every group in groups, got {output!r} "
                                 f"for groups feeding outputs {sorted(set(outputs.tolist()))}")
            outputs, n_outputs = np.zeros_like(outputs), 1
        blocks = self._blocks_of(keep)
        remap = np.full(self.n_groups, -1, dtype=np.int64)
        remap[keep] = np.arange(keep.size)
        # np.take gives the columns in row-major order at once (fancy indexing gives a
        # column-major array, which the constructor would copy again: 1.2 s against 0.17 s
        # for 50,000 x 2,622)
        sub = type(self)(
            self.X_np, np.take(self.first_np, blocks, axis=1), self.signs_np[blocks], remap[self.group_np[blocks]],
            None if self.second_np is None else np.take(self.second_np, keep, axis=1), self.sigma_np[keep], outputs,
            n_outputs, cone_first=self.cone_first, cone_second=self.cone_second, dtype=self.dtype,
            device=self.device)
        return sub, blocks

    def block_cones(self) -> "tuple[BlockOperator, np.ndarray] | None":
        """The cone constraints that hold block by block, as an operator of their own, and
        where each block's column is in it (None when there are none).

        These are the first cone's, ``(2 D1_b - I) X q_b >= 0``: the operator has one
        group per distinct first-layer pattern (blocks with the same pattern, e.g. the two
        signs of a two-layer pattern, have the same rows), that cone only, and column
        ``columns[b]`` of its constraint array holds the rows of this operator's first-cone
        column ``b``. A row redundant among the rows of its block there is redundant in
        this operator's program too (:mod:`convexrelu.solvers._facets`)."""
        if not self.cone_first:
            return None
        _, first, columns = np.unique(self.first_np, axis=1, return_index=True, return_inverse=True)
        patterns = self.first_np[:, first]
        P = patterns.shape[1]
        sub = type(self)(self.X_np, patterns, np.ones(P), np.arange(P), None, np.ones(P), np.zeros(P, dtype=np.int64),
                         1, cone_first=True, cone_second=False, dtype=self.dtype, device=self.device)
        return sub, columns.reshape(-1)

    def constraint_columns(self, groups) -> tuple[np.ndarray, ...]:
        """The columns of each constraint array (:attr:`constraint_shapes`) that belong to
        ``groups``: the groups' blocks for the first cone, the groups themselves for the
        second. Column ``j`` of the restriction's array (:meth:`restrict`) is column
        ``cols[j]`` of this operator's."""
        groups = np.asarray(groups, dtype=np.int64)
        return tuple(([self._blocks_of(groups)] if self.cone_first else []) + ([groups] if self.cone_second else []))

    def extend(self, Q: torch.Tensor, multipliers, groups) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """``Q`` and cone multipliers of the restriction to ``groups`` (:meth:`restrict`)
        as this operator's, zero on the other groups: shapes (d, B) and
        :attr:`constraint_shapes`."""
        full = Q.new_zeros(self.shape)
        full[:, torch.as_tensor(self._blocks_of(groups), device=Q.device)] = Q
        out = []
        for m, shape, cols in zip(multipliers, self.constraint_shapes, self.constraint_columns(groups)):
            big = m.new_zeros(shape)
            big[:, torch.as_tensor(cols, device=m.device)] = m
            out.append(big)
        return full, tuple(out)

    def coefficient_classes(self, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Groups whose part of the model is the same up to sign.

        Group ``g`` contributes ``sum_j coef[:, gidx[g, j]] <x_r, q_j>`` to output column
        ``out(g)`` (:meth:`model_coefficients`, blocks in :meth:`padded_groups` order).
        Two groups are in one class when their coefficient columns (n, m) and output
        agree up to one sign: the two signs of a two-layer ReLU pattern (``v_i``, ``w_i``),
        of a three-layer pattern pair, and repeated patterns. Found by an exact random
        projection, then checked entry by entry.

        Returns
        -------
        cls : int tensor (G,), the class of each group, in [0, K)
        sign : tensor (G,), +1 or -1: group ``g`` is ``sign[g]`` times its class
        representative
        reps : int tensor (K,), the representative group of each class
        """
        coef, _ = self.model_coefficients()
        gidx = self.padded_groups()
        G, m = gidx.shape
        n = coef.shape[0]
        flat = torch.cat([coef, torch.zeros((n, 1), dtype=coef.dtype, device=coef.device)], 1)[:, gidx]
        flat = flat.permute(1, 0, 2).reshape(G, n * m).to(torch.float64)  # entries in {-1, 0, 1} times +-1
        first = torch.argmax((flat != 0).to(torch.int8), dim=1)
        sign = torch.sign(flat[torch.arange(G, device=flat.device), first])
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        normal = flat * sign[:, None]
        gen = torch.Generator(device="cpu").manual_seed(seed)
        weights = torch.randint(1, 2**20, (n * m,), generator=gen).to(device=flat.device, dtype=torch.float64)
        keys = torch.stack([normal @ weights, torch.as_tensor(self.output_np, device=flat.device).to(torch.float64)], 1)
        _, cls = torch.unique(keys, dim=0, return_inverse=True)
        K = int(cls.max()) + 1 if G else 0
        reps = torch.full((K,), G, dtype=torch.long, device=flat.device).scatter_reduce_(
            0, cls, torch.arange(G, device=flat.device), reduce="amin")
        if G and not bool(torch.equal(normal, normal[reps[cls]])):  # a projection collision: no sharing
            cls = reps = torch.arange(G, device=flat.device)
            sign = torch.ones(G, dtype=torch.float64, device=flat.device)
        return cls, (sign * sign[reps[cls]]).to(self.dtype), reps  # signs relative to the representative

    def constraint_gram(self, weights, chunk: int = 2**24) -> torch.Tensor:
        """``K_g^T diag(w) K_g`` for every group ``g``, shape (G, m d, m d).

        ``K`` is block diagonal over the groups (:class:`NormalSolver`): the first cone
        gives ``X^T diag(w1[:, b]) X`` on block ``b`` (``(2 D1 - I)^2 = I``), the second
        couples blocks ``p, q`` of a group by ``X^T diag(w2[:, g] s_p D1_p s_q D1_q) X``.
        Rows and columns follow :meth:`padded_groups` (block ``j`` of the group at
        ``j d .. (j + 1) d``; padding slots are zero).

        Parameters
        ----------
        weights : tuple of tensors, shapes :attr:`constraint_shapes` (non-negative)
        chunk : int
            Groups are processed in chunks of about this many entries of their
            ``(n, m (m + 1) / 2)`` pair weights.
        """
        weights = tuple(weights)
        if len(weights) != len(self.constraint_shapes):
            raise ValueError(f"weights: expected {len(self.constraint_shapes)} arrays, got {len(weights)}")
        X = self.X
        n, d = X.shape
        gidx = self.padded_groups()
        G, m = gidx.shape
        kw = dict(dtype=self.dtype, device=self.device)
        # the result is symmetric in the blocks (p, q) and in the features (e, f): only the
        # pairs p <= q and e <= f are computed (m (m + 1) / 2 and d (d + 1) / 2 of them; the
        # m pairs p = q first), then entry (j d + e, k d + f) of each group's matrix is read
        # at feature pair {e, f} and block pair {j, k}
        bp, bq = (i.to(self.device) for i in _unordered_pairs(m))
        fe, ff = (i.to(self.device) for i in _unordered_pairs(d))
        n_pairs = len(bp)
        where_f = _pair_positions(d).to(self.device).repeat(m, m)  # (m d, m d): feature pair
        where_b = _pair_positions(m).to(self.device).repeat_interleave(d, 0).repeat_interleave(d, 1)  # block pair
        zero_col = torch.zeros((n, 1), **kw)
        w1 = torch.cat([weights[0], zero_col], 1)[:, gidx] if self.cone_first else None  # (n, G, m)
        w2 = weights[-1] if self.cone_second else None
        step = max(1, chunk // max(n * n_pairs, 1))
        if self.cone_second and self._pair_signs is None:
            sd1 = torch.cat([self._sd1, zero_col], 1)  # s_p D1_p, with the padding column

            def pair_signs(groups):  # s_p D1_p s_q D1_q (p <= q) of the groups' blocks, (n, g, P)
                S = sd1[:, gidx[groups]]
                return S[:, :, bp] * S[:, :, bq]
            if step >= G:
                self._pair_signs = pair_signs(slice(None))  # kept when small
        XXt = (X[:, fe] * X[:, ff]).T.contiguous()  # (d (d + 1) / 2, n)
        out = torch.empty((G, m * d, m * d), **kw)
        for g0 in range(0, G, step):
            sl = slice(g0, g0 + step)
            g = min(step, G - g0)
            if w2 is None:
                C = torch.zeros((n, g, n_pairs), **kw)
            else:
                C = w2[:, sl, None] * (self._pair_signs[:, sl] if self._pair_signs is not None else pair_signs(sl))
            if w1 is not None:
                C[:, :, :m] += w1[:, sl]  # the pairs p = q
            upper = (XXt @ C.reshape(n, -1)).view(-1, g, n_pairs)  # (feature pairs, groups, block pairs)
            out[sl] = upper[where_f, :, where_b].permute(2, 0, 1)
        return out

    def normal_solver(self, k: float) -> "NormalSolver":
        """Solver of ``(a A^T A + k K^T K + I) Q = R`` for any ``a`` (:class:`NormalSolver`),
        the linear system of the ADMM splitting (:mod:`convexrelu.solvers.admm`)."""
        return NormalSolver(self, k)

    # ------------------------------------------------------------------ CVXPY
    def cvxpy(self, Q: cp.Variable) -> tuple[cp.Expression, list[cp.Expression]]:
        """The model and the constraint expressions for a CVXPY variable ``Q`` (d, B).

        Returns ``(Z, [K_1, K_2])``: ``Z`` has shape (n, C), each ``K_i >= 0`` is required.
        Whole-matrix expressions only, no loop over patterns.
        """
        XQ = self.X_np @ Q
        sd1 = self.first_np * self.signs_np
        H = cp.multiply(sd1, XQ)
        if self.trivial_groups:
            Hg = H
        else:
            M = sp.csr_matrix(
                (np.ones(self.n_blocks), (np.arange(self.n_blocks), self.group_np)),
                shape=(self.n_blocks, self.n_groups),
            )
            Hg = H @ M
        d2s = self.sigma_np[None, :] if self.second_np is None else self.second_np * self.sigma_np
        Mo = sp.csr_matrix(
            (np.ones(self.n_groups), (np.arange(self.n_groups), self.output_np)),
            shape=(self.n_groups, self.n_outputs),
        )
        if self.second_np is None:
            Z = (Hg @ sp.diags(self.sigma_np)) @ Mo
        else:
            Z = cp.multiply(d2s, Hg) @ Mo
        cons = []
        if self.cone_first:
            cons.append(cp.multiply(2.0 * self.first_np - 1.0, XQ))
        if self.cone_second:
            cons.append(cp.multiply(2.0 * self.second_np - 1.0, Hg))
        return Z, cons


class NormalSolver:
    """Direct solver of ``M Q = R`` with ``M = a A^T A + k K^T K + I`` for an operator.

    ``A`` is the model map and ``K`` the stacked cone constraints of a
    :class:`BlockOperator`; ``k >= 0`` is fixed at construction, ``a >= 0`` is given to
    :meth:`solve` (a new ``a`` costs one ``n x n`` Cholesky factorisation per output). The structure makes ``M`` cheap to factor:

    - ``K^T K`` is block diagonal over the groups: the first cone gives ``X^T X`` on every
      block (``(2 D1 - I)^2 = I``) and the second cone couples the blocks ``p, q`` of a
      group by ``X^T diag(s_p D1_p s_q D1_q) X``. So ``M0 = I + k K^T K`` is block diagonal
      with one ``(m d) x (m d)`` block per group (``m`` its number of blocks), factored by
      one batched Cholesky; without the second cone every block is ``I + k X^T X``.
    - ``a A^T A`` has rank at most ``n C``; by the Woodbury identity
      ``M^{-1} = M0^{-1} - M0^{-1} A^T (I / a + A M0^{-1} A^T)^{-1} A M0^{-1}``, with one
      ``n x n`` Cholesky factor per output column (``A`` maps output ``c`` only from the
      groups of that output).

    A solve costs two block solves, one ``matvec``, one ``adjoint`` and ``C`` triangular
    ``n x n`` solves. The set-up costs ``O(n^2 B d)`` for the Woodbury matrix (one GEMM
    when there is no second cone) and ``n^2 C`` memory: meant for ``n`` up to a few
    thousand.
    """

    def __init__(self, op: BlockOperator, k: float, chunk: int = 2**24):
        if not k >= 0:
            raise ValueError(f"k: expected a non-negative weight, got {k}")
        self.op, self.k = op, float(k)
        X, dt, dev = op.X, op.dtype, op.device
        n, d = X.shape
        G = op.n_groups
        eye_d = torch.eye(d, dtype=dt, device=dev)
        e, out_of_block = op.model_coefficients()
        self.uniform = not op.cone_second
        if self.uniform:
            # M0 = I_B (x) (I + k [cone_first] X^T X): one d x d factor
            P = eye_d + (self.k * (X.T @ X) if op.cone_first else 0.0)
            self.L0 = torch.linalg.cholesky(P)
            XPX = X @ torch.cholesky_solve(X.T, self.L0)  # X P^{-1} X^T (n, n)
            Ws = []
            for c in range(op.n_outputs):
                E = e[:, out_of_block == c]
                Ws.append(XPX * (E @ E.T))
        else:
            # groups padded to the largest size m with a zero block (index B)
            self.gidx = op.padded_groups()
            m = self.m = self.gidx.shape[1]
            zero_col = torch.zeros((n, 1), dtype=dt, device=dev)
            Eg = torch.cat([e, zero_col], 1)[:, self.gidx]  # (n, G, m): sigma D2 s_p D1_p
            ones = tuple(torch.ones(shape, dtype=dt, device=dev) for shape in op.constraint_shapes)
            M = (self.k * op.constraint_gram(ones, chunk=chunk)).reshape(G, m, d, m, d)
            idx = torch.arange(m, device=dev)
            M[:, idx, :, idx, :] += eye_d  # padding slots (zero in the gram): identity
            self.Lg = torch.linalg.cholesky(M.reshape(G, m * d, m * d))
            Ws = [torch.zeros((n, n), dtype=dt, device=dev) for _ in range(op.n_outputs)]
            out_of_group = op._output
            step = max(1, chunk // max(n * m * d, 1))
            for g0 in range(0, G, step):
                Ag = (Eg[:, g0:g0 + step, :, None] * X[:, None, None, :]).permute(1, 2, 3, 0)  # (g, m, d, n)
                Ag = Ag.reshape(Ag.shape[0], m * d, n)
                Yg = torch.linalg.solve_triangular(self.Lg[g0:g0 + step], Ag, upper=False)  # L^{-1} A_g^T
                oc = out_of_group[g0:g0 + step]
                for c in range(op.n_outputs):
                    Yc = Yg[oc == c].reshape(-1, n)
                    if Yc.numel():
                        Ws[c] += Yc.T @ Yc
        self.W = Ws  # A M0^{-1} A^T, one (n, n) matrix per output
        self._a = None
        self._Lw = None

    def _factor(self, a: float):
        """Cholesky factors of ``I / a + A M0^{-1} A^T`` (cached for the last ``a``)."""
        if a != self._a:
            eye = torch.eye(self.op.n_samples, dtype=self.op.dtype, device=self.op.device)
            self._Lw = [torch.linalg.cholesky(eye / a + W) for W in self.W]
            self._a = a
        return self._Lw

    def _block_solve(self, R: torch.Tensor) -> torch.Tensor:
        """``M0^{-1} R`` for ``R`` of shape (d, B)."""
        if self.uniform:
            return torch.cholesky_solve(R, self.L0)
        return self.op.from_groups(torch.cholesky_solve(self.op.to_groups(R)[:, :, None], self.Lg)[:, :, 0])

    def solve(self, R: torch.Tensor, a: float) -> torch.Tensor:
        """``Q = M^{-1} R`` for ``M = a A^T A + k K^T K + I``, shape (d, B)."""
        if not a >= 0:
            raise ValueError(f"a: expected a non-negative weight, got {a}")
        y = self._block_solve(R)
        if a == 0:
            return y
        t = self.op.matvec(y)
        s = torch.stack([torch.cholesky_solve(t[:, c:c + 1], L)[:, 0] for c, L in enumerate(self._factor(float(a)))], 1)
        return y - self._block_solve(self.op.adjoint(s))

    def apply(self, Q: torch.Tensor, a: float) -> torch.Tensor:
        """``M Q`` through the operator (for checks)."""
        out = Q + a * self.op.adjoint(self.op.matvec(Q))
        if self.op.has_constraints and self.k:
            out = out + self.k * self.op.adjoint(None, self.op.constraints(Q))
        return out
