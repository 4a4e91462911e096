"""Bounded nonlinear least squares by the trust-region reflective method, in numpy.

Why: ``scipy.optimize`` imports ``scipy.sparse``, ``scipy.spatial`` and about 200 other
modules (about 0.1 s of a 0.8-0.9 s ``scanbench analyze`` of a NEMA IQ PET series on the
2-core benchmark machine, bench/README.md, issue 15) for one fit of two parameters: the
fill ratio (:func:`scanbench.analysis.pet.image_quality.estimate_activity_ratio`).

Method: the trust-region reflective algorithm of M. A. Branch, T. F. Coleman and Y. Li,
"A subspace, interior, and conjugate gradient method for large-scale bound-constrained
minimization problems", SIAM J. Sci. Comput. 21(1), 1999, pp. 1-23, with the choices
``scipy.optimize.least_squares(method="trf", tr_solver="exact")`` makes, so that the
fitted parameters are SciPy's (the fill ratio is reported, and every contrast depends on
it; tests/unit/analysis/test_least_squares.py checks SciPy's answers to the bit):

- the variables are scaled by the Coleman-Li vector ``v`` (the distance to the bound the
  gradient points to, 1 where none; T. F. Coleman and Y. Li, SIAM J. Optim. 6(2), 1996),
  ``d = sqrt(v)``, and the trust-region subproblem is solved exactly in the scaled
  variables from one SVD of ``[J D; diag(sqrt(g dv))]``, the Levenberg-Marquardt
  parameter found by Newton's method on ``||p(alpha)|| - Delta`` as in J. J. Moré, "The
  Levenberg-Marquardt algorithm: implementation and theory", Lecture Notes in
  Mathematics 630, Springer 1978 (to 1 % of the radius, at most 10 steps, safeguarded);
- a step leaving the box is cut at the bound and the best of three is taken: the cut
  step times ``theta = max(0.995, 1 - ||g||)``, its reflection off the bound (the
  quadratic model minimised along it), and the scaled gradient step;
- the radius is quartered below a ratio of actual to predicted reduction of 1/4 and
  doubled above 3/4 when the step reached it; the fit stops when the cost falls by less
  than ``ftol`` of itself (ratio above 1/4), the step is below ``xtol (xtol + ||x||)`` or
  the scaled gradient's largest component below ``gtol``;
- the Jacobian is taken by forward differences, step ``sqrt(eps) max(1, |x|)`` (signed as
  ``x``, reversed when it would leave the box), as exactly representable increments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import copysign

import numpy as np
from numpy.linalg import norm

EPS = float(np.finfo(np.float64).eps)

Residuals = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Fit:
    """The result of :func:`least_squares`."""

    x: np.ndarray  # the solution
    cost: float  # half the sum of squared residuals at x
    fun: np.ndarray  # the residuals at x
    nfev: int  # residual evaluations, not counting the Jacobian's
    njev: int  # Jacobian evaluations
    status: int  # 0 max_nfev, 1 gtol, 2 ftol, 3 xtol, 4 ftol and xtol
    active_mask: np.ndarray  # -1 at the lower bound, 1 at the upper, else 0


def _find_active(x: np.ndarray, lb: np.ndarray, ub: np.ndarray, rtol: float) -> np.ndarray:
    """Which bounds ``x`` lies on, within ``rtol`` of ``max(1, |bound|)`` (-1, 0, 1)."""
    active = np.zeros_like(x, dtype=int)
    if rtol == 0:
        active[x <= lb] = -1
        active[x >= ub] = 1
        return active
    lower_dist = x - lb
    upper_dist = ub - x
    lower_thr = rtol * np.maximum(1, np.abs(lb))
    upper_thr = rtol * np.maximum(1, np.abs(ub))
    lower = np.isfinite(lb) & (lower_dist <= np.minimum(upper_dist, lower_thr))
    active[lower] = -1
    upper = np.isfinite(ub) & (upper_dist <= np.minimum(lower_dist, upper_thr))
    active[upper] = 1
    return active


def _strictly_feasible(x: np.ndarray, lb: np.ndarray, ub: np.ndarray,
                       rstep: float = 1e-10) -> np.ndarray:
    """``x`` moved off any bound it lies on: by ``rstep max(1, |bound|)``, or (``rstep``
    0) to the next representable number inside; the middle of a box too tight for it."""
    x_new = x.copy()
    active = _find_active(x, lb, ub, rstep)
    lower = active == -1
    upper = active == 1
    if rstep == 0:
        x_new[lower] = np.nextafter(lb[lower], ub[lower])
        x_new[upper] = np.nextafter(ub[upper], lb[upper])
    else:
        x_new[lower] = lb[lower] + rstep * np.maximum(1, np.abs(lb[lower]))
        x_new[upper] = ub[upper] - rstep * np.maximum(1, np.abs(ub[upper]))
    tight = (x_new < lb) | (x_new > ub)
    x_new[tight] = 0.5 * (lb[tight] + ub[tight])
    return x_new


def _in_bounds(x: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> bool:
    return bool(np.all((x >= lb) & (x <= ub)))


def _jacobian(fun: Residuals, x0: np.ndarray, f0: np.ndarray, lb: np.ndarray,
              ub: np.ndarray) -> np.ndarray:
    """Forward-difference Jacobian (m x n) of ``fun`` at ``x0`` inside ``[lb, ub]``.

    Step ``sqrt(eps) max(1, |x|)`` with the sign of ``x`` (``+`` at 0); a step that would
    leave the box is reversed if the other side has room, else set to the room on the
    wider side. Each column is ``(f(x + h e_i) - f0) / ((x_i + h_i) - x_i)``, the
    denominator being the increment actually taken.
    """
    sign = (x0 >= 0).astype(float) * 2 - 1
    h = EPS**0.5 * sign * np.maximum(1.0, np.abs(x0))
    if not np.all((lb == -np.inf) & (ub == np.inf)):
        h = h.copy()
        lower_dist = x0 - lb
        upper_dist = ub - x0
        x = x0 + h
        violated = (x < lb) | (x > ub)
        fitting = np.abs(h) <= np.maximum(lower_dist, upper_dist)
        h[violated & fitting] *= -1
        forward = (upper_dist >= lower_dist) & ~fitting
        h[forward] = upper_dist[forward]
        backward = (upper_dist < lower_dist) & ~fitting
        h[backward] = -lower_dist[backward]
    n, m = x0.size, f0.size
    jt = np.empty((n, m))
    for i in range(n):
        x1 = np.copy(x0)
        x1[i] = x0[i] + h[i]
        dx = (x0[i] + h[i]) - x0[i]
        jt[i] = (np.atleast_1d(fun(x1)) - f0) / dx
    return jt.T  # column-major, as the reference implementation stores it


def _intersect_trust_region(x: np.ndarray, s: np.ndarray, delta: float) -> tuple[float, float]:
    """Both roots ``t`` of ``||x + t s|| = delta`` (``x`` inside), smaller first, by the
    numerically stable quadratic formula."""
    a = float(np.dot(s, s))
    if a == 0:
        raise ValueError("the direction is zero")
    b = float(np.dot(x, s))
    c = float(np.dot(x, x)) - delta**2
    if c > 0:
        raise ValueError("the point is outside the trust region")
    d = np.sqrt(b * b - a * c)
    q = -(b + copysign(d, b))
    t1 = q / a
    t2 = c / q
    return (t1, t2) if t1 < t2 else (t2, t1)


def _solve_subproblem(n: int, m: int, uf: np.ndarray, s: np.ndarray, V: np.ndarray,
                      delta: float, initial_alpha: float, rtol: float = 0.01,
                      max_iter: int = 10) -> tuple[np.ndarray, float]:
    """The step ``p`` minimising ``||J p + f||`` with ``||p|| <= delta``, from the SVD
    ``J = U diag(s) V^T`` (``uf = U^T f``), and its Levenberg-Marquardt parameter alpha
    (``(J^T J + alpha I) p = -J^T f``). Moré (1978): the Gauss-Newton step if it fits;
    otherwise Newton's method on ``phi(alpha) = ||p(alpha)|| - delta`` within the bracket
    ``[alpha_lower, alpha_upper]``, restarted at ``max(0.001 upper, sqrt(lower upper))``
    when it leaves it, until ``|phi| < rtol delta``; ``p`` then scaled onto the sphere."""
    def phi_and_derivative(alpha: float) -> tuple[float, float]:
        denom = s**2 + alpha
        p_norm = norm(suf / denom)
        return float(p_norm - delta), float(-np.sum(suf**2 / denom**3) / p_norm)

    suf = s * uf
    full_rank = bool(s[-1] > EPS * m * s[0]) if m >= n else False
    if full_rank:
        p = -V.dot(uf / s)
        if norm(p) <= delta:
            return p, 0.0
    alpha_upper = float(norm(suf) / delta)
    if full_rank:
        phi, phi_prime = phi_and_derivative(0.0)
        alpha_lower: float = -phi / phi_prime
    else:
        alpha_lower = 0.0
    if not full_rank and initial_alpha == 0:
        alpha = float(max(0.001 * alpha_upper, (alpha_lower * alpha_upper) ** 0.5))
    else:
        alpha = initial_alpha
    for _ in range(max_iter):
        if alpha < alpha_lower or alpha > alpha_upper:
            alpha = float(max(0.001 * alpha_upper, (alpha_lower * alpha_upper) ** 0.5))
        phi, phi_prime = phi_and_derivative(alpha)
        if phi < 0:
            alpha_upper = alpha
        ratio = phi / phi_prime
        alpha_lower = max(alpha_lower, alpha - ratio)
        alpha -= (phi + delta) * ratio / delta
        if np.abs(phi) < rtol * delta:
            break
    p = -V.dot(suf / (s**2 + alpha))
    p *= delta / norm(p)
    return p, alpha


def _step_to_bound(x: np.ndarray, s: np.ndarray, lb: np.ndarray,
                   ub: np.ndarray) -> tuple[float, np.ndarray]:
    """The least ``t >= 0`` at which ``x + t s`` reaches a bound, and which bounds it
    reaches there (the sign of ``s`` on those variables, 0 elsewhere)."""
    nz = np.nonzero(s)
    steps = np.empty_like(x)
    steps.fill(np.inf)
    with np.errstate(over="ignore"):
        steps[nz] = np.maximum((lb - x)[nz] / s[nz], (ub - x)[nz] / s[nz])
    min_step = float(np.min(steps))
    return min_step, np.equal(steps, min_step) * np.sign(s).astype(int)


def _quadratic_1d(J: np.ndarray, g: np.ndarray, s: np.ndarray, diag: np.ndarray,
                  s0: np.ndarray | None = None) -> tuple[float, float, float]:
    """Coefficients of the model ``0.5 ||J(s0 + t s)||² + g·(s0 + t s)`` (plus the
    ``diag`` term) along ``s`` as ``a t² + b t + c``."""
    v = J.dot(s)
    a = np.dot(v, v)
    a += np.dot(s * diag, s)
    a *= 0.5
    b = np.dot(g, s)
    c = 0.0
    if s0 is not None:
        u = J.dot(s0)
        b += np.dot(u, v)
        c = 0.5 * np.dot(u, u) + np.dot(g, s0)
        b += np.dot(s0 * diag, s)
        c += 0.5 * np.dot(s0 * diag, s0)
    return float(a), float(b), float(c)


def _minimise_1d(a: float, b: float, lo: float, hi: float,
                 c: float = 0.0) -> tuple[float, float]:
    """The least of ``a t² + b t + c`` on ``[lo, hi]``: at an end or the vertex inside."""
    t = [lo, hi]
    if a != 0:
        extremum = -0.5 * b / a
        if lo < extremum < hi:
            t.append(extremum)
    ts = np.asarray(t)
    y = ts * (a * ts + b) + c
    i = int(np.argmin(y))
    return float(ts[i]), float(y[i])


def _model(J: np.ndarray, g: np.ndarray, s: np.ndarray, diag: np.ndarray) -> float:
    """The quadratic model's change for step ``s``: ``0.5 (||J s||² + s·diag·s) + g·s``."""
    Js = J.dot(s)
    q = np.dot(Js, Js)
    q += np.dot(s * diag, s)
    return float(0.5 * q + np.dot(s, g))


