"""Weekly hedge baskets: inputs known at the basket date, volume caps, PCA cleaning, one QP per target.

The hedge is held **long the target perp, short the basket**. The weights solve the QP of
`hedge_qp.py`: minimise ‖R w − r_target‖² − λ · carry · w subject to Σ w = 1, 0 ≤ w ≤ cap, with R
the candidates' hourly simple returns over the trailing lookback and r_target the target's.

Carry sign convention: `carry_8h` is the candidate's 8h-normalised funding rate expected over the
holding week, as printed by the venue (positive = longs pay shorts): by default the trailing mean
over the lookback, or (`carry_source="forecast_7d"`) the week's forecast of the mean rate over the
next 7 days. A short position receives +rate × notional at each settlement, so a positive
`carry_8h` is income for the short basket and the −λ·carry·w term rewards it. λ is in units of
squared-return-sum per 8h rate: with 720 hourly returns of ~0.5 %, ‖R w − r‖² is ~1e-2 and 8h
carry ~1e-4, so λ ~ 100 starts to matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fund_pipeline.domain.hedge_qp import HedgeProblem, InfeasibleBasketError, pad_candidates
from fund_pipeline.domain.prints import SchemaError, rate_to_8h, require_columns
from fund_pipeline.domain.time import to_utc

HOUR = pd.Timedelta(hours=1)
# Trailing window of returns, carry and volume a basket is formed from.
BASKET_LOOKBACK = pd.Timedelta(days=30)
# A solved basket's Σw may miss 1 by solver rounding (~1e-8); anything looser than this is broken.
WEIGHT_SUM_TOLERANCE = 1e-5
HEDGE_BAR_COLUMNS = ["venue", "symbol", "base", "ts", "close", "volume_usd"]
HEDGE_PRINT_COLUMNS = ["venue", "symbol", "kind", "funding_time", "rate", "interval_h"]

BASKET_WEIGHT_COLUMNS = [
    "as_of",
    "target_venue",
    "target_symbol",
    "venue",
    "symbol",
    "weight",
    "cap",
    "carry_8h",
    "adv_usd",
    "volume_usage",
    "carry_source",
]
BASKET_SUMMARY_COLUMNS = [
    "as_of",
    "target_venue",
    "target_symbol",
    "status",
    "objective",
    "tracking_rmse",
    "correlation",
    "basket_carry_8h",
    "n_candidates",
    "n_obs",
    "reported_weight",
    "solve_time_s",
    "carry_source",
    "n_forecast_carry",
]
# Where a basket's carry term comes from: the trailing mean of settled rates, or the 7-day forecast.
CARRY_SOURCES = ("trailing", "forecast_7d")


def volume_caps(adv_usd, basket_notional_usd: float, max_volume_share: float) -> np.ndarray:
    """cap_i = min(1, max_volume_share · adv_i / basket_notional_usd): the basket may take that share of ADV."""
    if not basket_notional_usd > 0:
        raise ValueError(f"volume_caps: basket_notional_usd must be > 0, got {basket_notional_usd}")
    if not 0 < max_volume_share <= 1:
        raise ValueError(f"volume_caps: max_volume_share must be in (0, 1], got {max_volume_share}")
    adv = np.asarray(adv_usd, dtype="float64")
    if np.any(~np.isfinite(adv) | (adv < 0)):
        raise ValueError("volume_caps: adv_usd must be finite and >= 0")
    return np.minimum(1.0, max_volume_share * adv / basket_notional_usd)


def pca_clean(returns, n_components: int) -> np.ndarray:
    """Keep the top-k principal components of R (column means kept): idiosyncratic noise is dropped."""
    R = np.asarray(returns, dtype="float64")
    if R.ndim != 2:
        raise ValueError(f"pca_clean: returns must be 2-D, got shape {R.shape}")
    if not 1 <= n_components <= min(R.shape):
        raise ValueError(f"pca_clean: n_components must be in [1, {min(R.shape)}], got {n_components}")
    mean = R.mean(axis=0)
    u, s, vt = np.linalg.svd(R - mean, full_matrices=False)
    return (u[:, :n_components] * s[:n_components]) @ vt[:n_components] + mean


@dataclass(frozen=True)
class HedgeInputs:
    """One target's hedge inputs as known at `as_of`; candidates rows align with the columns of `returns`."""

    hours: pd.DatetimeIndex
    candidates: pd.DataFrame
    returns: np.ndarray
    target_returns: np.ndarray


