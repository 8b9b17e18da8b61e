"""Feature store and symbol clusters: every feature computed from the past only.

Rooms: `store` (the feature rows, their columns and the warm-up report), `streams` (curve streams
as integer codes, their settled prints and targets), `market` (features from hourly bars),
`clusters` (per-symbol summaries and KMeans). This module names the API.
"""

from fund_pipeline.domain.features.clusters import SYMBOL_FEATURES, cluster_symbols, symbol_features
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
)

__all__ = [
    "BARS_FLAG",
    "BAR_INPUT_COLUMNS",
    "CURVE_INPUT_COLUMNS",
    "FEATURE_COLUMNS",
    "FEATURE_WARMUP",
    "FUNDING_FEATURES",
    "INTRA_WINDOW_FEATURES",
    "KEY_COLUMNS",
    "MARKET_FEATURES",
    "OPTIONAL_FEATURES",
    "OUTPUT_COLUMNS",
    "PRINT_INPUT_COLUMNS",
    "SYMBOL_FEATURES",
    "TARGET_COLUMNS",
    "build_feature_store",
    "cluster_symbols",
    "feature_warmup_report",
    "symbol_features",
]
