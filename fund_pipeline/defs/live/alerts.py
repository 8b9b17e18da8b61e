"""Stress alerts on `live_curve`: a WARN check naming the symbols whose curve left its range.

The z-scores are computed in `domain/stress.py` over the stored live snapshots of the look-back
(live only: the same semantics on both sides). Flagged symbols are optionally posted as JSON to
a webhook whose URL comes from the environment (`FUND_PIPELINE_STRESS_WEBHOOK`, read through
`dg.EnvVar`, so it never sits in code or run config); a webhook that fails is reported in the
check's metadata, it never fails the check.
"""

import json
import os
import urllib.error
import urllib.request

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import FUNDING_WINDOW_PARTITIONS
from fund_pipeline.domain.stress import StressConfig, stress_zscores, stressed_symbols
from fund_pipeline.plots import grouped_bars, markdown_image, markdown_table
from fund_pipeline.warehouse import WAREHOUSE_POOL, Warehouse

STRESS_WEBHOOK_ENV = "FUND_PIPELINE_STRESS_WEBHOOK"
_DEFAULTS = StressConfig()


class StressWebhook(dg.ConfigurableResource):
    """Where stress alerts are posted as JSON; an empty URL posts nowhere."""

    url: str = ""
    timeout_s: float = 5.0

    def post(self, payload: dict) -> str:
        """POST the payload; returns what happened ("not configured", "HTTP 200", or the error)."""
        if not self.url:
            return "not configured"
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload, default=str).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return f"HTTP {response.status}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            return f"failed: {exc}"


class StressCheckConfig(dg.Config):
    """The look-back, warm-up, threshold and std floor of the z-scores (defaults: `StressConfig`)."""

    window: str = _DEFAULTS.window
    min_periods: int = _DEFAULTS.min_periods
    threshold: float = _DEFAULTS.threshold
    min_std: float = _DEFAULTS.min_std

    def domain(self) -> StressConfig:
        return StressConfig(self.window, self.min_periods, self.threshold, self.min_std)


def zscore_plot(newest: pd.DataFrame, venue: str) -> str:
    """Level and slope z-scores of a venue's symbols at their newest snapshot, as a markdown image."""
    table = newest.set_index(newest["symbol"].str.split("/").str[0])[["level_z", "slope_z"]]
    png = grouped_bars(table, f"{venue}: curve z-scores at the newest snapshot", "z-score")
    return markdown_image(png, f"{venue} stress z-scores")


def stress_report(snapshots: pd.DataFrame, config: StressConfig, since: pd.Timestamp) -> tuple[pd.DataFrame, dict]:
    """Flagged symbols (newest snapshot at or after `since`) and the metadata of the check."""
    z = stress_zscores(snapshots, config)
    flagged = stressed_symbols(z, since)
    current = z[z["ts_snap"] >= since].sort_values("ts_snap").groupby(["venue", "symbol"]).tail(1)
    metadata: dict = {
        "stressed_symbols": len(flagged),
        "symbols_scored": int(current["level_z"].notna().sum()),
        "threshold": config.threshold,
        "window": config.window,
    }
    if len(flagged):
        shown = flagged[["venue", "symbol", "ts_snap", "level", "slope", "level_z", "slope_z"]].head(20)
        metadata["stressed"] = dg.MetadataValue.md(markdown_table(shown.set_index(["venue", "symbol"])))
    for venue, rows in current.dropna(subset=["level_z"]).groupby("venue"):
        metadata[f"zscore_plot_{venue}"] = dg.MetadataValue.md(zscore_plot(rows, str(venue)))
    return flagged, metadata


def alert_payload(flagged: pd.DataFrame, partition: str) -> dict:
    rows = flagged[["venue", "symbol", "ts_snap", "level", "slope", "level_z", "slope_z"]]
    return {"check": "live_curve_stress", "window": partition, "symbols": rows.to_dict("records")}


@dg.asset_check(
    asset="live_curve",
    description=f"Level and slope z-scores of every live symbol within ±{_DEFAULTS.threshold} "
    f"over a {_DEFAULTS.window} look-back (warns, naming the symbols; posts them to the stress webhook).",
    pool=WAREHOUSE_POOL,
)
def live_curve_stress(
    context: dg.AssetCheckExecutionContext,
    config: StressCheckConfig,
    warehouse: Warehouse,
    stress_webhook: StressWebhook,
) -> dg.AssetCheckResult:
    """Scores the window's snapshots against the stored live snapshots of the look-back before them."""
    stress = config.domain()
    partition = context.run.tags.get("dagster/partition")
    if partition is None:
        newest = warehouse.latest("live_curve", "ts_snap")
        if newest is None:
            return dg.AssetCheckResult(passed=True, metadata={"note": "no live snapshots stored yet"})
        end = newest + pd.Timedelta(1, "us")
        start = end - pd.Timedelta(hours=8)
        partition = "newest"
    else:
        window = FUNDING_WINDOW_PARTITIONS.time_window_for_partition_key(partition)
        start, end = pd.Timestamp(window.start).tz_convert("UTC"), pd.Timestamp(window.end).tz_convert("UTC")
    snapshots = warehouse.read("live_curve", {"ts_snap": (start - pd.Timedelta(stress.window), end)})
    if snapshots.empty:
        return dg.AssetCheckResult(passed=True, metadata={"note": f"no live snapshots in {partition}"})
    flagged, metadata = stress_report(snapshots, stress, start)
    if len(flagged):
        metadata["webhook"] = stress_webhook.post(alert_payload(flagged, partition))
        names = ", ".join(
            f"{r.venue} {r.symbol} (level z {r.level_z:+.1f}, slope z {r.slope_z:+.1f})"
            for r in flagged.head(10).itertuples()
        )
        context.log.warning(f"live_curve {partition}: stressed symbols: {names}")
    return dg.AssetCheckResult(passed=flagged.empty, severity=dg.AssetCheckSeverity.WARN, metadata=metadata)


defs = dg.Definitions(
    asset_checks=[live_curve_stress],
    resources={
        "stress_webhook": StressWebhook(url=dg.EnvVar(STRESS_WEBHOOK_ENV))
        if os.environ.get(STRESS_WEBHOOK_ENV)
        else StressWebhook()
    },
)