def hourly_returns(bars: pd.DataFrame, start, end) -> pd.DataFrame:
    """Simple returns of close for bars opening in [start, end), columns (venue, symbol), NaN where a bar is missing.

    The return of the bar opening at t is close_t / close_(t−1h) − 1, known at t + 1h ≤ end.
    """
    require_columns(bars, ["venue", "symbol", "ts", "close"], "bars")
    start, end = on_the_hour(start, "start"), on_the_hour(end, "end")
    if end <= start:
        raise ValueError(f"hourly_returns: end {end} must be after start {start}")
    grid = pd.date_range(start - HOUR, end - HOUR, freq="h", unit="ns")
    ts = to_utc(bars["ts"])
    window = bars.loc[(ts >= grid[0]) & (ts <= grid[-1])].assign(ts=ts)
    duplicated = window.duplicated(["venue", "symbol", "ts"])
    if duplicated.any():
        sample = window.loc[duplicated, ["venue", "symbol", "ts"]].head(3).to_dict("records")
        raise SchemaError(f"bars: {int(duplicated.sum())} duplicate (venue, symbol, ts) row(s), e.g. {sample}")
    close = window.pivot(index="ts", columns=["venue", "symbol"], values="close").reindex(grid)
    return close.pct_change(fill_method=None).iloc[1:]


@dataclass(frozen=True)
class CandidateWindow:
    """What every target's hedge inputs of one basket date share: the window's hourly returns (columns
    venue × symbol), each perp's base, its carry (mean 8h settled rate) and its ADV, all known at `as_of`."""

    as_of: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp
    returns: pd.DataFrame
    bases: pd.Series
    carry: pd.Series
    adv: pd.Series


def candidate_window(
    bars: pd.DataFrame, prints: pd.DataFrame, as_of, lookback: pd.Timedelta = BASKET_LOOKBACK
) -> CandidateWindow:
    """Returns, bases, carry and ADV over [as_of − lookback, as_of) using only data before `as_of`.

    carry_8h = mean 8h-normalised settled rate; adv_usd = window volume / days. Built once per basket
    date and shared by its targets (`target_inputs`).
    """
    require_columns(bars, HEDGE_BAR_COLUMNS, "bars")
    require_columns(prints, HEDGE_PRINT_COLUMNS, "funding prints")
    as_of = to_utc(pd.DatetimeIndex([as_of]))[0]
    lookback = _lookback(lookback)
    end = as_of.floor("h")
    start = end - lookback
    bar_ts = to_utc(bars["ts"])
    bars = bars.loc[bar_ts < as_of]
    bar_ts = bar_ts[bar_ts < as_of]
    funding_time = to_utc(prints["funding_time"])
    prints = prints.loc[(funding_time < as_of) & (funding_time >= start) & (prints["kind"] == "settled")]
    bases = bars.drop_duplicates(["venue", "symbol"]).set_index(["venue", "symbol"])["base"]
    carry = (
        prints.assign(carry_8h=rate_to_8h(prints["rate"], prints["interval_h"]))
        .groupby(["venue", "symbol"])["carry_8h"]
        .mean()
    )
    in_window = (bar_ts >= start) & (bar_ts < end)
    adv = bars.loc[in_window].groupby(["venue", "symbol"])["volume_usd"].sum() / (lookback / pd.Timedelta(days=1))
    return CandidateWindow(as_of, start, end, hourly_returns(bars, start, end), bases, carry, adv)


