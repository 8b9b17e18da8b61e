"""Features: the daily feature store and the weekly symbol clusters."""

from typing import NamedTuple

import dagster as dg
import pandas as pd

from fund_pipeline.defs.ingest.reconstructed import RECONSTRUCTED_TABLE
from fund_pipeline.defs.partitions import (
    CLUSTER_LOOKBACK,
    DAILY_PARTITIONS,
    TARGET_LOOKAHEAD,
    WEEKLY_PARTITIONS,
    weeks_before,
)
from fund_pipeline.defs.scope import daily_spans, weekly_windows
from fund_pipeline.domain.features import (
    FEATURE_WARMUP,
    FUNDING_FEATURES,
    INTRA_WINDOW_FEATURES,
    build_feature_store,
    cluster_symbols,
    feature_warmup_report,
    symbol_features,
)
from fund_pipeline.plots import markdown_image, scatter_clusters
from fund_pipeline.resources import WAREHOUSE_POOL, Warehouse


class FeatureInputs(NamedTuple):
    curves: pd.DataFrame
    prints: pd.DataFrame
    bars: pd.DataFrame
    predicted: pd.DataFrame


def feature_inputs(warehouse: Warehouse, start: pd.Timestamp, end: pd.Timestamp) -> FeatureInputs:
    """Curves, settled prints and bars from the warm-up before `start` to one day after `end`; the
    reconstructed predicted prints of the windows settling in [start, end) (none stored: empty)."""
    lo, hi = start - FEATURE_WARMUP, end + TARGET_LOOKAHEAD
    return FeatureInputs(
        curves=warehouse.read("curve_history", {"funding_time": (lo, hi)}),
        prints=warehouse.settled_prints(lo, hi),
        bars=warehouse.read("market_bars", {"ts": (lo, end)}),
        predicted=warehouse.read(RECONSTRUCTED_TABLE, {"funding_time": (start, end)}),
    )


@dg.asset(
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="features",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    deps=["curve_history", "raw_funding_prints", "market_bars", RECONSTRUCTED_TABLE],
    check_specs=[
        dg.AssetCheckSpec(
            "feature_warmup_complete",
            asset="feature_store",
            description="No NaN in funding features; market features complete wherever the venue has bars.",
        )
    ],
)
def feature_store(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One row per settled window: curve factors, dispersion, market features and the next window's target.

    Day × venue upstreams: Dagster's built-in mappings cannot declare this daily asset's 7-day warm-up
    and 1-day target look-ahead onto them (see defs/partitions.py), so the deps map the same day.
    """
    frames, parts = [], []
    for start, end in daily_spans(context):
        curves, prints, bars, predicted = feature_inputs(warehouse, start, end)
        if curves.empty:
            raise dg.Failure(
                f"feature_store: no curve_history in [{start:%Y-%m-%d}, {end:%Y-%m-%d}); materialise curves first"
            )
        features = build_feature_store(curves, prints, bars, start, end, predicted)
        parts.append((features, {"funding_time": (start, end)}))
        frames.append(features)
    warehouse.replace_partitions("feature_store", parts)
    features = pd.concat(frames, ignore_index=True)
    report = feature_warmup_report(features)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(features),
            "venues": int(features["venue"].nunique()),
            "symbols": int(features["symbol"].nunique()),
            "rows_with_target": int(features["target_rate"].notna().sum()),
            "rows_with_intra_window_path": int(features[INTRA_WINDOW_FEATURES[0]].notna().sum()),
        }
    )
    yield dg.AssetCheckResult(
        check_name="feature_warmup_complete",
        passed=report["complete"],
        metadata={
            "failed_columns": report["failed"],
            "nan_share_by_column": {
                k: round(v["nan_share"], 4) for k, v in report["columns"].items() if v["nan_share"] > 0
            },
            "funding_features": len(FUNDING_FEATURES),
        },
    )


class ClusterConfig(dg.Config):
    n_clusters: int = 4
    seed: int = 7


@dg.asset(
    partitions_def=WEEKLY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="features",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "sklearn"},
    deps=[dg.AssetDep("feature_store", partition_mapping=weeks_before(CLUSTER_LOOKBACK))],
)
def symbol_clusters(
    context: dg.AssetExecutionContext, config: ClusterConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Symbols grouped by how their funding behaves over the 30 days before the week."""
    plot, parts = "", []
    for key, start, _ in weekly_windows(context):
        features = warehouse.read("feature_store", {"funding_time": (start - CLUSTER_LOOKBACK, start)})
        if features.empty:
            raise dg.Failure(f"symbol_clusters {key}: no feature_store rows in the 30 days before {start}")
        points = cluster_symbols(symbol_features(features, start, CLUSTER_LOOKBACK), config.n_clusters, config.seed)
        points.insert(0, "week_start", start)
        parts.append((points, {"week_start": start}))
        plot = markdown_image(
            scatter_clusters(points, f"funding behaviour clusters, 30 days to {start:%Y-%m-%d}"), "clusters"
        )
    rows = warehouse.replace_partitions("symbol_clusters", parts)
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, "clusters_plot": dg.MetadataValue.md(plot)})
