"""The hedge QP: a parametrised cvxpy problem (DPP) re-solved warm by a certified active-set method.

The basket weights w solve

    minimise  ‖R w − r_target‖² − λ · carry · w
    subject to Σ w = 1,  0 ≤ w ≤ cap

with R the candidates' hourly simple returns over the trailing lookback and r_target the target's
(`baskets.py` builds them and says what λ and carry mean).

The problem is built once per (n_obs, n_candidates, λ) with cvxpy Parameters (DPP). Its objective is
rewritten through a thin-QR factor of R, ‖R w − r‖² = ‖F w − Qᵀr‖² + const with R = Q F, so the
problem size is n_candidates × n_candidates whatever n_obs is. Weeks with a smaller universe are
padded with zero-return, zero-cap names that get weight 0.

Solves are by a primal active-set method on the Gram matrix [R | r]ᵀ[R | r]: a basket holds few names
strictly inside their bounds (~50 of 1,200 candidates at 300 bases), so the method's equality-
constrained steps stay small. Re-solves start from the previous solution (consecutive weeks' optima
share most of their active set); a first solve starts from the vertex that fills the names with the
most negative gradient at w = 0 (the best trackers, carry included) to their caps in turn. Its answer
is accepted only with a KKT certificate (stationarity, multiplier signs, bounds, Σ w = 1), which for
this convex QP proves it optimal. Otherwise (singular steps, steps run out, no certificate) the cvxpy
problem is built and solved with CLARABEL, and the same active-set method polishes its interior-point
answer to the exact vertex of the active set, so every path returns the same optimum.

Measured on 52 rolling weeks of 150 candidates × 720 hours: CLARABEL alone takes ~11 interior-point
steps (~29 ms, the dense 150 × 150 KKT factorisation); the warm active-set path takes a few ms, most
of it the Gram matrix. At 1,199 candidates (300 bases × 5 venues) one CLARABEL solve takes ~31 s of
CPU, the active-set method from the cold vertex well under a second. OSQP with polishing misses the
optimum on ~1 week in 5 at ε = 1e-7.
Multithreaded BLAS on a busy machine makes the QR and Gram products spin: run with OPENBLAS_NUM_THREADS=1.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np


def _cvxpy():
    """cvxpy, imported on first use: it takes seconds to import, and every process that loads the
    definitions (the UI, each run, each multiprocess step) imports this module."""
    import cvxpy

    return cvxpy


DEFAULT_SOLVER = "CLARABEL"
# cvxpy's status of a solved problem (cvxpy.OPTIMAL), also the active-set method's when certified.
OPTIMAL = "optimal"
# Interior-point defaults (gap 1e-8) leave weights off by ~1e-5 on exact fits; these keep them to ~1e-8.
SOLVER_OPTIONS = {
    "CLARABEL": {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-10},
    "OSQP": {"eps_abs": 1e-7, "eps_rel": 1e-7, "polish": True},
}
# Caps summing to 1 up to float rounding still admit the basket w = cap.
CAP_SUM_TOLERANCE = 1e-9
# KKT certificate tolerance on the scaled problem (Hessian diagonal ~2), relative to its largest term.
KKT_TOLERANCE = 1e-9
# Weights are O(1): an active-set step component below this is rounding (a lone free name's step is 0).
STEP_ROUNDING = 1e-12
# A starting weight this close to a bound starts on that bound (interior-point answers sit ~1e-9 inside).
BOUND_SNAP = 1e-7


class InfeasibleBasketError(ValueError):
    """The volume caps cannot hold a fully invested basket (Σ cap < 1)."""


class HedgeSolveError(RuntimeError):
    """The solver returned no usable basket."""


@dataclass(frozen=True)
class HedgeSolution:
    """One week's basket; `method` says which path found it: "active-set", "<SOLVER>+active-set" or "<SOLVER>"."""

    weights: np.ndarray
    status: str
    objective: float
    tracking_rmse: float
    solve_time_s: float
    method: str


@dataclass(frozen=True)
class ConicForm:
    """The hedge QP as a cvxpy problem over Parameters (see `HedgeProblem`), solved by a conic solver."""

    factor: Any
    projected_target: Any
    carry_reward: Any
    cap: Any
    weights: Any
    problem: Any

    @classmethod
    def build(cls, n: int) -> ConicForm:
        cp = _cvxpy()
        factor = cp.Parameter((n, n), name="factor")
        projected_target = cp.Parameter(n, name="projected_target")
        carry_reward = cp.Parameter(n, name="carry_reward")
        cap = cp.Parameter(n, nonneg=True, name="cap")
        weights = cp.Variable(n, name="weights")
        objective = cp.sum_squares(factor @ weights - projected_target) - carry_reward @ weights
        constraints = [cp.sum(weights) == 1, weights >= 0, weights <= cap]
        problem = cp.Problem(cp.Minimize(objective), constraints)
        return cls(factor, projected_target, carry_reward, cap, weights, problem)


