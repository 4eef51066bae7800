"""Pattern sets: the activation patterns that enter a convex program.

theory.md, "Notation": a pattern ``D = diag(1[X u >= 0])`` is stored as a boolean vector
of length n, never as an n x n matrix.

- :class:`TwoLayerPatterns`: first-layer patterns ``D_1..D_P`` as the columns of a
  boolean (n, P) matrix, with optional gate vectors ``u_i`` (d, P) with
  ``D_i = 1[X u_i >= 0]`` (a gated network needs them to predict on new data).
- :class:`ThreeLayerPatterns`: patterns ``c = (D2; (s_1, D_11), ..., (s_m, D_1m))`` of
  theory.md, "Three-layer parallel networks", in canonical form: the pairs of one
  pattern are distinct and sorted, duplicate patterns removed. Stored flat: one
  column of ``first`` per pair, ``owner[b]`` the pattern of pair ``b``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TwoLayerPatterns", "ThreeLayerPatterns"]


def _key(mask: np.ndarray) -> bytes:
    return np.packbits(mask).tobytes()


@dataclass(frozen=True, eq=False)
class TwoLayerPatterns:
    """Distinct first-layer activation patterns.

    Attributes
    ----------
    masks : bool array of shape (n, P)
        Column ``i`` is the diagonal of ``D_i``.
    generators : float array of shape (d, P) or None
        Gate vectors with ``masks[:, i] == (X @ generators[:, i] >= 0)``.
    """

    masks: np.ndarray
    generators: np.ndarray | None = None

    def __post_init__(self):
        masks = np.asarray(self.masks, dtype=bool)
        if masks.ndim != 2:
            raise ValueError(f"masks: expected a boolean array of shape (n, P), got shape {masks.shape}")
        object.__setattr__(self, "masks", masks)
        if self.generators is not None:
            gens = np.asarray(self.generators, dtype=np.float64)
            if gens.ndim != 2 or gens.shape[1] != masks.shape[1]:
                raise ValueError(
                    f"generators: expected shape (d, {masks.shape[1]}) matching masks, got {gens.shape}"
                )
            object.__setattr__(self, "generators", gens)

    @property
    def n_samples(self) -> int:
        return self.masks.shape[0]

    def __len__(self) -> int:
        return self.masks.shape[1]

    @classmethod
    def from_masks(cls, masks: np.ndarray, generators: np.ndarray | None = None) -> "TwoLayerPatterns":
        """Canonical set: drop all-zero and duplicate masks, keep first occurrences."""
        masks = np.asarray(masks, dtype=bool)
        seen: set[bytes] = set()
        keep = []
        for i in range(masks.shape[1]):
            col = masks[:, i]
            if not col.any():
                continue
            k = _key(col)
            if k not in seen:
                seen.add(k)
                keep.append(i)
        keep = np.asarray(keep, dtype=np.int64)
        gens = None if generators is None else np.asarray(generators, dtype=np.float64)[:, keep]
        return cls(masks[:, keep], gens)

    @classmethod
    def from_generators(cls, X: np.ndarray, generators: np.ndarray) -> "TwoLayerPatterns":
        """Patterns ``1[X u >= 0]`` of the gate vectors ``generators`` (d, P), deduplicated."""
        generators = np.asarray(generators, dtype=np.float64)
        return cls.from_masks(X @ generators >= 0, generators)

    def union(self, other: "TwoLayerPatterns") -> "TwoLayerPatterns":
        """This set followed by the patterns of ``other`` that are new."""
        if other.n_samples != self.n_samples:
            raise ValueError(f"other: expected patterns on {self.n_samples} samples, got {other.n_samples}")
        gens = None
        if self.generators is not None and other.generators is not None:
            gens = np.hstack([self.generators, other.generators])
        return TwoLayerPatterns.from_masks(np.hstack([self.masks, other.masks]), gens)

    def subset(self, index) -> "TwoLayerPatterns":
        index = np.asarray(index)
        gens = None if self.generators is None else self.generators[:, index]
        return TwoLayerPatterns(self.masks[:, index], gens)


@dataclass(frozen=True, eq=False)
class ThreeLayerPatterns:
    """Distinct three-layer patterns in canonical form.

    Attributes
    ----------
    second : bool array of shape (n, P)
        ``second[:, c]`` is the diagonal of ``D2^c``.
    first : bool array of shape (n, B)
        One column per (sign, first-layer pattern) pair; the pairs of pattern ``c`` are
        the columns ``b`` with ``owner[b] == c``, distinct and sorted.
    signs : int8 array of shape (B,)
        ``s_j`` in {-1, +1} of each pair.
    owner : int64 array of shape (B,)
        Pattern index of each pair, non-decreasing.
    """

    second: np.ndarray
    first: np.ndarray
    signs: np.ndarray
    owner: np.ndarray

    def __post_init__(self):
        second = np.asarray(self.second, dtype=bool)
        first = np.asarray(self.first, dtype=bool)
        signs = np.asarray(self.signs, dtype=np.int8)
        owner = np.asarray(self.owner, dtype=np.int64)
        if second.ndim != 2 or first.ndim != 2 or first.shape[0] != second.shape[0]:
            raise ValueError(
                f"second, first: expected boolean arrays (n, P) and (n, B), got {second.shape} and {first.shape}"
            )
        if signs.shape != (first.shape[1],) or owner.shape != (first.shape[1],):
            raise ValueError(f"signs, owner: expected shape ({first.shape[1]},), got {signs.shape}, {owner.shape}")
        if not np.all(np.isin(signs, (-1, 1))):
            raise ValueError("signs: expected values in {-1, +1}")
        if len(owner) and (np.any(np.diff(owner) < 0) or owner[0] < 0 or owner[-1] >= second.shape[1]):
            raise ValueError("owner: expected non-decreasing pattern indices in [0, P)")
        for name, value in (("second", second), ("first", first), ("signs", signs), ("owner", owner)):
            object.__setattr__(self, name, value)

    @property
    def n_samples(self) -> int:
        return self.second.shape[0]

    @property
    def n_pairs(self) -> int:
        return self.first.shape[1]

    def __len__(self) -> int:
        return self.second.shape[1]

    @property
    def max_pairs(self) -> int:
        """Largest number of pairs in one pattern (at most m1)."""
        if self.n_pairs == 0:
            return 0
        return int(np.bincount(self.owner, minlength=len(self)).max())

    def pairs_of(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(signs, first-layer masks (n, m)) of pattern ``c``."""
        idx = np.flatnonzero(self.owner == c)
        return self.signs[idx], self.first[:, idx]

    @classmethod
    def from_lists(cls, items) -> "ThreeLayerPatterns":
        """Canonical set from an iterable of ``(D2, signs, D1)`` with D2 (n,), signs (m,), D1 (n, m).

        Inside each pattern, pairs with an all-zero first-layer mask are dropped (they
        contribute nothing), equal pairs merge, pairs are sorted by (sign, mask); patterns
        with no pair left or an all-zero ``D2`` are dropped, duplicates removed.
        """
        builder = _ThreeLayerBuilder()
        for item in items:
            builder.add(*item)
        return builder.build()

    def iter_patterns(self):
        """Yield ``(D2, signs, D1)`` for every pattern."""
        starts = np.searchsorted(self.owner, np.arange(len(self) + 1))
        for c in range(len(self)):
            sl = slice(starts[c], starts[c + 1])
            yield self.second[:, c], self.signs[sl], self.first[:, sl]

    def union(self, other: "ThreeLayerPatterns") -> "ThreeLayerPatterns":
        """This set followed by the patterns of ``other`` that are new."""
        if other.n_samples != self.n_samples:
            raise ValueError(f"other: expected patterns on {self.n_samples} samples, got {other.n_samples}")
        builder = _ThreeLayerBuilder()
        for item in self.iter_patterns():
            builder.add(*item)
        for item in other.iter_patterns():
            builder.add(*item)
        return builder.build(self.n_samples)

    def subset(self, index) -> "ThreeLayerPatterns":
        index = np.asarray(index).reshape(-1)
        items = list(self.iter_patterns())
        return ThreeLayerPatterns.from_lists([items[i] for i in index])


