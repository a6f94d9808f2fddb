"""Bounded nonlinear least squares, the one solver automix's fits share.

Written out because importing `scipy.optimize` alone costs 0.4 s of a 2-s master.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bounded_least_squares(residuals: Callable[[np.ndarray], np.ndarray], v0: np.ndarray,
                          lower: np.ndarray, upper: np.ndarray, *, iterations: int = 100,
                          step: float = 1e-6) -> np.ndarray:
    """Minimise ``sum(residuals(v) ** 2)`` over ``lower <= v <= upper`` from ``v0`` (n,).

    ``residuals`` maps a batch of vectors (k, n) to residuals (k, m): the forward-difference
    Jacobian is one call. Levenberg-Marquardt with an active set: parameters held at a bound
    by their gradient stay there for the step, the others move and are clipped to the box.
    Written out because importing `scipy.optimize` alone costs 0.4 s of a 2-s master; on the
    EQ fit of 16 real songs its final cost is 0.92x scipy's ``least_squares`` (geometric mean;
    both find local minima, each sometimes the better one).
    """
    v = np.clip(np.asarray(v0, dtype=np.float64), lower, upper)
    r = residuals(v[None])[0]
    cost, damping = float(r @ r), 1e-3
    for _ in range(iterations):
        h = np.where(v + step <= upper, step, -step)  # stay inside the box
        jac = ((residuals(v + np.diag(h)) - r) / h[:, None]).T
        gradient = jac.T @ r
        free = ~(((v <= lower) & (gradient > 0)) | ((v >= upper) & (gradient < 0)))
        normal = jac[:, free].T @ jac[:, free]
        scale = np.diag(normal) + 1e-12
        while damping < 1e10:
            trial = v.copy()
            trial[free] -= np.linalg.solve(normal + damping * np.diag(scale), gradient[free])
            trial = np.clip(trial, lower, upper)
            r_trial = residuals(trial[None])[0]
            cost_trial = float(r_trial @ r_trial)
            if cost_trial < cost:
                break
            damping *= 4.0
        else:
            break  # no step downhill: a (constrained) minimum
        done = cost - cost_trial < 1e-9 * cost
        v, r, cost, damping = trial, r_trial, cost_trial, max(damping / 3.0, 1e-9)
        if done:
            break
    return v