class HedgeProblem:
    """The hedge QP, re-solved warm for each new week; its cvxpy form (DPP) is built on the first fallback.

    cvxpy Parameters: `factor` (n_candidates × n_candidates, the thin-QR factor of R scaled to O(1)),
    `projected_target` (Qᵀ r_target, same scale), `carry_reward` (λ·carry on that scale) and `cap`.
    Scaling every parameter by one constant leaves the argmin unchanged and keeps the solver's
    absolute tolerances meaningful for returns of ~1e-3.

    With `active_set_warm_start` each solve first tries the active-set method (from the previous
    solution, or for the first solve from the cold vertex; see the module docstring) and falls back
    to the cvxpy problem; without it every week is an interior-point solve, still polished to the
    active set's exact optimum.
    """

    def __init__(
        self,
        n_obs: int,
        n_candidates: int,
        lam: float,
        solver: str = DEFAULT_SOLVER,
        active_set_warm_start: bool = True,
    ):
        if n_obs < 2:
            raise ValueError(f"HedgeProblem: n_obs must be >= 2, got {n_obs}")
        if n_candidates < 1:
            raise ValueError(f"HedgeProblem: n_candidates must be >= 1, got {n_candidates}")
        if not np.isfinite(lam) or lam < 0:
            raise ValueError(f"HedgeProblem: lam must be finite and >= 0, got {lam}")
        self.n_obs = int(n_obs)
        self.n_candidates = int(n_candidates)
        self.lam = float(lam)
        self.solver = solver
        self.active_set_warm_start = active_set_warm_start
        self.previous_weights: np.ndarray | None = None

    @functools.cached_property
    def conic(self) -> ConicForm:
        """The cvxpy problem, built (seconds at a thousand candidates) only when a solve needs it."""
        return ConicForm.build(self.n_candidates)

    @property
    def problem(self):
        return self.conic.problem

    def solve(self, returns, target_returns, carry, cap) -> HedgeSolution:
        """Solve for one week's data; `returns` is (n_obs × n_candidates), padded names have cap 0."""
        R, r, carry, cap = self._validated(returns, target_returns, carry, cap)
        started = time.perf_counter()
        n = self.n_candidates
        stacked = np.column_stack([R, r])
        gram = stacked.T @ stacked
        scale_squared = np.trace(gram[:n, :n]) / n
        scale_squared = scale_squared if scale_squared > 0 else 1.0
        # ½ wᵀ H w + gᵀ w is the objective divided by scale², up to a constant.
        hessian = 2.0 * gram[:n, :n] / scale_squared
        gradient_at_zero = (-2.0 * gram[:n, n] - self.lam * carry) / scale_squared
        weights, status, method = None, OPTIMAL, "active-set"
        if self.active_set_warm_start:
            weights = (
                active_set_qp(hessian, gradient_at_zero, cap, self.previous_weights)
                if self.previous_weights is not None
                else active_set_qp_cold(hessian, gradient_at_zero, cap)
            )
        if weights is None:
            interior, status = self._solve_interior_point(stacked, carry, cap, np.sqrt(scale_squared))
            weights = active_set_qp(hessian, gradient_at_zero, cap, interior)
            if weights is None:
                weights, method = interior, self.solver
            else:
                status, method = OPTIMAL, f"{self.solver}+active-set"
        self.previous_weights = weights
        elapsed = time.perf_counter() - started
        residual = R @ weights - r
        return HedgeSolution(
            weights=weights,
            status=status,
            objective=float(residual @ residual - self.lam * carry @ weights),
            tracking_rmse=float(np.sqrt(np.mean(residual**2))),
            solve_time_s=elapsed,
            method=method,
        )

    def _solve_interior_point(self, stacked, carry, cap, scale) -> tuple[np.ndarray, str]:
        """The cvxpy problem's answer clipped into the bounds, and its status; raises HedgeSolveError without one."""
        cp = _cvxpy()
        conic = self.conic
        # QR of [R | r] without forming Q: its last column holds Qᵀr next to the factor F of R.
        triangular = np.asarray(np.linalg.qr(stacked, mode="r"))[: self.n_candidates]
        factor = np.zeros((self.n_candidates, self.n_candidates))
        factor[: len(triangular)] = triangular[:, :-1]
        projected = np.zeros(self.n_candidates)
        projected[: len(triangular)] = triangular[:, -1]
        conic.factor.value = factor / scale
        conic.projected_target.value = projected / scale
        conic.carry_reward.value = self.lam * carry / scale**2
        conic.cap.value = cap
        conic.problem.solve(solver=self.solver, warm_start=True, **SOLVER_OPTIONS.get(self.solver, {}))
        status = conic.problem.status
        if conic.weights.value is None or status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise HedgeSolveError(f"hedge QP: solver {self.solver} returned status {status!r}, no basket")
        return np.clip(conic.weights.value, 0.0, cap), status

    def _validated(self, returns, target_returns, carry, cap):
        R = np.asarray(returns, dtype="float64")
        r = np.asarray(target_returns, dtype="float64")
        carry = np.asarray(carry, dtype="float64")
        cap = np.asarray(cap, dtype="float64")
        expected = (self.n_obs, self.n_candidates)
        if R.shape != expected:
            raise ValueError(f"hedge QP: returns have shape {R.shape}, problem expects {expected}")
        if r.shape != (self.n_obs,):
            raise ValueError(f"hedge QP: target_returns have shape {r.shape}, expected ({self.n_obs},)")
        for name, values in (("carry", carry), ("cap", cap)):
            if values.shape != (self.n_candidates,):
                raise ValueError(f"hedge QP: {name} has shape {values.shape}, expected ({self.n_candidates},)")
        for name, values in (("returns", R), ("target_returns", r), ("carry", carry), ("cap", cap)):
            if not np.all(np.isfinite(values)):
                raise ValueError(f"hedge QP: {name} contain NaN or infinite values")
        if np.any(cap < 0):
            raise ValueError(f"hedge QP: cap must be >= 0, got min {cap.min()}")
        if cap.sum() < 1.0 - CAP_SUM_TOLERANCE:
            raise InfeasibleBasketError(
                f"hedge QP: volume caps sum to {cap.sum():.6g} < 1, no fully invested basket fits; "
                "raise max_volume_share, shrink basket_notional_usd or widen the universe"
            )
        return R, r, carry, cap