class _ThreeLayerBuilder:
    """Incremental canonical set of three-layer patterns (cost linear in what is added).

    ``add(D2, signs, D1)`` canonicalises one pattern: pairs with an all-zero first-layer
    mask are dropped, equal pairs merge, pairs are sorted by (sign, mask); a pattern with
    no pair or an all-zero ``D2`` is dropped, and a pattern already present is ignored.
    """

    def __init__(self):
        self._seen: set = set()
        self._second: list = []
        self._first: list = []
        self._signs: list = []
        self._owner: list = []
        self.n_samples: int | None = None

    def __len__(self) -> int:
        return len(self._second)

    def add(self, D2, s, D1) -> bool:
        """Add one pattern; return whether it was new."""
        D2 = np.asarray(D2, dtype=bool)
        D1 = np.asarray(D1, dtype=bool).reshape(D2.shape[0], -1)
        s = np.asarray(s).reshape(-1)
        self.n_samples = D2.shape[0]
        if not D2.any():
            return False
        pairs = {}
        for j in range(D1.shape[1]):
            if D1[:, j].any():
                sj = 1 if s[j] >= 0 else -1
                pairs[(sj, _key(D1[:, j]))] = (sj, D1[:, j])
        if not pairs:
            return False
        keys = sorted(pairs)
        key = (_key(D2), tuple(keys))
        if key in self._seen:
            return False
        self._seen.add(key)
        c = len(self._second)
        self._second.append(D2)
        for k in keys:
            sj, mask = pairs[k]
            self._first.append(mask)
            self._signs.append(sj)
            self._owner.append(c)
        return True

    def build(self, n_samples: int | None = None) -> ThreeLayerPatterns:
        if not self._second:
            n = n_samples if n_samples is not None else (self.n_samples or 0)
            return ThreeLayerPatterns(
                np.zeros((n, 0), bool), np.zeros((n, 0), bool), np.zeros(0, np.int8), np.zeros(0, np.int64)
            )
        return ThreeLayerPatterns(
            np.column_stack(self._second), np.column_stack(self._first), np.asarray(self._signs), np.asarray(self._owner)
        )