def target_inputs(window: CandidateWindow, target_venue: str, target_symbol: str) -> HedgeInputs:
    """One target's inputs from its basket date's window.

    Candidates: every venue×symbol perp whose base differs from the target's, with a complete
    hourly return history in the window and at least one settled funding print there (its carry
    must be known).
    """
    returns, bases, carry = window.returns, window.bases, window.carry
    key = (target_venue, target_symbol)
    if key not in returns.columns:
        raise SchemaError(f"hedge_inputs: target {key} has no bars in [{window.start}, {window.end})")
    target_returns = returns[key]
    if target_returns.isna().any():
        raise SchemaError(
            f"hedge_inputs: target {key} misses {int(target_returns.isna().sum())} hourly return(s) "
            f"in [{window.start}, {window.end})"
        )
    target_base = bases[key]
    complete = returns.columns[returns.notna().all().to_numpy()]
    names = pd.MultiIndex.from_tuples(
        [name for name in complete if bases[name] != target_base and name in carry.index],
        names=["venue", "symbol"],
    ).sort_values()
    candidates = pd.DataFrame(
        {
            "venue": names.get_level_values("venue"),
            "symbol": names.get_level_values("symbol"),
            "base": bases.reindex(names).to_numpy(),
            "carry_8h": carry.reindex(names).to_numpy(),
            "adv_usd": window.adv.reindex(names).fillna(0.0).to_numpy(),
        }
    )
    return HedgeInputs(
        hours=returns.index,
        candidates=candidates,
        returns=returns[names].to_numpy(dtype="float64") if len(names) else np.empty((len(returns), 0)),
        target_returns=target_returns.to_numpy(dtype="float64"),
    )


def hedge_inputs(
    bars: pd.DataFrame,
    prints: pd.DataFrame,
    target_venue: str,
    target_symbol: str,
    as_of,
    lookback: pd.Timedelta = BASKET_LOOKBACK,
) -> HedgeInputs:
    """One target's returns, carry and ADV over [as_of − lookback, as_of): `candidate_window`, then `target_inputs`."""
    return target_inputs(candidate_window(bars, prints, as_of, lookback), target_venue, target_symbol)


@dataclass(frozen=True)
class BasketConfig:
    """How weekly baskets are sized; these are the production defaults (the Dagster config takes them from here).

    lam = 0.5 makes carry a tie-breaker, not a driver: ‖R w − r‖² over 720 hourly returns of
    ~0.5 % is ~1e-2, and λ·carry with an 8h carry of ~1e-4 is ~5e-5, about 0.5 % of it. Among
    baskets that track about equally well the QP takes the one that earns more funding, but it
    never gives up visible tracking for carry (λ ~ 100 is where carry starts to move weights).
    A basket of $5M with at most 5 % of a name's average daily notional keeps every leg small
    against the market it trades in. min_weight_to_report = 0 stores every leg, so the stored
    weights sum to 1 and the weight check sees the whole basket.
    """

    lam: float = 0.5
    basket_notional_usd: float = 5_000_000.0
    max_volume_share: float = 0.05
    lookback: pd.Timedelta = BASKET_LOOKBACK
    pca_components: int | None = None
    min_weight_to_report: float = 0.0
    carry_source: str = "trailing"

    def __post_init__(self):
        if not np.isfinite(self.lam) or self.lam < 0:
            raise ValueError(f"BasketConfig: lam must be finite and >= 0, got {self.lam}")
        if not self.basket_notional_usd > 0:
            raise ValueError(f"BasketConfig: basket_notional_usd must be > 0, got {self.basket_notional_usd}")
        if not 0 < self.max_volume_share <= 1:
            raise ValueError(f"BasketConfig: max_volume_share must be in (0, 1], got {self.max_volume_share}")
        _lookback(self.lookback)
        if self.pca_components is not None and self.pca_components < 1:
            raise ValueError(f"BasketConfig: pca_components must be >= 1 or None, got {self.pca_components}")
        if self.carry_source not in CARRY_SOURCES:
            raise ValueError(f"BasketConfig: carry_source must be one of {CARRY_SOURCES}, got {self.carry_source!r}")
        if not 0 <= self.min_weight_to_report < 1:
            raise ValueError(f"BasketConfig: min_weight_to_report must be in [0, 1), got {self.min_weight_to_report}")


