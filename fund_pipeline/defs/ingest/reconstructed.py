"""`reconstructed_prints`: the open windows' predicted rates rebuilt from premium history, per day × venue.

The source serves the venue's premium-index history and the funding formula of each symbol (the
market's own: the simulated market says how it settles, the ccxt source states the venues'
documented formulas); `domain/predicted.py` rebuilds the predicted path at the configured
cadence. Rows are predicted prints with `source = reconstructed` in the FundingPrint schema,
partitioned like the settled prints by funding_time, so a window's path sits in the day it
settles. The check compares each window's last reconstructed rate with the settled rate.
"""

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import DAILY_VENUE_PARTITIONS
from fund_pipeline.defs.scope import daily_venue_spans
from fund_pipeline.domain.predicted import (
    RECONSTRUCTION_P95_TOLERANCE,
    ReconstructionConfig,
    error_summary,
    reconstruct_predicted,
    settlement_errors,
)
from fund_pipeline.domain.time import MAX_INTERVAL_H
from fund_pipeline.resources import MarketSourceResource
from fund_pipeline.sources.base import PremiumHistorySource
from fund_pipeline.venues.registry import facts
from fund_pipeline.warehouse import WAREHOUSE_POOL, Warehouse

RECONSTRUCTED_TABLE = "reconstructed_prints"
# A window settling on the day opened up to one (longest) interval before it.
SAMPLE_LEAD = pd.Timedelta(hours=MAX_INTERVAL_H)


class ReconstructionRunConfig(dg.Config):
    """Cadence of the rebuilt path (seconds; divides every interval). Default: `ReconstructionConfig`."""

    cadence_s: int = ReconstructionConfig().cadence_s


@dg.asset(
    partitions_def=DAILY_VENUE_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingest",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    deps=["raw_funding_prints"],
    check_specs=[
        dg.AssetCheckSpec(
            "reconstruction_matches_settlement",
            asset="reconstructed_prints",
            description=f"Per venue, the p95 absolute error of the last reconstructed rate against the settled rate "
            f"is within {RECONSTRUCTION_P95_TOLERANCE:g} per interval, and exact wherever the clamp pins it.",
        )
    ],
)
def reconstructed_prints(
    context: dg.AssetExecutionContext,
    config: ReconstructionRunConfig,
    market_source: MarketSourceResource,
    warehouse: Warehouse,
):
    """Predicted prints rebuilt every `cadence_s` from the source's premium history."""
    cadence = ReconstructionConfig(config.cadence_s)
    parts, summaries, written = [], [], 0
    for venue, start, end in daily_venue_spans(context):
        source = market_source.venue_source(venue)
        if not isinstance(source, PremiumHistorySource):
            raise dg.Failure(f"reconstructed_prints: the {source.name} source serves no premium-index history")
        samples = source.premium_samples(venue, start - SAMPLE_LEAD, end)
        if samples.empty:
            raise dg.Failure(f"reconstructed_prints: the {source.name} source has no premium history for {venue} "
                             f"in [{start:%Y-%m-%d}, {end:%Y-%m-%d})")  # fmt: skip
        formulas = source.funding_formulas(venue, sorted(samples["symbol"].unique()))
        prints = reconstruct_predicted(venue, samples, formulas, cadence, facts(venue).settlement_phase_h)
        prints = prints[(prints["funding_time"] >= start) & (prints["funding_time"] < end)].reset_index(drop=True)
        parts.append((prints, {"venue": [venue], "funding_time": (start, end)}))
        settled = warehouse.settled_prints(start, end, [venue])
        errors = settlement_errors(prints, settled, formulas) if len(settled) else settled
        if len(errors):
            summaries.append(error_summary(errors))
        written += len(prints)
    warehouse.replace_partitions(RECONSTRUCTED_TABLE, parts)
    summary = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()
    if len(summary):
        summary = _per_venue(summary)
    yield dg.MaterializeResult(
        metadata={"dagster/row_count": written, "cadence_s": cadence.cadence_s, "venues": len(parts)}
    )
    by_venue = {
        str(r.venue): {
            "n": int(r.n),
            "median_abs_error": float(r.median_abs_error),
            "p95_abs_error": float(r.p95_abs_error),
            "exact_share": round(float(r.exact_share), 4),
            "pinned": int(r.pinned),
            "pinned_exact": bool(r.pinned_exact),
        }
        for r in summary.itertuples()
    }
    yield dg.AssetCheckResult(
        check_name="reconstruction_matches_settlement",
        passed=bool(len(summary)) and bool(summary["passed"].all()),
        metadata={
            "tolerance_p95": RECONSTRUCTION_P95_TOLERANCE,
            "windows_compared": int(summary["n"].sum()) if len(summary) else 0,
            "by_venue": dg.MetadataValue.json(by_venue),
        },
    )


def _per_venue(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per venue when a run held several spans of it: the worst span's figures."""
    worst = summary.sort_values("p95_abs_error").groupby("venue").tail(1).set_index("venue")
    worst["n"] = summary.groupby("venue")["n"].sum()
    worst["pinned"] = summary.groupby("venue")["pinned"].sum()
    worst["pinned_exact"] = summary.groupby("venue")["pinned_exact"].all()
    worst["passed"] = summary.groupby("venue")["passed"].all()
    return worst.reset_index()
