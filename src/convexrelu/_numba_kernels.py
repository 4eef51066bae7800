"""The numba source of :mod:`convexrelu._kernels` (imported on first use: numba is an
optional dependency, and importing it takes about half a second)."""

import numba

#: numba's floating-point licences: reassociation (vectorised sums) and fused
#: multiply-adds; not ``nnan``/``ninf``, so that a NaN or an infinity still propagates to
#: the objective, where the solvers detect divergence.
_FASTMATH = {"reassoc", "contract", "nsz"}


@numba.njit(parallel=True, fastmath=_FASTMATH, cache=True)
def state(XQ, s1, hs, lam1, rho, c1, cone2, s2, hsig, lam2, c2, H, z, sq):
    """One state over a row block (:mod:`convexrelu._kernels`); ``H`` (rows, G) scratch, ``z`` and
    ``sq`` (rows,) outputs (``sq``: each row's sum of squared multipliers)."""
    rows, B = XQ.shape
    G = H.shape[1]
    m = B // G
    zero = rho - rho
    for i in numba.prange(rows):
        s = 0.0
        for g in range(G):
            H[i, g] = zero
        for j in range(m):
            for g in range(G):
                b = j * G + g
                x = XQ[i, b]
                c = s1[i, b] * x
                c1[i, b] = c
                H[i, g] += hs[b] * (x + c)
                p = lam1[i, b] - rho * c
                if p < zero:  # (lam - rho c)_+, a NaN kept
                    p = zero
                s += p * p
        acc = 0.0
        for g in range(G):
            h = H[i, g]
            if cone2:
                c = s2[i, g] * h
                c2[i, g] = c
                acc += hsig[g] * (h + c)
                p = lam2[i, g] - rho * c
                if p < zero:
                    p = zero
                s += p * p
            else:
                acc += hsig[g] * h
        z[i] = acc
        sq[i] = s


@numba.njit(parallel=True, fastmath=_FASTMATH, cache=True)
def gradient(c1o, c1n, a, lazy, s1, hs, lam1, rho, cone2, c2o, c2n, s2, hsig, lam2, r, Tg, T, want, sq):
    """One gradient's elementwise part over a row block (:mod:`convexrelu._kernels`): ``T`` (rows,
    B) is written where ``want``; the constraint values are those of ``c*o`` or, where
    ``lazy``, their extrapolation ``c*o + a (c*n - c*o)``; ``Tg`` (rows, G) scratch."""
    rows, B = T.shape
    G = Tg.shape[1]
    m = B // G
    zero = rho - rho
    one = zero + 1
    for i in numba.prange(rows):
        s = 0.0
        ri = r[i]
        for g in range(G):
            if cone2:
                c = c2o[i, g] + a * (c2n[i, g] - c2o[i, g]) if lazy else c2o[i, g]
                p = lam2[i, g] - rho * c
                if p < zero:  # (lam - rho c)_+, a NaN kept
                    p = zero
                s += p * p
                sg = s2[i, g]
                Tg[i, g] = hsig[g] * ri * (one + sg) + sg * p
            else:
                Tg[i, g] = hsig[g] * ri
        for j in range(m):
            for g in range(G):
                b = j * G + g
                c = c1o[i, b] + a * (c1n[i, b] - c1o[i, b]) if lazy else c1o[i, b]
                p = lam1[i, b] - rho * c
                if p < zero:
                    p = zero
                s += p * p
                if want:
                    f = hs[b] * Tg[i, g]
                    T[i, b] = f + s1[i, b] * (f + p)
        sq[i] = s
