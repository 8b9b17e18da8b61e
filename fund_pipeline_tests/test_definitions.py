from fund_pipeline.demo import load_definitions

ASSETS = {
    "market_universe",
    "raw_funding_prints",
    "market_bars",
    "curve_history",
    "live_curve",
    "feature_store",
    "symbol_clusters",
    "funding_forecast_model",
    "funding_forecasts",
    "forecast_scorecard",
    "weekly_hedge_baskets",
    "basket_performance",
    "aggregate_funding_rate",
    "cumulative_funding_rate",
    "funding_arbitrage",
}


def test_definitions_load_with_every_asset_job_schedule_and_sensor():
    defs = load_definitions()
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert ASSETS <= keys
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"ingest_job", "daily_job", "weekly_job", "reports_job"} <= jobs
    assert {s.name for s in defs.schedules} >= {
        "after_settlement_ingest",
        "after_settlement_features",
        "monday_models_and_baskets",
        "monday_reports",
    }
    assert "live_snapshot_sensor" in {s.name for s in defs.sensors}
    assert set(defs.resources) >= {"warehouse", "market_source", "landing"}