def active_set_qp(hessian, gradient_at_zero, cap, start) -> np.ndarray | None:
    """Minimise ½ wᵀHw + gᵀw subject to Σ w = 1, 0 ≤ w ≤ cap by a primal active-set method from `start`.

    Each step solves the equality-constrained QP with the working set's names held at their bound,
    moves towards it until a name hits a bound (which joins the working set), or, at its minimiser,
    releases the bound with the most wrongly signed multiplier. Returns None instead of guessing when a
    step is singular, the steps run out, or the result has no KKT certificate; the caller then uses
    the interior-point solver.
    """
    H, g, cap = _as_float_arrays(hessian, gradient_at_zero, cap)
    movable = cap > 0
    w = feasible_start(start, cap)
    at_lower = movable & (w <= 0)
    at_upper = movable & (w >= cap) & ~at_lower
    w = np.where(at_upper, cap, np.where(movable & ~at_lower, w, 0.0))
    return _active_set_steps(H, g, cap, w, at_lower, at_upper)


def active_set_qp_cold(hessian, gradient_at_zero, cap) -> np.ndarray | None:
    """`active_set_qp` without a previous solution: from the vertex filling the best names to their caps.

    The movable names are taken in order of their gradient at w = 0 (most negative first: the names
    that reduce the tracking error and earn carry the most) and filled to their caps until Σ w = 1;
    the name that completes the basket is the one free name, the earlier ones sit at their caps and
    the rest at 0. The method then frees names one at a time, so its steps are as small as the
    optimum's free set.
    """
    H, g, cap = _as_float_arrays(hessian, gradient_at_zero, cap)
    movable = np.flatnonzero(cap > 0)
    order = movable[np.argsort(g[movable], kind="stable")]
    filled = np.cumsum(cap[order])
    last = int(np.searchsorted(filled, 1.0))
    if last >= len(order):
        return None
    w = np.zeros(len(g))
    w[order[:last]] = cap[order[:last]]
    w[order[last]] = 1.0 - (filled[last - 1] if last else 0.0)
    at_lower = np.zeros(len(g), dtype=bool)
    at_lower[order[last + 1 :]] = True
    at_upper = np.zeros(len(g), dtype=bool)
    at_upper[order[:last]] = True
    return _active_set_steps(H, g, cap, w, at_lower, at_upper)


def _as_float_arrays(*values) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(v, dtype="float64") for v in values)