def build_weekly_baskets(
    bars: pd.DataFrame,
    prints: pd.DataFrame,
    as_of,
    targets: list[tuple[str, str]],
    config: BasketConfig,
    problem: HedgeProblem | None = None,
    forecast_carry: pd.Series | None = None,
    window: CandidateWindow | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One basket per target as of `as_of`: (weights frame, summary frame).

    With `carry_source="forecast_7d"`, `forecast_carry` (8h rate, indexed by venue and symbol,
    forecast from data before `as_of`) replaces the trailing carry of every candidate it covers;
    the others keep the trailing mean, and summary.n_forecast_carry counts the covered ones.

    All targets share one HedgeProblem sized to the week's whole perp universe; pass `problem`
    to reuse one across weeks (it is rebuilt if its size or λ do not fit). `window` is the date's
    `candidate_window` of these bars and prints when the caller has it (built here otherwise). Weights below
    `min_weight_to_report` are left out of the weights frame (summary.reported_weight says how much
    is shown). tracking_rmse and correlation are in-sample on raw returns, even with PCA cleaning.
    """
    if not targets:
        raise ValueError("build_weekly_baskets: no targets given")
    if config.carry_source == "forecast_7d" and forecast_carry is None:
        raise ValueError("build_weekly_baskets: carry_source 'forecast_7d' needs forecast_carry (the 7-day forecast)")
    as_of = to_utc(pd.DatetimeIndex([as_of]))[0]
    n_obs = int(config.lookback / HOUR)
    if window is None:
        window = candidate_window(bars, prints, as_of, config.lookback)
    elif (window.as_of, window.end - window.start) != (as_of, config.lookback):
        raise ValueError(
            f"build_weekly_baskets: the window is of {window.as_of} over {window.end - window.start}, "
            f"the baskets of {as_of} over {config.lookback}"
        )
    # every perp with a bar before as_of
    n_universe = len(window.bases)
    if problem is None or (problem.n_obs, problem.lam) != (n_obs, config.lam) or problem.n_candidates < n_universe:
        problem = HedgeProblem(n_obs, max(n_universe, 1), config.lam)

    weight_rows, summary_rows = [], []
    for target_venue, target_symbol in targets:
        inputs = target_inputs(window, target_venue, target_symbol)
        n_candidates = len(inputs.candidates)
        if n_candidates == 0:
            raise InfeasibleBasketError(
                f"build_weekly_baskets: no candidates for target {(target_venue, target_symbol)}"
            )
        fit_returns = inputs.returns
        if config.pca_components is not None:
            fit_returns = pca_clean(fit_returns, min(config.pca_components, *fit_returns.shape))
        n_forecast = 0
        if config.carry_source == "forecast_7d" and forecast_carry is not None:
            names = pd.MultiIndex.from_frame(inputs.candidates[["venue", "symbol"]])
            forecast = forecast_carry.reindex(names).to_numpy(dtype="float64")
            covered = np.isfinite(forecast)
            n_forecast = int(covered.sum())
            inputs.candidates["carry_8h"] = np.where(covered, forecast, inputs.candidates["carry_8h"].to_numpy())
        carry = inputs.candidates["carry_8h"].to_numpy()
        adv = inputs.candidates["adv_usd"].to_numpy()
        cap = volume_caps(adv, config.basket_notional_usd, config.max_volume_share)
        try:
            solution = problem.solve(*_padded(fit_returns, inputs.target_returns, carry, cap, problem.n_candidates))
        except InfeasibleBasketError as exc:
            raise InfeasibleBasketError(f"target {(target_venue, target_symbol)} as of {as_of}: {exc}") from exc
        weights = solution.weights[:n_candidates]
        basket = inputs.returns @ weights
        reported = weights >= config.min_weight_to_report
        frame = inputs.candidates.loc[reported, ["venue", "symbol", "carry_8h", "adv_usd"]].assign(
            weight=weights[reported], cap=cap[reported]
        )
        frame["volume_usage"] = np.divide(
            frame["weight"] * config.basket_notional_usd,
            frame["adv_usd"],
            out=np.full(len(frame), np.inf),
            where=frame["adv_usd"].to_numpy() > 0,
        )
        weight_rows.append(
            frame.assign(
                as_of=as_of, target_venue=target_venue, target_symbol=target_symbol, carry_source=config.carry_source
            )
        )
        summary_rows.append(
            {
                "as_of": as_of,
                "target_venue": target_venue,
                "target_symbol": target_symbol,
                "status": solution.status,
                "objective": solution.objective,
                "tracking_rmse": float(np.sqrt(np.mean((basket - inputs.target_returns) ** 2))),
                "correlation": correlation(basket, inputs.target_returns),
                "basket_carry_8h": float(carry @ weights),
                "n_candidates": n_candidates,
                "n_obs": n_obs,
                "reported_weight": float(weights[reported].sum()),
                "solve_time_s": solution.solve_time_s,
                "carry_source": config.carry_source,
                "n_forecast_carry": n_forecast,
            }
        )
    weights_frame = pd.concat(weight_rows, ignore_index=True)[BASKET_WEIGHT_COLUMNS]
    summary = pd.DataFrame(summary_rows, columns=BASKET_SUMMARY_COLUMNS)
    for frame in (weights_frame, summary):
        frame["as_of"] = to_utc(frame["as_of"])
    return weights_frame, summary


def universe_day(as_of) -> pd.Timestamp:
    """The day whose market universe a basket formed at `as_of` may use: the last full day before it.

    Names listed then are candidates even if they are delisted later (no survivorship), and names
    listed after it are not (no look-ahead).
    """
    return (to_utc(pd.DatetimeIndex([as_of]))[0] - pd.Timedelta(days=1)).normalize()


def in_sample_tracking(
    legs: pd.DataFrame, bars: pd.DataFrame, as_of, lookback, target: tuple[str, str]
) -> pd.DataFrame:
    """Cumulative return of the target and of its basket over [as_of − lookback, as_of), hour by hour.

    Missing bars count as a zero return, so the plot shows the whole window; the numbers that
    judge a basket are `build_weekly_baskets`' summary and, out of sample, `evaluate_basket`.
    """
    as_of = to_utc(pd.DatetimeIndex([as_of]))[0]
    return window_tracking(legs, hourly_returns(bars, as_of - _lookback(lookback), as_of), target)


def window_tracking(legs: pd.DataFrame, returns: pd.DataFrame, target: tuple[str, str]) -> pd.DataFrame:
    """`in_sample_tracking` from the window's hourly returns (`hourly_returns`, a `CandidateWindow`'s)."""
    require_columns(legs, ["venue", "symbol", "weight"], "basket legs")
    returns = returns.fillna(0.0)
    weights = legs.set_index(["venue", "symbol"])["weight"]
    missing = [name for name in [target, *weights.index] if name not in returns.columns]
    if missing:
        end = returns.index[-1] + HOUR if len(returns) else "the window's end"
        raise SchemaError(f"in_sample_tracking: no bars before {end} for {missing}")
    basket = returns[list(weights.index)].to_numpy() @ weights.to_numpy()
    return pd.DataFrame(
        {"target": np.cumprod(1 + returns[target].to_numpy()) - 1, "basket": np.cumprod(1 + basket) - 1},
        index=returns.index,
    )


def _padded(returns, target_returns, carry, cap, n_candidates):
    R, carry, cap = pad_candidates(returns, carry, cap, n_candidates)
    return R, target_returns, carry, cap


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, NaN when either side is constant."""
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denominator) if denominator > 0 else float("nan")


def on_the_hour(value, what: str) -> pd.Timestamp:
    stamp = to_utc(pd.DatetimeIndex([value]))[0]
    if stamp != stamp.floor("h"):
        raise ValueError(f"{what} {stamp} must be on the hour")
    return stamp


def _lookback(lookback) -> pd.Timedelta:
    lookback = pd.Timedelta(lookback)
    if lookback < 2 * HOUR or lookback % HOUR != pd.Timedelta(0):
        raise ValueError(f"lookback must be a whole number of hours >= 2h, got {lookback}")
    return lookback