def _select_step(x: np.ndarray, J_h: np.ndarray, diag_h: np.ndarray, g_h: np.ndarray,
                 p: np.ndarray, p_h: np.ndarray, d: np.ndarray, delta: float,
                 lb: np.ndarray, ub: np.ndarray, theta: float,
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Branch, Coleman & Li's step choice: the trust-region step if it stays inside the
    box; else the best (by the model) of the step cut short of the bound, its
    reflection off the bound, and the scaled steepest-descent step. Returns the step,
    the step in scaled variables and the predicted reduction."""
    if _in_bounds(x + p, lb, ub):
        return p, p_h, -_model(J_h, g_h, p_h, diag_h)
    p_stride, hits = _step_to_bound(x, p, lb, ub)
    r_h = np.copy(p_h)
    r_h[hits.astype(bool)] *= -1
    r = d * r_h
    p *= p_stride
    p_h *= p_stride
    x_on_bound = x + p
    _, to_tr = _intersect_trust_region(p_h, r_h, delta)
    to_bound, _ = _step_to_bound(x_on_bound, r, lb, ub)
    r_stride = min(to_bound, to_tr)
    if r_stride > 0:
        r_stride_l = (1 - theta) * p_stride / r_stride
        r_stride_u = theta * to_bound if r_stride == to_bound else to_tr
    else:
        r_stride_l = 0.0
        r_stride_u = -1.0
    if r_stride_l <= r_stride_u:
        a, b, c = _quadratic_1d(J_h, g_h, r_h, diag_h, s0=p_h)
        r_stride, r_value = _minimise_1d(a, b, r_stride_l, r_stride_u, c=c)
        r_h *= r_stride
        r_h += p_h
        r = r_h * d
    else:
        r_value = np.inf
    p *= theta
    p_h *= theta
    p_value = _model(J_h, g_h, p_h, diag_h)
    ag_h = -g_h
    ag = d * ag_h
    to_tr = float(delta / norm(ag_h))
    to_bound, _ = _step_to_bound(x, ag, lb, ub)
    ag_stride = theta * to_bound if to_bound < to_tr else to_tr
    a, b, _ = _quadratic_1d(J_h, g_h, ag_h, diag_h)
    ag_stride, ag_value = _minimise_1d(a, b, 0, ag_stride)
    ag_h *= ag_stride
    ag *= ag_stride
    if p_value < r_value and p_value < ag_value:
        return p, p_h, -p_value
    if r_value < p_value and r_value < ag_value:
        return r, r_h, -r_value
    return ag, ag_h, -ag_value


def least_squares(fun: Residuals, x0: np.ndarray | list[float],
                  bounds: tuple[np.ndarray | list[float] | float,
                                np.ndarray | list[float] | float],
                  ftol: float = 1e-8, xtol: float = 1e-8, gtol: float = 1e-8,
                  max_nfev: int | None = None) -> Fit:
    """Minimise ``0.5 sum(fun(x)²)`` subject to ``bounds[0] <= x <= bounds[1]``:
    ``scipy.optimize.least_squares(fun, x0, bounds=bounds)`` (method "trf", exact
    trust-region solver, forward-difference Jacobian, unit variable scale) to the bit.
    See the module docstring for the method.
    """
    x0 = np.atleast_1d(np.asarray(x0)).astype(float)
    if x0.ndim > 1:
        raise ValueError("x0 must have at most one dimension")
    lb, ub = (np.asarray(b, dtype=float) for b in bounds)
    lb = np.resize(lb, x0.size) if lb.ndim == 0 else lb
    ub = np.resize(ub, x0.size) if ub.ndim == 0 else ub
    if lb.shape != x0.shape or ub.shape != x0.shape:
        raise ValueError("the bounds and x0 differ in shape")
    if np.any(lb >= ub):
        raise ValueError("every lower bound must be below its upper bound")
    if not _in_bounds(x0, lb, ub):
        raise ValueError("the initial guess is outside the bounds")
    x = _strictly_feasible(x0, lb, ub)
    f = np.atleast_1d(fun(x))
    if not np.all(np.isfinite(f)):
        raise ValueError("the residuals are not finite at the initial guess")
    J = _jacobian(fun, x, f, lb, ub)
    m, n = J.shape
    nfev, njev = 1, 1
    if max_nfev is None:
        max_nfev = n * 100
    scale = np.ones(n)
    scale_inv = 1 / scale
    cost = 0.5 * np.dot(f, f)
    g = J.T.dot(f)

    def cl_scaling(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = np.ones_like(x)
        dv = np.zeros_like(x)
        mask = (g < 0) & np.isfinite(ub)
        v[mask] = ub[mask] - x[mask]
        dv[mask] = -1
        mask = (g > 0) & np.isfinite(lb)
        v[mask] = x[mask] - lb[mask]
        dv[mask] = 1
        return v, dv

    v, dv = cl_scaling(x, g)
    v[dv != 0] *= scale_inv[dv != 0]
    delta = float(norm(x * scale_inv / v**0.5))
    if delta == 0:
        delta = 1.0
    f_aug = np.zeros(m + n)
    J_aug = np.empty((m + n, n))
    alpha = 0.0
    status: int | None = None
    while True:
        v, dv = cl_scaling(x, g)
        g_norm = norm(g * v, ord=np.inf)
        if g_norm < gtol:
            status = 1
        if status is not None or nfev == max_nfev:
            break
        v[dv != 0] *= scale_inv[dv != 0]
        d = v**0.5 * scale
        diag_h = g * dv * scale
        g_h = d * g
        f_aug[:m] = f
        J_aug[:m] = J * d
        J_h = J_aug[:m]
        J_aug[m:] = np.diag(diag_h**0.5)
        U, s, VT = np.linalg.svd(J_aug, full_matrices=False)
        # LAPACK's column-major layout (as the reference implementation holds them): a
        # product with a transposed array takes another BLAS path, summing in another order
        U = np.asfortranarray(U)
        V = np.asfortranarray(VT).T
        uf = U.T.dot(f_aug)
        theta = max(0.995, 1.0 - float(g_norm))
        actual_reduction = -1.0
        while actual_reduction <= 0 and nfev < max_nfev:
            p_h, alpha = _solve_subproblem(n, m, uf, s, V, delta, initial_alpha=alpha)
            p = d * p_h
            step, step_h, predicted = _select_step(x, J_h, diag_h, g_h, p, p_h, d, delta,
                                                   lb, ub, theta)
            x_new = _strictly_feasible(x + step, lb, ub, rstep=0)
            f_new = np.atleast_1d(fun(x_new))
            nfev += 1
            step_h_norm = float(norm(step_h))
            if not np.all(np.isfinite(f_new)):
                delta = 0.25 * step_h_norm
                continue
            cost_new = 0.5 * np.dot(f_new, f_new)
            actual_reduction = cost - cost_new
            # radius update (ratio of actual to predicted reduction)
            if predicted > 0:
                ratio = actual_reduction / predicted
            elif predicted == actual_reduction == 0:
                ratio = 1.0
            else:
                ratio = 0.0
            delta_new = delta
            if ratio < 0.25:
                delta_new = 0.25 * step_h_norm
            elif ratio > 0.75 and step_h_norm > 0.95 * delta:
                delta_new *= 2.0
            step_norm = norm(step)
            ftol_ok = actual_reduction < ftol * cost and ratio > 0.25
            xtol_ok = step_norm < xtol * (xtol + norm(x))
            if ftol_ok or xtol_ok:
                status = 4 if ftol_ok and xtol_ok else 2 if ftol_ok else 3
                break
            alpha *= delta / delta_new
            delta = delta_new
        if actual_reduction > 0:
            x = x_new
            f = f_new
            cost = cost_new
            J = _jacobian(fun, x, f, lb, ub)
            njev += 1
            g = J.T.dot(f)
    return Fit(x=x, cost=float(cost), fun=f, nfev=nfev, njev=njev,
               status=0 if status is None else status,
               active_mask=_find_active(x, lb, ub, rtol=xtol))