def _active_set_steps(H, g, cap, w, at_lower, at_upper) -> np.ndarray | None:
    """The active-set iterations from a feasible `w` whose working set holds `at_lower` and `at_upper`."""
    n = len(g)
    tolerance = KKT_TOLERANCE * max(1.0, np.abs(H).max(), np.abs(g).max())
    movable = cap > 0
    # Each step adds or releases one bound; a few passes over the names is generous.
    for _ in range(4 * n + 20):
        free = np.flatnonzero(movable & ~at_lower & ~at_upper)
        if len(free) == 0:
            return None
        grad = H @ w + g
        kkt = np.ones((len(free) + 1, len(free) + 1))
        kkt[:-1, :-1] = H[np.ix_(free, free)]
        kkt[-1, -1] = 0.0
        try:
            solution = np.linalg.solve(kkt, np.append(-grad[free], 0.0))
        except np.linalg.LinAlgError:
            return None
        step, multiplier = solution[:-1], solution[-1]
        if not np.all(np.isfinite(solution)):
            return None
        # A name's step below rounding moves nothing: one on its bound is not blocked by it.
        falls, rises = step < -STEP_ROUNDING, step > STEP_ROUNDING
        lower_room = np.where(falls, w[free] / np.where(falls, -step, 1.0), np.inf)
        upper_room = np.where(rises, (cap[free] - w[free]) / np.where(rises, step, 1.0), np.inf)
        blocking = np.minimum(lower_room, upper_room)
        blocker = int(np.argmin(blocking))
        if blocking[blocker] < 1.0:
            w[free] += blocking[blocker] * step
            name = free[blocker]
            hits_lower = lower_room[blocker] <= upper_room[blocker]
            w[name] = 0.0 if hits_lower else cap[name]
            at_lower[name], at_upper[name] = hits_lower, not hits_lower
            continue
        w[free] = np.clip(w[free] + step, 0.0, cap[free])
        # At the working set's minimiser: grad_i + ν is the bound's multiplier (≥ 0 at 0, ≤ 0 at cap).
        reduced = H @ w + g + multiplier
        wrong_sign = np.where(at_lower, -reduced, np.where(at_upper, reduced, 0.0))
        worst = int(np.argmax(wrong_sign))
        if wrong_sign[worst] <= tolerance:
            return w if _kkt_certified(H, g, cap, w, at_lower, at_upper, tolerance) else None
        at_lower[worst] = at_upper[worst] = False
    return None


def _kkt_certified(H, g, cap, w, at_lower, at_upper, tolerance) -> bool:
    """Stationarity, multiplier signs, bounds and Σ w = 1, recomputed from scratch for the final w."""
    free = (cap > 0) & ~at_lower & ~at_upper
    reduced = H @ w + g
    multiplier = -reduced[free].mean()
    reduced = reduced + multiplier
    return bool(
        np.all(np.abs(reduced[free]) <= tolerance)
        and np.all(reduced[at_lower] >= -tolerance)
        and np.all(reduced[at_upper] <= tolerance)
        and np.all((w >= 0) & (w <= cap))
        and abs(w.sum() - 1.0) <= 1e-12
    )


def feasible_start(weights, cap) -> np.ndarray:
    """A point with Σ w = 1, 0 ≤ w ≤ cap near `weights` (caps must sum to ≥ 1), keeping names on their bounds.

    Weights within BOUND_SNAP of a bound are put on it; the remaining surplus or shortfall is taken
    from, or given to, the names strictly inside their bounds (all names if those cannot absorb it).
    """
    cap = np.asarray(cap, dtype="float64")
    w = np.clip(np.asarray(weights, dtype="float64"), 0.0, cap)
    w[w <= BOUND_SNAP] = 0.0
    near_cap = w >= cap - BOUND_SNAP
    w[near_cap] = cap[near_cap]
    inside = (w > 0) & (w < cap)
    shortfall = 1.0 - w.sum()
    if shortfall > 0 and (cap - w).sum() > 0:
        room = np.where(inside, cap - w, 0.0)
        room = room if room.sum() >= shortfall else cap - w
        w += room * min(1.0, shortfall / room.sum())
    elif shortfall < 0:
        share = np.where(inside, w, 0.0)
        share = share if share.sum() >= -shortfall else w
        w -= share * (-shortfall / share.sum())
    return np.clip(w, 0.0, cap)


def pad_candidates(returns, carry, cap, n_candidates: int):
    """Pad a week's universe to the problem size with zero returns, zero carry and cap 0."""
    R = np.asarray(returns, dtype="float64")
    n_absent = n_candidates - R.shape[1]
    if n_absent < 0:
        raise ValueError(f"pad_candidates: {R.shape[1]} candidates do not fit a problem of {n_candidates}")
    return (
        np.pad(R, ((0, 0), (0, n_absent))),
        np.pad(np.asarray(carry, dtype="float64"), (0, n_absent)),
        np.pad(np.asarray(cap, dtype="float64"), (0, n_absent)),
    )
