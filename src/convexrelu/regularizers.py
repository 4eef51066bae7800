"""The group l1 penalty of the convex programs (theory.md, "Two-layer networks" and
"Three-layer parallel networks"): a sum of Euclidean norms, one per block.

The variables of every program are stacked as the columns of ``Q`` in R^{d x B}; block
``b`` is column ``Q[:, b]``. The penalty is

    R(Q) = sum_b ||Q[:, b]||_2 ,

and the program's objective is ``loss + beta * R(Q)``.
"""

from __future__ import annotations

import cvxpy as cp
import torch

__all__ = ["GroupL1", "group_soft_threshold", "shrink_factors"]


def group_soft_threshold(Q: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """Proximal operator of ``threshold * sum_b ||Q[:, b]||``.

    Each column is shrunk towards zero: ``q -> max(0, 1 - threshold / ||q||) q``.

    Parameters
    ----------
    Q : tensor of shape (d, B)
    threshold : float >= 0

    Returns
    -------
    tensor of shape (d, B)
    """
    return Q * shrink_factors(Q, threshold)[1]


def shrink_factors(Q: torch.Tensor, threshold: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The block norms ``||Q[:, b]||`` and the factors ``max(0, 1 - threshold / ||Q[:, b]||)``
    of :func:`group_soft_threshold`, both of shape (B,) (a proximal map in another metric
    needs them for its Jacobian: :mod:`convexrelu.solvers._metric`)."""
    norms = torch.linalg.vector_norm(Q, dim=0)
    return norms, torch.clamp(1.0 - threshold / torch.clamp(norms, min=torch.finfo(Q.dtype).tiny), min=0.0)


class GroupL1:
    """``R(Q) = sum_b ||Q[:, b]||``, with its prox, dual norm and CVXPY form."""

    def value(self, Q: torch.Tensor) -> torch.Tensor:
        """Penalty value (0-d tensor) of ``Q`` (d, B)."""
        return torch.linalg.vector_norm(Q, dim=0).sum()

    def prox(self, Q: torch.Tensor, step: float) -> torch.Tensor:
        """``argmin_P  step * R(P) + 0.5 ||P - Q||_F^2`` (group soft-thresholding)."""
        return group_soft_threshold(Q, step)

    def dual_norm(self, G: torch.Tensor) -> torch.Tensor:
        """``max_b ||G[:, b]||``: ``R*`` is the indicator of the unit ball of this norm."""
        if G.shape[1] == 0:
            return torch.zeros((), dtype=G.dtype, device=G.device)
        return torch.linalg.vector_norm(G, dim=0).max()

    def block_norms(self, Q: torch.Tensor) -> torch.Tensor:
        """Norms of the blocks, shape (B,)."""
        return torch.linalg.vector_norm(Q, dim=0)

    def cvxpy(self, Q: cp.Expression) -> cp.Expression:
        """``sum_b ||Q[:, b]||`` as a CVXPY expression of the (d, B) variable ``Q``."""
        return cp.sum(cp.norm(Q, 2, axis=0))

    def __repr__(self) -> str:
        return "GroupL1()"
