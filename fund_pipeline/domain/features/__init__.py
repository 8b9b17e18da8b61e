"""Feature store and symbol clusters: every feature computed from the past only.

Rooms: `store` (the feature rows, their columns and the warm-up report), `chunks` (a long span
built a month at a time), `streams` (curve streams
as integer codes, their settled prints and targets), `market` (features from hourly bars),
`clusters` (per-symbol summaries and KMeans). This module names the API.
"""

from fund_pipeline.domain.features.chunks import (
    FEATURE_CHUNK_DAYS,
    FeatureChunk,
    FeatureInputs,
    FeatureSummary,
    MissingCurves,
    build_feature_chunks,
    feature_chunks,
)
from fund_pipeline.domain.features.clusters import (
    SYMBOL_FEATURE_INPUTS,
    SYMBOL_FEATURES,
    cluster_symbols,
    symbol_features,
)
from fund_pipeline.domain.features.market import BAR_INPUT_COLUMNS, BARS_FLAG, MARKET_FEATURES
from fund_pipeline.domain.features.store import (
    CURVE_INPUT_COLUMNS,
    FEATURE_COLUMNS,
    FEATURE_WARMUP,
    FUNDING_FEATURES,
    INTRA_WINDOW_FEATURES,
    KEY_COLUMNS,
    OPTIONAL_FEATURES,
    OUTPUT_COLUMNS,
    PRINT_INPUT_COLUMNS,
    TARGET_COLUMNS,
    build_feature_store,
    feature_warmup_report,
    warmup_counts,
)

__all__ = [
    "BARS_FLAG",
    "FEATURE_CHUNK_DAYS",
    "BAR_INPUT_COLUMNS",
    "CURVE_INPUT_COLUMNS",
    "FEATURE_COLUMNS",
    "FEATURE_WARMUP",
    "FUNDING_FEATURES",
    "FeatureChunk",
    "FeatureInputs",
    "FeatureSummary",
    "INTRA_WINDOW_FEATURES",
    "KEY_COLUMNS",
    "MARKET_FEATURES",
    "MissingCurves",
    "OPTIONAL_FEATURES",
    "OUTPUT_COLUMNS",
    "PRINT_INPUT_COLUMNS",
    "SYMBOL_FEATURE_INPUTS",
    "SYMBOL_FEATURES",
    "TARGET_COLUMNS",
    "build_feature_chunks",
    "build_feature_store",
    "cluster_symbols",
    "feature_chunks",
    "feature_warmup_report",
    "symbol_features",
    "warmup_counts",
]
