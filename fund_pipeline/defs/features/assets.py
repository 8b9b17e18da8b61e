"""Features: the daily feature store and the weekly symbol clusters."""

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
    BAR_INPUT_COLUMNS,
    CURVE_INPUT_COLUMNS,
    FEATURE_CHUNK_DAYS,
    FEATURE_WARMUP,
    FUNDING_FEATURES,
    PRINT_INPUT_COLUMNS,
    SYMBOL_FEATURE_INPUTS,
    FeatureInputs,
    FeatureSummary,
    MissingCurves,
    build_feature_chunks,
    cluster_symbols,
    symbol_features,
)
from fund_pipeline.plots import markdown_image, scatter_clusters
from fund_pipeline.resources import WAREHOUSE_POOL, Warehouse


def feature_inputs(warehouse: Warehouse, start: pd.Timestamp, end: pd.Timestamp) -> FeatureInputs:
    """Curves, settled prints and bars from the warm-up before `start` to one day after `end`; the
    reconstructed predicted prints of the windows settling in [start, end) (none stored: empty).
    Curves, prints and bars are read in the columns the store uses (a chunk's bars are ~1M rows at 300 bases)."""
    lo, hi = start - FEATURE_WARMUP, end + TARGET_LOOKAHEAD
    return FeatureInputs(
        curves=warehouse.read("curve_history", {"funding_time": (lo, hi)}, CURVE_INPUT_COLUMNS),
        prints=warehouse.settled_prints(lo, hi, columns=PRINT_INPUT_COLUMNS),
        bars=warehouse.read("market_bars", {"ts": (lo, end)}, BAR_INPUT_COLUMNS),
        predicted=warehouse.read(RECONSTRUCTED_TABLE, {"funding_time": (start, end)}),
    )


class FeatureStoreConfig(dg.Config):
    """Days built (read, computed and written) at a time: a run's memory is one chunk's, not its span's."""

    chunk_days: int = FEATURE_CHUNK_DAYS


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
def feature_store(context: dg.AssetExecutionContext, config: FeatureStoreConfig, warehouse: Warehouse):
    """One row per settled window: curve factors, dispersion, market features and the next window's target.

    Built and written a chunk of days at a time (`build_feature_chunks`), each chunk in its own
    transaction: a run failing in the middle leaves its earlier chunks written (the rows any run of
    those days writes) and records no materialisation, so Dagster shows the days as failed.

    Day × venue upstreams: Dagster's built-in mappings cannot declare this daily asset's 7-day warm-up
    and 1-day target look-ahead onto them (see defs/partitions.py), so the deps map the same day.
    """
    summary = FeatureSummary()

    def read(start: pd.Timestamp, end: pd.Timestamp) -> FeatureInputs:
        return feature_inputs(warehouse, start, end)

    try:
        for start, end in daily_spans(context):
            for chunk, features in build_feature_chunks(read, start, end, config.chunk_days):
                where = {"funding_time": (chunk.start, chunk.end)}
                warehouse.replace_partitions("feature_store", [(features, where)])
                summary.add(features)
                context.log.debug(f"feature_store: {chunk.start:%Y-%m-%d} .. {chunk.end:%Y-%m-%d} written")
    except MissingCurves as error:
        raise dg.Failure(str(error)) from error
    report = summary.warmup_report()
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": summary.rows,
            "venues": len(summary.venues),
            "symbols": len(summary.symbols),
            "rows_with_target": summary.rows_with_target,
            "rows_with_intra_window_path": summary.rows_with_intra_window_path,
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
        window = {"funding_time": (start - CLUSTER_LOOKBACK, start)}
        features = warehouse.read("feature_store", window, SYMBOL_FEATURE_INPUTS)
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
